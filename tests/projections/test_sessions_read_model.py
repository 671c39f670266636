"""The sessions read model on SQLite and PostgreSQL: built live with catch-ups between
commands, it equals a rebuild from the first event, row by row (every session event:
enqueue, deferral, admission, activity, kernels attached and detached, cancel, terminate);
its list, in the order sessions were recorded in, is the same after an upgrade builds this
version from the first event and after a forced rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.session import Session
from domain.workload import TerminateKernelAction
from projections.sessions import SessionsProjection
from tests.adapters.sessions import PLATFORM, SessionWorld, run
from tests.projections.readmodels import clean_rebuild, code_with, dump, older


def test_the_sessions_read_model_equals_a_rebuild(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=2)
    a, b, c, d = (world.enqueue() for _ in range(4))
    for sid in (a, b, c):
        world.schedule(sid)  # c is deferred
    ledger.runner.catch_up()
    world.activity(a, datetime.now(UTC) + timedelta(seconds=5))
    start = world.kernel_start(b, started_at=datetime(2025, 1, 1, tzinfo=UTC))
    kernel = start.kernel_id
    run(ledger, "workload", "start_kernel", start, PLATFORM)
    ledger.runner.catch_up()
    end = TerminateKernelAction(kernel_id=kernel, terminated_at=datetime(2025, 1, 2, tzinfo=UTC))
    run(ledger, "workload", "terminate_kernel", end, PLATFORM)
    world.cancel(d)
    world.terminate(a, "idle_timeout")
    ledger.runner.catch_up()
    rows = {s.session_id: s for s in ledger.queries.sessions()}
    assert {sid: rows[str(sid)].status for sid in (a, b, c, d)} == {
        a: "TERMINATED",
        b: "TERMINATED",  # its one kernel ended
        c: "PENDING",
        d: "CANCELLED",
    }
    assert rows[str(b)].end_reason == "all_kernels_terminated" and rows[str(b)].kernels == 0
    assert rows[str(a)].last_activity_at is not None
    live = dump(ledger.read_models, [ledger.projections.sessions])
    assert live == {k: v for k, v in clean_rebuild(ledger).items() if k in live}
    assert sum(len(table) for table in live.values()) == 4


def test_terminating_sessions_read_the_same_live_and_rebuilt(ledger: Ledger) -> None:
    """Terminated while their kernels ran: TERMINATING with the terminate's reason and no
    end time, then TERMINATED once their last kernel ends; live and rebuilt alike."""
    world = SessionWorld(ledger)
    ending, waiting = world.enqueue(), world.enqueue()
    kernels = {}
    for sid in (ending, waiting):
        world.schedule(sid)
        start = world.kernel_start(sid, started_at=datetime(2025, 1, 1, tzinfo=UTC))
        run(ledger, "workload", "start_kernel", start, PLATFORM)
        kernels[sid] = start.kernel_id
        world.terminate(sid, "user_requested")
    ledger.runner.catch_up()
    rows = {s.session_id: s for s in ledger.queries.sessions(status="TERMINATING")}
    assert set(rows) == {str(ending), str(waiting)}
    assert (rows[str(ending)].end_reason, rows[str(ending)].ended_at, rows[str(ending)].kernels) == (
        "user_requested",
        None,
        1,
    )
    end = TerminateKernelAction(kernel_id=kernels[ending], terminated_at=datetime(2025, 1, 2, tzinfo=UTC))
    run(ledger, "workload", "terminate_kernel", end, PLATFORM)
    ledger.runner.catch_up()
    rows = {s.session_id: s for s in ledger.queries.sessions()}
    assert (rows[str(ending)].status, rows[str(ending)].end_reason) == ("TERMINATED", "user_requested")
    assert rows[str(ending)].ended_at is not None and rows[str(ending)].kernels == 0
    assert rows[str(waiting)].status == "TERMINATING"
    live = dump(ledger.read_models, [ledger.projections.sessions])
    assert live == {k: v for k, v in clean_rebuild(ledger).items() if k in live}


def _listed(ledger: Ledger) -> list[str]:
    return [s.session_id for s in ledger.queries.sessions()]


def test_the_list_is_the_same_after_an_upgrade_and_after_a_forced_rebuild(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions enqueued under the previous version, one of them made before the others
    but recorded after them: the version this code builds from the first event lists them
    in the order they were recorded in, as the live read model does, and so does a forced
    rebuild of it."""
    with code_with(sessions=older(SessionsProjection)), open_ledger(ledger_url) as old:
        world = SessionWorld(old)
        first = [str(world.enqueue()) for _ in range(2)]
        made = old.services.session.session(first[0]).enqueued_at - timedelta(seconds=1)
        with monkeypatch.context() as clock:
            clock.setattr(Session.Created, "create_timestamp", staticmethod(lambda: made))
            late = str(world.enqueue())
        recorded = [*first, late, str(world.enqueue())]
    with open_ledger(ledger_url) as ledger:  # builds this version before it serves
        assert ledger.runner.pending() == []
        assert _listed(ledger) == recorded
        page = ledger.queries.sessions(limit=1, after=first[1])
        assert [s.session_id for s in page] == [late]
        live = dump(ledger.read_models, [ledger.projections.sessions])
        assert live == {k: v for k, v in clean_rebuild(ledger).items() if k in live}
        ledger.runner.catch_up(ledger.runner.force([ledger.projections.sessions]))
        assert ledger.runner.builds() == []
        assert _listed(ledger) == recorded
        assert dump(ledger.read_models, [ledger.projections.sessions]) == live
