"""`ledger user ...`: users, the domain each belongs to and their default policy.

A user is named by its UUID (any spelling: it is normalised before it is looked up). The
root `--user-id` is the actor; the USER_ID argument is the user acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_diff, show_history, show_state
from adapters.cli.options import AtOption, FromOption, ToOption, VersionOption, unset_fields, unset_option
from adapters.cli.paging import LimitOption, after_option, domain_filter, fetch_size, output_page
from adapters.cli.render import compact_advice, fields_table, fmt, new_table, print_table
from domain.catalog import EntityType

if TYPE_CHECKING:
    from rich.table import Table

    from domain.user import UserData

user_app = typer.Typer(no_args_is_help=True, help="Users: their domain, names and default policy.")

USER_TYPE = EntityType.USER
# nullable_fields(UserModifier), spelled out: declaring the options must not load the
# domain's models (a test keeps the two equal).
NULLABLE_USER_FIELDS = ("email", "full_name", "default_keypair_resource_policy")
_FIELDS = ("domain_name", "email", "full_name", "default_keypair_resource_policy")

UserIdArg = Annotated[str, typer.Argument(metavar="USER_ID", help="The user's UUID.")]
EmailOption = Annotated[str | None, typer.Option("--email", metavar="ADDRESS", help="The user's email address.")]
FullNameOption = Annotated[
    str | None, typer.Option("--full-name", metavar="TEXT", help="The user's name, up to 256 characters.")
]
DefaultPolicyOption = Annotated[
    str | None,
    typer.Option(
        "--default-policy",
        metavar="NAME",
        help="Policy of the user's keypairs that have none (an admin: one the domain allows).",
    ),
]


def _key(user_id: str) -> str:
    """The user's id as the ledger keys it (a malformed one names USER_ID)."""
    from domain.parsers import parse_uuid

    return str(parse_uuid(user_id, "user_id"))


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _FIELDS and v is not None}


def user_json(user: UserData, keypairs: int | None = None) -> dict[str, Any]:
    data = user.to_json()
    if keypairs is not None:
        data["keypairs"] = keypairs
    return data


def _user_table(user: UserData, keypairs: int | None = None) -> Table:
    return fields_table(user_json(user, keypairs), f"user {user.user_id}")


def _users_table(users: Sequence[UserData]) -> Table:
    columns = ("user_id", "domain_name", "email", "full_name", "default_keypair_resource_policy")
    table = new_table("user_id", "domain_name", "email", "full_name", "default policy", whole=("user_id",))
    for user in users:
        data = user.to_json()
        table.add_row(*(fmt(c, data[c]) for c in columns))
    return table


def _show_user(state: State, user: UserData, message: str, changed: bool | None = None) -> None:
    data = user_json(user) if changed is None else {"changed": changed, **user_json(user)}

    def human() -> None:
        typer.echo(message)
        print_table(_user_table(user))

    state.output(data, human)


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    user_id: UserIdArg,
    domain_name: Annotated[
        str | None,
        typer.Option(
            "--domain-name", metavar="DOMAIN", help="The user's domain, for life. Default: the root --domain."
        ),
    ] = None,
    email: EmailOption = None,
    full_name: FullNameOption = None,
    default_keypair_resource_policy: DefaultPolicyOption = None,
) -> None:
    """Create a user (or create again one that was deleted) in an existing, active domain."""
    given = _given(locals())  # first: its locals are the options
    from domain.user import CreateUserAction

    state = state_of(ctx)
    creator = {"domain_name": state.meta.domain_name, **given, "user_id": user_id}
    action = CreateUserAction(creator=creator)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.user.create_user, action)
    user: UserData = result.user
    _show_user(state, user, f"created user {user.user_id} in domain {user.domain_name!r}")


@user_app.command("modify")
def user_modify(
    ctx: typer.Context,
    user_id: UserIdArg,
    email: EmailOption = None,
    full_name: FullNameOption = None,
    default_keypair_resource_policy: DefaultPolicyOption = None,
    unset: Annotated[list[str] | None, unset_option(NULLABLE_USER_FIELDS)] = None,
) -> None:
    """Change the given fields of a user; fields not given are left alone (the domain is
    the user's for life). Values equal to the current ones (or no option at all) change
    nothing and store no event: the command then says the user is unchanged."""
    given = _given(locals())  # first: its locals are the options
    from domain.user import ModifyUserAction

    names = [n.strip().replace("-", "_") for n in unset or []]
    names = ["default_keypair_resource_policy" if n == "default_policy" else n for n in names]
    modifier = {**given, **unset_fields(names, given, NULLABLE_USER_FIELDS)}
    state = state_of(ctx)
    action = ModifyUserAction(user_id=user_id, modifier=modifier)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.user.modify_user, action)
    user: UserData = result.user
    message = f"modified user {user.user_id}" if result.changed else f"user {user.user_id} unchanged"
    _show_user(state, user, message, result.changed)


@user_app.command("delete")
def user_delete(ctx: typer.Context, user_id: UserIdArg) -> None:
    """Delete a user. Refused while the user owns keypairs; its history stays."""
    from domain.user import DeleteUserAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.user.delete_user, DeleteUserAction(user_id=user_id))
    user: UserData = result.user
    state.output(user_json(user), lambda: typer.echo(f"deleted user {user.user_id}"))


@user_app.command("erase")
def user_erase(
    ctx: typer.Context,
    user_id: UserIdArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            metavar="TEXT",
            help="Why (kept in clear in the audit trail with who asked: no personal values in it).",
        ),
    ],
    accept_clear_history: Annotated[
        bool,
        typer.Option(
            "--accept-clear-history",
            help="Erase even though values stored in clear before sealing existed stay readable.",
        ),
    ] = False,
) -> None:
    """Erase a user's personal values for good (superadmin): their key is destroyed, the email
    and full name read [erased] everywhere. The user, its keypairs and groups stay. An id with no
    user is erased too when refused commands sealed their input under it (a create refused)."""
    from domain.user import EraseUserAction

    state = state_of(ctx)
    action = EraseUserAction(user_id=user_id, reason=reason, accept_clear_history=accept_clear_history)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.user.erase_user, action)
    user: UserData | None = result.user
    kept = f" ({result.clear_values} values stored in clear stay readable)" if result.clear_values else ""
    kept += compact_advice(ledger.config.kind)
    if user is None:  # no user: what refused commands sealed under its id's key
        data = {"clear_values": result.clear_values, "user_id": result.user_id, "user": None}
        said = f"erased user {result.user_id}: no such user, the input of refused commands naming it{kept}"
        state.output(data, lambda: typer.echo(said))
        return
    data = {"clear_values": result.clear_values, **user_json(user)}
    state.output(data, lambda: typer.echo(f"erased user {user.user_id}{kept}"))


@user_app.command("show")
def user_show(ctx: typer.Context, user_id: UserIdArg, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one user with the number of keypairs it owns: now, or as it stood --at a time
    or after --version N."""
    from domain.entity import entity_not_found

    state = state_of(ctx)
    key = _key(user_id)
    if at is not None or version is not None:
        return show_state(state, USER_TYPE, key, at, version)
    with state.reading() as ledger:
        found = ledger.queries.user(key)
        keypairs = ledger.queries.directory.user_keypair_count(key)
    if found is None:
        raise entity_not_found(USER_TYPE, key)
    state.output(user_json(found, keypairs), lambda: print_table(_user_table(found, keypairs)))


@user_app.command("diff")
def user_diff(ctx: typer.Context, user_id: UserIdArg, older: FromOption, newer: ToOption) -> None:
    """What changed in a user between two versions or times: field, old, new."""
    show_diff(state_of(ctx), USER_TYPE, _key(user_id), older, newer)


@user_app.command("list")
def user_list(
    ctx: typer.Context,
    domain_name: Annotated[str | None, domain_filter("users")] = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("user UUID")] = None,
) -> None:
    """List the live users, by UUID (the --after cursor is a user UUID)."""
    state = state_of(ctx)
    with state.reading() as ledger:
        users = ledger.queries.users(domain_name, after=after, limit=fetch_size(limit))
    output_page(state, users, limit, lambda u: str(u.user_id), user_json, _users_table)


@user_app.command("history")
def user_history(
    ctx: typer.Context,
    user_id: UserIdArg,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a user (fields, keypairs it came to own and gave up), with actors."""
    show_history(state_of(ctx), USER_TYPE, _key(user_id), limit, after, newest_first)
