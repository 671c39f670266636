"""The usage projection folds each batch in memory and writes its net effect (see
`UsageProjection.apply_batch`). Whatever the batch boundaries (a kernel started in one
batch, reported on and ended in later ones; a purge in the middle of a batch), and event
by event through `apply`, it must leave the rows that applying each event alone leaves:
the daily rollups to the last bit, though their floating-point sums depend on the order
of their terms."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from domain.workload import CreateVFolderAction, ReportKernelStatsAction, StartKernelAction, TerminateKernelAction
from projections.database import ReadModelDatabase
from projections.registry import build_projections
from projections.runner import ProjectionRunner
from tests.adapters.groups import create_group, purge_group
from tests.conftest import fresh_url
from tests.projections.readmodels import Dump, clean_rebuild, dump

T0 = datetime(2024, 10, 1, 19, 0, 0, 123457, tzinfo=UTC)  # ends cross midnight into October 2
SLOTS = {"cpu": "0.1", "mem": "1g", "cuda.shares": "0.3"}  # amounts whose sums round


def started(i: int) -> datetime:
    return T0 + i * timedelta(minutes=13, seconds=7.654321)


def ended(i: int) -> datetime:
    return started(i) + timedelta(hours=1) + i * timedelta(minutes=37, seconds=3.141592)


def start(group: uuid.UUID, i: int) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=uuid.UUID(int=0x5000 + i),
        session_id=uuid.UUID(int=0x5100 + i),
        session_name=f"s{i}",
        group_id=group,
        domain_name="default",
        user_id=uuid.UUID(int=7),
        access_key="AKUSER",
        occupied_slots=SLOTS,
        started_at=started(i),
    )


def stats(i: int, cpu: int) -> ReportKernelStatsAction:
    return ReportKernelStatsAction(kernel_id=uuid.UUID(int=0x5000 + i), reported_at=started(i), cpu_used=str(cpu))


def end(i: int, status: str = "TERMINATED") -> TerminateKernelAction:
    return TerminateKernelAction(kernel_id=uuid.UUID(int=0x5000 + i), terminated_at=ended(i), status=status)


def record(ledger: Ledger, workload: list[Any]) -> None:
    """Records each action alone (a kernel's event and its group's), catching up at `None`."""
    for action in workload:
        if action is None:
            ledger.runner.catch_up()
        else:
            asyncio.run(ledger.services.workload.record_batch([action]))


def lives(ledger: Ledger) -> uuid.UUID:
    """Kernels whose lives overlap (one cancelled, one still running), a vfolder, and a group
    purged after its kernel ended, whose stats then come in. Returns the kept group."""
    team = create_group(ledger, name="team").id
    gone = create_group(ledger, name="gone").id
    record(
        ledger,
        [
            start(team, 0), start(team, 1), start(gone, 9), stats(0, 5), start(team, 2), None, end(0),
            CreateVFolderAction(vfolder_id=uuid.UUID(int=0x5200), name="data", host="nfs", group_id=team),
            CreateVFolderAction(vfolder_id=uuid.UUID(int=0x5201), name="scratch", host="nfs", group_id=gone),
            start(team, 3), stats(1, 1), stats(1, 2), end(1), start(team, 4), end(9), None, end(2, "CANCELLED"),
            end(3), start(team, 5), stats(4, 3), end(4), None, stats(9, 4),
        ],
    )  # fmt: skip
    purge_group(ledger, gone)
    record(ledger, [stats(9, 5), end(5), start(team, 6), start(team, 7), end(6), stats(6, 6), None, stats(7, 7)])
    return team


def usage_tables(found: Dump) -> Dump:
    return {name: rows for name, rows in found.items() if name.startswith("usage_")}


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_every_batching_leaves_the_rows_of_one_event_at_a_time(backend: str, batch_size: int) -> None:
    with fresh_url(backend) as url, open_ledger(url) as ledger:
        ledger.runner.batch_size = batch_size  # live catch-ups: an event or a few at a time, or all since the last
        lives(ledger)
        ledger.runner.catch_up()
        live = dump(ledger.read_models, [ledger.projections.usage])
        one_at_a_time = usage_tables(clean_rebuild(ledger, batch_size=1))
        assert live == one_at_a_time
        for size in (2, 3, 5, 8, 1000):  # 1000: the whole history in one batch
            assert usage_tables(clean_rebuild(ledger, batch_size=size)) == one_at_a_time, size
        key = ledger.projections.usage.versioned_name
        assert len(one_at_a_time[f"{key}_kernels"]) == 8  # the purged group's kernel left, its late stats too
        assert len(one_at_a_time[f"{key}_vfolders"]) == 1


def test_rollups_add_the_kernels_in_the_order_they_ended(memory_ledger: Ledger) -> None:
    """The cpu rollup of October 1 is the sum of the kernels' amounts in the order they ended,
    the order one upsert per end adds them in; another order gives another float."""
    team = lives(memory_ledger)
    midnight = datetime(2024, 10, 2, tzinfo=UTC)
    order = [0, 1, 3, 4, 5, 6]  # the TERMINATED ends (2 was cancelled, 7 runs, 9 was purged)
    terms = [float(Decimal("0.1")) * (min(ended(i), midnight) - started(i)).total_seconds() for i in order]
    in_order = terms[0]
    for term in terms[1:]:
        in_order += term
    assert sum(reversed(terms), start=0.0) != in_order  # the order shows in the last bits
    for size in (1, 2, 4, 1000):
        rows = usage_tables(clean_rebuild(memory_ledger, batch_size=size))
        daily = {row[:3]: row[3] for row in rows[f"{memory_ledger.projections.usage.versioned_name}_daily"]}
        assert daily[(str(team), date(2024, 10, 1), "cpu")] == in_order, size


def test_applying_each_event_alone_leaves_the_rows_of_a_batch(memory_ledger: Ledger) -> None:
    """`Projection.apply`, the single-event path, goes through the batch code too."""
    lives(memory_ledger)
    read_models = ReadModelDatabase("sqlite://", {})
    usage = build_projections(sa.MetaData(), memory_ledger.timezone).usage
    recorder, mapper = memory_ledger.app.recorder, memory_ledger.app.mapper
    try:
        ProjectionRunner(read_models, recorder, mapper, [usage]).setup()
        with read_models.begin() as conn:
            for notification in recorder.select_notifications(start=1, limit=10_000):
                usage.apply(conn, mapper.to_domain_event(notification), notification.id)
        assert dump(read_models, [usage]) == usage_tables(clean_rebuild(memory_ledger, batch_size=1000))
    finally:
        read_models.close()
