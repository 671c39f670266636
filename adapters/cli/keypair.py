"""`ledger keypair ...`: keypairs and the policy each one uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_diff, show_history, show_state
from adapters.cli.options import AtOption, FromOption, ToOption, VersionOption
from adapters.cli.paging import LimitOption, after_option, domain_filter, fetch_size, output_page
from adapters.cli.render import cancelled_line, new_table, print_table, safe
from domain.catalog import EntityType

if TYPE_CHECKING:
    from rich.table import Table

    from domain.keypair import KeyPairData

keypair_app = typer.Typer(no_args_is_help=True, help="Keypairs and the policy each one uses.")

KEYPAIR_TYPE = EntityType.KEYPAIR

AccessKeyArg = Annotated[str, typer.Argument(metavar="ACCESS_KEY")]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--resource-policy",
        metavar="NAME",
        help="The policy assigned to the keypair. Without one, the keypair's effective policy is its "
        "user's default, else its domain's, else the system policy 'default' (ledger policy effective AK).",
    ),
]


def keypair_json(keypair: KeyPairData) -> dict[str, Any]:
    return {**dataclasses.asdict(keypair), "user_id": str(keypair.user_id)}


def _keypairs_table(keypairs: Sequence[KeyPairData]) -> Table:
    table = new_table("access_key", "user_id", "domain", "policy", whole=("user_id",))
    for keypair in keypairs:
        # No assigned policy: the precedence decides (`ledger policy effective`), shown as '-'.
        table.add_row(*(safe("-" if v is None else str(v)) for v in keypair_json(keypair).values()))
    return table


def _show_keypair(state: State, keypair: KeyPairData, done: str, changed: bool | None = None) -> None:
    """`changed` (modify only) says whether it stored anything; False prints "unchanged"."""

    def human() -> None:
        if changed is False:
            typer.echo(f"keypair {keypair.access_key!r} unchanged")
        elif done:
            typer.echo(f"{done} keypair {keypair.access_key!r}")
        print_table(_keypairs_table([keypair]))

    data = keypair_json(keypair)
    state.output(data if changed is None else {"changed": changed, **data}, human)


@keypair_app.command("create")
def keypair_create(
    ctx: typer.Context,
    access_key: AccessKeyArg,
    owner: Annotated[
        str,
        typer.Option(
            "--owner",
            metavar="UUID",
            help="The user who owns the keypair (the root --user-id is the actor, not the owner).",
        ),
    ],
    resource_policy: PolicyOption = None,
    domain_name: Annotated[
        str | None,
        typer.Option("--domain-name", metavar="DOMAIN", help="The keypair's domain. Default: the root --domain."),
    ] = None,
) -> None:
    """Create a keypair (or create again one that was deleted) for an existing user of its
    domain, with an existing policy or none (then the precedence decides)."""
    from domain.keypair import CreateKeyPairAction

    state = state_of(ctx)
    domain = domain_name or state.meta.domain_name
    action = CreateKeyPairAction(
        access_key=access_key, user_id=owner, domain_name=domain, resource_policy=resource_policy
    )
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.create_keypair, action)
    _show_keypair(state, result.keypair, "created")


@keypair_app.command("modify")
def keypair_modify(
    ctx: typer.Context,
    access_key: AccessKeyArg,
    resource_policy: PolicyOption = None,
    unassign: Annotated[
        bool, typer.Option("--unassign", help="Assign no policy: the precedence decides the effective one.")
    ] = False,
) -> None:
    """Move a keypair to another policy (--resource-policy), or to none (--unassign)."""
    from domain.keypair import ModifyKeyPairAction

    if (resource_policy is None) == (not unassign):
        raise typer.BadParameter("give either --resource-policy NAME or --unassign")
    state = state_of(ctx)
    action = ModifyKeyPairAction(access_key=access_key, resource_policy=resource_policy)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.modify_keypair, action)
    _show_keypair(state, result.keypair, "modified", result.changed)


@keypair_app.command("delete")
def keypair_delete(ctx: typer.Context, access_key: AccessKeyArg) -> None:
    """Delete a keypair; its policy is no longer in use by it."""
    from domain.keypair import DeleteKeyPairAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.delete_keypair, DeleteKeyPairAction(access_key=access_key))
    cancelled = list(result.cancelled_sessions)
    state.output(
        {**keypair_json(result.keypair), "cancelled_sessions": cancelled},
        lambda: typer.echo(f"deleted keypair {access_key!r}" + cancelled_line(cancelled, "delete")),
    )


@keypair_app.command("show")
def keypair_show(
    ctx: typer.Context, access_key: AccessKeyArg, at: AtOption = None, version: VersionOption = None
) -> None:
    """Show one keypair: now, or as it stood --at a time or after --version N."""
    from domain.entity import entity_not_found

    state = state_of(ctx)
    if at is not None or version is not None:
        return show_state(state, KEYPAIR_TYPE, access_key, at, version)
    with state.reading() as ledger:
        keypair = ledger.queries.keypair(access_key)
    if keypair is None:
        raise entity_not_found(KEYPAIR_TYPE, access_key)
    _show_keypair(state, keypair, "")


@keypair_app.command("diff")
def keypair_diff(ctx: typer.Context, access_key: AccessKeyArg, older: FromOption, newer: ToOption) -> None:
    """What changed in a keypair between two versions or times: field, old, new."""
    show_diff(state_of(ctx), KEYPAIR_TYPE, access_key, older, newer)


@keypair_app.command("list")
def keypair_list(
    ctx: typer.Context,
    resource_policy: Annotated[
        str | None, typer.Option("--resource-policy", metavar="NAME", help="Only keypairs using this policy.")
    ] = None,
    domain_name: Annotated[str | None, domain_filter("keypairs")] = None,
    owner: Annotated[str | None, typer.Option("--owner", metavar="UUID", help="Only keypairs this user owns.")] = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("access key")] = None,
) -> None:
    """List the live keypairs, by access key (the --after cursor is an access key)."""
    state = state_of(ctx)
    with state.reading() as ledger:
        keypairs = ledger.queries.keypairs(
            resource_policy, domain_name=domain_name, owner=owner, after=after, limit=fetch_size(limit)
        )
    output_page(state, keypairs, limit, lambda k: k.access_key, keypair_json, _keypairs_table)


@keypair_app.command("history")
def keypair_history(
    ctx: typer.Context,
    access_key: AccessKeyArg,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a keypair, across all its incarnations."""
    show_history(state_of(ctx), KEYPAIR_TYPE, access_key, limit, after, newest_first)
