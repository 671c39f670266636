"""`ledger usage ...`: seed 003's usage reports, per month and per period.

Reports run through the group processors (`usage_per_month`, `usage_per_period`); with
the root --json the report's `.result` is printed as is. Windows and used days are in the
time zone of --timezone, else $LEDGER_TIMEZONE, else UTC.

The table is plain text laid out by `columns` (fits the terminal, short ids, no wrapping;
a rich table took seconds per thousand rows). --csv writes one row per kernel with full
ids and raw numbers, through the csv module (RFC 4180 quoting, CRLF line ends); a text
value starting with = + - @ (or a tab or CR) gets a leading `'` so that a spreadsheet
shows it instead of running it as a formula (one starting with `'` gets one too, so that
dropping one leading `'` reads every value back), and control characters are escaped as in
every other output (`render.safe`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, open_ledger, refuse_a_missing_ledger, state_of
from adapters.cli.columns import Column, lay_out, notes
from adapters.cli.render import plural, safe, shortener

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


usage_app = typer.Typer(
    no_args_is_help=True,
    help="Usage reports (per month, per period) of groups' kernels: a table, --csv, or the root --json. "
    "Time zone: --timezone, else $LEDGER_TIMEZONE, else UTC.",
)

TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone of the report's window, days and times (e.g. Asia/Seoul). "
        "Default: $LEDGER_TIMEZONE, else UTC.",
    ),
]
CsvOption = Annotated[
    bool,
    typer.Option(
        "--csv",
        help="CSV instead of the table: a header row, then one row per kernel with its group's "
        "and session's ids and names; full ids, bytes and CPU ms as plain numbers, lists joined "
        "with ';'. Text starting with = + - @ ' gets a leading ' (no spreadsheet formulas). "
        "Not with the root --json.",
    ),
]

ORDER = (
    "Order (table, --csv and --json alike): groups (projects) by id; in a group, sessions by start (their "
    "first kernel's start), then session id; in a session, kernels by start, then kernel id."
)
FIT = (
    "The table fits the terminal's width ($COLUMNS): ids show their first 8 characters (more "
    "if two would look alike), long names are cut with '…', and the columns that do not fit "
    "are left out and named under it. Sizes are in binary units (GiB), times in the report's "
    "zone, durations [Nd ]H:MM:SS. --csv and --json have every field and full ids."
)

# A leading ' itself too: one leading ' dropped is then always the value ('=x is not =x).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
BYTE_FIELDS = {"mem_allocated", "mem_used", "gpu_mem_allocated", "io_read", "io_write", "disk_used"}
# The usage columns of both tables, in display order: (header, usage field, rank).
USAGE_COLUMNS = (
    ("cpu", "cpu_allocated", 5),
    ("cpu used", "cpu_used", 10),
    ("mem", "mem_allocated", 6),
    ("mem used", "mem_used", 11),
    ("gpu", "gpu_allocated", 7),
    ("gpu mem", "gpu_mem_allocated", 12),
    ("io read", "io_read", 13),
    ("io write", "io_write", 14),
    ("disk used", "disk_used", 15),
)
# id, name, status, started, duration, days, the usage, nfs; kept in this rank order.
COLUMNS = (
    Column("id", 0),
    Column("name", 1, cut=True),
    Column("status", 2),
    Column("started", 9),
    Column("duration", 3),
    Column("days", 8, right=True),
    *(Column(header, rank, right=True) for header, _, rank in USAGE_COLUMNS),
    Column("nfs", 16, cut=True),
)
_FIELDS = [(name, name in BYTE_FIELDS) for _, name, _ in USAGE_COLUMNS]


@functools.lru_cache(maxsize=4096)  # amounts repeat (slot sizes): formatting them was a third of the table's time
def _size(value: Any) -> str:
    """Bytes with a binary unit: 512 B, 1.5 KiB, 4 GiB."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        # Compared as it is shown: 1048575 B, 1023.999 KiB, reads 1 MiB, not 1024 KiB.
        if round(abs(amount), 2) < 1024 or unit == "PiB":
            return f"{amount:.2f}".rstrip("0").rstrip(".") + f" {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=4096)
def _number(value: Any) -> str:
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def _usage_cells(usage: dict[str, Any], prefix: str = "") -> list[str]:
    return [_size(usage[prefix + name]) if size else _number(usage[prefix + name]) for name, size in _FIELDS]


def _nfs(names: list[str] | None) -> str:
    return safe(", ".join(names)) if names else "-"


def _text(value: Any) -> str:
    """A report's value as a cell; names come from workload facts, so escaped (`safe`)."""
    return "-" if value is None else safe(str(value))


def _local(created_at: str, tz: ZoneInfo) -> str:
    """A report's time (str of an aware datetime) in the report's zone, to the minute."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(created_at).astimezone(tz).isoformat(" ")[:16]
    except ValueError:  # not a time after all: shown as it is
        return _text(created_at)


def _duration(used_time: str | None) -> str:
    """str(timedelta), shorter: '1 day, 3:30:00.25' -> '1d 3:30:00'; '-' while running."""
    if used_time is None:
        return "-"
    return used_time.split(".")[0].replace(" days, ", "d ").replace(" day, ", "d ")


def _month_rows(report: list[dict[str, Any]], tz: ZoneInfo, limit: int | None) -> list[list[str]]:
    """A group's totals row, then its kernels' rows (the first `limit` kernels overall)."""
    short = shortener([g["g_id"] for g in report] + [i["id"] for g in report for i in g["c_infos"]])
    rows: list[list[str]] = []
    left = limit
    for group in report:
        if rows:
            rows.append([])  # a blank line between groups
        nfs = sorted({name for info in group["c_infos"] for name in info["nfs"] or []})  # as the period's totals
        rows.append([short(group["g_id"]), _text(group["g_name"]), "", "", "", "", *_usage_cells(group, "g_")])
        rows[-1].append(_nfs(nfs))
        infos = group["c_infos"] if left is None else group["c_infos"][:left]
        if left is not None:
            left -= len(infos)
        rows.extend(
            [
                f"  {short(info['id'])}",
                _text(info["name"]),
                _text(info["status"]),
                _local(info["created_at"], tz),
                _duration(info["used_time"]),
                _text(info["used_days"]),
                *_usage_cells(info),
                _nfs(info["nfs"]),
            ]
            for info in infos
        )
    return rows


def _period_rows(report: list[dict[str, Any]], tz: ZoneInfo, shown: list[dict[str, Any]]) -> list[list[str]]:
    """A project's totals row, then each session's totals row and its kernels' rows, of the
    `shown` part of `report` (`first_sessions`); ids are shortened among the whole report's,
    as the month table's are, so a prefix shown is never one a left-out kernel shares."""
    ids = [p["project_id"] for p in report] + [s["session_id"] for p in report for s in p["sessions"]]
    short = shortener(ids + [k["kernel_id"] for p in report for s in p["sessions"] for k in s["kernels"]])
    rows: list[list[str]] = []
    for project in shown:
        if rows:
            rows.append([])
        total = project["total_usage"]
        rows.append([short(project["project_id"]), _text(project["project_name"]), "", "", "", ""])
        rows[-1] += [*_usage_cells(total), _nfs(total["nfs"])]
        for session in project["sessions"]:
            total, first = session["total_usage"], session["kernels"][0]  # the first to start
            rows.append([f"  {short(session['session_id'])}", _text(session["session_name"]), ""])
            rows[-1] += [_local(first["created_at"], tz), "", "", *_usage_cells(total), _nfs(total["nfs"])]
            for kernel in session["kernels"]:
                usage = kernel["total_usage"]
                rows.append([f"    {short(kernel['kernel_id'])}", "", _text(kernel["status"])])
                rows[-1] += [_local(kernel["created_at"], tz), _duration(kernel["used_time"])]
                rows[-1] += [_text(kernel["used_days"]), *_usage_cells(usage), _nfs(usage["nfs"])]
    return rows


def first_sessions(report: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """A period report with the first `limit` sessions only (every project kept, its totals whole)."""
    if limit is None:
        return report
    kept = []
    for project in report:
        sessions = project["sessions"][:limit]
        limit -= len(sessions)
        kept.append({**project, "sessions": sessions})
    return kept


def _width() -> int:
    from rich.console import Console

    return Console().width  # $COLUMNS, else the terminal's, else 80


def table_lines(title: str, rows: Sequence[Sequence[str]], more: str | None, width: int) -> list[str]:
    """The title, the columns that fit `width` and the notes under them."""
    lines, left_out = lay_out(COLUMNS, rows, width)
    footer = [more] if more else []
    if left_out:
        footer.append(
            f"Left out to fit {width} columns: {', '.join(left_out)} "
            "(a wider terminal, --csv or --json show every column)."
        )
    return [*notes([title], width), *lines, *notes(footer, width)]


def month_lines(month: str, zone: str, report: list[dict[str, Any]], limit: int | None, width: int) -> list[str]:
    from zoneinfo import ZoneInfo

    from domain.usage.rows import kernel_count

    kernels = kernel_count(report)
    title = f"usage in {month} ({zone}): {plural(len(report), 'group')}, {plural(kernels, 'kernel')}"
    more = None if limit is None else _left_out(kernels - limit, "kernel", limit, csv=False)
    return table_lines(title, _month_rows(report, ZoneInfo(zone), limit), more, width)


def _csv_value(value: Any) -> Any:
    """A value as a CSV field: numbers as they are; text escaped and, when it starts like a
    spreadsheet formula, after a single quote; lists joined with ';'; None empty."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = safe(";".join(map(str, value)) if isinstance(value, list) else str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _write_csv(fields: Sequence[str], rows: Iterator[dict[str, Any]]) -> None:
    import csv

    writer = csv.writer(sys.stdout)  # RFC 4180: CRLF, quotes doubled, fields with , " or line ends quoted
    writer.writerow(fields)
    writer.writerows([_csv_value(row[field]) for field in fields] for row in rows)


def _check_output(state: State, csv: bool, limit: int | None) -> None:
    """Usage errors, before the ledger is opened: two output formats, or a cut JSON report."""
    if csv and state.as_json:
        raise typer.BadParameter("--csv and the root --json are two output formats: give one", param_hint="--csv")
    if limit is not None and state.as_json:
        raise typer.BadParameter("--json prints the whole report; --limit is for the table and --csv")


def _left_out(count: int, noun: str, limit: int, *, csv: bool) -> str | None:
    if count <= 0:
        return None
    if csv:
        typer.echo(f"note: {plural(count, noun).replace(' ', ' more ', 1)} not in the CSV (--limit {limit})", err=True)
        return None
    return f"{plural(count, noun).replace(' ', ' more ', 1)} not shown (--limit {limit}); the totals count them."


# What islice takes (sys.maxsize here): a larger --limit was an internal error for --csv.
MAX_LIMIT = 2**63 - 1
MONTH_LIMIT = (
    "Show at most N kernels, the first N in order (--csv too); every group's totals row stays, so 0 "
    "shows the totals only. Not with the root --json."
)
PERIOD_LIMIT = (
    "Show at most N sessions with their kernels, the first N in order (--csv too); every project's "
    "totals row stays, so 0 shows the totals only. Not with the root --json."
)
MONTH_HELP = (
    "Usage in one month: per group, its totals, then its kernels.\n\nThe month runs from its first day to "
    "the first of the next, local time. Kernels that ran in it count (running ones too; cancelled ones "
    f"never).\n\n{ORDER}\n\n{FIT}"
)
PERIOD_HELP = (
    "Usage in a period: per project, its sessions, then their kernels, each with totals.\n\nThe period runs "
    "from the start date to the end of the end date (at most 100 days), local time. Kernels that ran in it "
    "count (running ones too; cancelled ones never). A session's 'started' is its first kernel's start."
    f"\n\n{ORDER}\n\n{FIT}"
)


@usage_app.command("month", help=MONTH_HELP)
def usage_month(
    ctx: typer.Context,
    month: Annotated[str, typer.Argument(metavar="YYYYMM", help="The month, e.g. 202410.")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", metavar="UUID", help="Only this group (repeatable). Default: every group."),
    ] = None,
    timezone: TimezoneOption = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, max=MAX_LIMIT, metavar="N", help=MONTH_LIMIT)] = None,
    csv: CsvOption = False,
) -> None:
    from domain.group import UsagePerMonthAction
    from domain.usage.rows import MONTH_FIELDS, kernel_count, month_rows

    state = state_of(ctx)
    _check_output(state, csv, limit)
    action = UsagePerMonthAction(month=month, group_ids=group or None)
    refuse_a_missing_ledger(state.db)
    with open_ledger(state.db, timezone) as ledger:  # the root --db, this zone
        result = state.run(ledger.processors.group.usage_per_month, action)
        zone = ledger.timezone
    report: list[dict[str, Any]] = result.result
    if csv:
        if limit is not None:
            _left_out(kernel_count(report) - limit, "kernel", limit, csv=True)
        _write_csv(MONTH_FIELDS, islice(month_rows(report), limit))
        return

    def table() -> None:
        lines = month_lines(month, zone, report, limit, _width()) if report else [f"no usage in {month} ({zone})"]
        typer.echo("\n".join(lines))

    state.output(report, table)


@usage_app.command("period", help=PERIOD_HELP)
def usage_period(
    ctx: typer.Context,
    start_date: Annotated[str, typer.Argument(metavar="YYYYMMDD", help="First day.")],
    end_date: Annotated[str, typer.Argument(metavar="YYYYMMDD", help="Last day (included); at most 100 days.")],
    project: Annotated[str | None, typer.Option("--project", metavar="UUID", help="Only this project.")] = None,
    timezone: TimezoneOption = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, max=MAX_LIMIT, metavar="N", help=PERIOD_LIMIT)] = None,
    csv: CsvOption = False,
) -> None:
    from zoneinfo import ZoneInfo

    from domain.group import UsagePerPeriodAction
    from domain.usage.rows import PERIOD_FIELDS, kernel_count, period_rows

    state = state_of(ctx)
    _check_output(state, csv, limit)
    action = UsagePerPeriodAction(start_date=start_date, end_date=end_date, project_id=project)
    refuse_a_missing_ledger(state.db)
    with open_ledger(state.db, timezone) as ledger:  # the root --db, this zone
        result = state.run(ledger.processors.group.usage_per_period, action)
        zone = ledger.timezone
    report: list[dict[str, Any]] = result.result
    shown = first_sessions(report, limit)
    sessions = sum(len(p["sessions"]) for p in report)
    more = None if limit is None else _left_out(sessions - limit, "session", limit, csv=csv)
    if csv:
        _write_csv(PERIOD_FIELDS, period_rows(shown))
        return
    span = f"{start_date}-{end_date} ({zone})"

    def table() -> None:
        if not report:
            typer.echo(f"no usage in {span}")
            return
        counts = [plural(len(report), "project"), plural(sessions, "session"), plural(kernel_count(report), "kernel")]
        rows = _period_rows(report, ZoneInfo(zone), shown)
        typer.echo("\n".join(table_lines(f"usage in {span}: {', '.join(counts)}", rows, more, _width())))

    state.output(report, table)
