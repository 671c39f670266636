"""Seed 003's usage reports on SQLite and PostgreSQL: inputs and Backend.AI's messages,
the report windows in the configured time zone, which kernels count, the per-kernel and
per-group fields, filters, purge, and `usage_totals` against a direct computation."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import InvalidAPIParameters
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.workload import (
    CreateVFolderAction,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
)
from tests.adapters.groups import create_group, purge_group
from tests.conftest import fresh_url

GiB, MiB = 1024**3, 1024**2
DOMAIN = "default"

MONTH_FIELDS = {
    "domain_name", "g_id", "g_name", "g_cpu_allocated", "g_cpu_used", "g_mem_allocated", "g_mem_used",
    "g_shared_memory", "g_disk_allocated", "g_disk_used", "g_io_read", "g_io_write", "g_device_type", "g_smp",
    "g_gpu_mem_allocated", "g_gpu_allocated", "c_infos",
}  # fmt: skip
KERNEL_FIELDS = {
    "id", "session_id", "container_id", "domain_name", "group_id", "group_name", "name", "access_key", "email",
    "full_name", "agent", "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory",
    "disk_allocated", "disk_used", "io_read", "io_write", "used_time", "used_days", "device_type", "smp",
    "gpu_mem_allocated", "gpu_allocated", "nfs", "image_id", "image_name", "created_at", "terminated_at",
    "status", "status_info", "status_changed", "cluster_mode",
}  # fmt: skip
TOTAL_USAGE_FIELDS = {
    "nfs", "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory", "disk_allocated",
    "disk_used", "io_read", "io_write", "device_type", "smp", "gpu_mem_allocated", "gpu_allocated",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _utc_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `ledger` fixture reports in UTC whatever the environment says."""
    monkeypatch.delenv("LEDGER_TIMEZONE", raising=False)


def at(text: str) -> datetime:
    """`2024-10-01T12:00` is UTC; an explicit offset is kept."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Helpers: recording workload


def record(ledger: Ledger, actions: Sequence[Any]) -> None:
    asyncio.run(ledger.services.workload.record_batch(list(actions)))


def kernel(
    ledger: Ledger,
    group_id: uuid.UUID,
    started: str | datetime,
    ended: str | datetime | None = None,
    *,
    status: str = "TERMINATED",
    slots: dict[str, str] | None = None,
    session_id: uuid.UUID | None = None,
    session_name: str = "sess",
    mounts: Sequence[uuid.UUID] = (),
    reports: Sequence[dict[str, Any]] = (),
) -> str:
    """Records a kernel (start, its stats reports, its end unless `ended` is None); its id."""
    kernel_id = uuid.uuid4()
    actions: list[Any] = [
        StartKernelAction(
            kernel_id=kernel_id,
            session_id=session_id or uuid.uuid4(),
            session_name=session_name,
            group_id=group_id,
            domain_name=DOMAIN,
            user_id=uuid.UUID(int=7),
            access_key="AKUSER",
            occupied_slots=slots or {"cpu": "1", "mem": "1g"},
            started_at=started,
            mounts=list(mounts),
            image="python:3.11",
            agent="agent-1",
        )
    ]
    actions += [ReportKernelStatsAction(kernel_id=kernel_id, **report) for report in reports]
    if ended is not None:
        actions.append(TerminateKernelAction(kernel_id=kernel_id, terminated_at=ended, status=status))
    record(ledger, actions)
    return str(kernel_id)


def vfolder(ledger: Ledger, group_id: uuid.UUID, host: str, name: str) -> uuid.UUID:
    vfolder_id = uuid.uuid4()
    record(ledger, [CreateVFolderAction(vfolder_id=vfolder_id, name=name, host=host, group_id=group_id)])
    return vfolder_id


# Helpers: reports


def month(ledger: Ledger, value: str, group_ids: Sequence[uuid.UUID] | None = None) -> list[dict[str, Any]]:
    action = UsagePerMonthAction(month=value, group_ids=None if group_ids is None else list(group_ids))
    result: list[dict[str, Any]] = asyncio.run(ledger.services.group.usage_per_month(action)).result
    return result


def period(ledger: Ledger, start: str, end: str, project_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    action = UsagePerPeriodAction(start_date=start, end_date=end, project_id=project_id)
    result: list[dict[str, Any]] = asyncio.run(ledger.services.group.usage_per_period(action)).result
    return result


def month_ids(report: list[dict[str, Any]]) -> set[str]:
    return {info["id"] for group in report for info in group["c_infos"]}


def period_ids(report: list[dict[str, Any]]) -> set[str]:
    return {k["kernel_id"] for project in report for session in project["sessions"] for k in session["kernels"]}


def infos(report: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {info["id"]: info for group in report for info in group["c_infos"]}


def refused(call: Any, *args: Any) -> str:
    """The reason of a refusal: Backend.AI's message first; a bad date names its argument
    and the expected form after it ("Invalid date values: month must be YYYYMM ...")."""
    with pytest.raises(InvalidAPIParameters) as info:
        call(*args)
    error = info.value
    assert error.field in (None, "month", "start_date", "end_date")
    return error.reason.split(":")[0] if error.field else error.message


# Invalid inputs: REFERENCE.md's values and Backend.AI's messages


@pytest.mark.parametrize("value", ["2024-10", "20241", "2024100", "", "abcdef", "2024 1", "202413", "202400"])
def test_a_month_that_is_not_yyyymm_or_not_a_month_is_refused(ledger: Ledger, value: str) -> None:
    assert refused(month, ledger, value) == "Invalid date values"


def test_the_twelve_months_are_accepted(ledger: Ledger) -> None:
    for number in range(1, 13):
        assert month(ledger, f"2024{number:02d}") == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("20241301", "20241302"),  # month 13
        ("20240230", "20240301"),  # February 30
        ("20241001", "20241032"),
        ("2024-10-01", "20241031"),
        ("20241001", "2024/10/31"),
        ("", "20241031"),
        ("20241001", "october"),
    ],
)
def test_a_bad_date_is_refused(ledger: Ledger, start: str, end: str) -> None:
    assert refused(period, ledger, start, end) == "Invalid date values"


def test_a_period_of_more_than_100_days_is_refused(ledger: Ledger) -> None:
    # The end date is inclusive: 20240101..20240409 is exactly 100 days, one more is refused.
    assert period(ledger, "20240101", "20240409") == []
    assert refused(period, ledger, "20240101", "20240410") == "Cannot query more than 100 days"
    assert refused(period, ledger, "20230101", "20241231") == "Cannot query more than 100 days"


def test_an_end_date_before_the_start_date_is_refused(ledger: Ledger) -> None:
    message = "end_date must be later than start_date."
    assert refused(period, ledger, "20241002", "20241001") == message
    assert refused(period, ledger, "20250101", "20241231") == message
    assert period(ledger, "20241001", "20241001") == []  # one day: the end is made inclusive first


def test_dates_refused_together_name_the_end_date_as_over_http(ledger: Ledger) -> None:
    """DESIGN: invalid input raises InvalidAPIParameters naming the field. A span past 100
    days and an end before the start named none in-process (field None), though the HTTP
    route named end_date: the window names it, with the seed's words as the reason."""
    for start, end, reason in (
        ("20240101", "20240410", "Cannot query more than 100 days"),
        ("20241002", "20241001", "end_date must be later than start_date."),
    ):
        with pytest.raises(InvalidAPIParameters) as info:
            period(ledger, start, end)
        assert (info.value.field, info.value.message) == ("end_date", reason)  # the seed's words alone


@pytest.mark.parametrize(("zone", "variable"), [("Mars/Base", None), ("localtime", None), (None, "Mars/Base")])
def test_a_time_zone_no_report_can_convert_in_is_refused_at_open_and_makes_no_ledger(
    backend: str, monkeypatch: pytest.MonkeyPatch, zone: str | None, variable: str | None
) -> None:
    """Seed 003 names "timezone conversion errors" among the usage errors: a zone the
    report windows cannot be converted in, given to `open_ledger` or by LEDGER_TIMEZONE,
    is refused naming where it came from, before anything is made at the location."""
    if variable is not None:
        monkeypatch.setenv("LEDGER_TIMEZONE", variable)
    with fresh_url(backend) as url:
        with pytest.raises(InvalidAPIParameters, match="unknown time zone") as info:
            open_ledger(url, timezone=zone)
        assert info.value.field == ("timezone" if variable is None else "LEDGER_TIMEZONE")
        assert _tables_at(url) == []
        monkeypatch.delenv("LEDGER_TIMEZONE", raising=False)
        with open_ledger(url) as fresh:  # the location is still a fresh one
            assert [e.event for e in fresh.queries.history("keypair_resource_policy", "default")] == ["Created"]


def _tables_at(url: str) -> list[str]:
    """The tables a ledger location holds (none when nothing was made there)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            return []
        engine = sa.create_engine(f"sqlite:///{path}")
        try:
            return sorted(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    server, _, schema = url.partition("?schema=")
    with psycopg.connect(server) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return sorted(row[0] for row in rows)


# Which kernels count, at the month and period edges (UTC)


def test_kernels_overlapping_the_window_count_at_month_and_period_edges(ledger: Ledger) -> None:
    g = create_group(ledger).id
    k = {
        "spans_start": kernel(ledger, g, "2024-09-25T10:00", "2024-10-02T12:00"),
        "spans_end": kernel(ledger, g, "2024-10-30T10:00", "2024-11-03T00:00"),
        "ends_just_before": kernel(ledger, g, "2024-09-01T00:00", "2024-09-30T23:59:59.999999"),
        "ends_at_start": kernel(ledger, g, "2024-09-30T20:00", "2024-10-01T00:00"),
        "starts_at_end": kernel(ledger, g, "2024-11-01T00:00", "2024-11-01T01:00"),
        "starts_just_before_end": kernel(ledger, g, "2024-10-31T23:59:59", "2024-11-01T00:30"),
        "running_since_sep": kernel(ledger, g, "2024-09-01T00:00"),
        "running_from_nov": kernel(ledger, g, "2024-11-01T00:00"),
        "cancelled": kernel(ledger, g, "2024-10-05T00:00", "2024-10-06T00:00", status="CANCELLED"),
    }

    def named(ids: set[str]) -> set[str]:
        return {name for name, kernel_id in k.items() if kernel_id in ids}

    assert named(month_ids(month(ledger, "202410"))) == {
        "spans_start", "spans_end", "ends_at_start", "starts_just_before_end", "running_since_sep",
    }  # fmt: skip
    assert named(month_ids(month(ledger, "202409"))) == {
        "spans_start", "ends_just_before", "ends_at_start", "running_since_sep",
    }  # fmt: skip
    assert named(month_ids(month(ledger, "202411"))) == {
        "spans_end", "starts_at_end", "starts_just_before_end", "running_since_sep", "running_from_nov",
    }  # fmt: skip
    assert named(month_ids(month(ledger, "202408"))) == set()
    # A running kernel counts in every month that ends after it started (December ends in the next year).
    assert named(month_ids(month(ledger, "202412"))) == {"running_since_sep", "running_from_nov"}
    assert named(month_ids(month(ledger, "203012"))) == {"running_since_sep", "running_from_nov"}

    # A period ends after its (inclusive) end date.
    assert named(period_ids(period(ledger, "20241001", "20241001"))) == {
        "spans_start", "ends_at_start", "running_since_sep",
    }  # fmt: skip
    assert named(period_ids(period(ledger, "20241031", "20241031"))) == {
        "spans_end", "starts_just_before_end", "running_since_sep",
    }  # fmt: skip
    assert named(period_ids(period(ledger, "20241003", "20241029"))) == {"running_since_sep"}
    assert named(period_ids(period(ledger, "20241101", "20241101"))) == {
        "spans_end", "starts_at_end", "starts_just_before_end", "running_since_sep", "running_from_nov",
    }  # fmt: skip
    assert named(period_ids(period(ledger, "20240801", "20240831"))) == set()


def test_cancelled_kernels_never_count(ledger: Ledger) -> None:
    g = create_group(ledger).id
    cancelled = kernel(ledger, g, "2024-10-05T00:00", "2024-10-06T00:00", status="CANCELLED")
    terminated = kernel(ledger, g, "2024-10-05T00:00", "2024-10-06T00:00")
    assert month_ids(month(ledger, "202410")) == {terminated}
    assert period_ids(period(ledger, "20241001", "20241031")) == {terminated}
    assert cancelled not in period_ids(period(ledger, "20241005", "20241005"))
    totals = ledger.queries.usage_totals(date(2024, 10, 1), date(2024, 10, 31))
    assert totals == {str(g): {"cpu": pytest.approx(86400.0), "mem": pytest.approx(GiB * 86400.0)}}
    # The group named in any spelling of its UUID, as the commands take it (it found nothing).
    assert ledger.queries.usage_totals(date(2024, 10, 1), date(2024, 10, 31), str(g).upper()) == totals


# The configured time zone


@pytest.fixture
def seoul_url(backend: str) -> Iterator[str]:
    with fresh_url(backend) as url:
        yield url


def test_the_month_and_period_windows_are_local_to_the_configured_time_zone(seoul_url: str) -> None:
    """Asia/Seoul is UTC+9: its October is [2024-09-30T15:00Z, 2024-10-31T15:00Z)."""
    with open_ledger(seoul_url, timezone="Asia/Seoul") as seoul:
        assert seoul.timezone == "Asia/Seoul"
        g = create_group(seoul).id
        k = {
            # Before the UTC month start but after the local one: October in Seoul only.
            "local_start": kernel(seoul, g, "2024-09-30T15:00", "2024-09-30T18:00"),
            "ends_at_local_start": kernel(seoul, g, "2024-09-30T10:00", "2024-09-30T15:00"),
            "ends_before_local_start": kernel(seoul, g, "2024-09-30T10:00", "2024-09-30T14:59:59"),
            # Before the UTC month end but after the local one: November in Seoul.
            "after_local_end": kernel(seoul, g, "2024-10-31T15:00", "2024-10-31T16:00"),
            # Given in local time (+09:00): 2024-10-31T14:30Z to 15:30Z.
            "given_local": kernel(seoul, g, "2024-10-31T23:30:00+09:00", "2024-11-01T00:30:00+09:00"),
        }

        def named(ids: set[str]) -> set[str]:
            return {name for name, kernel_id in k.items() if kernel_id in ids}

        october = month(seoul, "202410")
        assert named(month_ids(october)) == {"local_start", "ends_at_local_start", "given_local"}
        assert named(month_ids(month(seoul, "202409"))) == {"ends_at_local_start", "ends_before_local_start"}
        assert named(month_ids(month(seoul, "202411"))) == {"after_local_end", "given_local"}
        assert named(period_ids(period(seoul, "20241001", "20241001"))) == {"local_start", "ends_at_local_start"}
        assert named(period_ids(period(seoul, "20241031", "20241031"))) == {"given_local"}
        assert named(period_ids(period(seoul, "20240930", "20240930"))) == {
            "ends_at_local_start", "ends_before_local_start",
        }  # fmt: skip

        local = infos(october)
        # The local-time input is stored as the instant it names.
        assert local[k["given_local"]]["created_at"] == "2024-10-31 14:30:00+00:00"
        assert local[k["given_local"]]["terminated_at"] == "2024-10-31 15:30:00+00:00"
        assert local[k["given_local"]]["used_time"] == "1:00:00"
        # used_days counts local calendar days: Oct 31 and Nov 1 in Seoul.
        assert local[k["given_local"]]["used_days"] == 2
        assert local[k["ends_at_local_start"]]["used_days"] == 2  # Sep 30 19:00 to Oct 1 00:00
        assert local[k["local_start"]]["used_days"] == 1

        # Daily rollups are per local day: 30 minutes on Oct 31 and 30 on Nov 1 (+1 h).
        assert seoul.queries.usage_totals(date(2024, 10, 31), date(2024, 10, 31))[str(g)]["cpu"] == pytest.approx(
            1800.0
        )
        assert seoul.queries.usage_totals(date(2024, 11, 1), date(2024, 11, 1))[str(g)]["cpu"] == pytest.approx(
            1800.0 + 3600.0
        )
        assert seoul.queries.usage_totals(date(2024, 10, 1), date(2024, 10, 1))[str(g)]["cpu"] == pytest.approx(
            3 * 3600.0
        )

    # The same events reported in UTC: other windows, other local days.
    with open_ledger(seoul_url, timezone="UTC") as utc:
        assert named(month_ids(month(utc, "202410"))) == {"after_local_end", "given_local"}
        assert named(month_ids(month(utc, "202409"))) == {
            "local_start", "ends_at_local_start", "ends_before_local_start",
        }  # fmt: skip
        assert infos(month(utc, "202410"))[k["given_local"]]["used_days"] == 1
        assert utc.queries.usage_totals(date(2024, 10, 31), date(2024, 10, 31))[str(g)]["cpu"] == pytest.approx(
            2 * 3600.0
        )


def test_a_zone_west_of_utc_starts_its_month_later(backend: str) -> None:
    """America/New_York's October starts at 2024-10-01T04:00Z (EDT, UTC-4)."""
    with fresh_url(backend) as url, open_ledger(url, timezone="America/New_York") as ny:
        g = create_group(ny).id
        # After the UTC month start but before the local one: September in New York.
        early = kernel(ny, g, "2024-10-01T02:00", "2024-10-01T03:00")
        late = kernel(ny, g, "2024-11-01T02:00", "2024-11-01T03:00")  # Oct 31, 22:00 EDT
        assert month_ids(month(ny, "202409")) == {early}
        assert month_ids(month(ny, "202410")) == {late}
        assert period_ids(period(ny, "20241031", "20241031")) == {late}


# What each kernel and group report says


def test_kernel_and_group_fields_come_from_slots_last_stats_and_mounts(ledger: Ledger) -> None:
    g = create_group(ledger, name="research").id
    data = vfolder(ledger, g, "nfs1", "data")
    models = vfolder(ledger, g, "nfs2", "models")
    session = uuid.uuid4()
    shares = kernel(
        ledger,
        g,
        "2024-10-01T22:00",
        "2024-10-03T01:30",
        slots={"cpu": "2", "mem": "4g", "cuda.device": "1", "cuda.shares": "0.5", "cuda.mem": "2g"},
        session_id=session,
        session_name="train",
        mounts=[models, data],
        reports=[
            {"reported_at": "2024-10-02T00:00", "cpu_used": "100", "mem_used": 10, "io_read": 1, "io_write": 2},
            {"reported_at": "2024-10-03T00:00", "cpu_used": "2500.5", "mem_used": 3 * GiB, "io_read": 7,
             "io_write": 9, "disk_used": 11},
        ],
    )  # fmt: skip
    devices = kernel(
        ledger,
        g,
        "2024-10-05T10:00",
        "2024-10-05T11:00",
        slots={"cpu": "1.5", "mem": "512m", "cuda.device": "2"},
        session_id=session,
        session_name="train",
        mounts=[data, data],  # listed once
        reports=[{"reported_at": "2024-10-05T10:30", "cpu_used": "40", "mem_used": 100 * MiB}],
    )
    plain = kernel(ledger, g, "2024-10-20T00:00", slots={"cpu": "1", "mem": "1g"}, session_name="notebook")

    (entry,) = month(ledger, "202410")
    assert set(entry) == MONTH_FIELDS
    by_id = {info["id"]: info for info in entry["c_infos"]}
    assert [info["id"] for info in entry["c_infos"]] == [shares, devices, plain]  # by start time
    assert all(set(info) == KERNEL_FIELDS for info in entry["c_infos"])
    assert by_id[shares] == {
        "id": shares,
        "session_id": str(session),
        "container_id": shares,
        "domain_name": DOMAIN,
        "group_id": str(g),
        "group_name": "research",
        "name": "train",
        "access_key": "AKUSER",
        "email": None,
        "full_name": None,
        "agent": "agent-1",
        "cpu_allocated": 2.0,
        "cpu_used": 2500.5,  # the last report, not the first
        "mem_allocated": 4 * GiB,
        "mem_used": 3 * GiB,
        "shared_memory": 0,
        "disk_allocated": 0,
        "disk_used": 11,
        "io_read": 7,
        "io_write": 9,
        "used_time": "1 day, 3:30:00",
        "used_days": 3,  # Oct 1, 2 and 3
        "device_type": ["cuda"],
        "smp": 0.0,
        "gpu_mem_allocated": float(2 * GiB),
        "gpu_allocated": 0.5,  # cuda.shares before cuda.device
        "nfs": ["nfs1:data", "nfs2:models"],
        "image_id": "python:3.11",
        "image_name": "python:3.11",
        "created_at": "2024-10-01 22:00:00+00:00",
        "terminated_at": "2024-10-03 01:30:00+00:00",
        "status": "TERMINATED",
        "status_info": None,
        "status_changed": "2024-10-03 01:30:00+00:00",
        "cluster_mode": "single-node",
    }
    assert by_id[devices]["gpu_allocated"] == 2.0  # cuda.device when there are no shares
    assert (by_id[devices]["used_time"], by_id[devices]["used_days"]) == ("1:00:00", 1)
    assert (by_id[devices]["cpu_allocated"], by_id[devices]["mem_allocated"]) == (1.5, 512 * MiB)
    assert (by_id[devices]["cpu_used"], by_id[devices]["mem_used"]) == (40.0, 100 * MiB)
    assert by_id[devices]["nfs"] == ["nfs1:data"]
    running = by_id[plain]
    assert (running["status"], running["used_time"], running["used_days"]) == ("RUNNING", None, None)
    assert (running["gpu_allocated"], running["device_type"], running["nfs"]) == (0.0, [], None)
    assert (running["cpu_used"], running["mem_used"], running["io_read"]) == (0.0, 0, 0)  # no report yet

    assert {key: value for key, value in entry.items() if key != "c_infos"} == {
        "domain_name": DOMAIN,
        "g_id": str(g),
        "g_name": "research",
        "g_cpu_allocated": pytest.approx(4.5),
        "g_cpu_used": pytest.approx(2540.5),
        "g_mem_allocated": 4 * GiB + 512 * MiB + GiB,
        "g_mem_used": 3 * GiB + 100 * MiB,
        "g_shared_memory": 0,
        "g_disk_allocated": 0,
        "g_disk_used": 11,
        "g_io_read": 7,
        "g_io_write": 9,
        "g_device_type": ["cuda"],
        "g_smp": 0.0,
        "g_gpu_mem_allocated": pytest.approx(float(2 * GiB)),
        "g_gpu_allocated": pytest.approx(2.5),
    }

    (project,) = period(ledger, "20241001", "20241031")
    assert (project["group_unit"], project["project_id"], project["project_name"]) == ("project", str(g), "research")
    sessions = {s["session_name"]: s for s in project["sessions"]}
    assert set(sessions) == {"train", "notebook"}
    train = sessions["train"]
    assert (train["group_unit"], train["session_id"], train["project_id"]) == ("session", str(session), str(g))
    assert [k["kernel_id"] for k in train["kernels"]] == [shares, devices]
    assert {k["group_unit"] for k in train["kernels"]} == {"kernel"}
    first = train["kernels"][0]
    assert set(first["total_usage"]) == TOTAL_USAGE_FIELDS
    assert (first["used_time"], first["used_days"], first["status"]) == ("1 day, 3:30:00", 3, "TERMINATED")
    assert first["total_usage"]["nfs"] == ["nfs1:data", "nfs2:models"]
    assert train["total_usage"] == {
        "nfs": ["nfs1:data", "nfs2:models"],
        "cpu_allocated": pytest.approx(3.5),
        "cpu_used": pytest.approx(2540.5),
        "mem_allocated": 4 * GiB + 512 * MiB,
        "mem_used": 3 * GiB + 100 * MiB,
        "shared_memory": 0,
        "disk_allocated": 0,
        "disk_used": 11,
        "io_read": 7,
        "io_write": 9,
        "device_type": ["cuda"],
        "smp": 0.0,
        "gpu_mem_allocated": pytest.approx(float(2 * GiB)),
        "gpu_allocated": pytest.approx(2.5),
    }
    assert sessions["notebook"]["total_usage"]["nfs"] is None
    assert sessions["notebook"]["total_usage"]["device_type"] == []
    total = project["total_usage"]
    assert set(total) == TOTAL_USAGE_FIELDS
    assert (total["cpu_allocated"], total["mem_allocated"], total["gpu_allocated"]) == (
        pytest.approx(4.5),
        4 * GiB + 512 * MiB + GiB,
        pytest.approx(2.5),
    )
    assert (total["nfs"], total["device_type"]) == (["nfs1:data", "nfs2:models"], ["cuda"])


def test_stats_reported_after_the_end_are_the_last_ones(ledger: Ledger) -> None:
    g = create_group(ledger).id
    first = {"reported_at": "2024-10-01T00:30", "cpu_used": "1", "mem_used": 1}
    kernel_id = kernel(ledger, g, "2024-10-01T00:00", "2024-10-01T01:00", reports=[first])
    late = ReportKernelStatsAction(kernel_id=kernel_id, reported_at="2024-10-01T01:00", cpu_used="5", io_read=3)
    record(ledger, [late])
    info = infos(month(ledger, "202410"))[kernel_id]
    assert (info["cpu_used"], info["mem_used"], info["io_read"]) == (5.0, 0, 3)


# Filters


def test_group_ids_and_project_id_filter_the_reports(ledger: Ledger) -> None:
    a = create_group(ledger, name="a").id
    b = create_group(ledger, name="b").id
    c = create_group(ledger, name="c").id
    in_a = kernel(ledger, a, "2024-10-02T00:00", "2024-10-02T01:00")
    in_b = kernel(ledger, b, "2024-10-03T00:00", "2024-10-03T01:00")
    in_c = kernel(ledger, c, "2024-10-04T00:00")

    assert {g["g_id"] for g in month(ledger, "202410")} == {str(a), str(b), str(c)}
    assert month_ids(month(ledger, "202410", [a])) == {in_a}
    assert [g["g_name"] for g in month(ledger, "202410", [a])] == ["a"]
    assert month_ids(month(ledger, "202410", [b, c])) == {in_b, in_c}
    assert month(ledger, "202410", [uuid.uuid4()]) == []
    assert month_ids(month(ledger, "202410", [])) == {in_a, in_b, in_c}  # an empty list filters nothing

    assert period_ids(period(ledger, "20241001", "20241031", b)) == {in_b}
    assert [p["project_id"] for p in period(ledger, "20241001", "20241031", c)] == [str(c)]
    assert period(ledger, "20241001", "20241031", uuid.uuid4()) == []
    assert {p["project_id"] for p in period(ledger, "20241001", "20241031")} == {str(a), str(b), str(c)}


def test_a_purged_group_leaves_the_reports(ledger: Ledger) -> None:
    gone = create_group(ledger, name="gone").id
    kept = create_group(ledger, name="kept").id
    folder = vfolder(ledger, gone, "nfs", "scratch")
    kernel(ledger, gone, "2024-10-02T00:00", "2024-10-02T05:00", mounts=[folder])
    kept_kernel = kernel(ledger, kept, "2024-10-02T00:00", "2024-10-02T01:00")
    first, last = date(2024, 10, 1), date(2024, 10, 31)
    assert {g["g_id"] for g in month(ledger, "202410")} == {str(gone), str(kept)}
    assert set(ledger.queries.usage_totals(first, last)) == {str(gone), str(kept)}

    purge_group(ledger, gone)
    assert month_ids(month(ledger, "202410")) == {kept_kernel}
    assert month(ledger, "202410", [gone]) == []
    assert period_ids(period(ledger, "20241001", "20241031")) == {kept_kernel}
    assert period(ledger, "20241001", "20241031", gone) == []
    assert set(ledger.queries.usage_totals(first, last)) == {str(kept)}
    assert ledger.queries.usage_totals(first, last, gone) == {}


# usage_totals against a direct computation


@dataclass(frozen=True)
class Run:
    group_id: str
    slots: dict[str, str]
    started: datetime
    ended: datetime | None  # None: still running
    status: str


def direct_totals(
    runs: Iterable[Run], first: date, last: date, tz: ZoneInfo, now: datetime, group_id: str | None = None
) -> dict[str, dict[str, float]]:
    """Sum over kernels of amount x seconds of overlap with the local days [first, last];
    a running kernel up to now, a cancelled one not at all."""
    # In UTC, so that differences are real seconds (not wall-clock time) across DST.
    start = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
    end = (datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
    totals: dict[str, dict[str, float]] = {}
    for run in runs:
        if run.status == "CANCELLED" or group_id not in (None, run.group_id):
            continue
        stop = now if run.ended is None else run.ended
        seconds = (min(stop, end) - max(run.started, start)).total_seconds()
        if seconds <= 0:
            continue
        slots = totals.setdefault(run.group_id, {})
        for slot, amount in run.slots.items():
            slots[slot] = slots.get(slot, 0.0) + float(Decimal(amount)) * seconds
    return totals


def assert_close(found: dict[str, dict[str, float]], wanted: dict[str, dict[str, float]], runs: list[Run]) -> None:
    """Equal keys and amounts; kernels running now run on while the query does, so their
    slots may differ by up to 30 seconds of their amounts."""
    assert {g: set(s) for g, s in found.items()} == {g: set(s) for g, s in wanted.items()}
    for group, slots in wanted.items():
        for slot, amount in slots.items():
            running = [r for r in runs if r.ended is None and r.group_id == group and r.status == "RUNNING"]
            slack = 30 * sum(float(Decimal(r.slots.get(slot, "0"))) for r in running)
            assert found[group][slot] == pytest.approx(amount, rel=1e-9, abs=slack), (group, slot)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Seoul"])
def test_usage_totals_equal_the_direct_computation(backend: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    now = datetime.now(UTC)
    with fresh_url(backend) as url, open_ledger(url, timezone=zone) as ledger:
        a = create_group(ledger, name="a").id
        b = create_group(ledger, name="b").id
        runs: list[Run] = []

        def add(
            group: uuid.UUID,
            slots: dict[str, str],
            started: datetime,
            ended: datetime | None,
            status: str = "TERMINATED",
        ) -> None:
            kernel(ledger, group, started, ended, status=status, slots=slots)
            canonical = {"cpu": slots["cpu"], "mem": str(int(slots["mem"].rstrip("g")) * GiB)}
            canonical.update({k: v for k, v in slots.items() if k not in ("cpu", "mem")})
            runs.append(Run(str(group), canonical, started, ended, status if ended else "RUNNING"))

        add(a, {"cpu": "2", "mem": "4g"}, at("2024-10-01T22:00"), at("2024-10-03T01:30"))
        add(a, {"cpu": "1", "mem": "1g", "cuda.shares": "0.5"}, at("2024-09-30T20:00"), at("2024-10-01T02:00"))
        add(a, {"cpu": "8", "mem": "8g"}, at("2024-10-02T00:00"), at("2024-10-02T05:00"), "CANCELLED")
        add(a, {"cpu": "0.5", "mem": "2g"}, at("2024-10-02T12:00"), None)  # running since October
        add(b, {"cpu": "4", "mem": "16g", "cuda.device": "1"}, at("2024-10-31T10:00"), at("2024-11-01T20:15:30"))
        add(b, {"cpu": "3", "mem": "1g"}, now - timedelta(hours=2), None)  # running since two hours ago
        add(b, {"cpu": "1", "mem": "1g"}, at("2024-10-15T09:00:00+09:00"), at("2024-10-15T10:00:00+09:00"))

        today = now.astimezone(tz).date()
        ranges = [
            (date(2024, 10, 1), date(2024, 10, 1)),
            (date(2024, 10, 1), date(2024, 10, 3)),
            (date(2024, 9, 30), date(2024, 10, 2)),
            (date(2024, 10, 15), date(2024, 10, 15)),
            (date(2024, 10, 31), date(2024, 11, 1)),
            (date(2024, 9, 1), date(2024, 12, 31)),
            (date(2024, 8, 1), date(2024, 8, 31)),
            (today - timedelta(days=1), today),
        ]
        for first, last in ranges:
            found = ledger.queries.usage_totals(first, last)
            # Running kernels run on while the query does: allow a few seconds of the biggest slot.
            assert_close(found, direct_totals(runs, first, last, tz, datetime.now(UTC)), runs)
            for group in (a, b):
                wanted = direct_totals(runs, first, last, tz, datetime.now(UTC), str(group))
                assert_close(ledger.queries.usage_totals(first, last, group), wanted, runs)
        # Exact where nothing runs any more: October's cpu of group a, by hand.
        october = ledger.queries.usage_totals(date(2024, 10, 1), date(2024, 10, 31))
        hours = {"UTC": 2 * 27.5 + 1 * 2 + 0.5 * 29.5 * 24, "Asia/Seoul": 2 * 27.5 + 1 * 6 + 0.5 * (29.5 * 24 - 9)}
        assert october[str(a)]["cpu"] == pytest.approx(hours[zone] * 3600)


def test_usage_totals_read_a_datetime_as_its_day_on_both_backends(ledger: Ledger) -> None:
    """A datetime is a date to Python (and to the query's argument check), but compared
    with the rollups' day column it was bound as a timestamp: SQLite then compared the text
    '2024-02-29' with '2024-02-29 00:00:00.000000' and left the first day out (an empty
    answer for one day), where PostgreSQL counted it. It is read as its date."""
    g = create_group(ledger).id
    kernel(ledger, g, "2024-02-28T00:00", "2024-03-02T00:00")
    leap_day = {str(g): {"cpu": 86400.0, "mem": 86400.0 * GiB}}
    assert ledger.queries.usage_totals(date(2024, 2, 29), date(2024, 2, 29)) == leap_day
    for moment in (datetime(2024, 2, 29), datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)):
        assert ledger.queries.usage_totals(moment, moment) == leap_day, moment
    two_days = ledger.queries.usage_totals(datetime(2024, 2, 28, 12), datetime(2024, 2, 29, 12))
    assert two_days[str(g)]["cpu"] == 2 * 86400.0


def test_usage_totals_name_no_group_for_days_its_running_kernel_did_not_run_in(ledger: Ledger) -> None:
    """A running kernel counts for the part of the days it has run, as an ended one does:
    over days after now (or from a start the platform reported ahead of the ledger's
    clock) that is none, and a group with only such a kernel is no entry of zero, as a
    group whose kernels ended before the days is not (the direct computation's keys)."""
    g = create_group(ledger).id
    kernel(ledger, g, "2024-10-01T00:00")  # running since
    ahead = create_group(ledger, name="ahead").id
    kernel(ledger, ahead, datetime.now(UTC) + timedelta(days=3))  # reported ahead of the clock
    tomorrow = datetime.now(UTC).date() + timedelta(days=2)
    assert ledger.queries.usage_totals(tomorrow, tomorrow + timedelta(days=5)) == {}
    assert set(ledger.queries.usage_totals(date(2024, 10, 1), date(2024, 10, 1))) == {str(g)}


def test_usage_totals_refuse_a_last_day_before_the_first_naming_last(ledger: Ledger) -> None:
    """[first, last] with last before first holds no day: an empty answer would read as
    "nothing ran then", as the kernel list's and the audit trail's empty windows and the
    period report's reversed dates are refused."""
    kernel(ledger, create_group(ledger).id, "2024-10-01T00:00", "2024-10-03T00:00")
    with pytest.raises(InvalidAPIParameters) as info:
        ledger.queries.usage_totals(date(2024, 10, 2), date(2024, 10, 1))
    assert info.value.field == "last"
    assert "2024-10-01" in info.value.message and "2024-10-02" in info.value.message
    assert ledger.queries.usage_totals(date(2024, 10, 2), date(2024, 10, 2)) != {}  # one day is a range


# Daylight saving time: local days of 23 and 25 hours


def test_daylight_saving_days_hold_their_real_seconds(backend: str) -> None:
    """America/New_York: 2024-03-10 has 23 hours, 2024-11-03 has 25."""
    with fresh_url(backend) as url, open_ledger(url, timezone="America/New_York") as ny:
        spring, fall, running = (create_group(ny, name=name).id for name in ("spring", "fall", "running"))
        kernel(ny, spring, "2024-03-09T12:00", "2024-03-11T12:00")
        across = kernel(ny, fall, "2024-11-02T12:00", "2024-11-04T12:00")
        kernel(ny, running, "2024-10-01T00:00")

        def cpu_seconds(first: date, last: date, group: uuid.UUID) -> float:
            return ny.queries.usage_totals(first, last, group)[str(group)]["cpu"]

        assert cpu_seconds(date(2024, 3, 10), date(2024, 3, 10), spring) == pytest.approx(23 * 3600.0)
        assert cpu_seconds(date(2024, 3, 9), date(2024, 3, 11), spring) == pytest.approx(48 * 3600.0)
        assert cpu_seconds(date(2024, 11, 3), date(2024, 11, 3), fall) == pytest.approx(25 * 3600.0)
        assert cpu_seconds(date(2024, 11, 2), date(2024, 11, 4), fall) == pytest.approx(48 * 3600.0)
        # A running kernel over all of November: 30 days and the hour the clocks went back.
        assert cpu_seconds(date(2024, 11, 1), date(2024, 11, 30), running) == pytest.approx((30 * 24 + 1) * 3600.0)
        info = infos(month(ny, "202411", [fall]))[across]
        assert (info["used_time"], info["used_days"]) == ("2 days, 0:00:00", 3)


def test_used_days_leave_out_a_local_day_the_zone_skipped(backend: str) -> None:
    """Pacific/Apia went from UTC-10 to UTC+14 at the end of 2011-12-29, local time: its
    calendar has no 2011-12-30. A kernel from 28 December 14:00 to 1 January 02:00, local
    time, touched four local days (28, 29, 31 and 1), as REFERENCE.md counts used_days,
    not the five the dates' distance says; a kernel of another year is counted as ever."""
    with fresh_url(backend) as url, open_ledger(url, timezone="Pacific/Apia") as apia:
        g = create_group(apia).id
        across = kernel(apia, g, "2011-12-29T00:00", "2011-12-31T12:00")
        onto = kernel(apia, g, "2011-12-30T09:00", "2011-12-30T10:00")  # 29 Dec 23:00 to 31 Dec 00:00
        years = kernel(apia, g, "2010-06-01T00:00", "2012-06-01T00:00")  # 31 May 2010 to 1 June 2012, less one
        later = kernel(apia, g, "2024-03-01T00:00", "2024-03-03T00:00")
        wanted = {across: 4, onto: 2, years: 2 * 366, later: 3}
        for report in (month(apia, "201112"), month(apia, "201201")):
            assert {i: info["used_days"] for i, info in infos(report).items()} == {
                i: days for i, days in wanted.items() if i in infos(report)
            }
        found = period(apia, "20111229", "20111231")
        days = {k["kernel_id"]: k["used_days"] for p in found for s in p["sessions"] for k in s["kernels"]}
        assert days == {across: 4, onto: 2, years: 2 * 366}
        assert infos(month(apia, "202403"))[later]["used_days"] == 3


def test_usage_totals_hold_nothing_on_a_local_day_the_zone_skipped(backend: str) -> None:
    """Pacific/Apia has no 2011-12-30 (its midnight and the next are one instant): no
    kernel ran on it, so its totals name no group, as the direct computation says, rather
    than a group of zero seconds; the days around it hold the kernel's real seconds."""
    with fresh_url(backend) as url, open_ledger(url, timezone="Pacific/Apia") as apia:
        g = create_group(apia).id
        kernel(apia, g, "2011-12-29T00:00", "2011-12-31T12:00")
        skipped = date(2011, 12, 30)
        assert apia.queries.usage_totals(skipped, skipped) == {}
        assert apia.queries.usage_totals(date(2011, 12, 28), date(2012, 1, 1))[str(g)]["cpu"] == 60 * 3600.0
        with apia.read_models.connect() as conn:
            daily = apia.projections.usage.daily
            assert conn.execute(sa.select(daily.c.day).where(daily.c.day == skipped)).all() == []


def test_times_read_in_a_postgresql_session_zone_are_reported_in_utc(postgres_url: str) -> None:
    """A server whose TimeZone has DST returns times in it; reports must not subtract them
    as wall clocks (2024-11-03 has 25 hours in New York)."""
    with open_ledger(postgres_url, timezone="America/New_York") as ny:
        g = create_group(ny).id
        engine = ny.read_models.engine

        @sa.event.listens_for(engine, "do_connect")
        def session_zone(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
            params["options"] = f"{params.get('options', '')} -cTimeZone=America/New_York".strip()

        engine.dispose()
        with ny.read_models.connect() as conn:
            assert conn.execute(sa.text("SHOW TimeZone")).scalar_one() == "America/New_York"
        across = kernel(ny, g, "2024-11-02T12:00", "2024-11-03T12:00")
        info = infos(month(ny, "202411"))[across]
        assert (info["created_at"], info["terminated_at"]) == ("2024-11-02 12:00:00+00:00", "2024-11-03 12:00:00+00:00")
        assert (info["used_time"], info["used_days"]) == ("1 day, 0:00:00", 2)
        totals = ny.queries.usage_totals(date(2024, 11, 3), date(2024, 11, 3))
        assert totals[str(g)]["cpu"] == pytest.approx(8 * 3600.0)  # Nov 3, 00:00 EDT (04:00Z) to 12:00Z


def test_usage_totals_read_only_the_running_kernels_and_equal_the_old_computation(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`usage_totals` topped the rollups up with the running kernels it kept from every
    kernel of the window, read with names and vfolders (a year of 25,000: 11.8 s, 45 MB).
    It selects the running kernels started before the end alone now, and must answer
    exactly (no tolerance) what that computation answered: kernels running, ended, cancelled
    and spanning the window's edges, in two groups, in two time zones, per window and group."""
    from adapters.read.usage import SqlUsageReader
    from tests.projections.readmodels import totals_from_every_kernel

    windows = [
        (date(2024, 10, 1), date(2024, 10, 31)),
        (date(2024, 10, 31), date(2024, 11, 1)),
        (date(2024, 9, 1), date(2024, 12, 31)),
        (date(2024, 10, 3), date(2024, 10, 3)),
        (date(2024, 8, 1), date(2024, 8, 31)),
    ]
    for zone in ("UTC", "Asia/Seoul"):
        with fresh_url(backend) as url, open_ledger(url, timezone=zone) as ledger:
            groups = [create_group(ledger).id, create_group(ledger, name="second").id]
            for n, g in enumerate(groups):
                slots = {"cpu": str(n + 1), "mem": "512m", "cuda.shares": "0.3"}
                kernel(ledger, g, "2024-09-25T10:00", "2024-10-02T12:00", slots=slots)
                kernel(ledger, g, "2024-10-30T10:00:00.5", "2024-11-03T00:00", slots=slots)
                kernel(ledger, g, "2024-10-05T00:00", "2024-10-06T00:00", status="CANCELLED")
                kernel(ledger, g, "2024-09-01T00:00+09:00", slots=slots)
                kernel(ledger, g, "2024-10-03T07:13:01.123456", slots={"cpu": "0.7", "mem": "1g"})
                kernel(ledger, g, "2024-10-31T23:59:59", slots=slots)
                kernel(ledger, g, "2024-11-01T00:00")
                kernel(ledger, g, "2024-12-31T15:00")
            expected = {
                (first, last, group): totals_from_every_kernel(ledger, first, last, group)
                for first, last in windows
                for group in (None, *map(str, groups))
            }
            assert any(len(totals) == 2 for totals in expected.values())

            def every_kernel(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("usage_totals read every kernel of the window")

            monkeypatch.setattr(SqlUsageReader, "kernels", every_kernel)
            for (first, last, group), totals in expected.items():
                assert ledger.queries.usage_totals(first, last, group) == totals, (zone, first, last, group)
            monkeypatch.undo()
