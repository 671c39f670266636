"""`ledger group ...` and `ledger workload ...`: groups (projects) and the workload facts
their purge checks and usage reports need, one by one or imported in atomic batches.

Imported by `adapters.cli`, which it extends: the sub-apps are added to its root `app`,
so the root options (--db, --json, the actor) and one-line errors apply here too.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from adapters.bootstrap import Ledger
from adapters.cli import (
    AtOption,
    FromOption,
    HostsOption,
    SlotsOption,
    State,
    ToOption,
    VersionOption,
    _fmt,
    _history,
    _parse_json,
    _print,
    _state,
    _table,
    app,
    fail,
    parse_slots_option,
    safe,
    show_diff,
    show_state,
)
from domain.actions import ActionTriggerMeta
from domain.catalog import EntityType
from domain.errors import InsufficientPermission, InvalidAPIParameters, LedgerError
from domain.group import CreateGroupAction, DeleteGroupAction, GroupData, ModifyGroupAction, PurgeGroupAction
from domain.group.aggregate import group_not_found
from domain.values import ProjectType
from domain.workload import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    RecordWorkloadBatchAction,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
    WorkloadAction,
    WorkloadActionResult,
)

group_app = typer.Typer(no_args_is_help=True, help="Groups (projects): fields, members, soft delete and purge.")
workload_app = typer.Typer(
    no_args_is_help=True,
    help="Workload facts the platform reports: vfolders, kernels, endpoints (one by one or a JSONL import).",
)
app.add_typer(group_app, name="group")
app.add_typer(workload_app, name="workload")

NULLABLE_GROUP_FIELDS = ("description", "container_registry")


# Option parsers: syntax only; the domain validates the values.


def parse_registry_option(raw: str) -> dict[str, Any]:
    """`{"registry": "cr.example.com", "project": "team"}`; `{}` is no registry settings."""
    parsed = _parse_json(raw)
    if not isinstance(parsed, dict):
        raise typer.BadParameter("expected a JSON object")
    return parsed


def parse_users_option(raw: str) -> list[str]:
    """`U1,U2`; an empty string is no users (`--replace-users ''` empties the group)."""
    return [user.strip() for user in raw.split(",") if user.strip()]


GroupIdArg = Annotated[str, typer.Argument(metavar="GROUP_ID", help="The group's UUID.")]
TypeOption = Annotated[
    ProjectType | None, typer.Option("--type", case_sensitive=False, help="Project type. Default: general.")
]
DescriptionOption = Annotated[str | None, typer.Option(metavar="TEXT", help="Free text, up to 512 characters.")]
ActiveOption = Annotated[
    bool | None,
    typer.Option("--active/--inactive", help="Whether the group takes new workload. Default on create: active."),
]
IntegrationOption = Annotated[str | None, typer.Option(metavar="ID", help="External system's id of the group.")]
DotfilesOption = Annotated[
    Path | None,
    typer.Option(
        "--dotfiles-file",
        metavar="PATH",
        exists=True,
        dir_okay=False,
        readable=True,
        help="File whose bytes become the group's dotfiles (up to 64 KiB).",
    ),
]
ResourcePolicyOption = Annotated[str | None, typer.Option(metavar="NAME", help="Resource policy name.")]
RegistryOption = Annotated[
    Any,
    typer.Option(
        parser=parse_registry_option, metavar="JSON", help='Container registry: {"registry": ..., "project": ...}.'
    ),
]


_OPTION_FIELDS = {"project_type": "type", "active": "is_active"}  # option name -> field name
_GROUP_OPTIONS = (
    "name", "domain_name", "project_type", "description", "active", "integration_id", "total_resource_slots",
    "allowed_vfolder_hosts", "dotfiles_file", "resource_policy", "container_registry",
)  # fmt: skip


def _group_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The creator / modifier fields among a command's options that were given."""
    fields: dict[str, Any] = {
        _OPTION_FIELDS.get(option, option): options[option]
        for option in _GROUP_OPTIONS
        if options.get(option) is not None
    }
    dotfiles_file: Path | None = fields.pop("dotfiles_file", None)
    if dotfiles_file is not None:
        fields["dotfiles"] = dotfiles_file.read_bytes()
    return fields


def _membership(add: list[str] | None, remove: list[str] | None, replace: list[str] | None) -> dict[str, Any]:
    """`user_update_mode` and `user_uuids` from the one membership option given, if any."""
    modes = {"add": add, "remove": remove, "replace": replace}
    given = {mode: users for mode, users in modes.items() if users is not None}
    if len(given) > 1:
        options = " and ".join(f"--{mode}-users" for mode in given)
        raise typer.BadParameter(f"{options}: give one membership change per call")
    for mode, users in given.items():
        return {"user_update_mode": mode, "user_uuids": users}
    return {}


def _unset_group_fields(names: list[str], given: dict[str, Any]) -> dict[str, None]:
    fields = {name.strip().replace("-", "_") for name in names}
    for name in sorted(fields):
        if name not in NULLABLE_GROUP_FIELDS:
            allowed = ", ".join(NULLABLE_GROUP_FIELDS)
            raise typer.BadParameter(f"{name!r} cannot be unset; one of: {allowed}", param_hint="--unset")
        if name in given:
            raise typer.BadParameter(f"{name!r} is both set and unset", param_hint="--unset")
    return dict.fromkeys(fields)


# Rendering


def _group_table(group: GroupData, members: int | None = None) -> Table:
    table = _table("field", "value", title=f"group {group.name!r}")
    for name, value in group.to_json().items():
        table.add_row(name, f"{len(group.dotfiles)} bytes" if name == "dotfiles" else _fmt(name, value))
    if members is not None:
        table.add_row("members", str(members))
    return table


def _groups_table(groups: list[GroupData]) -> Table:
    columns = ("id", "name", "domain_name", "type", "is_active", "resource_policy", "total_resource_slots")
    table = _table(*columns)
    for group in groups:
        data = group.to_json()
        table.add_row(*(_fmt(c, data[c]) for c in columns))
    return table


def _show_group(state: State, group: GroupData, done: str, members: int | None = None) -> None:
    def human() -> None:
        if done:
            typer.echo(f"{done} group {group.name!r} ({group.id})")
        _print(_group_table(group, members))

    state.output(group.to_json(), human)


def _existing_group(ledger: Ledger, group_id: str) -> GroupData:
    group = ledger.queries.group(group_id)
    if group is None:
        raise group_not_found(group_id)
    return group


# Group commands


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Unique in its domain; letters, digits, _ - .")],
    domain_name: Annotated[str, typer.Option("--domain-name", metavar="DOMAIN", help="The group's domain.")],
    project_type: TypeOption = None,
    description: DescriptionOption = None,
    active: ActiveOption = None,
    integration_id: IntegrationOption = None,
    total_resource_slots: SlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    dotfiles_file: DotfilesOption = None,
    resource_policy: ResourcePolicyOption = None,
    container_registry: RegistryOption = None,
    group_id: Annotated[
        str | None, typer.Option("--id", metavar="UUID", help="The group's id. Default: a new random UUID.")
    ] = None,
) -> None:
    """Create a group. Options not given take the defaults (general, active, policy 'default')."""
    fields = _group_fields(locals())
    state = _state(ctx)
    action = CreateGroupAction(input=fields, group_id=group_id)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.create_group, action)
    _show_group(state, result.data, "created")


@group_app.command("modify")
def group_modify(
    ctx: typer.Context,
    group_id: GroupIdArg,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="Rename the group.")] = None,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Move the group to another domain.")
    ] = None,
    project_type: TypeOption = None,
    description: DescriptionOption = None,
    active: ActiveOption = None,
    integration_id: IntegrationOption = None,
    total_resource_slots: SlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    dotfiles_file: DotfilesOption = None,
    resource_policy: ResourcePolicyOption = None,
    container_registry: RegistryOption = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FIELD", help=f"Set a nullable field to null (repeatable): {', '.join(NULLABLE_GROUP_FIELDS)}."
        ),
    ] = None,
    add_users: Annotated[Any, typer.Option(parser=parse_users_option, metavar="UUID,...", help="Add members.")] = None,
    remove_users: Annotated[
        Any, typer.Option(parser=parse_users_option, metavar="UUID,...", help="Remove members.")
    ] = None,
    replace_users: Annotated[
        Any,
        typer.Option(parser=parse_users_option, metavar="UUID,...", help="Make these the members ('' for none)."),
    ] = None,
) -> None:
    """Change the given fields and/or the members of a group; everything else is left alone.
    One membership option per call."""
    given = _group_fields(locals())
    modifier = {**given, **_unset_group_fields(unset or [], given)}
    membership = _membership(add_users, remove_users, replace_users)
    if not modifier and not membership:
        raise typer.BadParameter("nothing to change: give a field option, --unset or a membership option")
    state = _state(ctx)
    action = ModifyGroupAction(group_id=group_id, modifier=modifier, **membership)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.modify_group, action)
        members = len(ledger.queries.group_members(result.data.id)) if membership else None
    _show_group(state, result.data, "modified", members)


@group_app.command("delete")
def group_delete(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Soft-delete a group: it becomes inactive (no new workload), keeps its data and history."""
    state = _state(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.delete_group, DeleteGroupAction(group_id=group_id))
    before: GroupData = result.data
    message = f"deleted group {before.name!r} ({before.id}): inactive, kept with its history"
    state.output(before.to_json(), lambda: typer.echo(message))


@group_app.command("purge")
def group_purge(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Remove a group for good; its name is free again. Refused while it has active kernels,
    vfolders mounted to them or active endpoints."""
    state = _state(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.purge_group, PurgeGroupAction(group_id=group_id))
    before: GroupData = result.data
    state.output(before.to_json(), lambda: typer.echo(f"purged group {before.name!r} ({before.id})"))


@group_app.command("show")
def group_show(ctx: typer.Context, group_id: GroupIdArg, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one group, active or soft-deleted: now, or as it stood --at a time or after --version N."""
    state = _state(ctx)
    if at is not None or version is not None:
        return show_state(state, EntityType.GROUP, group_id, at, version)
    with state.ledger() as ledger:
        group = _existing_group(ledger, group_id)
        members = len(ledger.queries.group_members(group.id))
    _show_group(state, group, "", members)


@group_app.command("diff")
def group_diff(ctx: typer.Context, group_id: GroupIdArg, older: FromOption, newer: ToOption) -> None:
    """What changed in a group between two versions or times: field, old, new."""
    show_diff(_state(ctx), EntityType.GROUP, group_id, older, newer)


@group_app.command("list")
def group_list(
    ctx: typer.Context,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Only groups of this domain.")
    ] = None,
) -> None:
    """List the groups (active and soft-deleted), by domain then name."""
    state = _state(ctx)
    with state.ledger() as ledger:
        groups = ledger.queries.groups(domain_name)
    state.output([g.to_json() for g in groups], lambda: _print(_groups_table(groups)))


@group_app.command("members")
def group_members(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """The user UUIDs that are members of a group."""
    state = _state(ctx)
    with state.ledger() as ledger:
        group = _existing_group(ledger, group_id)
        members = sorted(str(u) for u in ledger.queries.group_members(group.id))

    def human() -> None:
        table = _table("user_id", title=f"members of group {group.name!r} ({len(members)})")
        for member in members:
            table.add_row(member)
        _print(table)

    state.output(members, human)


@group_app.command("history")
def group_history(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Every event of a group (fields, members, workload it took and released), with actors."""
    _history(_state(ctx), EntityType.GROUP, group_id)


# Workload fact commands: one fact each, through the workload processors.

IdArg = Annotated[str, typer.Argument(metavar="UUID")]
TimeOption = Annotated[str, typer.Option(metavar="ISO", help="ISO 8601 time; without a zone it is UTC.")]
GroupOption = Annotated[str, typer.Option("--group-id", metavar="UUID", help="The group it belongs to.")]
NameOption = Annotated[str, typer.Option("--name", metavar="NAME")]
CountOption = Annotated[int | None, typer.Option(metavar="N")]


def _record(state: State, method: str, action: WorkloadAction, done: str) -> None:
    with state.ledger() as ledger:
        result: WorkloadActionResult = state.run(getattr(ledger.processors.workload, method), action)
    data = {"entity": result.entity, "id": str(result.id), "fields": result.fields}

    def human() -> None:
        typer.echo(f"{done} {result.entity} {result.id}")
        table = _table("field", "value")
        for name, value in result.fields.items():
            table.add_row(name, _fmt(name, value))
        _print(table)

    state.output(data, human)


@workload_app.command("vfolder-create")
def vfolder_create(
    ctx: typer.Context,
    vfolder_id: IdArg,
    name: NameOption,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Storage host.")],
    group_id: GroupOption,
) -> None:
    """Record a vfolder created in an active group."""
    action = CreateVFolderAction(vfolder_id=vfolder_id, name=name, host=host, group_id=group_id)
    _record(_state(ctx), "create_vfolder", action, "created")


@workload_app.command("kernel-start")
def kernel_start(
    ctx: typer.Context,
    kernel_id: IdArg,
    session_id: Annotated[str, typer.Option(metavar="UUID")],
    session_name: Annotated[str, typer.Option(metavar="NAME")],
    group_id: GroupOption,
    owner: Annotated[
        str, typer.Option("--owner", metavar="UUID", help="The user running the kernel (not the actor --user-id).")
    ],
    kernel_access_key: Annotated[
        str, typer.Option(metavar="KEY", help="The access key the kernel runs under (not the actor --access-key).")
    ],
    slots: Annotated[
        Any, typer.Option(parser=parse_slots_option, metavar="JSON|k=v,...", help="Occupied resource slots.")
    ],
    started_at: TimeOption,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Default: the root --domain.")
    ] = None,
    mount: Annotated[
        list[str] | None, typer.Option("--mount", metavar="VFOLDER_ID", help="A mounted vfolder (repeatable).")
    ] = None,
    image: Annotated[str | None, typer.Option(metavar="IMAGE")] = None,
    agent: Annotated[str | None, typer.Option(metavar="AGENT")] = None,
) -> None:
    """Record a kernel started (RUNNING) in an active group."""
    state = _state(ctx)
    optional = {"image": image, "agent": agent}
    action = StartKernelAction(
        kernel_id=kernel_id,
        session_id=session_id,
        session_name=session_name,
        group_id=group_id,
        domain_name=domain_name or state.meta.domain_name,
        user_id=owner,
        access_key=kernel_access_key,
        occupied_slots=slots,
        started_at=started_at,
        mounts=mount or [],
        **{k: v for k, v in optional.items() if v is not None},
    )
    _record(state, "start_kernel", action, "started")


@workload_app.command("kernel-stats")
def kernel_stats(
    ctx: typer.Context,
    kernel_id: IdArg,
    reported_at: TimeOption,
    cpu_used: Annotated[str | None, typer.Option(metavar="NUMBER", help="CPU time used (ms).")] = None,
    mem_used: CountOption = None,
    io_read: CountOption = None,
    io_write: CountOption = None,
    disk_used: CountOption = None,
) -> None:
    """Record a kernel's latest resource usage. Amounts not given are 0."""
    amounts = dict(cpu_used=cpu_used, mem_used=mem_used, io_read=io_read, io_write=io_write, disk_used=disk_used)
    given = {k: v for k, v in amounts.items() if v is not None}
    action = ReportKernelStatsAction(kernel_id=kernel_id, reported_at=reported_at, **given)
    _record(_state(ctx), "report_kernel_stats", action, "recorded stats of")


@workload_app.command("kernel-terminate")
def kernel_terminate(
    ctx: typer.Context,
    kernel_id: IdArg,
    terminated_at: TimeOption,
    status: Annotated[str, typer.Option(metavar="TERMINATED|CANCELLED", help="How the kernel ended.")] = "TERMINATED",
) -> None:
    """Record a kernel's end; it no longer holds its group's purge."""
    action = TerminateKernelAction(kernel_id=kernel_id, terminated_at=terminated_at, status=status)
    _record(_state(ctx), "terminate_kernel", action, "terminated")


@workload_app.command("endpoint-create")
def endpoint_create(ctx: typer.Context, endpoint_id: IdArg, group_id: GroupOption, name: NameOption) -> None:
    """Record a model-serving endpoint created in an active group."""
    action = CreateEndpointAction(endpoint_id=endpoint_id, group_id=group_id, name=name)
    _record(_state(ctx), "create_endpoint", action, "created")


@workload_app.command("endpoint-destroy")
def endpoint_destroy(ctx: typer.Context, endpoint_id: IdArg) -> None:
    """Record an endpoint destroyed; it no longer holds its group's purge."""
    _record(_state(ctx), "destroy_endpoint", DestroyEndpointAction(endpoint_id=endpoint_id), "destroyed")


# Bulk import

FACTS: dict[str, type[WorkloadAction]] = {
    "create_vfolder": CreateVFolderAction,
    "start_kernel": StartKernelAction,
    "report_kernel_stats": ReportKernelStatsAction,
    "terminate_kernel": TerminateKernelAction,
    "create_endpoint": CreateEndpointAction,
    "destroy_endpoint": DestroyEndpointAction,
}


def parse_fact(line: bytes) -> tuple[str, WorkloadAction]:
    """One JSONL line: `{"fact": NAME, ...the action's fields...}`."""
    try:
        raw = json.loads(line.decode())
    except UnicodeDecodeError as exc:
        raise InvalidAPIParameters(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidAPIParameters(f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidAPIParameters(f"expected a JSON object, got {type(raw).__name__}")
    fact = raw.pop("fact", None)
    if not isinstance(fact, str) or fact not in FACTS:
        expected = ", ".join(FACTS)
        raise InvalidAPIParameters(f"unknown fact {fact!r}; one of: {expected}", field="fact")
    return fact, FACTS[fact](**raw)


@dataclass(frozen=True)
class Line:
    number: int
    fact: str
    action: WorkloadAction


class ImportStopped(Exception):
    """A line could not be recorded; every fact before it was."""

    def __init__(self, line: int, cause: LedgerError) -> None:
        super().__init__(cause.message)
        self.line = line
        self.cause = cause


@dataclass
class Importer:
    """Records parsed lines in atomic batches; on a refused batch, finds the refused line by
    recording that batch's facts one by one, so that exactly the facts before it are stored."""

    ledger: Ledger
    meta: ActionTriggerMeta
    batches: int = 0
    by_fact: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def facts(self) -> int:
        return sum(self.by_fact.values())

    async def record(self, batch: list[Line]) -> None:
        if not batch:
            return
        processor = self.ledger.processors.workload.record_workload_batch
        try:
            await processor.wait_for_complete(RecordWorkloadBatchAction(actions=[x.action for x in batch]), self.meta)
        except InsufficientPermission:
            raise
        except LedgerError:
            for line in batch:
                try:
                    await processor.wait_for_complete(RecordWorkloadBatchAction(actions=[line.action]), self.meta)
                except LedgerError as exc:
                    raise ImportStopped(line.number, exc) from None
                self._count([line])
            return
        self._count(batch)

    def _count(self, batch: list[Line]) -> None:
        self.batches += 1  # one atomic append
        self.by_fact.update(line.fact for line in batch)


def _size(file: typer.FileBinaryRead) -> int | None:
    """The file's size when it is a regular file (not a pipe or a terminal)."""
    try:
        info = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _progress(state: State) -> Progress:
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[facts]} facts, {task.fields[batches]} batches"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=state.as_json or not console.is_terminal,
    )


@workload_app.command("import")
def workload_import(
    ctx: typer.Context,
    file: Annotated[
        typer.FileBinaryRead,
        typer.Argument(metavar="FILE.jsonl", help="JSON Lines file (UTF-8) of facts; '-' reads stdin."),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="Facts per atomic append (each batch all or nothing).")
    ] = 500,
) -> None:
    """Import workload facts from JSON Lines, in atomic batches.

    Each line is `{"fact": F, ...}` with F one of create_vfolder, start_kernel,
    report_kernel_stats, terminate_kernel, create_endpoint, destroy_endpoint and the
    rest the fact's fields (as the `ledger workload` commands take them, e.g. kernel_id,
    occupied_slots, started_at, mounts). Blank lines are skipped.

    A bad line (invalid JSON, unknown fact, invalid field, or a fact the ledger refuses)
    stops the import with one error naming its number, exit 1. Every fact before that
    line is stored and none from it on, so a fixed file can be imported again from that
    line: a batch the ledger refuses stores nothing, so its facts are then recorded one
    at a time up to the refused one. Each batch is one `record_workload_batch` action of
    the root options' actor: permission-checked and audited like any other."""
    state = _state(ctx)
    started = time.perf_counter()
    with state.ledger() as ledger, _progress(state) as progress:
        importer = Importer(ledger, state.meta)
        name = getattr(file, "name", "<stdin>")
        # The description is rich markup: a file name is escaped for the terminal and for rich.
        task = progress.add_task(f"importing {escape(safe(str(name)))}", total=_size(file), facts=0, batches=0)
        try:
            asyncio.run(_import(importer, file, batch_size, progress, task))
        except ImportStopped as stop:
            progress.stop()
            cause = stop.cause
            fail(cause.code, f"line {stop.line}: {cause.message} ({importer.facts} facts before it were recorded)")
    elapsed = time.perf_counter() - started
    summary: dict[str, Any] = {
        "facts": importer.facts,
        "batches": importer.batches,
        "batch_size": batch_size,
        "elapsed_seconds": round(elapsed, 3),
        "facts_per_second": round(importer.facts / elapsed, 1) if elapsed > 0 else 0.0,
        "by_fact": {fact: importer.by_fact[fact] for fact in FACTS if importer.by_fact[fact]},
    }

    def human() -> None:
        typer.echo(
            f"imported {summary['facts']} facts in {summary['batches']} batches in "
            f"{elapsed:.2f}s ({summary['facts_per_second']:.0f} facts/s)"
        )
        if summary["by_fact"]:
            typer.echo(", ".join(f"{fact}={count}" for fact, count in summary["by_fact"].items()))

    state.output(summary, human)


async def _import(
    importer: Importer, file: typer.FileBinaryRead, batch_size: int, progress: Progress, task: TaskID
) -> None:
    batch: list[Line] = []
    read = 0

    async def flush() -> None:
        await importer.record(batch)
        batch.clear()
        progress.update(task, completed=read, facts=importer.facts, batches=importer.batches)

    for number, text in enumerate(file, start=1):
        read += len(text)
        if not text.strip():
            continue
        try:
            fact, action = parse_fact(text)
        except LedgerError as exc:
            await flush()  # the facts before the bad line are stored
            raise ImportStopped(number, exc) from None
        batch.append(Line(number, fact, action))
        if len(batch) >= batch_size:
            await flush()
    await flush()
