"""`ledger usage` output on a realistic ledger: random ids, long and wide names, many kernels.
The table fits 80 columns (short ids, never wrapped); the order is the same in the table,
JSON and CSV whatever order the facts came in; CSV values cannot run as spreadsheet
formulas; the help says all of it within 80 columns."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from adapters.bootstrap import open_ledger
from adapters.cli.render import shortener
from domain.group import CreateGroupAction
from domain.workload import ReportKernelStatsAction, StartKernelAction, TerminateKernelAction
from tests.adapters.cli.helpers import as_json, ledger

OCTOBER = datetime(2024, 10, 1, tzinfo=UTC)
NAMES = ["train-resnet50-imagenet-full-run-7", "데이터-전처리-작업-세션", '=HYPERLINK("http://x","y")', "s"]
SLOTS = [{"cpu": "1", "mem": "2g"}, {"cpu": "48", "mem": "768g", "cuda.shares": "7.5", "cuda.mem": "80g"}]


def record(url: str, groups: int, sessions: int, seed: int, group_names: list[str] | None = None) -> list[Any]:
    """A ledger with `sessions` sessions of 1-3 kernels over `groups` groups, the facts
    recorded in a shuffled order (in batches; starts, then stats, then ends); returns the
    sessions as (group, session, name, [(kernel, started)])."""
    rng = random.Random(seed)
    made = []
    with open_ledger(url, timezone="UTC") as opened:
        group_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(groups)]
        for n, group_id in enumerate(group_ids):
            name = f"{(group_names or ['team'])[n % len(group_names or [0])]}-{n}"  # names are unique
            action = CreateGroupAction(input={"name": name, "domain_name": "default"}, group_id=group_id)
            asyncio.run(opened.services.group.create_group(action))
        starts: list[Any] = []
        stats: list[Any] = []
        ends: list[Any] = []
        for n in range(sessions):
            group_id, session_id = rng.choice(group_ids), str(uuid.UUID(int=rng.getrandbits(128), version=4))
            name, first = NAMES[n % len(NAMES)], OCTOBER + timedelta(minutes=rng.randrange(0, 40000))
            kernels = []
            for k in range(rng.randint(1, 3)):
                kernel_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                started = first + timedelta(minutes=rng.choice([0, 0, 5 * k]))  # ties too
                kernels.append((kernel_id, started))
                starts.append(
                    StartKernelAction(
                        kernel_id=kernel_id, session_id=session_id, session_name=name, group_id=group_id,
                        domain_name="default", user_id=uuid.UUID(int=7), access_key="AKUSER",
                        occupied_slots=rng.choice(SLOTS), started_at=started,
                    )
                )  # fmt: skip
                if rng.random() < 0.3:
                    stats.append(ReportKernelStatsAction(kernel_id=kernel_id, reported_at=started, mem_used=2**40))
                if rng.random() < 0.9:
                    ended = started + timedelta(seconds=rng.randrange(60, 40 * 86400))
                    ends.append(TerminateKernelAction(kernel_id=kernel_id, terminated_at=ended))
            made.append((group_id, session_id, name, kernels))
        for facts in (starts, stats, ends):
            rng.shuffle(facts)
            for first in range(0, len(facts), 37):
                asyncio.run(opened.services.workload.record_batch(facts[first : first + 37]))
    return made


def expected_order(made: list[Any]) -> list[str]:
    """The documented order: group id; session start (its first kernel's), session id;
    kernel start, kernel id."""
    sessions = sorted(made, key=lambda s: (s[0], min(t for _, t in s[3]), s[1]))
    return [kernel for s in sessions for kernel, _ in sorted(s[3], key=lambda k: (k[1], k[0]))]


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('usage') / 'l.db'}"
    return url, record(url, groups=4, sessions=120, seed=3, group_names=["research-동아시아-언어-모델", "ops"])


def lines_of(url: str, *args: str, columns: int) -> list[str]:
    result = ledger(url, *args, columns=columns)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("report", [["month", "202410"], ["period", "20241001", "20241110"]])
def test_no_line_is_wider_than_the_terminal_and_ids_are_short_and_whole(
    busy: tuple[str, list[Any]], report: list[str], columns: int
) -> None:
    url, made = busy
    lines = lines_of(url, "usage", *report, columns=columns)
    assert max(cell_len(line) for line in lines) <= columns
    text = "\n".join(lines)
    kernels = [kernel for *_, ks in made for kernel, _ in ks]
    assert not any(kernel in text for kernel in kernels)  # no full UUID
    rows = [line.split()[0] for line in lines[2:] if line and line.startswith(" ")]
    assert all(len(row) == 8 for row in rows)  # whole short ids, never wrapped
    ids_shown = {line.split()[0] for line in lines[2:] if line}
    assert {k[:8] for k in kernels} <= ids_shown | {"Left"}  # every kernel ran in the window
    assert "…" in text  # the long names were cut to fit


def test_the_order_is_the_same_in_the_table_json_and_csv_whatever_order_facts_came_in(
    busy: tuple[str, list[Any]],
) -> None:
    url, made = busy
    order = expected_order(made)
    month = as_json(url, "usage", "month", "202410")
    assert [info["id"] for group in month for info in group["c_infos"]] == order
    period = as_json(url, "usage", "period", "20241001", "20241110")
    assert [k["kernel_id"] for p in period for s in p["sessions"] for k in s["kernels"]] == order
    for report, column in ((["month", "202410"], 6), (["period", "20241001", "20241110"], 7)):
        result = ledger(url, "usage", *report, "--csv")
        assert [row[column] for row in csv.reader(io.StringIO(result.stdout))][1:] == order
        table = lines_of(url, "usage", *report, columns=300)
        depth = "  " if report[0] == "month" else "    "
        shown = [line.split()[0] for line in table if line.startswith(depth) and not line.startswith(depth + " ")]
        assert shown == [kernel[:8] for kernel in order]


def test_csv_text_that_starts_like_a_formula_gets_a_quote_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    record(url, groups=1, sessions=4, seed=5, group_names=["-cmd"])
    result = ledger(url, "usage", "period", "20241001", "20241110", "--csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["project_name"] for row in rows} == {"'-cmd-0"}
    names = {row["session_name"] for row in rows}
    assert '\'=HYPERLINK("http://x","y")' in names  # quotes and commas kept by RFC 4180 quoting
    assert "train-resnet50-imagenet-full-run-7" in names  # other text as it is
    assert all(not value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())
    assert all(float(row["cpu_allocated"]) >= 1 for row in rows)  # numbers stay numbers


def test_csv_text_that_starts_with_a_quote_reads_back_apart_from_a_neutralised_formula() -> None:
    """A name starting with ' was written as it is, so '=x in a cell was either the
    neutralised =x or the name '=x itself: the CSV did not read back. Such text gets a
    quote first too, so one leading ' dropped is always the value."""
    from adapters.cli.usage import _csv_value

    assert _csv_value("=x") == "'=x"
    assert _csv_value("'=x") == "''=x"
    assert _csv_value("'quoted'") == "''quoted'"
    assert _csv_value("plain") == "plain"


def test_short_ids_grow_until_they_tell_ids_apart() -> None:
    a, b = "abcdefgh-0000-4000-8000-000000000001", "abcdefgh-0000-4000-8000-000000000002"
    assert shortener([a, b, "0" * 36])(a) == a  # they differ in their last character only
    assert shortener(["abcdefgh-1", "abcdefgX-1"])("abcdefgh-1") == "abcdefgh"
    assert shortener(["abcdefgh1", "abcdefgh2", "zz"])("abcdefgh1") == "abcdefgh1"
    assert shortener(["abcdefgh1", "abcdefgh1"])("abcdefgh1") == "abcdefgh"  # one id twice is one id


@pytest.mark.parametrize("command", ["month", "period"])
def test_help_says_the_limit_csv_and_order_within_80_columns(db: str, command: str) -> None:
    result = ledger(db, "usage", command, "--help", columns=80)
    assert result.exit_code == 0
    assert max(cell_len(line) for line in result.stdout.splitlines()) <= 80
    text = " ".join(result.stdout.split())
    for words in ("--limit", "--csv", "sessions by start", "kernels by start", "leading '", "first 8 characters"):
        assert words in text, words


def test_a_size_just_under_a_unit_reads_as_one_of_the_next_unit() -> None:
    """1048575 bytes are 1023.999 KiB: shown with two decimals they read '1024 KiB', a
    unit that should have been the next one."""
    from adapters.cli.usage import _size

    assert [_size(n) for n in (1023, 1024, 1047552, 1048575, 1073741823)] == [
        "1023 B",
        "1 KiB",
        "1023 KiB",
        "1 MiB",
        "1 GiB",
    ]
    assert _size(1610612736) == "1.5 GiB"


def test_a_period_table_cut_by_limit_shortens_ids_as_the_whole_report_does(tmp_path: Path) -> None:
    """The period table shortened ids among the sessions it showed only: with --limit 1, a
    kernel read as a prefix that other kernels of the report (left out) share too, and the
    same kernel read shorter than without --limit. The month table shortens among the whole
    report; the period table now does too."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(url, timezone="UTC") as opened:
        group_id = uuid.UUID(int=1)
        action = CreateGroupAction(input={"name": "team", "domain_name": "default"}, group_id=group_id)
        asyncio.run(opened.services.group.create_group(action))
        facts = [
            StartKernelAction(
                kernel_id=uuid.UUID(f"abcdef01-0000-4000-8000-00000000000{n}"), session_id=uuid.UUID(int=100 + n),
                session_name=f"s{n}", group_id=group_id, domain_name="default", user_id=uuid.UUID(int=7),
                access_key="AKUSER", occupied_slots={"cpu": "1"}, started_at=OCTOBER + timedelta(hours=n),
            )
            for n in (1, 2)
        ]  # fmt: skip
        asyncio.run(opened.services.workload.record_batch(facts))
    whole = lines_of(url, "usage", "period", "20241001", "20241031", columns=200)
    cut = lines_of(url, "usage", "period", "20241001", "20241031", "--limit", "1", columns=200)
    first = "abcdef01-0000-4000-8000-000000000001"
    assert [line.split()[0] for line in whole if line.startswith("    ")] == [first, first[:-1] + "2"]
    assert [line.split()[0] for line in cut if line.startswith("    ")] == [first]
