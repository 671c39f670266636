"""The usage reports' one order, whatever order the reader returns kernels in: groups by
id; sessions by their first kernel's start, then session id; kernels by start, then id.
And the flat rows (CSV) follow it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.usage import KernelUsage, month_report, period_report
from domain.usage.report import report_order
from domain.usage.rows import MONTH_FIELDS, PERIOD_FIELDS, kernel_count, month_rows, period_rows

T0 = datetime(2024, 10, 1, tzinfo=UTC)
G1, G2 = "10000000-0000-4000-8000-000000000000", "20000000-0000-4000-8000-000000000000"


def kernel(kernel_id: str, group: str, session: str, minutes: int, *, ended: bool = True) -> KernelUsage:
    started = T0 + timedelta(minutes=minutes)
    return KernelUsage(
        kernel_id=kernel_id,
        session_id=session,
        session_name=f"name-{session[:2]}",
        group_id=group,
        group_name="g",
        domain_name="default",
        user_id="u",
        access_key="AK",
        agent="a",
        image="i",
        occupied_slots={"cpu": "1", "mem": "1024"},
        nfs=[],
        started_at=started,
        terminated_at=started + timedelta(minutes=5) if ended else None,
        status="TERMINATED" if ended else "RUNNING",
        last_stats=None,
    )


# Session "ff" starts first (minute 1) though its id sorts last; session "aa" has a kernel
# starting before "bb"'s only kernel but its first one after "ff"'s. Two kernels of one
# session start at the same minute: their ids decide. Sessions "cc" and "dd" start at the
# same minute: their ids decide.
KERNELS = [
    kernel("k-ff-1", G1, "ff", 1),
    kernel("k-ff-2", G1, "ff", 40),
    kernel("k-aa-2", G1, "aa", 10),
    kernel("k-aa-1", G1, "aa", 10),
    kernel("k-aa-3", G1, "aa", 30, ended=False),
    kernel("k-bb-1", G1, "bb", 20),
    kernel("k-dd-1", G1, "dd", 50),
    kernel("k-cc-1", G1, "cc", 50),
    kernel("k-g2-1", G2, "00", 0),
]
ORDER = ["k-ff-1", "k-ff-2", "k-aa-1", "k-aa-2", "k-aa-3", "k-bb-1", "k-cc-1", "k-dd-1", "k-g2-1"]


@pytest.mark.parametrize("seed", range(20))
def test_the_order_does_not_depend_on_the_readers_order(seed: int) -> None:
    shuffled = list(KERNELS)
    random.Random(seed).shuffle(shuffled)
    assert [k.kernel_id for k in report_order(shuffled)] == ORDER
    tz = ZoneInfo("UTC")
    month = month_report(shuffled, tz)
    assert [g["g_id"] for g in month] == [G1, G2]
    assert [i["id"] for g in month for i in g["c_infos"]] == ORDER
    period = period_report(shuffled, tz)
    assert [s["session_id"] for p in period for s in p["sessions"]] == ["ff", "aa", "bb", "cc", "dd", "00"]
    assert [k["kernel_id"] for p in period for s in p["sessions"] for k in s["kernels"]] == ORDER
    assert [r["kernel_id"] for r in month_rows(month)] == ORDER
    assert [r["kernel_id"] for r in period_rows(period)] == ORDER


def test_flat_rows_carry_their_group_and_session_and_raw_values() -> None:
    tz = ZoneInfo("UTC")
    month = list(month_rows(month_report(KERNELS, tz)))
    period = list(period_rows(period_report(KERNELS, tz)))
    assert all(tuple(row) == MONTH_FIELDS for row in month)
    assert all(tuple(row) == PERIOD_FIELDS for row in period)
    running = next(r for r in month if r["kernel_id"] == "k-aa-3")
    assert (running["terminated_at"], running["used_time"], running["status"]) == (None, None, "RUNNING")
    first = period[0]
    assert (first["project_id"], first["session_id"], first["session_name"]) == (G1, "ff", "name-ff")
    assert (first["mem_allocated"], first["cpu_allocated"], first["nfs"]) == (1024, 1.0, None)
    assert first["terminated_at"] == "2024-10-01 00:06:00+00:00"
    assert kernel_count(month_report(KERNELS, tz)) == kernel_count(period_report(KERNELS, tz)) == len(KERNELS)
    assert kernel_count([]) == 0
