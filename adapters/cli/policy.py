"""`ledger policy ...`: keypair resource policies, their history and time travel."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_diff, show_history, show_state
from adapters.cli.options import (
    AtOption,
    FromOption,
    HostsOption,
    SlotOption,
    SlotsOption,
    ToOption,
    TotalSlotsOption,
    VersionOption,
    parse_slots_option,
    slot_changes,
    unset_fields,
    unset_option,
)
from adapters.cli.paging import LimitOption, after_option, fetch_size, output_page
from adapters.cli.render import fields_table, fmt, new_table, one_line, print_table
from domain.catalog import EntityType
from domain.values import DefaultForUnspecified

if TYPE_CHECKING:
    from rich.table import Table

    from domain.keypair_resource_policy import KeyPairResourcePolicyData

T = TypeVar("T")

policy_app = typer.Typer(no_args_is_help=True, help="Keypair resource policies.")

POLICY_TYPE = EntityType.KEYPAIR_RESOURCE_POLICY
# nullable_fields(KeyPairResourcePolicyModifier), spelled out: declaring the options must not
# load the domain's models (a test keeps the two equal).
NULLABLE_FIELDS = (
    "max_session_lifetime", "max_pending_session_count", "max_pending_session_resource_slots", "idle_timeout",
    "max_vfolder_count", "max_vfolder_size", "max_quota_scope_size", "fallback_policy",
)  # fmt: skip

PolicyName = Annotated[str, typer.Argument(metavar="NAME", help="Policy name.")]

# The options `policy create` and `policy modify` share, declared once; each number's help
# says its unit and what create stores when the option is not given.


def _count(help: str) -> Any:
    return typer.Option(metavar="N", help=help)


SessionsOption = Annotated[
    int | None, _count("Sessions a keypair may run at once (a count; 0: no limit). Create's default: 30.")
]
ContainersOption = Annotated[int | None, _count("Containers in one session (a count, >= 1). Create's default: 1.")]
IdleOption = Annotated[
    int | None,
    _count("Seconds a session may stay idle before it is ended (0 or --unset: no limit). Create's default: 1800."),
]
LifetimeOption = Annotated[
    int | None, _count("Seconds a session may run, from its start (0 or --unset: no limit). Create's default: 0.")
]
SftpOption = Annotated[int | None, _count("SFTP sessions a keypair may run at once (a count). Create's default: 1.")]
PendingOption = Annotated[
    int | None,
    _count("Sessions a keypair may have waiting to start (a count; 0 or --unset: no limit). Create's default: none."),
]
VFolderCountOption = Annotated[
    int | None,
    _count("Vfolders a keypair may own (created with --owner-access-key), a count; 0 or --unset: no limit."),
]


def _pending_slots(more: str) -> Any:
    # A pending cap of 0 is no cap (REFERENCE: null or <= 0 unlimited), unlike a total slot.
    help = f"Slots a keypair's waiting sessions may request in total; a slot not listed, or 0: no limit. {more}"
    return typer.Option(parser=parse_slots_option, metavar="JSON|k=v,...", help=help)


PendingSlotsOption = Annotated[Any, _pending_slots("Create's default: none.")]
ReplacePendingSlotsOption = Annotated[Any, _pending_slots("Replaces the whole map ('' for none).")]
VFolderSizeOption = Annotated[int | None, _count("Deprecated (stored, not enforced): a vfolder's size in bytes.")]
QuotaOption = Annotated[int | None, _count("Deprecated (stored, not enforced): a quota scope's size in bytes.")]
DefaultOption = Annotated[
    DefaultForUnspecified | None,
    typer.Option(case_sensitive=False, help="What slots the policy does not list allow. Create's default: limited."),
]
FallbackOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Policy whose slot limits apply where this one lists none (no chains)."),
]


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The policy fields among a command's parameters that were given."""
    skip = {"ctx", "name", "unset", "slot"}
    return {k: v for k, v in values.items() if k not in skip and v is not None}


def _with_warnings(build: Callable[[], T]) -> tuple[T, list[str]]:
    """Builds an action and the domain's warnings (deprecated fields) it raised, to echo
    once the command succeeds: a refused one stored nothing, and with --json its stderr
    is the one error object."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build()
    return built, list(dict.fromkeys(str(w.message) for w in caught))


def _warn(notes: list[str]) -> None:
    for message in notes:
        typer.echo(f"warning: {one_line(message)}", err=True)


def _policies_table(policies: Sequence[KeyPairResourcePolicyData]) -> Table:
    columns: tuple[str, ...] = ("name", "total_resource_slots", "max_concurrent_sessions", "idle_timeout")
    columns += ("max_session_lifetime", "allowed_vfolder_hosts")
    table = new_table(*columns)
    for policy in policies:
        data = policy.to_json()
        table.add_row(*(fmt(k, data[k]) for k in columns))
    return table


def _policy_table(policy: KeyPairResourcePolicyData) -> Table:
    return fields_table(policy.to_json(), f"keypair resource policy {policy.name!r}")


def _show_policy(state: State, policy: KeyPairResourcePolicyData, done: str) -> None:
    def human() -> None:
        typer.echo(f"{done} keypair resource policy {policy.name!r}")
        print_table(_policy_table(policy))

    state.output(policy.to_json(), human)


@policy_app.command("create")
def policy_create(
    ctx: typer.Context,
    name: PolicyName,
    total_resource_slots: SlotsOption = None,
    max_concurrent_sessions: SessionsOption = None,
    max_containers_per_session: ContainersOption = None,
    idle_timeout: IdleOption = None,
    max_session_lifetime: LifetimeOption = None,
    max_concurrent_sftp_sessions: SftpOption = None,
    max_pending_session_count: PendingOption = None,
    max_pending_session_resource_slots: PendingSlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_for_unspecified: DefaultOption = None,
    max_vfolder_count: VFolderCountOption = None,
    max_vfolder_size: VFolderSizeOption = None,
    max_quota_scope_size: QuotaOption = None,
    fallback_policy: FallbackOption = None,
    unset: Annotated[list[str] | None, unset_option(NULLABLE_FIELDS)] = None,
) -> None:
    """Create a policy (or create again one that was deleted). Unset options take defaults;
    --unset makes a nullable field null (idle_timeout, max_session_lifetime: no limit)."""
    given = _given(locals())  # first: its locals are the options
    creator = {"name": name, **given, **unset_fields(unset or [], given, NULLABLE_FIELDS)}
    from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction

    state = state_of(ctx)
    action, notes = _with_warnings(lambda: CreateKeyPairResourcePolicyAction(creator=creator))
    with state.ledger() as ledger:
        processor = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
        result = state.run(processor, action)
    _warn(notes)
    _show_policy(state, result.keypair_resource_policy, "created")


@policy_app.command("modify")
def policy_modify(
    ctx: typer.Context,
    name: PolicyName,
    total_resource_slots: TotalSlotsOption = None,
    slot: SlotOption = None,
    max_concurrent_sessions: SessionsOption = None,
    max_containers_per_session: ContainersOption = None,
    idle_timeout: IdleOption = None,
    max_session_lifetime: LifetimeOption = None,
    max_concurrent_sftp_sessions: SftpOption = None,
    max_pending_session_count: PendingOption = None,
    max_pending_session_resource_slots: ReplacePendingSlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_for_unspecified: DefaultOption = None,
    max_vfolder_count: VFolderCountOption = None,
    max_vfolder_size: VFolderSizeOption = None,
    max_quota_scope_size: QuotaOption = None,
    fallback_policy: FallbackOption = None,
    unset: Annotated[list[str] | None, unset_option(NULLABLE_FIELDS)] = None,
) -> None:
    """Change the given fields of a policy; fields not given are left alone. Values equal
    to the current ones (or no option at all) change nothing and store no event: the
    command then says the policy is unchanged (`"changed": false` with --json)."""
    given = _given(locals())  # first: its locals are the options
    from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction

    modifier = {**given, **unset_fields(unset or [], given, NULLABLE_FIELDS)}
    changes = slot_changes(total_resource_slots, slot)
    if changes is not None:  # merged into the stored map by the service, in its retried save
        modifier["total_resource_slots_patch"] = changes
    state = state_of(ctx)
    with state.ledger() as ledger:
        action, notes = _with_warnings(lambda: ModifyKeyPairResourcePolicyAction(name=name, modifier=modifier))
        processor = ledger.processors.keypair_resource_policy.modify_keypair_resource_policy
        result = state.run(processor, action)
    _warn(notes)
    after: KeyPairResourcePolicyData = result.keypair_resource_policy
    changed = result.changed  # whether this command stored an event

    def human() -> None:
        typer.echo(
            f"modified keypair resource policy {after.name!r}"
            if changed
            else f"keypair resource policy {after.name!r} unchanged"
        )
        print_table(_policy_table(after))

    state.output({"changed": changed, **after.to_json()}, human)


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, name: PolicyName) -> None:
    """Delete a policy. Refused while a keypair uses it, and for the system policy."""
    from domain.keypair_resource_policy import DeleteKeyPairResourcePolicyAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        processor = ledger.processors.keypair_resource_policy.delete_keypair_resource_policy
        result = state.run(processor, DeleteKeyPairResourcePolicyAction(name=name))
    before: KeyPairResourcePolicyData = result.keypair_resource_policy
    state.output(before.to_json(), lambda: typer.echo(f"deleted keypair resource policy {name!r}"))


@policy_app.command("show")
def policy_show(ctx: typer.Context, name: PolicyName, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one policy: now, or as it stood --at a time or after --version N."""
    from domain.entity import entity_not_found

    state = state_of(ctx)
    if at is not None or version is not None:
        return show_state(state, POLICY_TYPE, name, at, version)
    with state.reading() as ledger:
        policy = ledger.queries.keypair_resource_policy(name)
    if policy is None:
        raise entity_not_found(POLICY_TYPE, name)
    state.output(policy.to_json(), lambda: print_table(_policy_table(policy)))


@policy_app.command("diff")
def policy_diff(ctx: typer.Context, name: PolicyName, older: FromOption, newer: ToOption) -> None:
    """What changed in a policy between two versions or times: field, old, new."""
    show_diff(state_of(ctx), POLICY_TYPE, name, older, newer)


@policy_app.command("list")
def policy_list(
    ctx: typer.Context,
    name_prefix: Annotated[
        str | None,
        typer.Option("--name-prefix", metavar="TEXT", help="Only policies whose name starts with TEXT (case counts)."),
    ] = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("policy name")] = None,
) -> None:
    """List the live policies, by name (the --after cursor is a policy name)."""
    state = state_of(ctx)
    with state.reading() as ledger:
        policies = ledger.queries.keypair_resource_policies(
            name_prefix=name_prefix, after=after, limit=fetch_size(limit)
        )
    output_page(state, policies, limit, lambda p: p.name, lambda p: p.to_json(), _policies_table)


@policy_app.command("history")
def policy_history(
    ctx: typer.Context,
    name: PolicyName,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a policy, across all its incarnations: who changed what, when."""
    show_history(state_of(ctx), POLICY_TYPE, name, limit, after, newest_first)
