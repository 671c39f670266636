"""`ledger usage month|period`, end to end on a SQLite file per test: tables (whole, at 80
columns, --limit), JSON, CSV, filters, the time zone, and refused inputs as one error line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from domain.group import CreateGroupAction, UsagePerMonthAction, UsagePerPeriodAction
from domain.usage.rows import MONTH_FIELDS, PERIOD_FIELDS
from domain.workload import CreateVFolderAction, ReportKernelStatsAction, StartKernelAction, TerminateKernelAction
from tests.adapters.cli.helpers import as_json, error_line, ledger, refused, stdout_of, usage_error

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
    """The table's rows by their short id (the first 8 characters of the full one), each as
    its cells: split on runs of two spaces or more, so blank cells are left out."""
    found = {}
    for line in out.splitlines()[2:]:  # the title, the header
        cells = re.split(r" {2,}", line.strip())
        if re.fullmatch(r"[0-9a-f]{8}", cells[0]):
            found[cells[0]] = cells
    return found


def short(*ids: str) -> list[str]:
    return [i[:8] for i in ids]


def service_result(db: str, action: Any, zone: str = "UTC") -> Any:
    """What the service answers, through JSON (the CLI prints it as is)."""
    with open_ledger(db, timezone=zone) as opened:
        service = opened.services.group
        method = service.usage_per_month if isinstance(action, UsagePerMonthAction) else service.usage_per_period
        return json.loads(json.dumps(asyncio.run(method(action)).result))


def wide(db: str, *args: str) -> str:
    return stdout_of(db, *args)  # the helper's 300 columns: every column shown


def narrow(db: str, *args: str, columns: int = 80) -> str:
    result = ledger(db, *args, columns=columns)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


# ledger usage month

MONTH_WIDE = """\
usage in 202410 (UTC): 2 groups, 3 kernels
id          name    status      started           duration    days  cpu  cpu used    mem  mem used  gpu  gpu mem  io read  io write  disk used  nfs
0e0e0e01    team-a                                                    3      1500  5 GiB     1 GiB  0.5      0 B      0 B       0 B        0 B  nfs:data
  aaaaaaa1  train   TERMINATED  2024-10-01 22:00  1d 3:30:00     3    2      1500  4 GiB     1 GiB  0.5      0 B      0 B       0 B        0 B  nfs:data
  aaaaaaa2  train   RUNNING     2024-10-20 00:00  -              -    1         0  1 GiB       0 B    0      0 B      0 B       0 B        0 B  -

0e0e0e02    team-b                                                    4         0  8 GiB       0 B    2      0 B      0 B       0 B        0 B  -
  aaaaaaa3  other   TERMINATED  2024-10-31 20:00  1:00:00        1    4         0  8 GiB       0 B    2      0 B      0 B       0 B        0 B  -
"""  # noqa: E501

MONTH_80 = """\
usage in 202410 (UTC): 2 groups, 3 kernels
id          name    status      duration    days  cpu  cpu used    mem  gpu
0e0e0e01    team-a                                  3      1500  5 GiB  0.5
  aaaaaaa1  train   TERMINATED  1d 3:30:00     3    2      1500  4 GiB  0.5
  aaaaaaa2  train   RUNNING     -              -    1         0  1 GiB    0

0e0e0e02    team-b                                  4         0  8 GiB    2
  aaaaaaa3  other   TERMINATED  1:00:00        1    4         0  8 GiB    2
Left out to fit 80 columns: started, mem used, gpu mem, io read, io write, disk
used, nfs (a wider terminal, --csv or --json show every column).
"""


def test_month_prints_each_group_with_its_totals_then_its_kernels(db: str) -> None:
    assert wide(db, "usage", "month", "202410") == MONTH_WIDE
    assert CANCELLED[:8] not in MONTH_WIDE and SEPTEMBER[:8] not in MONTH_WIDE


def test_month_at_80_columns_keeps_the_first_columns_whole_and_names_the_others(db: str) -> None:
    out = narrow(db, "usage", "month", "202410")
    assert out == MONTH_80
    assert max(len(line) for line in out.splitlines()) <= 80


def test_month_json_is_the_reports_result_as_is(db: str) -> None:
    printed = as_json(db, "usage", "month", "202410")
    assert printed == service_result(db, UsagePerMonthAction(month="202410"))
    assert [group["g_id"] for group in printed] == [G1, G2]
    assert [info["id"] for info in printed[0]["c_infos"]] == [TRAIN, SERVE]
    assert printed[0]["c_infos"][0]["nfs"] == ["nfs:data"]
    assert printed[0]["g_gpu_allocated"] == 0.5


def test_month_group_filter(db: str) -> None:
    assert list(rows(wide(db, "usage", "month", "202410", "--group", G2))) == short(G2, OTHER)
    assert list(rows(wide(db, "usage", "month", "202410", "--group", G1, "--group", G2))) == short(
        G1, TRAIN, SERVE, G2, OTHER
    )
    assert [g["g_id"] for g in as_json(db, "usage", "month", "202410", "--group", G1)] == [G1]
    unknown = str(uuid.uuid4())
    assert as_json(db, "usage", "month", "202410", "--group", unknown) == []
    assert wide(db, "usage", "month", "202410", "--group", unknown) == "no usage in 202410 (UTC)\n"


def test_month_with_nothing_to_report(db: str) -> None:
    assert wide(db, "usage", "month", "202401") == "no usage in 202401 (UTC)\n"
    assert as_json(db, "usage", "month", "202401") == []
    # A running kernel counts in every month after it started.
    assert list(rows(wide(db, "usage", "month", "203001"))) == short(G1, SERVE)


def test_month_limit_shows_the_first_kernels_and_says_how_many_are_left_out(db: str) -> None:
    out = wide(db, "usage", "month", "202410", "--limit", "1")
    assert list(rows(out)) == short(G1, TRAIN, G2)  # every group's totals row stays
    assert rows(out)[G2[:8]][2] == "4"  # its totals count the kernel not shown
    assert out.splitlines()[-1] == "2 more kernels not shown (--limit 1); the totals count them."
    assert list(rows(wide(db, "usage", "month", "202410", "--limit", "0"))) == short(G1, G2)
    assert "1 more kernel not shown (--limit 2)" in wide(db, "usage", "month", "202410", "--limit", "2")
    assert "not shown" not in wide(db, "usage", "month", "202410", "--limit", "3")


# ledger usage period

PERIOD_WIDE = """\
usage in 20241001-20241031 (UTC): 2 projects, 2 sessions, 3 kernels
id            name    status      started           duration    days  cpu  cpu used    mem  mem used  gpu  gpu mem  io read  io write  disk used  nfs
0e0e0e01      team-a                                                    3      1500  5 GiB     1 GiB  0.5      0 B      0 B       0 B        0 B  nfs:data
  5e55a001    train               2024-10-01 22:00                      3      1500  5 GiB     1 GiB  0.5      0 B      0 B       0 B        0 B  nfs:data
    aaaaaaa1          TERMINATED  2024-10-01 22:00  1d 3:30:00     3    2      1500  4 GiB     1 GiB  0.5      0 B      0 B       0 B        0 B  nfs:data
    aaaaaaa2          RUNNING     2024-10-20 00:00  -              -    1         0  1 GiB       0 B    0      0 B      0 B       0 B        0 B  -

0e0e0e02      team-b                                                    4         0  8 GiB       0 B    2      0 B      0 B       0 B        0 B  -
  5e55a002    other               2024-10-31 20:00                      4         0  8 GiB       0 B    2      0 B      0 B       0 B        0 B  -
    aaaaaaa3          TERMINATED  2024-10-31 20:00  1:00:00        1    4         0  8 GiB       0 B    2      0 B      0 B       0 B        0 B  -
"""  # noqa: E501


def test_period_prints_project_session_and_kernel_rows_with_totals(db: str) -> None:
    assert wide(db, "usage", "period", "20241001", "20241031") == PERIOD_WIDE


def test_period_limit_counts_sessions(db: str) -> None:
    out = wide(db, "usage", "period", "20241001", "20241031", "--limit", "1")
    assert list(rows(out)) == short(G1, S1, TRAIN, SERVE, G2)
    assert out.splitlines()[-1] == "1 more session not shown (--limit 1); the totals count them."
    assert list(rows(wide(db, "usage", "period", "20241001", "20241031", "--limit", "0"))) == short(G1, G2)


def test_period_json_and_project_filter(db: str) -> None:
    printed = as_json(db, "usage", "period", "20241001", "20241031")
    assert printed == service_result(db, UsagePerPeriodAction(start_date="20241001", end_date="20241031"))
    assert [p["project_id"] for p in printed] == [G1, G2]
    assert printed[0]["total_usage"]["cpu_allocated"] == 3.0
    only = as_json(db, "usage", "period", "20241001", "20241031", "--project", G2)
    assert [p["project_id"] for p in only] == [G2]
    assert [k["kernel_id"] for s in only[0]["sessions"] for k in s["kernels"]] == [OTHER]
    assert list(rows(wide(db, "usage", "period", "20241001", "20241031", "--project", G1))) == short(
        G1, S1, TRAIN, SERVE
    )
    assert wide(db, "usage", "period", "20240801", "20240831") == "no usage in 20240801-20240831 (UTC)\n"


# The time zone


def test_timezone_option_and_environment_set_the_windows(db: str) -> None:
    # OTHER ran on Oct 31, 20:00-21:00 UTC: Nov 1, 05:00-06:00 in Seoul.
    assert OTHER[:8] not in wide(db, "usage", "month", "202410", "--timezone", "Asia/Seoul")
    seoul = wide(db, "usage", "month", "202411", "--timezone", "Asia/Seoul")
    assert "usage in 202411 (Asia/Seoul)" in seoul and OTHER[:8] in seoul
    assert "2024-11-01 05:00" in seoul  # times in the report's zone
    assert OTHER[:8] not in wide(db, "usage", "month", "202411")
    from_env = stdout_of(db, "usage", "month", "202411", env={"LEDGER_TIMEZONE": "Asia/Seoul"})
    assert "(Asia/Seoul)" in from_env and OTHER[:8] in from_env
    # The option wins over the environment.
    assert OTHER[:8] in stdout_of(
        db, "usage", "month", "202410", "--timezone", "UTC", env={"LEDGER_TIMEZONE": "Asia/Seoul"}
    )
    period = as_json(db, "usage", "period", "20241101", "20241101", "--timezone", "Asia/Seoul")
    assert period == service_result(
        db, UsagePerPeriodAction(start_date="20241101", end_date="20241101"), zone="Asia/Seoul"
    )
    assert {k["kernel_id"] for p in period for s in p["sessions"] for k in s["kernels"]} == {OTHER, SERVE}
    # used_days counts local days: TRAIN ran Oct 2 07:00 to Oct 3 10:30 in Seoul.
    seoul_period = wide(db, "usage", "period", "20241001", "20241031", "--timezone", "Asia/Seoul")
    assert rows(seoul_period)[TRAIN[:8]][1:5] == ["TERMINATED", "2024-10-02 07:00", "1d 3:30:00", "2"]


# --csv


def test_csv_has_one_header_row_then_a_row_per_kernel_with_full_ids(db: str) -> None:
    result = ledger(db, "usage", "month", "202410", "--csv")
    assert result.exit_code == 0 and result.stderr == ""
    text = result.stdout_bytes.decode()  # .stdout turns CRLF into LF
    assert text.count("\r\n") == text.count("\n") == 4  # RFC 4180 line ends: a header and 3 rows
    header, *body = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(header) == MONTH_FIELDS
    found = [dict(zip(header, row, strict=True)) for row in body]
    assert [(r["group_id"], r["kernel_id"]) for r in found] == [(G1, TRAIN), (G1, SERVE), (G2, OTHER)]
    train = found[0]
    assert (train["group_name"], train["session_id"], train["session_name"]) == ("team-a", S1, "train")
    assert (train["mem_allocated"], train["mem_used"], train["cpu_used"]) == (str(4 * 2**30), str(2**30), "1500.0")
    assert (train["used_time"], train["used_days"], train["nfs"], train["device_type"]) == (
        "1 day, 3:30:00", "3", "nfs:data", "cuda",
    )  # fmt: skip
    serve = found[1]
    assert (serve["status"], serve["terminated_at"], serve["used_time"], serve["nfs"]) == ("RUNNING", "", "", "")

    period = ledger(db, "usage", "period", "20241001", "20241031", "--csv").stdout
    header, *body = list(csv.reader(io.StringIO(period, newline="")))
    assert tuple(header) == PERIOD_FIELDS
    assert [(r[0], r[3], r[7]) for r in body] == [(G1, S1, TRAIN), (G1, S1, SERVE), (G2, S2, OTHER)]


def test_csv_limit_keeps_the_first_rows_and_says_on_stderr_how_many_are_left_out(db: str) -> None:
    result = ledger(db, "usage", "month", "202410", "--csv", "--limit", "2")
    assert result.exit_code == 0
    assert [row[6] for row in csv.reader(io.StringIO(result.stdout, newline=""))][1:] == [TRAIN, SERVE]
    assert result.stderr == "note: 1 more kernel not in the CSV (--limit 2)\n"
    period = ledger(db, "usage", "period", "20241001", "20241031", "--csv", "--limit", "1")
    assert [row[7] for row in csv.reader(io.StringIO(period.stdout, newline=""))][1:] == [TRAIN, SERVE]
    assert period.stderr == "note: 1 more session not in the CSV (--limit 1)\n"


def test_csv_and_json_together_or_limit_with_json_are_usage_errors(db: str) -> None:
    for args in (
        ["--json", "usage", "month", "202410", "--csv"],
        ["--json", "usage", "period", "20241001", "20241031", "--csv"],
    ):
        line = usage_error(db, *args)
        assert "--csv and the root --json are two output formats" in line
    line = usage_error(db, "--json", "usage", "month", "202410", "--limit", "1")
    assert "--json prints the whole report; --limit is for the table and --csv" in line
    assert "'--limit': must be at least 0, got -1 (" in usage_error(db, "usage", "month", "202410", "--limit", "-1")
    # Past 2**63 - 1 the CSV's cut (islice) raised ValueError: an internal error, not a usage error.
    for report in (["month", "202410"], ["period", "20241001", "20241031"]):
        for extra in ([], ["--csv"]):
            line = usage_error(db, "usage", *report, "--limit", str(2**63), *extra)
            assert "'--limit': must be at most 9223372036854775807" in line, line  # the domain's words


# Refused inputs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["month", "2024-10"], "Invalid date values: month must be"),
        (["month", "20241"], "Invalid date values: month must be"),
        (["month", "202413"], "Invalid date values: month must be"),
        (["period", "20241301", "20241302"], "Invalid date values: start_date must be"),
        (["period", "20241001", "2024-10-31"], "Invalid date values: end_date must be"),
        (["period", "20240101", "20240410"], "Cannot query more than 100 days"),
        (["period", "20241002", "20241001"], "end_date must be later than start_date."),
        (["month", "202410", "--group", "nope"], "'nope' is not a UUID"),
        (["period", "20241001", "20241031", "--project", "nope"], "'nope' is not a UUID"),
        (["month", "202410", "--timezone", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        # Calendar edges: a window past year 9999, or before year 1 once in UTC, is refused
        # as input, not an overflow deep in the report.
        (["month", "999912"], "Invalid date values: month must be"),
        (["month", "000101", "--timezone", "Asia/Seoul"], "Invalid date values: month must be"),
        (["period", "99991231", "99991231"], "Invalid date values: start_date must be"),
        (["period", "00010101", "00010101", "--timezone", "Asia/Seoul"], "Invalid date values: start_date must be"),
        (
            ["month", "\u0662\u0660\u0662\u0664\u0661\u0660"],
            "Invalid date values: month must be",
        ),  # Arabic-Indic digits
    ],
)
def test_refused_inputs_are_one_error_line(db: str, args: list[str], message: str) -> None:
    # The message, not the code or the field's spelling (other changes set those).
    assert message in refused(db, "usage", *args)
    assert message in refused(db, "--json", "usage", *args)
    assert message in refused(db, "usage", *args, "--csv")


@pytest.mark.parametrize("zone", ["localtime", "", "posixrules", "Factory", "right/Asia/Seoul"])
def test_a_host_dependent_or_empty_time_zone_is_refused_naming_the_option(db: str, zone: str) -> None:
    """`--timezone localtime` built a read model `usage_localtime` that meant whatever the
    host's /etc/localtime was; `--timezone ''` reported in the default zone."""
    for report in (["month", "202410"], ["period", "20241001", "20241031"]):
        line = refused(db, "usage", *report, "--timezone", zone)
        assert line == f"error: ledger_invalid_parameters: --timezone: unknown time zone {zone!r}"
    assert [s["name"] for s in as_json(db, "projections", "status") if s["name"].startswith("usage")] == ["usage_utc"]


def test_a_bad_time_zone_from_the_environment_names_the_variable(db: str) -> None:
    """LEDGER_TIMEZONE=localtime was refused as `--timezone` by the reports (an option not
    typed) and as `timezone` by every other command."""
    env = {"LEDGER_TIMEZONE": "localtime"}
    for args in (["usage", "month", "202410"], ["policy", "list"]):
        line = error_line(ledger(db, *args, env=env), 1)
        assert line == "error: ledger_invalid_parameters: LEDGER_TIMEZONE: unknown time zone 'localtime'", line


def test_a_period_of_exactly_100_days_is_accepted(db: str) -> None:
    assert [p["project_id"] for p in as_json(db, "usage", "period", "20240901", "20241209")] == [G1, G2]
