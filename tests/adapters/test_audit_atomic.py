"""One append per command, audit included (issue 15): a successful action's events and its
audit record are stored by one `insert_events`, so no action event ever exists without
its record, even when the process is killed mid-stream."""

from __future__ import annotations

import textwrap
import uuid
from typing import Any

import pytest
from eventsourcing.utils import get_topic

from adapters.bootstrap import Ledger, open_ledger
from domain.audit import AuditRecord
from tests.actions import SAMPLES, build_world, meta, run
from tests.killing import run_until_killed

ADMIN = meta("superadmin")


def _count_appends(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    appends: list[int] = []
    recorder: Any = ledger.app.recorder
    insert = recorder.insert_events

    def counting(stored_events: Any, **kwargs: Any) -> Any:
        appends.append(len(stored_events))
        return insert(stored_events, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", counting)
    return appends


@pytest.mark.parametrize("method", [m for m in SAMPLES if m[0] in ("group", "user", "keypair_resource_policy")])
def test_a_successful_command_is_one_append_with_its_record(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, method: tuple[str, str]
) -> None:
    world = build_world(ledger)
    appends = _count_appends(ledger, monkeypatch)
    before = ledger.app.recorder.max_notification_id() or 0
    run(ledger, *method, SAMPLES[method](world), ADMIN)
    stored = ledger.app.recorder.select_notifications(start=before + 1, limit=1000)
    assert len(appends) == 1 and appends[0] == len(stored)  # everything in one transaction
    records = [n for n in stored if n.topic == get_topic(AuditRecord.Recorded)]
    assert (len(records) == 1 and stored[-1] is records[0]) or len(stored) == 1


def test_a_refused_or_failed_command_appends_its_record_alone(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    from domain.errors import LedgerError
    from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction

    appends = _count_appends(ledger, monkeypatch)
    with pytest.raises(LedgerError):
        run(
            ledger,
            "keypair_resource_policy",
            "modify_keypair_resource_policy",
            ModifyKeyPairResourcePolicyAction(name="ghost", modifier={"max_concurrent_sessions": 1}),
            ADMIN,
        )
    assert appends == [1]
    (entry,) = ledger.queries.audit_log()
    assert entry.status == "error" and entry.error_code == "keypair_resource_policy_not_found"


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from adapters.bootstrap import open_ledger
    from domain.actions import ActionTriggerMeta
    from domain.keypair_resource_policy import (
        CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator, ModifyKeyPairResourcePolicyAction,
    )
    root = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
    with open_ledger(sys.argv[1]) as ledger:
        processors = ledger.processors.keypair_resource_policy
        i = 0
        while True:
            creator = KeyPairResourcePolicyCreator(name=f"{sys.argv[2]}{i}", total_resource_slots={"cpu": "1"})
            asyncio.run(processors.create_keypair_resource_policy.wait_for_complete(
                CreateKeyPairResourcePolicyAction(creator=creator), root))
            modify = ModifyKeyPairResourcePolicyAction(
                name=f"{sys.argv[2]}{i}", modifier={"max_concurrent_sessions": 2}
            )
            asyncio.run(processors.modify_keypair_resource_policy.wait_for_complete(modify, root))
            print(i, flush=True)
            i += 1
    """
)


@pytest.mark.slow
def test_a_killed_writer_leaves_no_action_event_without_its_record(ledger_url: str) -> None:
    for round_ in range(3):  # killed at a different moment each time: commands are under way
        run_until_killed(WRITER, [ledger_url, f"r{round_}-"], 20 + 7 * round_)
    with open_ledger(ledger_url) as ledger:
        notifications = ledger.app.recorder.select_notifications(start=1, limit=1_000_000)
        records = {n.originator_id for n in notifications if n.topic == get_topic(AuditRecord.Recorded)}
        acted = set()
        for notification in notifications:
            if notification.topic == get_topic(AuditRecord.Recorded):
                continue
            event = ledger.app.mapper.to_domain_event(notification)
            stamp = vars(event).get("meta") or {}
            action_id = stamp.get("action_id")
            if action_id and stamp.get("role") != "system":  # the ledger's own setup is no action
                acted.add(uuid.UUID(action_id))
        assert len(acted) >= 60
        assert acted <= records, f"{len(acted - records)} actions stored without their record"
