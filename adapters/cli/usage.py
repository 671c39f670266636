"""`ledger usage ...`: seed 003's usage reports, per month and per period.

Reports run through the group processors (`usage_per_month`, `usage_per_period`); with
--json the report's `.result` is printed as is. Windows and used days are in the time zone
of --timezone, else $LEDGER_TIMEZONE, else UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import open_ledger, state_of
from adapters.cli.render import new_table, print_table, safe

if TYPE_CHECKING:
    from rich.table import Table

usage_app = typer.Typer(
    no_args_is_help=True,
    help="Usage reports (per month, per period) of groups' kernels. "
    "Time zone: --timezone, else $LEDGER_TIMEZONE, else UTC.",
)

TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone of the report's window and days (e.g. Asia/Seoul). Default: $LEDGER_TIMEZONE, else UTC.",
    ),
]

# The columns of both reports: (header, usage field).
USAGE_COLUMNS = (
    ("cpu", "cpu_allocated"),
    ("cpu used", "cpu_used"),
    ("mem", "mem_allocated"),
    ("mem used", "mem_used"),
    ("gpu", "gpu_allocated"),
    ("gpu mem", "gpu_mem_allocated"),
    ("io read", "io_read"),
    ("io write", "io_write"),
    ("disk used", "disk_used"),
)
BYTE_FIELDS = {"mem_allocated", "mem_used", "gpu_mem_allocated", "io_read", "io_write", "disk_used"}


def _size(value: Any) -> str:
    """Bytes with a binary unit: 512 B, 1.5 KiB, 4 GiB."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(amount) < 1024 or unit == "PiB":
            return f"{amount:.2f}".rstrip("0").rstrip(".") + f" {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _number(value: Any) -> str:
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def _usage_cells(usage: dict[str, Any], prefix: str = "") -> list[str]:
    cells = []
    for _, name in USAGE_COLUMNS:
        value = usage[prefix + name]
        cells.append(_size(value) if name in BYTE_FIELDS else _number(value))
    return cells


def _nfs(names: list[str] | None) -> str:
    return safe(", ".join(names)) if names else "-"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _text(value: Any) -> str:
    """A report's value as a cell; names come from workload facts, so escaped (`safe`)."""
    return "-" if value is None else safe(str(value))


def _month_table(month: str, zone: str, report: list[dict[str, Any]]) -> Table:
    kernels = sum(len(group["c_infos"]) for group in report)
    title = f"usage in {month} ({zone}): {_count(len(report), 'group')}, {_count(kernels, 'kernel')}"
    table = new_table(
        "group / kernel", "name", "status", "created_at", "used_time", "days",
        *(header for header, _ in USAGE_COLUMNS), "nfs", title=title,
    )  # fmt: skip
    for group in report:
        cells = (_text(group["g_id"]), _text(group["g_name"]))
        table.add_row(*cells, "", "", "", "", *_usage_cells(group, "g_"), "", style="bold")
        for info in group["c_infos"]:
            table.add_row(
                f"  {_text(info['id'])}",
                _text(info["name"]),
                _text(info["status"]),
                _text(info["created_at"]),
                _text(info["used_time"]),
                _text(info["used_days"]),
                *_usage_cells(info),
                _nfs(info["nfs"]),
            )
    return table


def _period_table(title: str, report: list[dict[str, Any]]) -> Table:
    table = new_table(
        "unit", "id", "name", "status", "used_time", "days", *(header for header, _ in USAGE_COLUMNS), "nfs",
        title=title,
    )  # fmt: skip
    for project in report:
        total = project["total_usage"]
        table.add_row(
            "project", _text(project["project_id"]), _text(project["project_name"]), "", "", "", *_usage_cells(total),
            _nfs(total["nfs"]), style="bold",
        )  # fmt: skip
        for session in project["sessions"]:
            total = session["total_usage"]
            table.add_row(
                "  session", _text(session["session_id"]), _text(session["session_name"]), "", "", "",
                *_usage_cells(total),
                _nfs(total["nfs"]),
            )  # fmt: skip
            for kernel in session["kernels"]:
                usage = kernel["total_usage"]
                table.add_row(
                    "    kernel", _text(kernel["kernel_id"]), "", _text(kernel["status"]), _text(kernel["used_time"]),
                    _text(kernel["used_days"]), *_usage_cells(usage), _nfs(usage["nfs"]),
                )  # fmt: skip
    return table


def _print_or_none(table: Table, empty: str, report: list[dict[str, Any]]) -> None:
    if report:
        print_table(table)
    else:
        typer.echo(empty)


@usage_app.command("month")
def usage_month(
    ctx: typer.Context,
    month: Annotated[str, typer.Argument(metavar="YYYYMM", help="The month, e.g. 202410.")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", metavar="UUID", help="Only this group (repeatable). Default: every group."),
    ] = None,
    timezone: TimezoneOption = None,
) -> None:
    """Usage in one month: per group, its totals, then its kernels.

    The month runs from its first day to the first of the next, local time. Kernels that
    ran in it count (running ones too; cancelled ones never)."""
    from domain.group import UsagePerMonthAction

    state = state_of(ctx)
    action = UsagePerMonthAction(month=month, group_ids=group or None)
    with open_ledger(state.db, timezone) as ledger:  # the root --db, this zone
        result = state.run(ledger.processors.group.usage_per_month, action)
        zone = ledger.timezone
    report: list[dict[str, Any]] = result.result
    state.output(
        report,
        lambda: _print_or_none(_month_table(month, zone, report), f"no usage in {month} ({zone})", report),
    )


@usage_app.command("period")
def usage_period(
    ctx: typer.Context,
    start_date: Annotated[str, typer.Argument(metavar="YYYYMMDD", help="First day.")],
    end_date: Annotated[str, typer.Argument(metavar="YYYYMMDD", help="Last day (included); at most 100 days.")],
    project: Annotated[str | None, typer.Option("--project", metavar="UUID", help="Only this project.")] = None,
    timezone: TimezoneOption = None,
) -> None:
    """Usage in a period: per project, its sessions, then their kernels, each with totals.

    The period runs from the start date to the end of the end date (at most 100 days),
    local time. Kernels that ran in it count (running ones too; cancelled ones never)."""
    from domain.group import UsagePerPeriodAction

    state = state_of(ctx)
    action = UsagePerPeriodAction(start_date=start_date, end_date=end_date, project_id=project)
    with open_ledger(state.db, timezone) as ledger:  # the root --db, this zone
        result = state.run(ledger.processors.group.usage_per_period, action)
        zone = ledger.timezone
    report: list[dict[str, Any]] = result.result
    span = f"{start_date}-{end_date} ({zone})"
    kernels = sum(len(s["kernels"]) for p in report for s in p["sessions"])
    title = f"usage in {span}: {_count(len(report), 'project')}, {_count(kernels, 'kernel')}"
    state.output(report, lambda: _print_or_none(_period_table(title, report), f"no usage in {span}", report))
