"""`ledger group ...`: groups (projects), their fields and members, soft delete and purge."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_diff, show_history, show_state
from adapters.cli.options import (
    ActiveOption,
    AtOption,
    DescriptionOption,
    DotfilesOption,
    FromOption,
    HostsOption,
    IntegrationOption,
    RegistryOption,
    ResourcePolicyOption,
    SlotOption,
    SlotsOption,
    ToOption,
    TotalSlotsOption,
    TypeOption,
    VersionOption,
    slot_changes,
    unset_fields,
    unset_option,
    users_option,
)
from adapters.cli.paging import LimitOption, after_option, domain_filter, fetch_size, output_page
from adapters.cli.render import cancelled_line, compact_advice, fmt, new_table, print_table
from domain.catalog import EntityType
from domain.shown import shown_key

if TYPE_CHECKING:
    from datetime import datetime

    from rich.table import Table

    from adapters.bootstrap import Ledger
    from domain.group import GroupData

group_app = typer.Typer(no_args_is_help=True, help="Groups (projects): fields, members, soft delete and purge.")

GROUP_TYPE = EntityType.GROUP
# nullable_fields(GroupModifier), spelled out: declaring the options must not load the
# domain's models (a test keeps the two equal).
NULLABLE_GROUP_FIELDS = ("description", "container_registry")

GroupArg = Annotated[
    str,
    typer.Argument(
        metavar="GROUP",
        help="The group's UUID, or its name in --domain (a name that parses as a UUID is taken as an id).",
    ),
]
DomainOption = Annotated[
    str | None,
    typer.Option(
        "--domain",
        metavar="DOMAIN",
        help="The domain a GROUP name is looked up in (not used for a UUID). "
        "Default: the root 'ledger --domain', the actor's domain.",
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
        fields["dotfiles"] = _dotfiles(dotfiles_file)
    return fields


def _dotfiles(path: Path) -> bytes:
    """The file's bytes, read no further than one byte past what a group may hold: an
    endless file (/dev/zero) was read whole, until `internal error: MemoryError`."""
    from domain.errors import InvalidAPIParameters
    from domain.parsers import MAX_DOTFILES

    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOTFILES + 1)
    except OSError as exc:  # a failing disk, a stale mount: was `internal error: OSError`
        raise InvalidAPIParameters(f"cannot read {str(path)!r}: {exc.strerror or exc}", field="dotfiles") from None
    if len(data) > MAX_DOTFILES:
        size = path.stat().st_size  # a device's is 0: then only "more" is known
        got = size if size > MAX_DOTFILES else "more"
        raise InvalidAPIParameters(f"must be at most {MAX_DOTFILES} bytes, got {got}", field="dotfiles")
    return data


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


def _group_table(group: GroupData, members: int | None = None) -> Table:
    table = new_table("field", "value", title=f"group {group.name!r}")
    for name, value in group.to_json().items():
        table.add_row(name, f"{len(group.dotfiles)} bytes" if name == "dotfiles" else fmt(name, value))
    if members is not None:
        table.add_row("members", str(members))
    return table


def _groups_table(groups: Sequence[GroupData]) -> Table:
    columns = ("id", "name", "domain_name", "type", "is_active", "resource_policy", "total_resource_slots")
    # The id whole (an operator copies it into `group show`/`modify`), so the other headers
    # are short enough to leave their values room at 80 columns; --json keeps the names.
    table = new_table("id", "name", "domain", "type", "active", "policy", "slots", whole=("id",))
    for group in groups:
        data = group.to_json()
        table.add_row(*(fmt(c, data[c]) for c in columns))
    return table


def _show_group(
    state: State, group: GroupData, done: str, members: int | None = None, changed: bool | None = None
) -> None:
    """`changed` (modify only) says whether it stored anything; False prints "unchanged"."""

    def human() -> None:
        if changed is False:
            typer.echo(f"group {group.name!r} ({group.id}) unchanged")
        elif done:
            typer.echo(f"{done} group {group.name!r} ({group.id})")
        print_table(_group_table(group, members))

    state.output(group.to_json() if changed is None else {"changed": changed, **group.to_json()}, human)


def _existing_group(ledger: Ledger, group_id: str) -> GroupData:
    from domain.group.aggregate import group_not_found

    group = ledger.queries.group(group_id)
    if group is None:
        raise group_not_found(group_id)
    return group


def _group_key(state: State, ledger: Ledger, group: str, domain: str | None, at: datetime | None = None) -> str:
    """The id GROUP names: itself if it parses as a UUID, else the group holding that name
    in `domain` (default: the actor's), active or soft-deleted, now or `at` a past time
    (a purge frees a name and a rename moves it); not found otherwise."""
    import uuid

    from domain.errors import GroupNotFound

    try:
        return str(uuid.UUID(group))
    except ValueError:
        pass
    domain_name = domain if domain is not None else state.meta.domain_name or "default"
    if at is not None:
        held = ledger.queries.group_named_at(domain_name, group, at)
        if held is None:
            message = f"no group was named {shown_key(group)} in domain {shown_key(domain_name)} at {at.isoformat()}"
            raise GroupNotFound(message, entity_type=GROUP_TYPE, entity_id=group)
        return held
    found = ledger.queries.group_by_name(domain_name, group)
    if found is None:
        message = f"group {shown_key(group)} not found in domain {shown_key(domain_name)}"
        raise GroupNotFound(message, entity_type=GROUP_TYPE, entity_id=group)
    return str(found.id)


def _resolved(state: State, group: str, domain: str | None, at: datetime | None = None) -> str:
    """`_group_key` for the commands that open the ledger themselves (history, time travel)."""
    with state.reading() as ledger:
        return _group_key(state, ledger, group, domain, at)


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
    from domain.group import CreateGroupAction

    state = state_of(ctx)
    action = CreateGroupAction(input=fields, group_id=group_id)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.create_group, action)
    _show_group(state, result.data, "created")


@group_app.command("modify")
def group_modify(
    ctx: typer.Context,
    group: GroupArg,
    domain: DomainOption = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="Rename the group.")] = None,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Move the group to another domain.")
    ] = None,
    project_type: TypeOption = None,
    description: DescriptionOption = None,
    active: ActiveOption = None,
    integration_id: IntegrationOption = None,
    total_resource_slots: TotalSlotsOption = None,
    slot: SlotOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    dotfiles_file: DotfilesOption = None,
    resource_policy: ResourcePolicyOption = None,
    container_registry: RegistryOption = None,
    unset: Annotated[list[str] | None, unset_option(NULLABLE_GROUP_FIELDS)] = None,
    add_users: Annotated[Any, users_option("Add members.")] = None,
    remove_users: Annotated[Any, users_option("Remove members.")] = None,
    replace_users: Annotated[Any, users_option("Make these the members ('' for none).")] = None,
) -> None:
    """Change the given fields and/or the members of a group; everything else is left alone.
    One membership option per call. Values equal to the current ones (or no option at all)
    change nothing and store no event: the command then says the group is unchanged
    (`"changed": false` with --json)."""
    given = _group_fields(locals())
    from domain.group import ModifyGroupAction

    modifier = {**given, **unset_fields(unset or [], given, NULLABLE_GROUP_FIELDS)}
    membership = _membership(add_users, remove_users, replace_users)
    changes = slot_changes(total_resource_slots, slot)
    if changes is not None:  # merged into the stored map by the service, in its retried save
        modifier["total_resource_slots_patch"] = changes
    state = state_of(ctx)
    with state.ledger() as ledger:
        key = _group_key(state, ledger, group, domain)  # as the read model keys it
        action = ModifyGroupAction(group_id=key, modifier=modifier, **membership)
        result = state.run(ledger.processors.group.modify_group, action)
        after: GroupData = result.data
        members = len(ledger.queries.group_members(after.id)) if membership else None
    changed = result.changed  # whether this command stored an event (fields or members)
    _show_group(state, after, "modified" if changed else "", members, changed)


@group_app.command("delete")
def group_delete(ctx: typer.Context, group: GroupArg, domain: DomainOption = None) -> None:
    """Soft-delete a group: it becomes inactive (no new workload), keeps its data and history."""
    from domain.group import DeleteGroupAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        action = DeleteGroupAction(group_id=_group_key(state, ledger, group, domain))
        result = state.run(ledger.processors.group.delete_group, action)
    before: GroupData = result.data
    message = f"deleted group {before.name!r} ({before.id}): inactive, kept with its history"
    cancelled = list(result.cancelled_sessions)
    state.output(
        {**before.to_json(), "cancelled_sessions": cancelled},
        lambda: typer.echo(message + cancelled_line(cancelled, "delete")),
    )


@group_app.command("purge")
def group_purge(
    ctx: typer.Context,
    group: GroupArg,
    domain: DomainOption = None,
    accept_clear_history: Annotated[
        bool,
        typer.Option(
            "--accept-clear-history",
            help="Purge even though an older release stored some of the group's personal values in clear "
            "(the purge cannot erase those; it records how many).",
        ),
    ] = False,
) -> None:
    """Remove a group for good and erase its personal values (its key is destroyed); its name
    is free again. Refused while it has active kernels, vfolders mounted to them or active
    endpoints, and while its history holds values stored in clear (see --accept-clear-history).
    A UUID with no group is erased too when refused commands sealed their input under it
    (superadmin: a create refused)."""
    from domain.group import PurgeGroupAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        action = PurgeGroupAction(
            group_id=_group_key(state, ledger, group, domain), accept_clear_history=accept_clear_history
        )
        result = state.run(ledger.processors.group.purge_group, action)
    advice = compact_advice(ledger.config.kind)
    before: GroupData | None = result.data
    if before is None:  # no group: what refused commands sealed under its id's key
        said = f"erased group {result.group_id}: no such group, the input of refused commands naming it" + advice
        state.output({"id": str(result.group_id), "group": None}, lambda: typer.echo(said))
        return
    cancelled = list(result.cancelled_sessions)
    said = f"purged group {before.name!r} ({before.id})" + cancelled_line(cancelled, "purge") + advice
    state.output({**before.to_json(), "cancelled_sessions": cancelled}, lambda: typer.echo(said))


@group_app.command("show")
def group_show(
    ctx: typer.Context, group: GroupArg, domain: DomainOption = None, at: AtOption = None, version: VersionOption = None
) -> None:
    """Show one group, active or soft-deleted: now, or as it stood --at a time or after --version N."""
    state = state_of(ctx)
    if at is not None or version is not None:
        from domain.times import parse_time

        moment = None if at is None else parse_time(at, "at")
        return show_state(state, GROUP_TYPE, _resolved(state, group, domain, moment), at, version)
    with state.reading() as ledger:
        found = _existing_group(ledger, _group_key(state, ledger, group, domain))
        members = len(ledger.queries.group_members(found.id))
    _show_group(state, found, "", members)


@group_app.command("diff")
def group_diff(
    ctx: typer.Context, group: GroupArg, older: FromOption, newer: ToOption, domain: DomainOption = None
) -> None:
    """What changed in a group between two versions or times: field, old, new. A name is
    the group's that held it at --from (a time), else at --to, else now."""
    from domain.errors import GroupNotFound
    from domain.times import parse_point

    state = state_of(ctx)
    moments = [at for _, at in (parse_point(older, "older"), parse_point(newer, "newer")) if at is not None]
    with state.reading() as ledger:
        for moment in [*moments, None]:
            try:
                key = _group_key(state, ledger, group, domain, moment)
                break
            except GroupNotFound:
                if moment is None:
                    raise
    show_diff(state, GROUP_TYPE, key, older, newer)


class StatusChoice(enum.Enum):
    """`group list --status`: soft-deleted groups are the inactive ones."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ALL = "all"


@group_app.command("list")
def group_list(
    ctx: typer.Context,
    domain_name: Annotated[str | None, domain_filter("groups")] = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="Only groups of this exact name.")] = None,
    name_prefix: Annotated[
        str | None,
        typer.Option("--name-prefix", metavar="TEXT", help="Only groups whose name starts with TEXT (case counts)."),
    ] = None,
    status: Annotated[
        StatusChoice,
        typer.Option("--status", case_sensitive=False, help="active, inactive (soft-deleted or deactivated) or all."),
    ] = StatusChoice.ALL,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("DOMAIN/NAME")] = None,
) -> None:
    """List the groups (active and soft-deleted), by domain then name. The --after cursor
    is a group's DOMAIN/NAME (group names have no '/')."""
    if name is not None and name_prefix is not None:
        raise typer.BadParameter("give --name or --name-prefix, not both")
    from adapters.read.queries import group_cursor

    state = state_of(ctx)
    active = {StatusChoice.ACTIVE: True, StatusChoice.INACTIVE: False}.get(status)
    with state.reading() as ledger:
        groups = ledger.queries.groups(
            domain_name, name=name, name_prefix=name_prefix, active=active, after=after, limit=fetch_size(limit)
        )
    output_page(state, groups, limit, group_cursor, lambda g: g.to_json(), _groups_table)


@group_app.command("members")
def group_members(ctx: typer.Context, group: GroupArg, domain: DomainOption = None) -> None:
    """The user UUIDs that are members of a group."""
    state = state_of(ctx)
    with state.reading() as ledger:
        found = _existing_group(ledger, _group_key(state, ledger, group, domain))
        members = sorted(str(u) for u in ledger.queries.group_members(found.id))

    def human() -> None:
        table = new_table("user_id", title=f"members of group {found.name!r} ({len(members)})")
        for member in members:
            table.add_row(member)
        print_table(table)

    state.output(members, human)


@group_app.command("history")
def group_history(
    ctx: typer.Context,
    group: GroupArg,
    domain: DomainOption = None,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a group (fields, members, workload it took and released), with actors."""
    state = state_of(ctx)
    show_history(state, GROUP_TYPE, _resolved(state, group, domain), limit, after, newest_first)
