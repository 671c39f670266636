"""A projection whose handler fails on an event stalls there alone, visibly and durably;
commands and the other projections go on; a forced rebuild or an audited skip recovers it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.follow import follow
from domain.actions import ActionTriggerMeta
from domain.errors import InsufficientPermission, ProjectionNotStalled, ReadModelStalled, StoreUnavailable
from domain.group import UsagePerMonthAction
from domain.keypair_resource_policy import KeyPairResourcePolicy
from domain.projection_ops import ProjectionOps, SkipProjectionEventAction
from projections import usage as usage_module
from projections.runner import ProjectionRunner
from projections.tracking import tables_of
from projections.usage import UsageProjection
from tests.conftest import SUPERADMIN
from tests.projections.commands import GROUPS, KERNELS, T0
from tests.projections.stalls import BAD_KERNEL, create_policy, stalled_ledger

DAY = date(2024, 10, 1)
ADMIN = ActionTriggerMeta(user_id=uuid.UUID(int=2), access_key="AKADMIN", role="admin", domain_name="default")


def kernel_ids(ledger: Ledger) -> set[str]:
    kernels = ledger.projections.usage.kernels
    with ledger.read_models.connect() as conn:
        return set(conn.execute(sa.select(kernels.c.kernel_id)).scalars())


def positions(ledger: Ledger) -> dict[str, int]:
    with ledger.read_models.connect() as conn:
        return {r.projection: r.position for r in conn.execute(sa.select(ProjectionRunner.tracking))}


def usage_status(ledger: Ledger) -> Any:
    (found,) = [s for s in ledger.runner.status() if s.name == ledger.projections.usage.stable_name]
    return found


def test_a_failing_handler_stalls_its_read_model_alone(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        bad = stalled_ledger(ledger)
        head = ledger.app.recorder.max_notification_id()

        # The others went past the event, to the last one.
        assert "after" in [p.name for p in ledger.queries.keypair_resource_policies()]
        assert [e.event for e in ledger.queries.history("kernel", str(BAD_KERNEL))] == ["Created"]
        usage = ledger.projections.usage
        assert {k: p for k, p in positions(ledger).items() if k != usage.versioned_name} == {
            p.versioned_name: head for p in ledger.projections.all() if p is not usage
        }
        # The stalled one applied everything before the event, nothing from it on.
        assert positions(ledger)[usage.versioned_name] == bad - 1
        assert kernel_ids(ledger) == {str(KERNELS[0])}

        with pytest.raises(ReadModelStalled) as info:
            ledger.queries.usage_totals(DAY, DAY)
        error = info.value
        assert (error.projection, error.position, error.status) == ("usage_utc", bad, 503)
        assert error.code == "ledger_read_model_stalled"
        assert error.cause.startswith("ValueError: Invalid isoformat string: 'yesterday'")
        assert f"usage_utc is stalled at position {bad}: ValueError" in error.message
        with pytest.raises(ReadModelStalled):  # a usage report, through the service, too
            asyncio.run(ledger.services.group.usage_per_month(UsagePerMonthAction(month="202410")))

        # Commands are still accepted, and the healthy read models show them.
        create_policy(ledger, "later")
        assert "later" in [p.name for p in ledger.queries.keypair_resource_policies()]
        stall = usage_status(ledger).stall
        assert (stall.position, stall.version, stall.cause) == (bad, usage.version, error.cause)
        assert usage_status(ledger).to_json()["stalled"]["position"] == bad


def test_a_stall_survives_a_restart_and_is_tried_once_per_process(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tried: list[int] = []
    real = UsageProjection.apply_batch

    def counting(self: UsageProjection, conn: Any, batch: Any) -> None:
        tried.extend(p for p, e in batch if getattr(e, "key", None) == str(BAD_KERNEL))
        real(self, conn, batch)

    monkeypatch.setattr(UsageProjection, "apply_batch", counting)
    with open_ledger(ledger_url) as ledger:
        bad = stalled_ledger(ledger)
    with open_ledger(ledger_url) as reopened:
        assert usage_status(reopened).stall.position == bad  # durable: read back from the database
        before = len(tried)
        with pytest.raises(ReadModelStalled):
            reopened.queries.usage_totals(DAY, DAY)
        assert len(tried) > before  # a new process tries the event once: its code may read it
        retried = len(tried)
        # Then neither queries, nor the follower, nor new events make it try again.
        for _ in range(3):
            with pytest.raises(ReadModelStalled):
                reopened.queries.usage_totals(DAY, DAY)
            assert follow(reopened, 0.01, once=True) == reopened.app.recorder.max_notification_id()
            create_policy(reopened, f"p{_}")
            reopened.runner.catch_up()
        assert len(tried) == retried
        warned = capsys.readouterr().err
        assert f"warning: read model usage_utc stalled at position {bad}: ValueError" in warned
        # What to do, as a query's refusal says it.
        assert "fix its handler and run `ledger projections rebuild --force usage_utc`" in warned
        assert f"`ledger projections skip usage_utc --position {bad} --reason TEXT`" in warned
        assert positions(reopened)[reopened.projections.usage.versioned_name] == bad - 1
        assert "p2" in [p.name for p in reopened.queries.keypair_resource_policies()]


def test_a_forced_rebuild_with_a_fixed_handler_recovers(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_ledger(ledger_url) as ledger:
        stalled_ledger(ledger)
        usage = ledger.projections.usage
        with ledger.read_models.connect() as conn:
            names = tables_of(conn, usage.versioned_name)
        real = usage_module.parse_time

        def lenient(text: str | None) -> datetime | None:  # the fixed handler: no time is T0
            return T0 if text == "yesterday" else real(text)

        monkeypatch.setattr(usage_module, "parse_time", lenient)
        for generation in (1, 2):  # and again: a second generation's names do not collide
            builds = ledger.runner.force([usage])
            assert [b.storage_name for b in builds] == [f"{usage.versioned_name}r{generation}"]
            ledger.runner.catch_up(builds)
            ledger.runner.drop_retired_tables()
            assert usage_status(ledger).stall is None
            assert kernel_ids(ledger) == {str(KERNELS[0]), str(BAD_KERNEL)}
            totals = ledger.queries.usage_totals(DAY, DAY)
            assert set(totals) == {str(GROUPS[0])}
            with ledger.read_models.connect() as conn:
                assert tables_of(conn, usage.versioned_name) == names  # the active names stay
                assert [t for t in sa.inspect(conn).get_table_names() if "usage_v" in t and t not in names] == []
        head = ledger.app.recorder.max_notification_id()
        assert positions(ledger)[usage.versioned_name] == head
    with open_ledger(ledger_url) as reopened:
        assert usage_status(reopened).stall is None
        assert set(reopened.queries.usage_totals(DAY, DAY)) == {str(GROUPS[0])}


def test_a_skip_steps_over_the_event_and_is_audited(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        bad = stalled_ledger(ledger)
        skip = ledger.processors.projection.skip_projection_event

        def action(position: int) -> SkipProjectionEventAction:
            return SkipProjectionEventAction(projection="usage_utc", position=position, reason="bad time from 1.2")

        with pytest.raises(ProjectionNotStalled, match=f"stalled at {bad} "):
            asyncio.run(skip.wait_for_complete(action(bad + 1), SUPERADMIN))
        with pytest.raises(InsufficientPermission):
            asyncio.run(skip.wait_for_complete(action(bad), ADMIN))
        assert usage_status(ledger).skips == ()

        result = asyncio.run(skip.wait_for_complete(action(bad), SUPERADMIN))
        assert (result.projection, result.position, result.version) == ("usage_utc", bad, UsageProjection.version)
        assert result.cause.startswith("ValueError")
        assert set(ledger.queries.usage_totals(DAY, DAY)) == {str(GROUPS[0])}
        assert kernel_ids(ledger) == {str(KERNELS[0])}  # the bad kernel is left out, the later end is in
        status = usage_status(ledger)
        assert status.stall is None and status.lag == 0
        (last,) = status.skips
        assert (last.position, last.reason, last.version) == (bad, "bad time from 1.2", UsageProjection.version)

        trail = ledger.queries.audit_log(entity_type="projection")
        assert [(e.operation, e.status, e.entity_id) for e in trail] == [
            ("skip", "error", "usage_utc"),
            ("skip", "denied", "usage_utc"),
            ("skip", "success", "usage_utc"),
        ]
        assert trail[-1].spec == {"projection": "usage_utc", "position": bad, "reason": "bad time from 1.2"}
        assert trail[-1].triggered_by == str(SUPERADMIN.user_id)

        # A rebuild from the first event honours the skip: it does not stall there again.
        ledger.runner.catch_up(ledger.runner.force([ledger.projections.usage]))
        assert usage_status(ledger).stall is None
        assert kernel_ids(ledger) == {str(KERNELS[0])}
    with open_ledger(ledger_url) as reopened:
        assert usage_status(reopened).stall is None
        assert len(usage_status(reopened).skips) == 1


def test_stalls_and_skips_keep_their_stored_names(memory_ledger: Ledger) -> None:
    """The read side calls a read model's name its stable name; what is stored keeps the
    name `lineage`: the stalls table's column and the attribute of the skip log's first
    event, which an aggregate loaded from the store is built from."""
    ledger = memory_ledger
    bad = stalled_ledger(ledger)
    with ledger.read_models.connect() as conn:
        (row,) = conn.execute(sa.select(ProjectionRunner.stalls)).mappings().all()
    assert (row["lineage"], row["position"]) == ("usage_utc", bad)

    skip = SkipProjectionEventAction(projection="usage_utc", position=bad, reason="stored names")
    asyncio.run(ledger.processors.projection.skip_projection_event.wait_for_complete(skip, SUPERADMIN))
    stream = ProjectionOps.id_for("usage_utc")
    opened, skipped = [ledger.app.mapper.to_domain_event(e) for e in ledger.app.recorder.select_events(stream)]
    assert isinstance(opened, ProjectionOps.Opened) and vars(opened)["lineage"] == "usage_utc"
    assert isinstance(skipped, ProjectionOps.EventSkipped)
    ops = ledger.app.repository.get(stream)
    assert ops.stable_name == "usage_utc"
    assert [(s.stable_name, s.position, s.reason) for s in ops.skipped] == [("usage_utc", bad, "stored names")]


def test_a_database_failure_is_raised_not_taken_for_a_stall(memory_ledger: Ledger) -> None:
    """A lost connection or a lock timeout would stall every projection for nothing."""
    policies = memory_ledger.projections.policies
    created = policies.handlers[KeyPairResourcePolicy.Created]

    def locked(conn: Any, event: Any, position: int) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    policies.handlers[KeyPairResourcePolicy.Created] = locked
    create_policy(memory_ledger, "x")
    with pytest.raises(StoreUnavailable, match="database is locked"):
        memory_ledger.runner.catch_up()
    assert memory_ledger.runner.stalled == {}
    policies.handlers[KeyPairResourcePolicy.Created] = created
    assert "x" in [p.name for p in memory_ledger.queries.keypair_resource_policies()]


def test_stall_times_are_utc(memory_ledger: Ledger) -> None:
    bad = stalled_ledger(memory_ledger)
    stall = usage_status(memory_ledger).stall
    assert stall.position == bad and stall.at.tzinfo is UTC


def test_a_skipped_first_event_leaves_no_stream_number_behind(
    memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History numbers a stream by its first event and caches the number. When that event
    fails and is skipped, the cache must not keep a number whose row was rolled back: later
    events of the stream would point at a stream that does not exist, in this process only."""
    ledger = memory_ledger
    history = ledger.projections.history
    real = type(history)._new_stream

    def failing(self: Any, position: int, event: Any) -> Any:
        row = real(self, position, event)  # caches the number, then fails as a bad event would
        if event.key == "doomed":
            raise ValueError("unreadable policy")
        return row

    monkeypatch.setattr(type(history), "_new_stream", failing)
    create_policy(ledger, "fine")
    create_policy(ledger, "doomed")
    ledger.runner.catch_up()
    (stalled,) = [s for s in ledger.runner.status() if s.stall is not None]
    assert (stalled.name, stalled.stall.cause if stalled.stall else None) == (
        "history",
        "ValueError: unreadable policy",
    )
    doomed = KeyPairResourcePolicy.id_for("doomed")
    assert doomed not in history._numbers

    skip = SkipProjectionEventAction(projection="history", position=stalled.stall.position, reason="test")  # type: ignore[union-attr]
    asyncio.run(ledger.processors.projection.skip_projection_event.wait_for_complete(skip, SUPERADMIN))
    assert doomed not in history._numbers
    assert [e.event for e in ledger.queries.history("keypair_resource_policy", "fine")] == ["Created"]


def test_a_stalled_users_read_model_refuses_usage_reports(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports name each kernel's user from the users read model: when it is stalled a
    report is refused, rather than answered with names from before the stall."""
    from domain.keypair import CreateKeyPairAction
    from projections.users import UsersProjection
    from tests.domain.fakes import ensure_user

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise ValueError("users read model cannot apply this")

    monkeypatch.setattr(UsersProjection, "touch", broken)  # the users projection's writes alone
    with open_ledger(ledger_url) as ledger:
        owner = ensure_user(ledger.app.store, uuid.uuid4(), "default")
        action = CreateKeyPairAction(access_key="AKSTALL", user_id=owner, domain_name="default")
        asyncio.run(ledger.processors.keypair.create_keypair.wait_for_complete(action, SUPERADMIN))
        ledger.runner.catch_up()
        with pytest.raises(ReadModelStalled) as caught:
            asyncio.run(ledger.services.group.usage_per_month(UsagePerMonthAction(month="202410")))
        assert caught.value.projection.startswith("users")


def test_an_event_whose_bytes_do_not_decode_stalls_the_read_models_that_read_it(ledger_url: str) -> None:
    """A stored event cut short behind the ledger's back failed every catch-up with the
    library's MapperDeserialisationError (an internal error, no stall to skip), and every
    command on its stream the same way."""
    from domain.errors import DamagedEvent
    from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction
    from tests.adapters.store.raw import raw_postgres, raw_sqlite

    with open_ledger(ledger_url) as ledger:
        create_policy(ledger, "victim")
        head = ledger.app.recorder.max_notification_id()
        assert head is not None
        create_policy(ledger, "bystander")
        ledger.app.cache.clear()
        table = ledger.config.events_table
        if ledger.config.kind == "sqlite":
            with raw_sqlite(ledger) as conn:
                conn.execute(f"DROP TRIGGER {table}_no_update")
                conn.execute(f"UPDATE {table} SET state = substr(state, 1, 20) WHERE rowid = ?", (head,))
                conn.commit()
        else:
            with raw_postgres(ledger) as pg:
                pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                pg.execute(
                    f"UPDATE {table} SET state = substring(state from 1 for 20) WHERE notification_id = %s", (head,)
                )
        ledger.runner.catch_up()  # no exception: a stall
        stalled = {s.name: s.stall for s in ledger.runner.status() if s.stall is not None}
        assert stalled and all(s.position == head for s in stalled.values()), stalled
        assert all(s.cause.startswith("the stored event cannot be read:") for s in stalled.values())
        with pytest.raises(DamagedEvent, match="cannot be read"):
            asyncio.run(
                ledger.services.keypair_resource_policy.modify_keypair_resource_policy(
                    ModifyKeyPairResourcePolicyAction(name="victim", modifier={"idle_timeout": 5})
                )
            )
