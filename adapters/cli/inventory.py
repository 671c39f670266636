"""`ledger kernel ...` and `ledger vfolder ...`: the workload the ledger knows of, listed
and shown from the usage read model (`ledger.queries.kernels`, `.vfolders`, ...).

Lists fit 80 columns: ids are shortened to their first 8 characters, or as many as tell
the ids of a column apart (`show` and `--json` give them whole). Endpoints have no read
model: `ledger endpoint` reads them from the event store, so it lists one group's active
endpoints (`--group-id` is required).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box

from adapters.cli.app import State, state_of
from adapters.cli.paging import LimitOption, after_option, fetch_size, output_page
from adapters.cli.render import (
    SHORT,
    SafeTable,
    fields_table,
    fmt,
    new_table,
    plural,
    print_table,
    safe,
    shortener,
    utc_time,
)

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.bootstrap import Ledger
    from adapters.read.workload import EndpointEntry, KernelEntry, VFolderEntry

kernel_app = typer.Typer(no_args_is_help=True, help="Kernels the platform reported (from the usage read model).")
endpoint_app = typer.Typer(no_args_is_help=True, help="Endpoints the platform reported (from the event store).")
vfolder_app = typer.Typer(no_args_is_help=True, help="Vfolders the platform reported (from the usage read model).")

IdArg = Annotated[str, typer.Argument(metavar="UUID")]
GroupFilter = Annotated[str | None, typer.Option("--group-id", metavar="UUID", help="Only this group's.")]
TimeFilter = Annotated[str | None, typer.Option(metavar="ISO", help="ISO 8601 time (UTC if no zone).")]


def _kernels_table(kernels: Sequence[KernelEntry]) -> Table:
    # At 80 columns: status and times stay whole (a time on two lines); ids fold rather
    # than being cut, so two alike are shown as long as it takes to tell them apart (as in
    # `session list`); the access key and the slots fold in what is left.
    leave_out = ("slots", "access key", "ended\n(UTC)", "group")  # below 80 columns
    table = SafeTable(title=plural(len(kernels), "kernel"), box=box.SIMPLE_HEAD, leave_out=leave_out)
    for header in ("kernel", "group"):
        table.add_column(header, overflow="fold", min_width=SHORT)
    for header in ("status", "started\n(UTC)", "ended\n(UTC)"):
        table.add_column(header, no_wrap=True)
    table.add_column("access key", overflow="fold", ratio=1, min_width=6)
    table.add_column("slots", overflow="fold", ratio=1, min_width=6)
    short, short_group = shortener(k.kernel_id for k in kernels), shortener(k.group_id for k in kernels)
    for k in kernels:
        ended = "-" if k.terminated_at is None else utc_time(k.terminated_at)
        table.add_row(
            short(k.kernel_id),
            short_group(k.group_id),
            safe(k.status),
            utc_time(k.started_at),
            ended,
            safe(k.access_key),
            fmt("occupied_slots", k.occupied_slots).replace(", ", ",\n"),
        )
    return table


def _vfolders_table(vfolders: Sequence[VFolderEntry]) -> Table:
    table = new_table("vfolder", "group", "host", "name", title=plural(len(vfolders), "vfolder"))
    short, short_group = shortener(v.vfolder_id for v in vfolders), shortener(v.group_id for v in vfolders)
    for v in vfolders:
        table.add_row(short(v.vfolder_id), short_group(v.group_id), safe(v.host), safe(v.name))
    return table


@kernel_app.command("list")
def kernel_list(
    ctx: typer.Context,
    group_id: GroupFilter = None,
    status: Annotated[str | None, typer.Option(metavar="STATUS", help="RUNNING, TERMINATED or CANCELLED.")] = None,
    access_key: Annotated[
        str | None, typer.Option("--access-key", metavar="KEY", help="The access key the kernels run under.")
    ] = None,
    since: TimeFilter = None,
    until: TimeFilter = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("kernel id")] = None,
) -> None:
    """Kernels started in [--since, --until), in the order their starts were recorded in
    (oldest first): one whose start is recorded after a page was read (an import of
    yesterday's facts) lists after that page's last kernel, even if it started earlier,
    so paging on with --after misses none."""
    state = state_of(ctx)
    with state.reading() as ledger:
        kernels = ledger.queries.kernels(
            group_id=group_id,
            status=status,
            access_key=access_key,
            since=since,
            until=until,
            limit=fetch_size(limit),
            after=after,
        )
    output_page(state, kernels, limit, lambda k: k.kernel_id, lambda k: k.to_json(), _kernels_table)


def show_one(state: State, kind: str, key: str, find: Callable[[Ledger], Any]) -> None:
    """One kernel, vfolder or endpoint, whole, as `find` reads it; or not found."""
    from domain.entity import entity_not_found

    with state.reading() as ledger:
        found = find(ledger)
    if found is None:
        raise entity_not_found(kind, key)
    data: dict[str, Any] = found.to_json()
    state.output(data, lambda: print_table(fields_table(data, title=f"{kind} {data[f'{kind}_id']}")))


@kernel_app.command("show")
def kernel_show(ctx: typer.Context, kernel_id: IdArg) -> None:
    """Show one kernel, whole."""
    show_one(state_of(ctx), "kernel", kernel_id, lambda ledger: ledger.queries.kernel(kernel_id))


@vfolder_app.command("list")
def vfolder_list(
    ctx: typer.Context,
    group_id: GroupFilter = None,
    host: Annotated[str | None, typer.Option("--host", metavar="HOST", help="Only this storage host's.")] = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("vfolder id")] = None,
) -> None:
    """Vfolders, by name."""
    state = state_of(ctx)
    with state.reading() as ledger:
        vfolders = ledger.queries.vfolders(group_id=group_id, host=host, limit=fetch_size(limit), after=after)
    output_page(state, vfolders, limit, lambda v: v.vfolder_id, lambda v: v.to_json(), _vfolders_table)


@vfolder_app.command("show")
def vfolder_show(ctx: typer.Context, vfolder_id: IdArg) -> None:
    """Show one vfolder, whole."""
    show_one(state_of(ctx), "vfolder", vfolder_id, lambda ledger: ledger.queries.vfolder(vfolder_id))


def _endpoints_table(endpoints: list[EndpointEntry]) -> Table:
    table = new_table("endpoint", "group", "name", title=plural(len(endpoints), "active endpoint"))
    short, short_group = shortener(e.endpoint_id for e in endpoints), shortener(e.group_id for e in endpoints)
    for e in endpoints:
        table.add_row(short(e.endpoint_id), short_group(e.group_id), safe(e.name))
    return table


@endpoint_app.command("list")
def endpoint_list(
    ctx: typer.Context,
    group_id: Annotated[str, typer.Option("--group-id", metavar="UUID", help="The group whose endpoints to list.")],
) -> None:
    """A group's active endpoints, by name."""
    state = state_of(ctx)
    with state.reading() as ledger:
        endpoints = ledger.queries.endpoints(group_id)
    state.output([e.to_json() for e in endpoints], lambda: print_table(_endpoints_table(endpoints)))


@endpoint_app.command("show")
def endpoint_show(ctx: typer.Context, endpoint_id: IdArg) -> None:
    """Show one endpoint, active or destroyed."""
    show_one(state_of(ctx), "endpoint", endpoint_id, lambda ledger: ledger.queries.endpoint(endpoint_id))
