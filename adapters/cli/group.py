"""`ledger group ...`: groups (projects), their fields and members, soft delete and purge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import show_diff, show_history, show_state
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
from adapters.cli.render import fmt, new_table, print_table
from domain.catalog import EntityType

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.bootstrap import Ledger
    from domain.group import GroupData

group_app = typer.Typer(no_args_is_help=True, help="Groups (projects): fields, members, soft delete and purge.")

GROUP_TYPE = EntityType.GROUP
# nullable_fields(GroupModifier), spelled out: declaring the options must not load the
# domain's models (a test keeps the two equal).
NULLABLE_GROUP_FIELDS = ("description", "container_registry")

GroupIdArg = Annotated[str, typer.Argument(metavar="GROUP_ID", help="The group's UUID.")]

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


def _group_table(group: GroupData, members: int | None = None) -> Table:
    table = new_table("field", "value", title=f"group {group.name!r}")
    for name, value in group.to_json().items():
        table.add_row(name, f"{len(group.dotfiles)} bytes" if name == "dotfiles" else fmt(name, value))
    if members is not None:
        table.add_row("members", str(members))
    return table


def _groups_table(groups: list[GroupData]) -> Table:
    columns = ("id", "name", "domain_name", "type", "is_active", "resource_policy", "total_resource_slots")
    table = new_table(*columns)
    for group in groups:
        data = group.to_json()
        table.add_row(*(fmt(c, data[c]) for c in columns))
    return table


def _fields(group: GroupData) -> dict[str, Any]:
    """What a modify can change: every field but the times."""
    data = group.to_json()
    del data["created_at"], data["modified_at"]
    return data


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
    group_id: GroupIdArg,
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
    from domain.parsers import parse_uuid

    modifier = {**given, **unset_fields(unset or [], given, NULLABLE_GROUP_FIELDS)}
    membership = _membership(add_users, remove_users, replace_users)
    changes = slot_changes(total_resource_slots, slot)
    state = state_of(ctx)
    key = str(parse_uuid(group_id, "group_id"))  # as the read model keys it
    with state.ledger() as ledger:
        before = ledger.queries.group(key)
        members_before = None if before is None else ledger.queries.group_members(before.id)
        if changes is not None:
            current = _existing_group(ledger, key) if before is None else before
            modifier["total_resource_slots"] = {**current.total_resource_slots.to_json(), **changes}
        action = ModifyGroupAction(group_id=group_id, modifier=modifier, **membership)
        result = state.run(ledger.processors.group.modify_group, action)
        after: GroupData = result.data
        members_after = ledger.queries.group_members(after.id)
    # Compared with the state read just before: a concurrent change in between counts as a change.
    changed = before is None or _fields(before) != _fields(after) or members_before != members_after
    _show_group(state, after, "modified" if changed else "", len(members_after) if membership else None, changed)


@group_app.command("delete")
def group_delete(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Soft-delete a group: it becomes inactive (no new workload), keeps its data and history."""
    from domain.group import DeleteGroupAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.delete_group, DeleteGroupAction(group_id=group_id))
    before: GroupData = result.data
    message = f"deleted group {before.name!r} ({before.id}): inactive, kept with its history"
    state.output(before.to_json(), lambda: typer.echo(message))


@group_app.command("purge")
def group_purge(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Remove a group for good; its name is free again. Refused while it has active kernels,
    vfolders mounted to them or active endpoints."""
    from domain.group import PurgeGroupAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.group.purge_group, PurgeGroupAction(group_id=group_id))
    before: GroupData = result.data
    state.output(before.to_json(), lambda: typer.echo(f"purged group {before.name!r} ({before.id})"))


@group_app.command("show")
def group_show(ctx: typer.Context, group_id: GroupIdArg, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one group, active or soft-deleted: now, or as it stood --at a time or after --version N."""
    state = state_of(ctx)
    if at is not None or version is not None:
        return show_state(state, GROUP_TYPE, group_id, at, version)
    with state.ledger() as ledger:
        group = _existing_group(ledger, group_id)
        members = len(ledger.queries.group_members(group.id))
    _show_group(state, group, "", members)


@group_app.command("diff")
def group_diff(ctx: typer.Context, group_id: GroupIdArg, older: FromOption, newer: ToOption) -> None:
    """What changed in a group between two versions or times: field, old, new."""
    show_diff(state_of(ctx), GROUP_TYPE, group_id, older, newer)


@group_app.command("list")
def group_list(
    ctx: typer.Context,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Only groups of this domain.")
    ] = None,
) -> None:
    """List the groups (active and soft-deleted), by domain then name."""
    state = state_of(ctx)
    with state.ledger() as ledger:
        groups = ledger.queries.groups(domain_name)
    state.output([g.to_json() for g in groups], lambda: print_table(_groups_table(groups)))


@group_app.command("members")
def group_members(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """The user UUIDs that are members of a group."""
    state = state_of(ctx)
    with state.ledger() as ledger:
        group = _existing_group(ledger, group_id)
        members = sorted(str(u) for u in ledger.queries.group_members(group.id))

    def human() -> None:
        table = new_table("user_id", title=f"members of group {group.name!r} ({len(members)})")
        for member in members:
            table.add_row(member)
        print_table(table)

    state.output(members, human)


@group_app.command("history")
def group_history(ctx: typer.Context, group_id: GroupIdArg) -> None:
    """Every event of a group (fields, members, workload it took and released), with actors."""
    show_history(state_of(ctx), GROUP_TYPE, group_id)
