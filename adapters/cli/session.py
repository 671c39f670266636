"""`ledger session ...`: sessions through the two gates (issue 12), each decision shown
with its reasons; and `ledger policy effective`, the policy the gates would apply.

The keypair a session runs under is `--keypair AK`: the root `--access-key` is the
actor's (who records the decision: the platform, as `--role service`), never the
session's. Every decision prints a table of the limits weighed (limit, scope, requested,
used, allowed) that fits 80 columns; `--json` gives them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box

from adapters.cli.app import State, state_of
from adapters.cli.history import HistoryAfter, HistoryLimit, NewestFirst, show_history
from adapters.cli.options import parse_slot_assignments
from adapters.cli.paging import LimitOption, after_option, fetch_size, output_page
from adapters.cli.render import (
    AMOUNTS,
    SHORT,
    SafeTable,
    check_parts,
    fields_table,
    fmt,
    plural,
    print_table,
    safe,
    shortener,
    utc_time,
)
from domain.catalog import EntityType

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.read.sessions import SessionDecision, SessionEntry
    from domain.session import DueSession, SessionAction

session_app = typer.Typer(
    no_args_is_help=True,
    help="Sessions under the policies: enqueue, schedule (the start gate), cancel, terminate, and the runtime limits.",
)

SessionArg = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's UUID.")]
KeypairFilter = Annotated[
    str | None,
    typer.Option("--keypair", metavar="KEY", help="Only this keypair's (the root --access-key is the actor)."),
]
GroupFilter = Annotated[str | None, typer.Option("--group-id", "--group", metavar="UUID", help="Only this group's.")]


def _policy_ref(policy: dict[str, Any]) -> str:
    """The policy a decision applied: name, source, version (and `deleted`: a deleted
    keypair's session runs on under it as it last stood); the fallback whose slot limits
    it used where the policy lists none (a limit shown may be the fallback's); and each
    level skipped for naming a policy that is not live."""
    if not policy:
        return "-"
    deleted = ", deleted" if policy.get("deleted") else ""
    text = f"{policy.get('name')!r} ({policy.get('source')}, version {policy.get('version')}{deleted})"
    fallback = policy.get("fallback")
    if fallback:
        text += f", fallback {fallback.get('name')!r} (version {fallback.get('version')})"
    for level in policy.get("skipped") or ():
        text += f"; skipped {level.get('name')!r} ({level.get('source')}, {level.get('reason')})"
    return safe(text)


def checks_table(checks: list[dict[str, Any]], title: str) -> Table:
    """The limits a decision weighed, one per row: the limit (`field.slot` for a slot),
    whose it is (scope and id: a group's UUID shortened to 8 characters, --json gives it
    whole), requested, used and allowed (a byte slot in binary units, as `policy show`
    writes it: 3g, not 3221225472). Fits 80 columns; a long limit folds."""
    table = SafeTable(title=title, box=box.SIMPLE_HEAD, leave_out=("scope",))  # below 54 columns
    table.add_column("limit", overflow="fold", min_width=10)
    table.add_column("scope", overflow="fold", min_width=8)
    for header in AMOUNTS:
        table.add_column(header, justify="right", overflow="fold", min_width=5)
    for check in checks:
        limit, amounts = check_parts(check)
        table.add_row(
            safe(limit), f"{safe(check['scope'])} {safe(str(check['scope_id'])[:SHORT])}", *map(safe, amounts)
        )
    return table


def _run(state: State, method: str, action: SessionAction) -> Any:
    with state.ledger() as ledger:
        return state.run(getattr(ledger.processors.session, method), action)


@session_app.command("enqueue")
def session_enqueue(
    ctx: typer.Context,
    session_id: SessionArg,
    access_key: Annotated[
        str,
        typer.Option(
            "--keypair", metavar="KEY", help="The keypair the session runs under (the root --access-key is the actor)."
        ),
    ],
    group_id: Annotated[str, typer.Option("--group-id", "--group", metavar="UUID", help="The session's group.")],
    requested_slots: Annotated[
        list[str],
        typer.Option("--slot", metavar="NAME=VALUE", help="One requested slot, for the whole session (repeatable)."),
    ],
    cluster_size: Annotated[
        int, typer.Option("--cluster-size", metavar="N", help="Containers in the session, a count.")
    ] = 1,
    mounts: Annotated[
        list[str] | None,
        typer.Option("--mount", metavar="UUID", help="A vfolder the session mounts (repeatable)."),
    ] = None,
) -> None:
    """Enqueue a session: the hard gate (pending count and slots, containers, the mounts'
    hosts). Refused with the limit it breaks; else the session is PENDING."""
    from domain.session import EnqueueSessionAction

    state = state_of(ctx)
    action = EnqueueSessionAction(
        session_id=session_id,
        access_key=access_key,
        group_id=group_id,
        requested_slots=parse_slot_assignments(requested_slots),
        cluster_size=cluster_size,
        mounts=mounts or [],
    )
    result = _run(state, "enqueue_session", action)
    data = {"session": result.session.to_json(), "policy": result.policy}

    def human() -> None:
        typer.echo(f"enqueued session {result.session.session_id} (PENDING)")
        typer.echo(f"policy {_policy_ref(result.policy)}")

    state.output(data, human)


@session_app.command("schedule")
def session_schedule(ctx: typer.Context, session_id: SessionArg) -> None:
    """Decide a pending session at the start gate: admitted (RUNNING) only if every limit
    of the keypair's effective policy, the group and the domain fits; else it stays
    PENDING and every failed limit is a reason."""
    from domain.session import ScheduleSessionAction

    state = state_of(ctx)
    result = _run(state, "schedule_session", ScheduleSessionAction(session_id=session_id))
    reasons = [check.to_json() for check in result.reasons]
    checks = [check.to_json() for check in result.checks]
    data = {
        "session": result.session.to_json(),
        "admitted": result.admitted,
        "changed": result.changed,
        "policy": result.policy,
        "reasons": reasons,
        "checks": checks,
    }

    def human() -> None:
        sid = result.session.session_id
        # The session id on its own line: with the policy after it, a line would pass 80 columns.
        if result.admitted:
            typer.echo(f"admitted session {sid} (RUNNING)")
            typer.echo(f"policy {_policy_ref(result.policy)}")
            if not result.changed:
                typer.echo("already running: nothing decided")
            if checks:
                print_table(checks_table(checks, plural(len(checks), "limit") + " weighed"))
            return
        typer.echo(f"not admitted: session {sid} stays PENDING")
        typer.echo(f"policy {_policy_ref(result.policy)}")
        if not result.changed:
            typer.echo("the same as the last deferral: nothing recorded")
        print_table(checks_table(reasons, plural(len(reasons), "reason")))

    state.output(data, human)


def _ended(state: State, result: Any, done: str) -> None:
    data = {"session": result.session.to_json(), "changed": result.changed}
    sid = result.session.session_id
    if result.session.status != "TERMINATING":
        message = f"{done} session {sid}" if result.changed else f"session {sid} had already ended (unchanged)"
    elif result.changed:
        # Two lines: each fits 80 columns.
        message = f"terminating session {sid}\nits kernels still run: it holds its usage until the last one ends"
    else:
        message = f"session {sid} is already terminating (unchanged)"
    state.output(data, lambda: typer.echo(message))


@session_app.command("cancel")
def session_cancel(ctx: typer.Context, session_id: SessionArg) -> None:
    """Cancel a pending session; releases what it held (a running one is refused: terminate
    it; an ended or TERMINATING one is left as it is)."""
    from domain.session import CancelSessionAction

    state = state_of(ctx)
    _ended(state, _run(state, "cancel_session", CancelSessionAction(session_id=session_id)), "cancelled")


@session_app.command("terminate")
def session_terminate(
    ctx: typer.Context,
    session_id: SessionArg,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why it ends (e.g. idle_timeout).")],
) -> None:
    """Terminate a pending or running session; releases its usage (idempotent). One whose
    kernels still run is TERMINATING: it holds its usage until its last kernel ends."""
    from domain.session import TerminateSessionAction

    state = state_of(ctx)
    action = TerminateSessionAction(session_id=session_id, reason=reason)
    _ended(state, _run(state, "terminate_session", action), "terminated")


@session_app.command("activity")
def session_activity(
    ctx: typer.Context,
    session_id: SessionArg,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="ISO", help="When it was active, ISO 8601 (UTC if no zone). Default: now."),
    ] = None,
) -> None:
    """Record a running session's activity (moves its idle deadline; an older time records nothing)."""
    from datetime import UTC, datetime

    from domain.session import ReportSessionActivityAction

    state = state_of(ctx)
    action = ReportSessionActivityAction(session_id=session_id, at=at or datetime.now(UTC))
    result = _run(state, "report_session_activity", action)
    data = {"session": result.session.to_json(), "changed": result.changed}
    sid = result.session.session_id
    message = f"recorded activity of session {sid}" if result.changed else f"session {sid}: unchanged"
    state.output(data, lambda: typer.echo(message))


def _decision_title(decision: SessionDecision) -> str:
    at = decision.at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{decision.decision} {at} UTC, policy {_policy_ref(decision.policy)}"


def _grant_line(grant: dict[str, Any]) -> str:
    """One mount of an enqueue: its vfolder, host and the levels that granted it, ids
    shortened as in the checks table (--json gives them whole)."""
    levels = ", ".join(
        f"{level['scope']} {str(level['scope_id'])[:SHORT]}"
        + (f" (policy {level['policy']!r})" if level.get("policy") else "")
        for level in grant["granted_by"]
    )
    vfolder = str(grant["vfolder_id"])[:SHORT]
    return safe(f"  mount {vfolder} on {grant['host']!r}: {grant['permission']} from {levels}")


@session_app.command("show")
def session_show(ctx: typer.Context, session_id: SessionArg) -> None:
    """Show one session and every decision on it with the limits it weighed."""
    from domain.entity import entity_not_found

    state = state_of(ctx)
    with state.reading() as ledger:
        found = ledger.queries.session(session_id)
    if found is None:
        raise entity_not_found(EntityType.SESSION, session_id)
    data = found.to_json()

    def human() -> None:
        # The session's count leaves out the enqueue, whose decision is printed below too.
        fields = {("start-gate decisions" if k == "decisions" else k): v for k, v in found.session.to_json().items()}
        print_table(fields_table(fields, title=f"session {found.session.session_id}"))
        for decision in found.decisions:
            if decision.checks:
                print_table(checks_table(decision.checks, _decision_title(decision)))
            else:
                typer.echo(_decision_title(decision))
            for grant in decision.grants:
                typer.echo(_grant_line(grant))

    state.output(data, human)


@session_app.command("history")
def session_history(
    ctx: typer.Context,
    session_id: SessionArg,
    limit: HistoryLimit = None,
    after: HistoryAfter = None,
    newest_first: NewestFirst = False,
) -> None:
    """Every event of a session: its enqueue, each decision, its kernels, its end; who
    and when (`show` gives the decisions with the numbers they weighed)."""
    from domain.parsers import parse_uuid

    session = str(parse_uuid(session_id, "SESSION_ID"))  # the stream's key, as any case of it names it
    show_history(state_of(ctx), EntityType.SESSION, session, limit, after, newest_first)


def _sessions_table(sessions: Sequence[SessionEntry]) -> Table:
    leave_out = ("policy", "slots", "keypair", "group")  # below 80 columns
    table = SafeTable(title=plural(len(sessions), "session"), box=box.SIMPLE_HEAD, leave_out=leave_out)
    # Ids fold rather than being cut: two alike are shown as long as it takes to tell them apart.
    table.add_column("session", overflow="fold", min_width=SHORT)
    table.add_column("status", no_wrap=True)
    table.add_column("group", overflow="fold", min_width=SHORT)
    table.add_column("keypair", overflow="fold", ratio=1, min_width=6)
    table.add_column("slots", overflow="fold", ratio=1, min_width=6)
    table.add_column("policy", overflow="fold", ratio=1, min_width=6)
    table.add_column("started\n(UTC)", no_wrap=True)
    session_id = shortener([s.session_id for s in sessions])
    group_id = shortener([s.group_id for s in sessions])
    for s in sessions:
        policy = "-" if s.policy_name is None else f"{s.policy_name} v{s.policy_version}"
        table.add_row(
            session_id(s.session_id),
            safe(s.status),
            group_id(s.group_id),
            safe(s.access_key),
            fmt("requested_slots", s.requested_slots).replace(", ", ",\n"),
            safe(policy),
            "-" if s.started_at is None else utc_time(s.started_at),
        )
    return table


@session_app.command("list")
def session_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(metavar="STATUS", help="PENDING, RUNNING, TERMINATING, CANCELLED or TERMINATED."),
    ] = None,
    access_key: KeypairFilter = None,
    group_id: GroupFilter = None,
    limit: LimitOption = None,
    after: Annotated[str | None, after_option("session id")] = None,
) -> None:
    """Sessions, in the order they were recorded in (oldest first): one recorded after a
    page was read lists after that page's last session, even if its enqueue time is
    earlier, so paging on with --after misses none."""
    state = state_of(ctx)
    with state.reading() as ledger:
        sessions = ledger.queries.sessions(
            status, access_key=access_key, group_id=group_id, limit=fetch_size(limit), after=after
        )
    output_page(state, sessions, limit, lambda s: s.session_id, lambda s: s.to_json(), _sessions_table)


def _due_table(due: list[DueSession]) -> Table:
    table = SafeTable(title=plural(len(due), "session") + " due", box=box.SIMPLE_HEAD, leave_out=("policy", "keypair"))
    table.add_column("session", overflow="fold", min_width=SHORT)
    table.add_column("keypair", overflow="fold", ratio=1, min_width=6)
    table.add_column("reason", no_wrap=True)
    table.add_column("deadline\n(UTC)", no_wrap=True)
    table.add_column("policy", overflow="fold", ratio=1, min_width=6)
    short = shortener([str(d.session_id) for d in due])
    for d in due:
        table.add_row(
            short(str(d.session_id)),
            safe(d.access_key),
            d.reason.value,
            utc_time(d.deadline),
            _policy_ref(d.policy_ref) if d.policy_ref else safe(d.policy),
        )
    return table


@session_app.command("due")
def session_due(
    ctx: typer.Context,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO", help="The time to check at, ISO 8601 (UTC if no zone). Default: now."),
    ] = None,
) -> None:
    """Running sessions past a deadline of their keypair's effective policy now:
    idle_timeout (last activity, or start, + idle_timeout) or max_session_lifetime (from
    the running start), earliest deadline first."""
    state = state_of(ctx)
    with state.reading() as ledger:
        due = ledger.queries.sessions_due(now)
    state.output([d.to_json() for d in due], lambda: print_table(_due_table(due)))


def policy_effective(
    ctx: typer.Context,
    access_key: Annotated[str, typer.Argument(metavar="ACCESS_KEY", help="The keypair whose policy to resolve.")],
) -> None:
    """The keypair's effective policy, whole: the first of its own policy, its user's
    default, its domain's default and the system 'default' that is live; with the level
    it came from (source) and the policy's version."""
    state = state_of(ctx)
    with state.reading() as ledger:
        effective = ledger.queries.effective_policy(access_key)
    data = effective.to_json()

    def human() -> None:
        typer.echo(f"keypair {safe(access_key)}: policy {_policy_ref(effective.ref_json())}")
        print_table(fields_table(effective.policy.to_json(), title=f"policy {effective.name}"))

    state.output(data, human)
