"""`ledger domain ...`: domains, their limits and the policies their admins may assign.

Options are named as the domain's fields (`--default-policy` is the parameter
`default_keypair_resource_policy`, `--allowed-policies` is
`allowed_keypair_resource_policies`), so a refused value names the option typed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_diff, show_history, show_state
from adapters.cli.options import (
    AtOption,
    DescriptionOption,
    FromOption,
    HostsOption,
    SlotOption,
    SlotsOption,
    ToOption,
    TotalSlotsOption,
    VersionOption,
    slot_changes,
    unset_fields,
    unset_option,
)
from adapters.cli.paging import LimitOption, after_option, fetch_size, output_page
from adapters.cli.render import fields_table, fmt, new_table, print_table
from domain.catalog import EntityType

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.read.directory import DomainCounts
    from domain.domains import DomainData

domain_app = typer.Typer(no_args_is_help=True, help="Domains: limits, vfolder hosts, policies admins may assign.")

DOMAIN_TYPE = EntityType.DOMAIN
# nullable_fields(DomainModifier), spelled out: declaring the options must not load the
# domain's models (a test keeps the two equal).
NULLABLE_DOMAIN_FIELDS = ("description", "default_keypair_resource_policy", "allowed_keypair_resource_policies")
# What `--unset` also takes: the options' short names.
UNSET_ALIASES = {
    "default_policy": "default_keypair_resource_policy",
    "allowed_policies": "allowed_keypair_resource_policies",
}
_FIELDS = (
    "description", "is_active", "total_resource_slots", "allowed_vfolder_hosts", "default_keypair_resource_policy",
    "allowed_keypair_resource_policies",
)  # fmt: skip


def parse_policy_list(raw: str) -> list[str]:
    """`gold,silver`; an empty string is the empty list (admins may assign no policy)."""
    return [name.strip() for name in raw.split(",") if name.strip()]


DomainName = Annotated[str, typer.Argument(metavar="NAME", help="Domain name.")]
ActiveOption = Annotated[
    bool | None,
    typer.Option("--active/--inactive", help="Whether the domain takes new users. Default on create: active."),
]
DefaultPolicyOption = Annotated[
    str | None,
    typer.Option(
        "--default-policy",
        metavar="NAME",
        help="Policy of the domain's keypairs that have none and whose user has no default.",
    ),
]
AllowedPoliciesOption = Annotated[
    Any,
    typer.Option(
        "--allowed-policies",
        parser=parse_policy_list,
        metavar="NAME,...",
        help="The only policies the domain's admins may assign ('' for none). Default on create: any; --unset: any.",
    ),
]


def domain_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The creator / modifier fields among a command's options that were given."""
    fields = {"is_active" if k == "active" else k: v for k, v in options.items() if v is not None}
    return {k: v for k, v in fields.items() if k in _FIELDS}


def unset_domain_fields(names: list[str], given: dict[str, Any]) -> dict[str, None]:
    """`--unset` as fields set to null; the options' short names are taken too."""
    spelled = [UNSET_ALIASES.get(name.strip().replace("-", "_"), name) for name in names]
    return unset_fields(spelled, given, NULLABLE_DOMAIN_FIELDS)


def domain_json(domain: DomainData, counts: DomainCounts | None = None) -> dict[str, Any]:
    data = domain.to_json()
    if counts is not None:
        data.update(users=counts.users, groups=counts.groups)
    return data


def _domain_table(domain: DomainData, counts: DomainCounts | None = None) -> Table:
    return fields_table(domain_json(domain, counts), f"domain {domain.name!r}")


def _domains_table(domains: Sequence[DomainData]) -> Table:
    columns = ("name", "is_active", "total_resource_slots", "default_keypair_resource_policy")
    table = new_table("name", "active", "total_resource_slots", "default policy")
    for domain in domains:
        data = domain.to_json()
        table.add_row(*(fmt(c, data[c]) for c in columns))
    return table


def _show_domain(state: State, domain: DomainData, message: str, changed: bool | None = None) -> None:
    data = domain_json(domain) if changed is None else {"changed": changed, **domain_json(domain)}

    def human() -> None:
        typer.echo(message)
        print_table(_domain_table(domain))

    state.output(data, human)


@domain_app.command("create")
def domain_create(
    ctx: typer.Context,
    name: DomainName,
    description: DescriptionOption = None,
    active: ActiveOption = None,
    total_resource_slots: SlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_keypair_resource_policy: DefaultPolicyOption = None,
    allowed_keypair_resource_policies: AllowedPoliciesOption = None,
) -> None:
    """Create a domain (or create again one that was deleted). A slot the domain does not
    limit is unlimited; options not given take the defaults (active, no limits)."""
    creator = {"name": name, **domain_fields(locals())}  # first: its locals are the options
    from domain.domains import CreateDomainAction

    state = state_of(ctx)
    action = CreateDomainAction(creator=creator)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.domain.create_domain, action)
    _show_domain(state, result.domain, f"created domain {name!r}")


@domain_app.command("modify")
def domain_modify(
    ctx: typer.Context,
    name: DomainName,
    description: DescriptionOption = None,
    active: ActiveOption = None,
    total_resource_slots: TotalSlotsOption = None,
    slot: SlotOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_keypair_resource_policy: DefaultPolicyOption = None,
    allowed_keypair_resource_policies: AllowedPoliciesOption = None,
    unset: Annotated[list[str] | None, unset_option(NULLABLE_DOMAIN_FIELDS)] = None,
) -> None:
    """Change the given fields of a domain; fields not given are left alone. Values equal
    to the current ones (or no option at all) change nothing and store no event: the
    command then says the domain is unchanged (`"changed": false` with --json)."""
    given = domain_fields(locals())  # first: its locals are the options
    from domain.domains import ModifyDomainAction

    modifier = {**given, **unset_domain_fields(unset or [], given)}
    changes = slot_changes(total_resource_slots, slot)
    if changes is not None:  # merged into the stored map by the service, in its retried save
        modifier["total_resource_slots_patch"] = changes
    state = state_of(ctx)
    action = ModifyDomainAction(domain_name=name, modifier=modifier)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.domain.modify_domain, action)
    message = f"modified domain {name!r}" if result.changed else f"domain {name!r} unchanged"
    _show_domain(state, result.domain, message, result.changed)


@domain_app.command("delete")
def domain_delete(ctx: typer.Context, name: DomainName) -> None:
    """Delete a domain. Refused while it has users or groups; its history stays."""
    from domain.domains import DeleteDomainAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.domain.delete_domain, DeleteDomainAction(domain_name=name))
    state.output(domain_json(result.domain), lambda: typer.echo(f"deleted domain {name!r}"))


@domain_app.command("show")
def domain_show(ctx: typer.Context, name: DomainName, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one domain with its user and group counts: now, or as it stood --at a time or
    after --version N."""
    from domain.entity import entity_not_found

    state = state_of(ctx)
    if at is not None or version is not None:
        return show_state(state, DOMAIN_TYPE, name, at, version)
    with state.reading() as ledger:
        found = ledger.queries.domain(name)
        counts = ledger.queries.directory.domain_counts(name)
    if found is None:
        raise entity_not_found(DOMAIN_TYPE, name)
    state.output(domain_json(found, counts), lambda: print_table(_domain_table(found, counts)))


@domain_app.command("diff")
def domain_diff(ctx: typer.Context, name: DomainName, older: FromOption, newer: ToOption) -> None:
    """What changed in a domain between two versions or times: field, old, new."""
    show_diff(state_of(ctx), DOMAIN_TYPE, name, older, newer)


class StatusChoice(enum.Enum):
    """`domain list --status`."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ALL = "all"


@domain_app.command("list")
def domain_list(
    ctx: typer.Context,
    name_prefix: Annotated[
        str | None,
        typer.Option("--name-prefix", metavar="TEXT", help="Only domains whose name starts with TEXT (case counts)."),
    ] = None,
    status: Annotated[
        StatusChoice, typer.Option("--status", case_sensitive=False, help="active, inactive or all.")
    ] = StatusChoice.ALL,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("domain name")] = None,
) -> None:
    """List the live domains, by name (the --after cursor is a domain name)."""
    state = state_of(ctx)
    active = {StatusChoice.ACTIVE: True, StatusChoice.INACTIVE: False}.get(status)
    with state.reading() as ledger:
        domains = ledger.queries.domains(name_prefix=name_prefix, active=active, after=after, limit=fetch_size(limit))
    output_page(state, domains, limit, lambda d: d.name, domain_json, _domains_table)


@domain_app.command("history")
def domain_history(
    ctx: typer.Context,
    name: DomainName,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a domain (fields, users and groups joining and leaving), with actors."""
    show_history(state_of(ctx), DOMAIN_TYPE, name, limit, after, newest_first)
