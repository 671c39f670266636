"""The auditor's commands: `ledger audit`, `ledger metrics` and `ledger verify`.

Time travel (`show --at/--version`, `diff`) sits with each entity's commands.
"""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import State, refuse_a_missing_ledger, state_of
from adapters.cli.paging import fetch_size, output_page
from adapters.cli.render import new_table, plural, print_table, safe, utc_time
from adapters.json_times import utc_z, utc_z_default
from domain.catalog import EntityType

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from rich.table import Table

    from adapters.read.queries import AuditEntry


class AuditStatus(enum.Enum):
    """The `--status` choices: the values of `domain.actions.ActionStatus`, spelled here so
    that declaring the options loads no domain model (a test keeps the two equal)."""

    SUCCESS = "success"
    ERROR = "error"
    DENIED = "denied"
    RUNNING = "running"


def audit(
    ctx: typer.Context,
    entity_type: Annotated[
        EntityType | None,
        typer.Option(
            metavar="TYPE", help="The entity's type: keypair, group, kernel, ... (a wrong one lists them all)."
        ),
    ] = None,
    entity_id: Annotated[str | None, typer.Option(metavar="ID", help="A policy name, a group id, ...")] = None,
    actor: Annotated[str | None, typer.Option(metavar="ID", help="A user id or an access key.")] = None,
    operation: Annotated[str | None, typer.Option(metavar="OP", help="create, modify, purge, ...")] = None,
    status: Annotated[
        AuditStatus | None,
        typer.Option(case_sensitive=False, metavar="STATUS", help="The outcome: success, error, denied or running."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="ISO", help="Started at or after this time (ISO 8601, UTC if no zone).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="ISO", help="Started before this time (ISO 8601, UTC if no zone).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(metavar="N", help="Only the latest N matching entries (a count).")
    ] = None,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="List in the order they were recorded (the latest N with --limit).")
    ] = False,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            min=0,
            metavar="POSITION",
            help="Go on after the entry at this position (the cursor a --limit page printed): the older "
            "entries, or with --oldest-first the newer ones. With --limit and --json the output is "
            '{"items": [...], "next_after": POSITION or null}.',
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Export as JSON Lines, one entry per line. Not with the root --json.")
    ] = False,
) -> None:
    """The audit trail: every action's outcome (success, error, denied), who asked, when.

    Newest first (tables, --json and --jsonl alike): --limit N keeps the latest N.
    --oldest-first lists them in the order the ledger recorded them (actions that
    overlapped may show starts out of order). After a --limit page, `more: --after
    POSITION` on stderr goes on to the older entries.
    --since must be before --until."""
    from domain.parsers import parse_positive_int
    from domain.times import parse_window

    state = state_of(ctx)
    if jsonl and state.as_json:  # as `usage --csv`: one format asked for is silently ignored otherwise
        raise typer.BadParameter("--jsonl and the root --json are two output formats: give one", param_hint="--jsonl")
    start, end = parse_window(since, until, "action")  # before the ledger is opened
    if limit is not None:
        limit = parse_positive_int(limit, "limit")  # one more is asked for: refused here, not by the query
    filters: dict[str, Any] = {
        "entity_type": None if entity_type is None else entity_type.value,
        "entity_id": entity_id,
        "since": start,
        "until": end,
        "actor": actor,
        "operation": operation,
        "status": None if status is None else status.value,
    }
    if after is not None:
        _page_after(state, filters, after, limit, oldest_first, jsonl)
        return
    with state.reading() as ledger:
        if limit is None and (jsonl or state.as_json):
            # The whole trail: streamed, each entry written as it is read, never held whole.
            _stream(state, ledger.queries.audit_export(**filters, newest_first=not oldest_first), jsonl)
            return
        entries = ledger.queries.audit_log(
            **filters, limit=fetch_size(limit), newest_first=limit is not None or not oldest_first
        )
    # The latest N and whether older ones follow (`--after` the oldest shown goes on to them).
    older = None if limit is None or len(entries) <= limit else str(entries[limit - 1].position)
    entries = entries[:limit]
    if oldest_first and limit is not None:
        entries.reverse()  # the latest N, in the order they were recorded
        older = None  # newest first goes on from the oldest shown; this order has no next page
    if jsonl:
        for entry in entries:
            _write_line(entry)
    else:  # --json keeps the list it always was: the last item's position is the cursor
        state.output([e.to_json() for e in entries], lambda: print_table(_audit_table(entries)))
    if older is not None and not state.as_json:
        typer.echo(f"more: --after {older}", err=True)


def _page_after(
    state: State, filters: dict[str, Any], after: int, limit: int | None, oldest_first: bool, jsonl: bool
) -> None:
    """The entries after `after` in the order listed (as `GET /v1/audit?after=` pages): a page
    of `limit`, or all of them streamed."""
    with state.reading() as ledger:
        if limit is None:
            _stream(state, ledger.queries.audit_export(**filters, newest_first=not oldest_first, after=after), jsonl)
            return
        entries = ledger.queries.audit_log(
            **filters, limit=fetch_size(limit), newest_first=not oldest_first, after=after
        )
    if not jsonl:
        output_page(state, entries, limit, lambda e: str(e.position), lambda e: e.to_json(), _audit_table)
        return
    for entry in entries[:limit]:
        _write_line(entry)
    if len(entries) > limit:
        typer.echo(f"more: --after {entries[limit - 1].position}", err=True)


def _stream(state: State, entries: Iterable[AuditEntry], jsonl: bool) -> None:
    """Each entry written as it is read, never held whole: JSON lines, or one JSON array."""
    if jsonl:
        for entry in entries:
            _write_line(entry)
    else:
        state.output_array(entry.to_json() for entry in entries)


def _write_line(entry: AuditEntry) -> None:
    # ensure_ascii (the default): control and bidi characters leave as \u escapes.
    typer.echo(json.dumps(utc_z(entry.to_json()), default=utc_z_default, ensure_ascii=True))


def _audit_table(entries: Sequence[AuditEntry]) -> Table:
    table = new_table(
        "time (UTC)", "actor", "operation", "entity", "status", "ms", title=plural(len(entries), "action")
    )
    for e in entries:
        # Every text here was stored from someone's input (ids, access keys, messages): escaped.
        actor = " ".join(str(p) for p in (e.role, e.access_key or e.triggered_by) if p)
        outcome = e.status if e.error_code is None else f"{e.status}: {e.description}"
        entity = f"{e.entity_type} {e.entity_id}"
        cells = (safe(actor), safe(e.operation), safe(entity), safe(outcome))
        table.add_row(utc_time(e.started_at), *cells, f"{e.duration * 1000:.1f}")
    return table


def metrics(ctx: typer.Context) -> None:
    """Prometheus exposition of the action metrics, counted from the audit trail (so it
    covers every process that wrote to this ledger). With --json: the same samples as a
    list of {name, labels, value}."""
    from prometheus_client import disable_created_metrics

    from adapters.monitors import PrometheusMonitor

    state = state_of(ctx)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # a replay's creation times would be this command's, not the ledger's
    monitor = PrometheusMonitor()
    with state.reading() as ledger:
        monitor.replay(ledger.queries.audit_outcomes())  # streamed: only the counted columns
    # Label values come from the trail (domain names an older ledger took unchecked): the
    # exposition escapes only quotes, backslashes and newlines, so controls are escaped here.
    state.output(monitor.samples(), lambda: typer.echo(safe(monitor.exposition(), keep="\n"), nl=False))


def verify_chain(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None,
        typer.Option(
            metavar="POSITION:HASH",
            help="A head kept earlier: the chain must still pass through it (events after it are not vouched for).",
        ),
    ] = None,
    head_only: Annotated[bool, typer.Option("--head", help="Print the current head without walking.")] = False,
) -> None:
    """Walk the hash chain over every stored event; name the first altered, removed or
    inserted one (exit 1). Prints the head to keep for a later `--expect-head`.

    Also checks what the chain does not cover: each snapshot against its events, each
    subject key (altered, deleted, or put back after an erasure), the append-only
    triggers, and the audit and history read models rebuilt from the events. The other read models (the lookups,
    usage, sessions) are not compared: `projections rebuild --force NAME` mends them."""
    from adapters.read_model_check import verify_ledger
    from adapters.store.chain import head, parse_head

    state = state_of(ctx)
    if head_only and expect_head is not None:
        # --head walks nothing: the kept head would go unchecked while the command exits 0.
        raise typer.BadParameter(
            "--head prints the head without walking: nothing checks --expect-head", param_hint="--head"
        )
    kept = None if expect_head is None else parse_head(expect_head, "expect_head")
    refuse_a_missing_ledger(state.db, "nothing to verify")
    # Not sealing on the way in: a chain emptied behind the ledger's back must read as
    # unlinked events here, not be sealed over them by this very command.
    with state.ledger(seal_legacy=False) as ledger:
        if head_only:
            position, digest = head(ledger.app.recorder)
            state.output({"head_position": position, "head_hash": digest}, lambda: typer.echo(f"{position}:{digest}"))
            return
        result = verify_ledger(ledger, kept)  # snapshots, keys and read models are not chained: checked too

    def human() -> None:
        _say(f"checked {plural(result['checked'], 'event')}; head {result['head_position']}:{result['head_hash']}")
        bad = result["first_bad"]
        if bad is None:
            _say("chain intact" + ("" if kept is None else f", through the kept head at {kept[0]}"))
        else:
            where = "" if bad["stream"] is None else f" (stream {bad['stream']}, version {bad['version']})"
            _say(f"TAMPERED: event {bad['position']}{where} {bad['kind']}: {bad['reason']}")
        snapshots = result["snapshots"]
        for snap in snapshots["bad"]:
            _say(f"TAMPERED: snapshot of stream {snap['stream']} at version {snap['version']}: {snap['reason']}")
        if snapshots["checked"] and not snapshots["bad"]:
            agree = "agrees with its events" if snapshots["checked"] == 1 else "agree with their events"
            _say(f"{plural(snapshots['checked'], 'snapshot')} {agree}")
        for fault in result["guard"]["bad"]:
            _say(f"TAMPERED: append-only guard: {fault}")
        keys, models = result["keys"], result["read_models"]
        for key in keys["bad"]:
            _say(f"TAMPERED: key of subject {key['subject']}: {key['reason']}")
        if keys["checked"] and not keys["bad"]:  # what was checked, said as the snapshots are
            # Counted apart as `keys status` counts them: the ledger's own keys are no subject's.
            subjects, own = keys["checked"] - keys["own"], keys["own"]
            named = [plural(subjects, "subject key")] if subjects else []
            named += [f"{plural(own, 'key')} of the ledger's own"] if own else []
            _say(f"{' and '.join(named)} {_agree(keys['checked'], 'open')} under the master key")
        for model in models["bad"]:
            _say(f"TAMPERED: read model {model['read_model']}: {model['reason']}")
        if models.get("unsettled"):
            _say(f"NOT CHECKED: the audit and history read models: {models['unsettled']}")
        elif models["checked"] and not models["bad"]:
            rows = plural(models["checked"], "audit and history row")
            _say(f"{rows} {_agree(models['checked'], 'agree')} with their events")

    state.output(result, human)
    if not result["ok"]:
        raise typer.Exit(1)


def _say(line: str) -> None:
    """One line of verify's report, escaped: what it names comes from the very rows it
    distrusts (a read model's keys, a key row's subject), and a tampered value must not
    drive the terminal over the verdict (erase the TAMPERED line, print "chain intact")."""
    typer.echo(safe(line))


def _agree(count: int, verb: str) -> str:
    """`verb` agreeing with `count` things: `1 key opens`, `2 keys open`."""
    return f"{verb}s" if count == 1 else verb
