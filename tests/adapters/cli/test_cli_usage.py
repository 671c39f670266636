"""`ledger usage month|period`, end to end on a SQLite file per test: tables, JSON,
filters, the time zone, and refused inputs as one error line."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from domain.group import CreateGroupAction, UsagePerMonthAction, UsagePerPeriodAction
from domain.workload import CreateVFolderAction, ReportKernelStatsAction, StartKernelAction, TerminateKernelAction
from tests.adapters.cli.helpers import as_json, refused, stdout_of

# Ids told apart by their first 8 characters, as random UUIDs are (the table shows those).
G1 = "0e0e0e01-0000-4000-8000-000000000001"
G2 = "0e0e0e02-0000-4000-8000-000000000002"
S1, S2, S3 = (f"5e55a00{i}-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
TRAIN = "aaaaaaa1-0000-4000-8000-000000000001"  # G1, S1: Oct 1 22:00 to Oct 3 01:30 UTC
SERVE = "aaaaaaa2-0000-4000-8000-000000000002"  # G1, S1: running since Oct 20
OTHER = "aaaaaaa3-0000-4000-8000-000000000003"  # G2, S2: Oct 31 20:00 to 21:00 UTC (Nov 1 in Seoul)
CANCELLED = "aaaaaaa4-0000-4000-8000-000000000004"  # G2, S3: cancelled in October
SEPTEMBER = "aaaaaaa5-0000-4000-8000-000000000005"  # G2, S3: September only
FOLDER = "f0f0f0f0-0000-4000-8000-000000000001"
INVALID = "error: ledger_invalid_parameters:"


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A ledger with two groups and a small October workload."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(url, timezone="UTC") as ledger:
        for group_id, name in ((G1, "team-a"), (G2, "team-b")):
            action = CreateGroupAction(input={"name": name, "domain_name": "default"}, group_id=group_id)
            asyncio.run(ledger.services.group.create_group(action))

        def start(kernel: str, group: str, session: str, slots: dict[str, str], at: str, **more: Any) -> Any:
            return StartKernelAction(
                kernel_id=kernel,
                session_id=session,
                session_name="train" if session == S1 else "other",
                group_id=group,
                domain_name="default",
                user_id=uuid.UUID(int=3),
                access_key="AKUSER",
                occupied_slots=slots,
                started_at=at,
                **more,
            )

        facts = [
            CreateVFolderAction(vfolder_id=FOLDER, name="data", host="nfs", group_id=G1),
            start(TRAIN, G1, S1, {"cpu": "2", "mem": "4g", "cuda.shares": "0.5"}, "2024-10-01T22:00Z", mounts=[FOLDER]),
            ReportKernelStatsAction(kernel_id=TRAIN, reported_at="2024-10-02T00:00Z", cpu_used="10", mem_used=1),
            ReportKernelStatsAction(kernel_id=TRAIN, reported_at="2024-10-03T00:00Z", cpu_used="1500", mem_used=2**30),
            TerminateKernelAction(kernel_id=TRAIN, terminated_at="2024-10-03T01:30Z"),
            start(SERVE, G1, S1, {"cpu": "1", "mem": "1g"}, "2024-10-20T00:00Z"),
            start(OTHER, G2, S2, {"cpu": "4", "mem": "8g", "cuda.device": "2"}, "2024-10-31T20:00Z"),
            TerminateKernelAction(kernel_id=OTHER, terminated_at="2024-10-31T21:00Z"),
            start(CANCELLED, G2, S3, {"cpu": "8", "mem": "8g"}, "2024-10-05T00:00Z"),
            TerminateKernelAction(kernel_id=CANCELLED, terminated_at="2024-10-05T01:00Z", status="CANCELLED"),
            start(SEPTEMBER, G2, S3, {"cpu": "1", "mem": "1g"}, "2024-09-05T00:00Z"),
            TerminateKernelAction(kernel_id=SEPTEMBER, terminated_at="2024-09-06T00:00Z"),
        ]
        asyncio.run(ledger.services.workload.record_batch(facts))
    return url


def rows(out: str) -> dict[str, list[str]]:
    """The table's body rows by their first cell (stripped), each as its stripped cells."""
    found = {}
    for line in out.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            found[cells[0] if cells[0] not in ("project", "session", "kernel") else cells[1]] = cells
    return found


def service_result(db: str, action: Any, zone: str = "UTC") -> Any:
    """What the service answers, through JSON (the CLI prints it as is)."""
    with open_ledger(db, timezone=zone) as opened:
        service = opened.services.group
        method = service.usage_per_month if isinstance(action, UsagePerMonthAction) else service.usage_per_period
        return json.loads(json.dumps(asyncio.run(method(action)).result))


# ledger usage month


def test_month_prints_one_row_per_group_with_totals_and_its_kernels_under_it(db: str) -> None:
    out = stdout_of(db, "usage", "month", "202410")
    assert "usage in 202410 (UTC): 2 groups, 3 kernels" in out
    table = rows(out)
    assert list(table) == [G1, TRAIN, SERVE, G2, OTHER]  # each group, then its kernels
    # group / kernel, name, status, created_at, used_time, days, cpu, cpu used, mem, mem used,
    # gpu, gpu mem, io read, io write, disk used, nfs
    assert table[G1] == [G1, "team-a", "", "", "", "", "3", "1500", "5 GiB", "1 GiB", "0.5"] + ["0 B"] * 4 + [""]
    assert table[TRAIN] == [
        TRAIN, "train", "TERMINATED", "2024-10-01 22:00:00+00:00", "1 day, 3:30:00", "3",
        "2", "1500", "4 GiB", "1 GiB", "0.5", "0 B", "0 B", "0 B", "0 B", "nfs:data",
    ]  # fmt: skip
    assert table[SERVE][2:6] == ["RUNNING", "2024-10-20 00:00:00+00:00", "-", "-"]
    assert table[G2][:11] == [G2, "team-b", "", "", "", "", "4", "0", "8 GiB", "0 B", "2"]
    assert CANCELLED not in out and SEPTEMBER not in out


def test_month_json_is_the_reports_result_as_is(db: str) -> None:
    printed = as_json(db, "usage", "month", "202410")
    assert printed == service_result(db, UsagePerMonthAction(month="202410"))
    assert [group["g_id"] for group in printed] == [G1, G2]
    assert [info["id"] for info in printed[0]["c_infos"]] == [TRAIN, SERVE]
    assert printed[0]["c_infos"][0]["nfs"] == ["nfs:data"]
    assert printed[0]["g_gpu_allocated"] == 0.5


def test_month_group_filter(db: str) -> None:
    assert list(rows(stdout_of(db, "usage", "month", "202410", "--group", G2))) == [G2, OTHER]
    assert list(rows(stdout_of(db, "usage", "month", "202410", "--group", G1, "--group", G2))) == [
        G1, TRAIN, SERVE, G2, OTHER,
    ]  # fmt: skip
    assert [g["g_id"] for g in as_json(db, "usage", "month", "202410", "--group", G1)] == [G1]
    unknown = str(uuid.uuid4())
    assert as_json(db, "usage", "month", "202410", "--group", unknown) == []
    assert stdout_of(db, "usage", "month", "202410", "--group", unknown) == "no usage in 202410 (UTC)\n"


def test_month_with_nothing_to_report(db: str) -> None:
    assert stdout_of(db, "usage", "month", "202401") == "no usage in 202401 (UTC)\n"
    assert as_json(db, "usage", "month", "202401") == []
    # A running kernel counts in every month after it started.
    assert list(rows(stdout_of(db, "usage", "month", "203001"))) == [G1, SERVE]


# ledger usage period


def test_period_prints_project_session_and_kernel_rows_with_totals(db: str) -> None:
    out = stdout_of(db, "usage", "period", "20241001", "20241031")
    assert "usage in 20241001-20241031 (UTC): 2 projects, 3 kernels" in out
    table = rows(out)
    assert list(table) == [G1, S1, TRAIN, SERVE, G2, S2, OTHER]
    assert table[G1][:11] == ["project", G1, "team-a", "", "", "", "3", "1500", "5 GiB", "1 GiB", "0.5"]
    assert table[G1][-1] == "nfs:data"
    assert table[S1][:11] == ["session", S1, "train", "", "", "", "3", "1500", "5 GiB", "1 GiB", "0.5"]
    assert table[TRAIN][:8] == ["kernel", TRAIN, "", "TERMINATED", "1 day, 3:30:00", "3", "2", "1500"]
    assert table[SERVE][3:6] == ["RUNNING", "-", "-"]
    assert table[OTHER][:7] == ["kernel", OTHER, "", "TERMINATED", "1:00:00", "1", "4"]
    assert table[G2][-1] == "-"  # no vfolders mounted


def test_period_json_and_project_filter(db: str) -> None:
    printed = as_json(db, "usage", "period", "20241001", "20241031")
    assert printed == service_result(db, UsagePerPeriodAction(start_date="20241001", end_date="20241031"))
    assert [p["project_id"] for p in printed] == [G1, G2]
    assert printed[0]["total_usage"]["cpu_allocated"] == 3.0
    only = as_json(db, "usage", "period", "20241001", "20241031", "--project", G2)
    assert [p["project_id"] for p in only] == [G2]
    assert [k["kernel_id"] for s in only[0]["sessions"] for k in s["kernels"]] == [OTHER]
    assert list(rows(stdout_of(db, "usage", "period", "20241001", "20241031", "--project", G1))) == [
        G1,
        S1,
        TRAIN,
        SERVE,
    ]
    assert stdout_of(db, "usage", "period", "20240801", "20240831") == "no usage in 20240801-20240831 (UTC)\n"


# The time zone


def test_timezone_option_and_environment_set_the_windows(db: str) -> None:
    # OTHER ran on Oct 31, 20:00-21:00 UTC: Nov 1, 05:00-06:00 in Seoul.
    assert OTHER not in stdout_of(db, "usage", "month", "202410", "--timezone", "Asia/Seoul")
    seoul = stdout_of(db, "usage", "month", "202411", "--timezone", "Asia/Seoul")
    assert "usage in 202411 (Asia/Seoul)" in seoul and OTHER in seoul
    assert OTHER not in stdout_of(db, "usage", "month", "202411")
    from_env = stdout_of(db, "usage", "month", "202411", env={"LEDGER_TIMEZONE": "Asia/Seoul"})
    assert "(Asia/Seoul)" in from_env and OTHER in from_env
    # The option wins over the environment.
    assert OTHER in stdout_of(
        db, "usage", "month", "202410", "--timezone", "UTC", env={"LEDGER_TIMEZONE": "Asia/Seoul"}
    )
    period = as_json(db, "usage", "period", "20241101", "20241101", "--timezone", "Asia/Seoul")
    assert period == service_result(
        db, UsagePerPeriodAction(start_date="20241101", end_date="20241101"), zone="Asia/Seoul"
    )
    assert {k["kernel_id"] for p in period for s in p["sessions"] for k in s["kernels"]} == {OTHER, SERVE}
    # used_days counts local days: TRAIN ran Oct 2 07:00 to Oct 3 10:30 in Seoul.
    assert rows(stdout_of(db, "usage", "period", "20241001", "20241031", "--timezone", "Asia/Seoul"))[TRAIN][5] == "2"


# Refused inputs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["month", "2024-10"], "month: Invalid date values"),
        (["month", "20241"], "month: Invalid date values"),
        (["month", "202413"], "month: Invalid date values"),
        (["period", "20241301", "20241302"], "start_date: Invalid date values"),
        (["period", "20241001", "2024-10-31"], "end_date: Invalid date values"),
        (["period", "20240101", "20240410"], "Cannot query more than 100 days"),
        (["period", "20241002", "20241001"], "end_date must be later than start_date."),
        (["month", "202410", "--group", "nope"], "group_ids: 'nope' is not a UUID"),
        (["period", "20241001", "20241031", "--project", "nope"], "project_id: 'nope' is not a UUID"),
        (["month", "202410", "--timezone", "Mars/Base"], "timezone: unknown time zone 'Mars/Base'"),
        # Calendar edges: a window past year 9999, or before year 1 once in UTC, is refused
        # as input, not an overflow deep in the report.
        (["month", "999912"], "month: Invalid date values"),
        (["month", "000101", "--timezone", "Asia/Seoul"], "month: Invalid date values"),
        (["period", "99991231", "99991231"], "start_date: Invalid date values"),
        (["period", "00010101", "00010101", "--timezone", "Asia/Seoul"], "start_date: Invalid date values"),
        (["month", "\u0662\u0660\u0662\u0664\u0661\u0660"], "month: Invalid date values"),  # Arabic-Indic digits
    ],
)
def test_refused_inputs_are_one_error_line(db: str, args: list[str], message: str) -> None:
    assert refused(db, "usage", *args).startswith(f"{INVALID} {message}")
    assert refused(db, "--json", "usage", *args).startswith(f"{INVALID} {message}")


def test_a_period_of_exactly_100_days_is_accepted(db: str) -> None:
    assert [p["project_id"] for p in as_json(db, "usage", "period", "20240901", "20241209")] == [G1, G2]
