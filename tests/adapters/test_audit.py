"""The audit trail: every outcome of every processor method (success, error, denied) is
recorded with the real entity id, the actor and the error code, on both backends; refused
and failed attempts leave the entity's own stream untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.actions import ActionTriggerMeta, BaseAction, processor
from domain.errors import InsufficientPermission, InvalidAPIParameters, LedgerError
from tests.actions import FAILURES, SAMPLES, build_world, meta, run, stream_lengths

USER = meta("user")


@pytest.mark.parametrize("method", list(SAMPLES))
def test_success_error_and_denied_are_each_audited(ledger_url: str, method: tuple[str, str]) -> None:
    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        before = len(ledger.queries.audit_log())
        failing, code = FAILURES[method]
        action = SAMPLES[method](world)
        streams = stream_lengths(ledger)

        with pytest.raises(InsufficientPermission):
            run(ledger, *method, action, USER)
        with pytest.raises(LedgerError) as failed:
            run(ledger, *method, failing(world))
        assert failed.value.code == code
        assert stream_lengths(ledger) == streams  # neither attempt touched an entity's stream
        result = run(ledger, *method, action)

        denied, error, success = ledger.queries.audit_log()[before:]
        assert [denied.status, error.status, success.status] == ["denied", "error", "success"]
        assert denied.error_code == "permission_forbidden" and "user" in denied.description
        assert error.error_code == code and error.description == failed.value.message
        assert success.error_code is None and success.description == "success"
        for entry, asked in ((denied, action), (error, failing(world)), (success, action)):
            assert (entry.entity_type, entry.operation) == (asked.entity_type(), asked.operation_type())
            assert entry.entity_id not in (None, "", "(unknown)")
            assert entry.ended_at >= entry.started_at and entry.duration >= 0
            assert entry.request_id == "r-1" and entry.triggered_by is not None
        assert success.entity_id == (result.entity_id() or action.entity_id())
        assert denied.entity_id == action.entity_id()
        assert (denied.role, denied.access_key, denied.domain_name) == ("user", "AKUSER", "alpha")
        assert denied.spec == action.spec()


def test_the_audit_log_filters_by_entity_actor_operation_status_and_time(ledger: Ledger) -> None:
    world = build_world(ledger)
    method = ("group", "modify_group")
    for _ in range(2):
        run(ledger, *method, SAMPLES[method](world), meta("admin"))
    with pytest.raises(InsufficientPermission):
        run(ledger, *method, SAMPLES[method](world), USER)
    log = ledger.queries.audit_log
    trail = log(entity_type="group", entity_id=str(world.group))
    assert [(e.operation, e.status) for e in trail] == [
        ("create", "success"),
        ("modify", "success"),
        ("modify", "success"),
        ("modify", "denied"),
    ]
    assert [e.status for e in log(actor="AKADMIN")] == ["success", "success"]
    assert [e.status for e in log(actor=str(meta("admin").user_id), status="denied")] == ["denied"]
    assert len(log(operation="modify", entity_type="group")) == 3
    first, last = trail[1].started_at, trail[-1].started_at
    assert [e.started_at for e in log("group", str(world.group), since=first, until=last)] == [
        e.started_at for e in trail[1:3]
    ]
    assert log("group", str(world.group), since=last + timedelta(seconds=1)) == []
    assert len(log(limit=2)) == 2
    with pytest.raises(LedgerError, match="limit"):
        log(limit=0)


class _HourBehind(datetime):
    """The processor's clock an hour behind: an action that started before, but is recorded
    after, what a page already listed (actions overlap in a server; an hour makes it plain)."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _HourBehind:
        return super().now(tz) - timedelta(hours=1)


def test_an_action_recorded_after_a_page_was_read_is_on_the_next_page_though_it_started_first(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trail was ordered by the actions' start: an action that started before a page's
    last entry but was recorded after the page was read sorted before the cursor, and no
    later page ever listed it (an export following the trail lost it for good)."""
    world = build_world(ledger)
    method = ("group", "modify_group")
    run(ledger, *method, SAMPLES[method](world), meta("admin"))
    log = ledger.queries.audit_log
    read = {domain: log(domain_name=domain) for domain in (None, "alpha")}
    assert all(read.values())
    with monkeypatch.context() as clock:
        clock.setattr(processor, "datetime", _HourBehind)
        run(ledger, *method, SAMPLES[method](world), meta("admin"))
    for domain, page in read.items():
        (late,) = log(domain_name=domain, after=page[-1].position)
        assert (late.operation, late.status) == ("modify", "success")
        assert late.started_at < page[-1].started_at  # it started before the cursor's entry
        assert log(domain_name=domain) == [*page, late]
        assert log(domain_name=domain, newest_first=True)[0] == late  # the latest recorded


def test_an_export_goes_on_from_a_cursor_as_a_page_does(ledger: Ledger) -> None:
    """`ledger audit --after P` without --limit streams the rest of the trail: the export
    had no cursor, so going on from a page meant holding the whole rest as a list."""
    world = build_world(ledger)
    for _ in range(3):
        run(ledger, "group", "modify_group", SAMPLES[("group", "modify_group")](world), meta("admin"))
    queries = ledger.queries
    for newest_first in (False, True):
        whole = queries.audit_log(newest_first=newest_first)
        cursor = whole[1].position
        rest = list(queries.audit_export(after=cursor, newest_first=newest_first))
        assert rest == queries.audit_log(after=cursor, newest_first=newest_first) == whole[2:]
    with pytest.raises(InvalidAPIParameters, match="names no audit entry") as refused:
        queries.audit_export(after=whole[0].position + 1000)  # refused at the call, as a page's
    assert refused.value.field == "after"
    # Position 0 is before every entry (as a history's `after=0`): where paging forwards starts.
    oldest = queries.audit_log()
    assert queries.audit_log(after=0, limit=2) == oldest[:2]
    assert list(queries.audit_export(after=0)) == oldest
    assert queries.audit_log(after=0, newest_first=True) == []


def test_an_empty_window_is_refused_as_the_cli_and_the_http_api_refuse_it(ledger: Ledger) -> None:
    """`since` not before `until` answered `[]`, read as "nothing happened then", where the
    CLI and the HTTP API refuse the window: the query refuses it in the same words, naming
    `since` as they do; an export at the call, before any entry is asked for."""
    at = datetime(2030, 1, 2, tzinfo=UTC)
    same_instant = datetime(2030, 1, 2, 1, tzinfo=timezone(timedelta(hours=1)))
    for since, until in ((at, at), (at, at - timedelta(days=1)), (same_instant, at.replace(tzinfo=None))):
        shown = f"'{since.isoformat()}' is not before until '{until.isoformat()}'"
        for query in (ledger.queries.audit_log, ledger.queries.audit_export):
            with pytest.raises(InvalidAPIParameters) as refused:
                query(since=since, until=until)
            assert (refused.value.field, refused.value.reason) == ("since", f"{shown}: no action could match")
        with pytest.raises(InvalidAPIParameters) as refused:
            ledger.queries.kernels(since=since, until=until)
        assert (refused.value.field, refused.value.reason) == ("since", f"{shown}: no kernel could match")
    assert ledger.queries.audit_log(since=at - timedelta(seconds=1), until=at) == []  # a window: answered


def test_an_unknown_entity_type_or_status_is_refused_naming_it(ledger: Ledger) -> None:
    """`audit_log(entity_type="polcy")` answered `[]`, read as "nothing was done to it",
    where `history` refuses an unknown type and the CLI and the HTTP API refuse both."""
    for query in (ledger.queries.audit_log, ledger.queries.audit_export):
        for field, value in (("entity_type", "polcy"), ("status", "SUCCESS"), ("status", "ok")):
            with pytest.raises(InvalidAPIParameters) as refused:
                query(**{field: value})
            assert refused.value.field == field and f"unknown {field.replace('_', ' ')} '{value}'" in str(refused.value)
    assert ledger.queries.audit_log(entity_type="keypair_resource_policy", status="success") == []


def test_an_actor_is_found_in_any_case_of_its_user_id(ledger: Ledger) -> None:
    world = build_world(ledger)
    method = ("group", "modify_group")
    run(ledger, *method, SAMPLES[method](world), meta("admin"))
    admin = str(meta("admin").user_id)
    assert admin != admin.upper()
    found = ledger.queries.audit_log(actor=admin, operation="modify")
    assert found and ledger.queries.audit_log(actor=admin.upper(), operation="modify") == found  # it found none
    assert ledger.queries.audit_log(actor="akadmin") == []  # an access key is matched as given


def test_a_failing_monitor_never_fails_the_action(memory_ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        async def prepare(self, action: object, meta: object) -> None:
            raise RuntimeError("prepare broke")

        async def done(self, action: object, result: object) -> None:
            raise RuntimeError("done broke")

    seen: list[str] = []

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        async def prepare(self, action: object, meta: object) -> None:
            seen.append(f"prepare {self.name}")

        async def done(self, action: object, result: object) -> None:
            seen.append(f"done {self.name}")

    from domain.actions import ActionProcessor
    from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction

    service = memory_ledger.services.keypair_resource_policy
    processor = ActionProcessor(
        service.create_keypair_resource_policy, monitors=[Recording("a"), Broken(), Recording("b")]
    )
    import asyncio

    action = CreateKeyPairResourcePolicyAction(creator={"name": "monitored"})
    result = asyncio.run(processor.wait_for_complete(action, meta("superadmin")))
    assert result.keypair_resource_policy.name == "monitored"
    assert seen == ["prepare a", "prepare b", "done b", "done a"]
    assert "prepare broke" in caplog.text and "done broke" in caplog.text


def test_a_seed_style_audit_monitor_reads_the_action_then_the_results_entity(memory_ledger: Ledger) -> None:
    """Seed 004's AuditLogMonitor: `prepare` records the action's entity type, entity id,
    operation, actor and spec as "started"; `done` reads the entity id from the result
    (`result.result.entity_id()`) and completes the entry. A group created without an
    id is named by the same id in both; a delete the service refuses reaches `done` with
    no result, its error and the status `error`."""
    import asyncio
    import uuid

    from domain.actions import ActionProcessor, ProcessResult
    from domain.errors import GroupNotFound
    from domain.group import CreateGroupAction, DeleteGroupAction

    entries: list[dict[str, object]] = []

    class SeedAuditLog:
        async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
            entries.append(
                {
                    "entity_type": action.entity_type(),
                    "entity_id": action.entity_id(),
                    "operation": action.operation_type(),
                    "access_key": meta.access_key,
                    "domain_name": meta.domain_name,
                    "status": "started",
                    "spec": action.spec(),
                }
            )

        async def done(self, action: BaseAction, result: ProcessResult) -> None:
            entry = entries[-1]
            if result.result is None:
                entry.update(status=result.meta.status, error=type(result.error).__name__)
            else:
                entry.update(status="completed", result_entity_id=result.result.entity_id())

    service = memory_ledger.services.group
    who = meta("superadmin", "default")
    create = CreateGroupAction(input={"name": "development-team", "domain_name": "default"})
    created = asyncio.run(
        ActionProcessor(service.create_group, monitors=[SeedAuditLog()]).wait_for_complete(create, who)
    )
    group = str(created.data.id)
    assert entries[0] == {
        "entity_type": "group",
        "entity_id": group,
        "operation": "create",
        "access_key": "AKSUPERADMIN",
        "domain_name": "default",
        "status": "completed",
        "spec": create.spec(),
        "result_entity_id": group,
    }
    assert memory_ledger.queries.group(created.data.id) == created.data

    missing = DeleteGroupAction(group_id=uuid.UUID(int=404))
    with pytest.raises(GroupNotFound):
        asyncio.run(ActionProcessor(service.delete_group, monitors=[SeedAuditLog()]).wait_for_complete(missing, who))
    assert entries[1]["operation"] == "delete" and entries[1]["entity_id"] == str(uuid.UUID(int=404))
    assert (entries[1]["status"], entries[1]["error"]) == ("error", "GroupNotFound")
    assert "result_entity_id" not in entries[1]


def test_no_history_of_a_fresh_ledger_names_an_action_without_its_audit_row(ledger_url: str) -> None:
    """The system policy and the domain `default` a ledger starts with were stamped with an
    action id of the system's that no audit row held: to an auditor, a missing record.
    They are the ledger's own doing, stamped as the system's with no action."""
    with open_ledger(ledger_url) as ledger:
        audited = {entry.action_id for entry in ledger.queries.audit_log()}
        for entity_type, key in (("keypair_resource_policy", "default"), ("domain", "default")):
            (created,) = ledger.queries.history(entity_type, key)
            assert created.action_id is None or created.action_id in audited
            assert created.actor["role"] == "system"
