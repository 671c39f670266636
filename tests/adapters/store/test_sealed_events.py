"""Personal values at rest (issue 14): sealed in the stored events under their subject's
key, read in clear through the ledger; a purge destroys the group's key in its own append,
after which its values read `[erased]` everywhere the events are read, and the chain still
verifies (it covers the stored bytes, which never change)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from adapters.store.chain import verify
from domain.actions import ActionTriggerMeta
from domain.errors import GroupClearHistory, GroupNotFound, ObjectNotFound
from domain.group import CreateGroupAction, ModifyGroupAction, PurgeGroupAction
from domain.personal import ERASED
from domain.user import CreateUserAction
from domain.workload import StartKernelAction
from tests.adapters.store.raw import as_older_release

ROOT = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
EMAIL = "ada.lovelace.sealed@example.org"
FULL_NAME = "Ada Sealed-Lovelace"
DESCRIPTION = "the sealed project of the analytical engine"


def run(ledger: Ledger, service: str, method: str, action: Any) -> Any:
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, ROOT))


def stored_bytes(ledger: Ledger) -> bytes:
    """Every stored event's state as the database holds it (snapshots included)."""
    notifications = ledger.app.recorder.select_notifications(start=1, limit=1_000_000)
    return b"".join(n.state for n in notifications)


def world(ledger: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    user = uuid.uuid4()
    creator = {"user_id": str(user), "domain_name": "default", "email": EMAIL, "full_name": FULL_NAME}
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    created = run(
        ledger,
        "group",
        "create_group",
        CreateGroupAction(input={"name": "sealed", "domain_name": "default", "description": DESCRIPTION}),
    )
    group = created.data.id
    add = ModifyGroupAction(group_id=group, user_update_mode="add", user_uuids=[str(user)])
    run(ledger, "group", "modify_group", add)
    return user, group


def test_personal_values_are_sealed_at_rest_and_read_in_clear(ledger: Ledger) -> None:
    user, group = world(ledger)
    at_rest = stored_bytes(ledger)
    for value in (EMAIL, FULL_NAME, DESCRIPTION):
        assert value.encode() not in at_rest, value
    found = ledger.queries.user(user)
    assert found is not None and found.email == EMAIL and found.full_name == FULL_NAME
    shown = ledger.queries.group(group)
    assert shown is not None and shown.description == DESCRIPTION
    assert user in ledger.queries.group_members(group)
    created = ledger.queries.history("user", str(user))[0]
    assert created.changes["email"]["new"] == EMAIL
    state = ledger.queries.state_at("group", str(group), version=1)
    assert state is not None and state.fields["description"] == DESCRIPTION
    assert verify(ledger.app).ok


def test_a_purge_destroys_the_group_key_in_its_own_append(ledger: Ledger) -> None:
    user, group = world(ledger)
    keys_before = ledger.app.keys.count()
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group))
    assert ledger.app.keys.count() == keys_before - 1
    assert ledger.app.keys.key(f"group:{group}") is None
    assert ledger.app.keys.key(f"user:{user}") is not None  # the member's own values stay
    state = ledger.queries.state_at("group", str(group), version=1)
    assert state is not None and state.fields["description"] == ERASED
    history = ledger.queries.history("group", str(group))
    assert history[0].changes["description"]["new"] == ERASED
    assert verify(ledger.app).ok
    # The user's own values are untouched by the group's erasure.
    found = ledger.queries.user(user)
    assert found is not None and found.email == EMAIL


def test_a_late_kernel_start_of_a_purged_group_is_erased_at_once(ledger: Ledger) -> None:
    """A kernel start the platform reports after the group's purge is refused, and its
    audit record holds the kernel's user id, access key and session name sealed under the
    group's subject. The purge had destroyed that key, so a new one was made: those values
    read in clear in `ledger audit` for good, and no erasure could reach them again (a
    purged group's id is never used again, so it cannot be purged twice)."""
    user, group = world(ledger)
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group))
    kernel = uuid.uuid4()
    start = StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="a late session of the purged group",
        group_id=group,
        domain_name="default",
        user_id=user,
        access_key="AKLATEPURGED",
        occupied_slots={"cpu": "1"},
        started_at=datetime.now(UTC),
    )
    with pytest.raises(GroupNotFound):
        run(ledger, "workload", "start_kernel", start)
    assert ledger.app.keys.key(f"group:{group}") is None  # no key made again
    (record,) = ledger.queries.audit_log(entity_id=str(kernel))
    assert record.status == "error"
    assert {f: record.spec[f] for f in ("user_id", "access_key", "session_name")} == dict.fromkeys(
        ("user_id", "access_key", "session_name"), ERASED
    )
    at_rest = stored_bytes(ledger)
    assert b"AKLATEPURGED" not in at_rest and b"a late session" not in at_rest
    assert verify(ledger.app).ok
    # A group that was never purged (nor ever existed) still gets a key, as before.
    assert not ledger.app.purged_group(f"group:{uuid.uuid4()}")
    assert not ledger.app.purged_group(f"user:{user}")


def test_a_refused_member_is_not_in_clear_in_the_audit_records_description(ledger: Ledger) -> None:
    """A member id is sealed under the group's key in the action's input, but the refusal's
    message named it ("user ID not found in domain ..."), and the record stored that
    message in clear: after the purge the input read [erased] and the description did not."""
    _user, group = world(ledger)
    stranger = str(uuid.uuid4())
    with pytest.raises(ObjectNotFound):
        run(
            ledger,
            "group",
            "modify_group",
            ModifyGroupAction(group_id=group, user_update_mode="add", user_uuids=[stranger]),
        )
    assert stranger.encode() not in stored_bytes(ledger)
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group))
    (record,) = ledger.queries.audit_log(entity_id=str(group), status="error")
    assert record.error_code == "user_not_found" and record.spec["user_uuids"] == [ERASED]
    assert stranger not in record.description and "user_uuids" in record.description
    assert verify(ledger.app).ok


def test_a_reopened_ledger_reads_what_it_sealed(ledger_url: str) -> None:
    from adapters.bootstrap import open_ledger

    with open_ledger(ledger_url) as first:
        user, _ = world(first)
    with open_ledger(ledger_url) as again:
        found = again.queries.user(user)
        assert found is not None and found.email == EMAIL


OLD_DESCRIPTION = "described in clear by an older release"


def _old_release_group(ledger: Ledger) -> uuid.UUID:
    """A group whose description an older release stored in clear (no sealing yet)."""
    created = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "old", "domain_name": "default"}))
    from domain.group import Group

    app = ledger.app
    with as_older_release(app):
        stored = app.get(created.data.id, Group)
        assert stored is not None
        stored.modify({"description": OLD_DESCRIPTION})
        app.save(stored)
    assert OLD_DESCRIPTION.encode() in stored_bytes(ledger)
    return created.data.id  # type: ignore[no-any-return]


def test_a_purge_over_clear_history_is_refused_unless_accepted(ledger: Ledger) -> None:
    from domain.errors import GroupClearHistory

    group = _old_release_group(ledger)
    with pytest.raises(GroupClearHistory) as refused:
        run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group))
    assert "1 stored event" in refused.value.message and "1 personal value" in refused.value.message
    assert refused.value.code == "group_purge_clear_history"
    assert ledger.queries.group(group) is not None  # nothing purged
    assert ledger.app.keys.key(f"group:{group}") is not None
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group, accept_clear_history=True))
    assert ledger.queries.group(group) is None
    purged = ledger.queries.history("group", str(group))[-1]
    assert purged.event == "Purged" and purged.details["clear_values"] == 1
    assert purged.details["accept_clear_history"] is True
    assert verify(ledger.app).ok


def test_an_older_kernel_of_the_group_and_its_audit_record_count_as_clear_history(ledger: Ledger) -> None:
    """A kernel started through the processors by an older release: its Created event and
    the start's audit record hold the kernel's user id, access key and session name in
    clear, on streams other than the group's own. A purge counts both."""
    from datetime import UTC, datetime

    from domain.workload import StartKernelAction, TerminateKernelAction

    group = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "kernels", "domain_name": "default"}))
    group_id = group.data.id
    kernel = uuid.uuid4()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    start = StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="older-session",
        group_id=group_id,
        domain_name="default",
        user_id=uuid.uuid4(),
        access_key="AKOLDER",
        occupied_slots={"cpu": "1"},
        started_at=at,
    )
    with as_older_release(ledger.app):
        run(ledger, "workload", "start_kernel", start)
    run(ledger, "workload", "terminate_kernel", TerminateKernelAction(kernel_id=kernel, terminated_at=at))
    assert b"AKOLDER" in stored_bytes(ledger)
    with pytest.raises(GroupClearHistory) as refused:
        run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group_id))
    # The kernel's Created (3 values) and the start's audit record (3 values).
    assert "2 stored events" in refused.value.message and "6 personal values" in refused.value.message
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group_id, accept_clear_history=True))
    assert ledger.queries.history("group", str(group_id))[-1].details["clear_values"] == 6


def test_a_batch_across_groups_is_erased_group_by_group(ledger: Ledger) -> None:
    """Each start of a batch is sealed with its own group's key: purging one group erases
    its starts in the batch's audit record and leaves the other group's readable."""
    from datetime import UTC, datetime

    from domain.workload import RecordWorkloadBatchAction, StartKernelAction, TerminateKernelAction

    groups = [
        run(ledger, "group", "create_group", CreateGroupAction(input={"name": n, "domain_name": "default"})).data.id
        for n in ("batch-a", "batch-b")
    ]
    at = datetime(2026, 3, 1, tzinfo=UTC)
    kernels = [uuid.uuid4(), uuid.uuid4()]
    starts = [
        StartKernelAction(
            kernel_id=kernel,
            session_id=kernel,
            session_name=f"batch-session-{n}",
            group_id=group,
            domain_name="default",
            user_id=uuid.uuid4(),
            access_key=f"AKBATCH{n}",
            occupied_slots={"cpu": "1"},
            started_at=at,
        )
        for n, (kernel, group) in enumerate(zip(kernels, groups, strict=True))
    ]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=starts))
    ends = [TerminateKernelAction(kernel_id=k, terminated_at=at) for k in kernels]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=ends))
    assert b"AKBATCH" not in stored_bytes(ledger)

    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=groups[0]))
    (record,) = [e for e in ledger.queries.audit_log(entity_type="workload") if e.spec["actions"][0].get("user_id")]
    first, second = record.spec["actions"]
    assert first["access_key"] == ERASED and first["session_name"] == ERASED and first["user_id"] == ERASED
    assert second["access_key"] == "AKBATCH1" and second["session_name"] == "batch-session-1"
    erased, kept = (ledger.queries.state_at("kernel", str(k)) for k in kernels)
    assert erased is not None and erased.fields["access_key"] == ERASED
    assert kept is not None and kept.fields["access_key"] == "AKBATCH1"
    assert verify(ledger.app).ok
