"""A stall's cause and a skip's record never keep a personal value past its erasure.

A handler's error may quote the event it failed on, and the event's personal values are
opened (in clear) by then: the stall's row and the skip's event hold that message in
clear, outside the sealed store. The message withholds the event's values; a skip seals
it under the event's subject; an erasure replaces the cause of a stall on its values.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger, recorded_skips
from domain.errors import ReadModelStalled
from domain.group import PurgeGroupAction
from domain.personal import ERASED, WITHHELD
from domain.projection_ops import ProjectionOps, SkipProjectionEventAction
from domain.usage.actions import UsagePerMonthAction
from domain.workload import Kernel
from projections.runner import ProjectionRunner
from tests.adapters.store.raw import as_older_release
from tests.conftest import SUPERADMIN
from tests.killing import dying_after_erasures
from tests.projections.commands import GROUPS, T0, run, start_action

SESSION = "zq7-session-of-ada"
BAD_KERNEL = uuid.UUID(int=0x7FF1)


def stall_on_a_named_value(ledger: Ledger) -> int:
    """A kernel start whose time is its session's name, upper-cased (as an older release
    that checked neither could have stored it): the usage handler's error quotes the time,
    so it names the personal value. Returns the event's position."""
    run(ledger, ("group", 0))
    fields = start_action(GROUPS[0], BAD_KERNEL, T0).kernel_fields()
    fields["session_name"] = SESSION
    fields["started_at"] = SESSION.upper()
    ledger.app.save(Kernel.create(str(BAD_KERNEL), fields))
    ledger.runner.catch_up()
    return ledger.app.recorder.max_notification_id() or 0


def stored_causes(ledger: Ledger) -> list[str]:
    with ledger.read_models.connect() as conn:
        return list(conn.execute(sa.select(ProjectionRunner.stalls.c.cause)).scalars())


def named(text: str) -> bool:
    return SESSION in text.lower()


def usage_stall(ledger: Ledger) -> Any:
    (found,) = [s for s in ledger.runner.status() if s.name == ledger.projections.usage.stable_name]
    return found.stall


def processed(ledger: Ledger, service: str, method: str, action: Any) -> Any:
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, SUPERADMIN))


def test_a_stall_cause_withholds_the_events_personal_values(ledger: Ledger) -> None:
    bad = stall_on_a_named_value(ledger)
    stall = usage_stall(ledger)
    assert stall.position == bad
    assert stall.cause == f"ValueError: Invalid isoformat string: '{WITHHELD}'"
    assert stored_causes(ledger) and not any(named(cause) for cause in stored_causes(ledger))


def test_a_stall_on_an_older_releases_event_keeps_its_cause(ledger: Ledger) -> None:
    """A group an older release wrote has no key: its values are in clear, never sealed,
    so nothing of it is erased. A stall on one of its events (what an upgrade meets) said
    `[erased]` for its cause, hiding from the operator why the handler failed, and an
    erasure of any other subject replaced such a cause too."""
    with as_older_release(ledger.app):
        bad = stall_on_a_named_value(ledger)
    assert not ledger.app.keys.stored(f"group:{GROUPS[0]}")
    expected = f"ValueError: Invalid isoformat string: '{WITHHELD}'"
    assert (usage_stall(ledger).position, usage_stall(ledger).cause) == (bad, expected)
    run(ledger, ("group", 1))
    processed(ledger, "group", "purge_group", PurgeGroupAction(group_id=GROUPS[1]))
    assert set(stored_causes(ledger)) == {expected}


def test_a_skip_seals_its_cause_under_the_events_subject(ledger: Ledger) -> None:
    bad = stall_on_a_named_value(ledger)
    skip = SkipProjectionEventAction(projection="usage_utc", position=bad, reason="an older release's bad time")
    result = processed(ledger, "projection", "skip_projection_event", skip)
    assert result.cause.startswith("ValueError")
    (stored,) = ledger.app.recorder.select_events(ProjectionOps.id_for("usage_utc"), gt=1)
    state = json.loads(stored.state)
    assert state["cause"]["s"] == f"group:{GROUPS[0]}"  # an envelope, not the text
    assert b"ValueError" not in stored.state
    (before,) = recorded_skips(ledger.app, "usage_utc")
    assert before.cause == result.cause

    processed(ledger, "group", "purge_group", PurgeGroupAction(group_id=GROUPS[0]))
    ledger.app.cache.clear()
    (after,) = recorded_skips(ledger.app, "usage_utc")
    assert (after.position, after.reason, after.cause) == (bad, "an older release's bad time", ERASED)


def test_an_erasure_replaces_the_cause_of_a_stall_on_its_values(ledger: Ledger) -> None:
    stall_on_a_named_value(ledger)
    assert stored_causes(ledger)
    processed(ledger, "group", "purge_group", PurgeGroupAction(group_id=GROUPS[0]))
    assert set(stored_causes(ledger)) == {f"ValueError: {ERASED}"}
    assert usage_stall(ledger).cause == f"ValueError: {ERASED}"


def test_a_skip_of_an_event_of_several_subjects_keeps_only_the_errors_kind(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key seals a value: a message about an event of several subjects (a batch's
    audit record spans groups) would stay readable while any of them lived."""
    bad = stall_on_a_named_value(ledger)
    monkeypatch.setattr(ledger.runner, "subjects_at", lambda position: (f"group:{GROUPS[0]}", f"group:{GROUPS[1]}"))
    skip = SkipProjectionEventAction(projection="usage_utc", position=bad, reason="spans groups")
    processed(ledger, "projection", "skip_projection_event", skip)
    (stored,) = ledger.app.recorder.select_events(ProjectionOps.id_for("usage_utc"), gt=1)
    withheld = "ValueError: message withheld (the event holds personal values of 2 subjects)"
    assert json.loads(stored.state)["cause"] == withheld
    assert recorded_skips(ledger.app, "usage_utc")[0].cause == withheld


def test_a_query_refused_by_the_stall_keeps_only_the_error_s_kind_in_the_audit_trail(ledger: Ledger) -> None:
    """A report refused while the read model is stalled is audited with its refusal's
    message, which named the stall's cause: a copy kept for good in clear, which neither
    a skip's sealing nor an erasure's replacing reaches, of a message that may name the
    event's values in a form no withholding caught."""
    stall_on_a_named_value(ledger)
    with pytest.raises(ReadModelStalled, match="Invalid isoformat string"):  # the caller is told it all
        processed(ledger, "group", "usage_per_month", UsagePerMonthAction(month="202401"))
    (refused,) = [e for e in ledger.queries.audit_log() if e.operation == "usage_per_month"]
    assert refused.error_code == "ledger_read_model_stalled"
    assert "stalled at position" in refused.description and "ValueError" in refused.description
    assert "isoformat" not in refused.description


def test_a_stall_recorded_after_an_erasure_by_a_process_that_had_not_met_it_keeps_only_the_kind(
    ledger_url: str,
) -> None:
    """The eraser died before replacing causes (its listeners never ran), and another
    process, its key for the group cached from before, caught the read model up: it opened
    the event's values with that key and recorded the stall from them, after the erasure."""
    with open_ledger(ledger_url) as eraser, open_ledger(ledger_url) as stale:
        run(eraser, ("group", 0))
        fields = start_action(GROUPS[0], BAD_KERNEL, T0).kernel_fields()
        fields["session_name"], fields["started_at"] = SESSION, SESSION.upper()
        eraser.app.save(Kernel.create(str(BAD_KERNEL), fields))
        assert stale.app.keys.key(f"group:{GROUPS[0]}") is not None  # cached before the purge
        with dying_after_erasures(eraser.app):
            processed(eraser, "group", "purge_group", PurgeGroupAction(group_id=GROUPS[0]))
        stale.runner.catch_up()
        assert set(stored_causes(stale)) == {f"ValueError: {ERASED}"}
