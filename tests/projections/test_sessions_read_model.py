"""The sessions read model on SQLite and PostgreSQL: built live with catch-ups between
commands, it equals a rebuild from the first event, row by row (every session event:
enqueue, deferral, admission, activity, kernels attached and detached, cancel, terminate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.bootstrap import Ledger
from domain.workload import TerminateKernelAction
from tests.adapters.sessions import PLATFORM, SessionWorld, run
from tests.projections.readmodels import clean_rebuild, dump


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
