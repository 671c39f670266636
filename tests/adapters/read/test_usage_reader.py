"""The usage reader's reads are one snapshot of the usage read model, on SQLite and
PostgreSQL: a kernel another process ends while a report reads is reported once, as
running or as ended, never missed or counted twice."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.read.usage import SqlUsageReader
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.workload import TerminateKernelAction
from domain.workload.aggregate import Kernel
from tests.adapters.groups import create_group
from tests.adapters.kernels import T0, start


@contextmanager
def between_statements(ledger: Ledger, marker: str, action: Callable[[], None]) -> Iterator[list[bool]]:
    """Runs `action` once, right after the ledger's read-model statement containing
    `marker` has run (before the next statement of the same read)."""
    done: list[bool] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if marker in statement and not done:
            done.append(True)
            action()

    engine = ledger.read_models.engine
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield done
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)


def ended_by(writer: Ledger, kernel_id: str) -> Callable[[], None]:
    """Another process ends the kernel and projects it (committed in its own connection)."""

    def commit() -> None:
        action = TerminateKernelAction(kernel_id=uuid.UUID(kernel_id), terminated_at=T0 + timedelta(hours=1))
        asyncio.run(writer.services.workload.terminate_kernel(action))
        writer.runner.catch_up()

    def end() -> None:
        thread = threading.Thread(target=commit)  # a report runs in an event loop already
        thread.start()
        thread.join()

    return end


def test_a_kernel_ended_while_a_month_report_reads_is_reported(ledger_url: str) -> None:
    """On PostgreSQL the ended and the running kernels were two statements, each on its own
    snapshot (READ COMMITTED): a kernel that ended in between was in neither, and the
    month's report left it out."""
    with open_ledger(ledger_url) as writer, open_ledger(ledger_url) as reporter:
        group = create_group(writer, "team").id
        kernel = start(writer, group, T0)
        writer.runner.catch_up()
        action = UsagePerMonthAction(month=T0.strftime("%Y%m"))
        with between_statements(reporter, "terminated_at >=", ended_by(writer, kernel)) as done:
            report = asyncio.run(reporter.services.group.usage_per_month(action)).result
        assert done
        assert [info["id"] for group in report for info in group["c_infos"]] == [kernel]


def test_a_kernel_ended_while_usage_totals_read_is_counted_once(ledger_url: str) -> None:
    """usage_totals read the running kernels, then the daily rollups, each on its own
    snapshot on PostgreSQL: a kernel that ended in between was counted as running until
    now and in the rollups too."""
    with open_ledger(ledger_url) as writer, open_ledger(ledger_url) as reporter:
        group = create_group(writer, "team").id
        kernel = start(writer, group, T0)  # 2 cpus
        writer.runner.catch_up()
        day = date(T0.year, T0.month, T0.day)
        with between_statements(reporter, "occupied_slots", ended_by(writer, kernel)) as done:
            totals = reporter.queries.usage_totals(day, day)
        assert done
        # Ended after an hour (2 cpus * 3600 s), or running for the rest of the day (12 h).
        assert totals[str(group)]["cpu"] in (2 * 3600.0, 2 * 12 * 3600.0)


def test_a_report_names_any_number_of_groups_users_and_vfolders(ledger: Ledger) -> None:
    """A report looks up the names of its kernels' groups, users and mounted vfolders with
    one `IN (...)` each: past 65,535 ids (a month of a large site's users, or the vfolders
    its kernels mounted) PostgreSQL's driver refused the statement ("number of parameters
    must be between 0 and 65535") and the report failed, where SQLite answered. The
    lookups go in chunks, as the projection's do."""
    group = str(create_group(ledger, "team").id)
    many = {str(uuid.UUID(int=n)) for n in range(1, 70_001)}
    reader = SqlUsageReader(ledger.read_models, ledger.runner, ledger.projections)
    ledger.runner.catch_up()
    with ledger.read_models.snapshot() as conn:
        assert reader._group_names(conn, {*many, group}) == {group: ("team", "default")}
        assert reader._vfolder_names(conn, many) == {}
        assert reader._user_names(conn, many) == {}


def test_a_report_over_any_number_of_groups_reads_their_kernels(ledger: Ledger) -> None:
    """The groups a month report names went into one `IN (...)`: past 65,535 of them
    PostgreSQL's driver refused the statement and the report was a StoreUnavailable, where
    SQLite answered. They go in chunks; a group named twice (or in two chunks) is read once."""
    group = create_group(ledger, "team").id
    ended = start(ledger, group, T0)
    asyncio.run(ledger.services.workload.terminate_kernel(TerminateKernelAction(kernel_id=ended, terminated_at=T0)))
    running = start(ledger, group, T0)
    many = [uuid.UUID(int=n) for n in range(1, 70_001)]
    action = UsagePerMonthAction(month=T0.strftime("%Y%m"), group_ids=[*many, group, group])
    report = asyncio.run(ledger.services.group.usage_per_month(action)).result
    assert sorted(info["id"] for g in report for info in g["c_infos"]) == sorted([ended, running])


def test_a_kernel_an_older_release_stored_occupying_infinity_is_reported(ledger: Ledger) -> None:
    """An older release let a kernel occupy `mem=inf` (refused now: only a policy limit
    may be infinite); every month and period report over it failed with an OverflowError
    (cannot convert Infinity to integer). Such a quantity holds no finite amount to
    report: it counts as 0, and the reports answer in strict JSON."""
    group = create_group(ledger, "team").id
    fields = {**ledger.app.get(uuid.UUID(start(ledger, group, T0)), Kernel).fields}
    kernel = Kernel.create_for(uuid.uuid4(), {**fields, "occupied_slots": {"cpu": "Infinity", "mem": "Infinity"}})
    ledger.app.save(kernel)
    month = asyncio.run(ledger.services.group.usage_per_month(UsagePerMonthAction(month=T0.strftime("%Y%m")))).result
    period = UsagePerPeriodAction(start_date=T0.strftime("%Y%m%d"), end_date=T0.strftime("%Y%m%d"))
    for report in (month, asyncio.run(ledger.services.group.usage_per_period(period)).result):
        json.dumps(report, allow_nan=False)
    infos = {info["id"]: info for info in month[0]["c_infos"]}
    assert (infos[kernel.key]["mem_allocated"], infos[kernel.key]["cpu_allocated"]) == (0, 0.0)
    assert month[0]["g_mem_allocated"] == 4 * 2**30


def test_usage_totals_count_a_kernel_occupying_infinity_as_the_reports_do(ledger: Ledger) -> None:
    """The reports count an older release's `mem=inf` kernel as 0, but `usage_totals` gave
    the group `inf` slot-seconds, running (added as it ran) or ended (an `inf` rollup,
    which every later kernel of that day and slot added to stayed): the other kernels'
    usage was lost. It counts as 0 there too."""
    group = create_group(ledger, "team").id
    other = start(ledger, group, T0)
    fields = {**ledger.app.get(uuid.UUID(other), Kernel).fields}
    kernel = Kernel.create_for(uuid.uuid4(), {**fields, "occupied_slots": {"cpu": "1", "mem": "Infinity"}})
    ledger.app.save(kernel)
    day = T0.date()
    assert math.isfinite(ledger.queries.usage_totals(day, day)[str(group)]["mem"])  # both running
    for each in (kernel.key, other):
        action = TerminateKernelAction(kernel_id=uuid.UUID(each), terminated_at=T0 + timedelta(hours=1))
        asyncio.run(ledger.services.workload.terminate_kernel(action))
    assert ledger.queries.usage_totals(day, day)[str(group)]["mem"] == 4 * 2**30 * 3600  # the other's hour
