"""`ledger projections ...`: the read models' versions, positions and stalls, a follower that
keeps them current for other processes, rebuilds of new projection versions (or, forced, of
the active one), and skipping the one event a stalled read model cannot apply.

These commands open the ledger without building pending versions first
(`build_pending=False`): `status` shows them, `rebuild` builds them with a progress bar,
`run` builds them as it follows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import (
    Interrupted,
    State,
    Terminated,
    between_batches,
    open_ledger,
    refuse_a_missing_ledger,
    state_of,
    stopped_by,
)
from adapters.cli.render import new_table, plural, print_table, safe
from domain.errors import InvalidAPIParameters, ReadModelStalled
from domain.shown import shown_key

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.bootstrap import Ledger
    from domain.projection_ops import Stall
    from projections.projection import Projection
    from projections.runner import ProjectionRunner
    from projections.status import ProjectionStatus

projections_app = typer.Typer(
    no_args_is_help=True,
    help="Read models: versions, lag and stalls, a follower process, rebuilds, skips.",
)


# adapters.rebuild.PARALLEL_FROM, spelled out for the help of `rebuild --workers`: declaring
# the options must not load the store (a test keeps the two equal).
PARALLEL_FROM = 50_000

# The longest poll a follower waits: a sleep of `inf` (or 1e300) seconds overflows the
# platform's time_t, and a follower that wakes less than daily keeps nothing current.
MAX_POLL_INTERVAL = 86_400.0

# A batch is one SQL LIMIT, a BIGINT: a larger one failed the first read with an
# OverflowError (an `internal error`) instead of a usage error.
MAX_BATCH_SIZE = 2**63 - 1

BatchSizeOption = Annotated[
    int | None,
    typer.Option(
        min=1, max=MAX_BATCH_SIZE, metavar="N", help="Events applied per transaction, a count (default 1000)."
    ),
]


@contextmanager
def _ledger(state: State) -> Iterator[Ledger]:
    with open_ledger(state.db, build_pending=False) as ledger:
        yield ledger


@projections_app.command("status")
def status(ctx: typer.Context) -> None:
    """Each read model's active version, position, the event store's head and the lag
    between them; a newer version this code builds shows as pending, with its position, and
    a forced rebuild not finished as `unfinished forced rebuild at N`, with the command that
    finishes it (nothing records whether a rebuild is running). A read model whose handler failed shows
    `stalled at position N: <cause>`; `skips` counts the events operators told it to skip."""
    state = state_of(ctx)
    refuse_a_missing_ledger(state.db)
    with _ledger(state) as ledger:
        found = ledger.runner.status()
        ours = {p.stable_name for p in ledger.runner.projections}
        batch = ledger.runner.batch_size

    def show() -> None:
        print_table(_status_table(found))
        for note in (_pending_note(found), _unfinished_note(found), _other_zones_note(found, ours, batch)):
            if note is not None:
                typer.echo(note)

    state.output([s.to_json() for s in found], show)


def _status_table(found: list[ProjectionStatus]) -> Table:
    from projections.status import describe_stall

    table = new_table("projection", "version", "position", "head", "lag", "state", "pending", "skips")
    for s in found:
        building = []
        skipped = {skip.position for skip in s.skips}
        if s.pending_version is not None:
            building.append(f"v{s.pending_version} at {s.pending_position}" + _stalled(s.pending_stall, skipped))
        if s.rebuild_position is not None:
            building.append(f"unfinished forced rebuild at {s.rebuild_position}" + _stalled(s.rebuild_stall, skipped))
        if s.pending_in_own_zone is not None:
            building.append(f"v{s.pending_in_own_zone} in its zone (see below)")
        state = "ok" if s.stall is None else describe_stall(s.stall)
        skips = "-"
        if s.skips:
            last = s.skips[-1]
            skips = f"{len(s.skips)} (last: position {last.position} of v{last.version}, {last.reason})"
        table.add_row(
            s.name, str(s.version), _number(s.position), str(s.head), _number(s.lag), state,
            "; ".join(building) or "-", skips,
        )  # fmt: skip
    return table


def _pending_note(found: list[ProjectionStatus]) -> str | None:
    """Under the table, for this code's pending versions not stalled: a bare `v2 at 290`
    said neither what moves it (nothing records whether a build runs), what to type, nor
    that its switch takes the reads of old-code processes down."""
    pending = [f"{s.name} v{s.pending_version} at {s.pending_position}" for s in found if _building(s)]
    if not pending:
        return None
    it = "it where it" if len(pending) == 1 else "them where they"
    return (
        f"Pending: {', '.join(pending)}. A pending version moves only while `ledger projections rebuild`, a "
        "`ledger projections run` follower or a process of this code opening the ledger builds it, and nothing "
        f"records whether one runs now: if none does, `ledger projections rebuild` builds {it} stopped "
        "(the active version serves reads meanwhile). Once built it is switched in, and processes of older code "
        "then refuse every read (503 `ledger_read_model_version`): start this code's servers first."
    )


def _building(s: ProjectionStatus) -> bool:
    return s.pending_version is not None and s.pending_stall is None


def _unfinished_note(found: list[ProjectionStatus]) -> str | None:
    """Under the table, for forced rebuilds left unfinished and not stalled: only
    `projections rebuild` moves one (the follower and queries never do) and nothing records
    whether one runs, so a bare "rebuild at N" left by a killed run read as work in progress."""
    names = [s.name for s in found if s.rebuild_position is not None and s.rebuild_stall is None]
    if not names:
        return None
    # Several: the bare command resumes them all ("rebuild [NAME]" left brackets to type).
    listed = ", ".join(names)
    finishes = f"`ledger projections rebuild` finishes them where they stopped ({listed}; or name one of them)"
    if len(names) == 1:
        finishes = f"`ledger projections rebuild {names[0]}` finishes it where it stopped"
    return (
        "An unfinished forced rebuild moves only while `ledger projections rebuild` runs, and nothing records "
        f"whether one runs now: if none does, {finishes} (reads stay on the active version meanwhile)."
    )


def _other_zones_note(found: list[ProjectionStatus], ours: set[str], batch: int) -> str | None:
    """Under the table (and after a rebuild), for other time zones' usage models older than
    this code's: `projections rebuild` here leaves them as they are, and the first process
    of that zone to open the ledger builds the new version before it answers (a `ledger
    serve` of that zone does not listen until then). Without it, an upgrade done in one
    zone showed every read model current and left the other zone's build to its users.
    Also for those of this code's version that lag (`ours`: this process's read models):
    no follower of this zone moves them, and a zone that no process had read in lagged the
    whole history, shown as `ok` with nothing to type."""
    from zoneinfo import available_timezones

    from projections.status import worth_catching_up
    from projections.usage import UsageProjection, zone_key

    older = [s for s in found if s.pending_in_own_zone is not None]
    # Worth a catch-up (a smaller lag is what its zone's next read catches up: named, it read
    # as a step to take after every command); the rule rebuild catches up by (`_behind`).
    behind = [
        s
        for s in found
        if s.name not in ours
        and s.pending_in_own_zone is None
        and s.position is not None
        and worth_catching_up(s.position, s.head, batch)
    ]
    if not older and not behind:
        return None
    zones = {zone_key(zone): zone for zone in available_timezones()}

    def command(s: ProjectionStatus) -> str:
        zone = zones.get(s.name.removeprefix(UsageProjection.name + "_"), "ZONE")
        return f"`LEDGER_TIMEZONE={zone} ledger projections rebuild {UsageProjection.name}`"

    lines = [
        f"{s.name} is at v{s.version} and this code's is v{s.pending_in_own_zone}: it is another time zone's "
        "read model, which the first process of that zone to open the ledger builds before it answers; "
        f"to build it now: {command(s)}"
        for s in older
    ] + [
        f"{s.name} lags {plural(s.lag or 0, 'event')}: it is another time zone's read model, which a process of "
        f"that zone catches up when it reads it (a follower keeps its own zone's only); to catch it up now: "
        f"{command(s)}"
        for s in behind
    ]
    return "\n".join(lines)


def _stalled(stall: Stall | None, skipped: set[int]) -> str:
    """A build's stall; one on an event skipped since is passed only when a rebuild resumes
    the build (a skip catches up the active version alone), which the line says."""
    from projections.status import describe_stall

    if stall is None:
        return ""
    resumes = " (skipped since: `ledger projections rebuild` steps over it)" if stall.position in skipped else ""
    return f", {describe_stall(stall)}{resumes}"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


@projections_app.command("run")
def run(
    ctx: typer.Context,
    poll_interval: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=MAX_POLL_INTERVAL,
            metavar="SECONDS",
            help="Longest wait between catch-ups, in seconds (PostgreSQL wakes sooner).",
        ),
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Catch up once and exit.")] = False,
    batch_size: BatchSizeOption = None,
) -> None:
    """Follow the event store and keep every read model current (and build pending
    versions), until SIGTERM or Ctrl-C. On PostgreSQL a LISTEN on the events channel wakes
    it at once; the poll interval bounds the wait if a notification is lost. On SQLite it polls.
    A read model whose handler fails stalls there with a warning; the others go on."""
    from adapters.follow import follow
    from projections.status import describe_stall

    state = state_of(ctx)
    # A follower on a mistyped path or schema made an empty ledger there and followed it for good.
    refuse_a_missing_ledger(state.db, "nothing to follow")
    reached = 0

    def caught_up(position: int) -> None:
        nonlocal reached
        reached = position

    # SIGTERM and Ctrl-C stop it between two batches or while it waits for the next poll:
    # raised wherever they landed, one inside psycopg's call left PostgreSQL's connection
    # busy, and the cleanup's error replaced the interrupt.
    with between_batches() as stop, _ledger(state) as ledger:
        if batch_size is not None:
            ledger.runner.batch_size = batch_size
        if not once:
            typer.echo(f"following {ledger.config.kind} (poll every {poll_interval}s)", err=True)
        try:
            reached = follow(ledger, poll_interval, once=once, on_position=caught_up, stop=stop)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`)
            how, code = stopped_by(isinstance(exc, Terminated))
            reached = _stopped_at(ledger, reached)
            if once:  # a catch-up cut short is unfinished work, as a rebuild's is
                raise Interrupted(
                    f"catch-up stopped by {how} with the read models at position {reached}", code
                ) from None
            # Stopping is how a follower ends (a service manager sends SIGTERM): a success,
            # as for `ledger serve`, said on stderr beside the position.
            typer.echo(f"follower stopped by {how}", err=True)
        stalled = {s.name: s.stall for s in ledger.runner.status() if s.stall is not None} if once else {}
    state.output({"position": reached}, lambda: typer.echo(f"read models at position {reached}"))
    if stalled:  # --once is for scripts: a read model left behind is not a success
        name, stall = next(iter(stalled.items()))
        others = f" (and {plural(len(stalled) - 1, 'other read model')})" if len(stalled) > 1 else ""
        raise ReadModelStalled(
            f"read model {name} is {describe_stall(stall)}{others}: see `ledger projections status`",
            projection=name,
            position=stall.position,
            cause=stall.cause,
        )


def _stopped_at(ledger: Ledger, reached: int) -> int:
    """Where the read models stand once a follower stopped, whoever moved them (another
    process, or this one in a catch-up cut short), not only what its loop saw last."""
    with suppress(Exception):  # after a second signal the database may refuse a read: said anyway
        reached = max(reached, _standing(ledger))
    return reached


@projections_app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="A projection (default: every pending one).")
    ] = None,
    batch_size: BatchSizeOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help=f"Processes sharing the projections, a count (default: one per core from {PARALLEL_FROM} events on).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also rebuild active versions from the first event (a fixed handler, a damaged table).",
        ),
    ] = False,
) -> None:
    """Build the pending version of projections whose version this code raised, in new
    tables from the first event, while the old version keeps serving; then switch reads to
    it and drop the old tables. With --force, the active version of the named projection
    (default: every one) is rebuilt the same way even though its version did not change.
    Safe to kill: running it again (with or without --force) resumes where it stopped.
    Without --force, a named read model never caught up or a batch or more behind the head
    (a time zone's usage model no process of that zone has read in) is caught up too. Exits 1 if a
    rebuilt projection stalled on an event its handler cannot apply, or if without --force
    a named read model (any, with no NAME and nothing pending) is stalled."""
    from adapters.rebuild import catch_up as parallel_catch_up
    from projections.status import describe_stall, ways_out

    state = state_of(ctx)
    # Opened on a mistyped path or schema, it made an empty ledger there: "nothing to rebuild", exit 0.
    refuse_a_missing_ledger(state.db, "nothing to rebuild")
    with between_batches() as stop, _ledger(state) as ledger:
        runner = ledger.runner
        named = _projections(runner, name)
        runner.batch_size = batch_size or runner.batch_size
        chosen = [p for p in runner.pending() if p in named]
        others = [p for p in named if p not in chosen]
        # A forced rebuild in progress is resumed by any rebuild of its projection.
        chosen += runner.force(others) if force else runner.builds([p.versioned_name for p in others])
        lags = [] if force else _behind(ledger, [p for p in others if p.versioned_name not in _versions_of(chosen)])
        behind = [p for p, _lag in lags]
        if chosen or behind:
            try:
                with _progress_bar() as update:

                    def step(position: int, head: int) -> None:  # called between batches
                        update(position, head)
                        stop.check()

                    parallel_catch_up(ledger, chosen + behind, workers, progress=step)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`)
                raise _stopped(runner, chosen, exc, name, behind) from None
        runner.drop_retired_tables()  # the replaced versions' tables (and any a killed run left)
        stalled = [stall for p in chosen if (stall := runner.stalled.get(p.storage_name)) is not None]
        left = (
            _left_stalled(runner, [p for p in named if p not in chosen]) if not force and (name or not chosen) else []
        )
        stable_names = {p.stable_name for p in named}
        ours = {p.stable_name for p in runner.projections}
        every = runner.status()
        found = [s for s in every if s.name in stable_names]
    if stalled:
        stall = stalled[0]
        raise ReadModelStalled(
            f"rebuild of {stall.stable_name} {describe_stall(stall)}: {ways_out(stall, 'the rebuild again')}",
            projection=stall.stable_name,
            position=stall.position,
            cause=stall.cause,
        )
    if left:
        # Without --force an active version is not rebuilt: a bare "nothing to rebuild" (exit
        # 0) read as if the stalled read model had been mended.
        stall = left[0]
        raise ReadModelStalled(
            f"read model {stall.stable_name} is {describe_stall(stall)}, and a rebuild without --force builds "
            f"only pending versions: {ways_out(stall, f'`ledger projections rebuild --force {stall.stable_name}`')}",
            projection=stall.stable_name,
            position=stall.position,
            cause=stall.cause,
        )
    done = []
    if chosen:
        done.append(
            "rebuilt "
            + ", ".join(f"{p.stable_name} v{p.version}" + (" (forced)" if p.generation else "") for p in chosen)
        )
    if behind:
        done.append("caught up " + ", ".join(f"{p.stable_name} v{p.version} ({plural(n, 'event')})" for p, n in lags))
    summary = "; ".join(done) or "nothing to rebuild: the read models are at this code's versions"
    data = {
        "rebuilt": [p.stable_name for p in chosen],
        "caught_up": [p.stable_name for p in behind],
        "forced": [p.stable_name for p in chosen if p.generation],
        "projections": [s.to_json() for s in found],
        "other_zones_pending": [s.name for s in every if s.pending_in_own_zone is not None],
    }
    # "rebuilt ..." or "nothing to rebuild" read as the whole upgrade done while another
    # zone's usage model still waited for its first process.
    zones = _other_zones_note(every, ours, runner.batch_size)
    state.output(data, lambda: typer.echo(summary if zones is None else f"{summary}\n{zones}"))


def _versions_of(chosen: list[Projection]) -> set[str]:
    """The versions these builds are of (a forced rebuild is its own Projection object)."""
    return {p.versioned_name for p in chosen}


def _behind(ledger: Ledger, active: list[Projection]) -> list[tuple[Projection, int]]:
    """Active read models, not stalled, worth a catch-up (never caught up, or a batch or
    more behind), with their lag: a new time zone's usage model (or one no process of its
    zone has read since), which `rebuild usage` in that zone said was "nothing to rebuild"
    at position 0, leaving the whole history to the zone's first report. The same rule
    as status's note names the command by, so that command always does something."""
    from projections.status import worth_catching_up

    runner = ledger.runner
    head = ledger.app.recorder.max_notification_id() or 0
    stored = runner.stored_positions()
    return [
        (p, head - stored.get(p.storage_name, 0))
        for p in active
        if p.storage_name not in runner.stalled
        and worth_catching_up(stored.get(p.storage_name, 0), head, runner.batch_size)
    ]


def _stopped(
    runner: ProjectionRunner,
    chosen: list[Projection],
    exc: KeyboardInterrupt,
    name: str | None,
    behind: Sequence[Projection] = (),
) -> Interrupted:
    """What an interrupted rebuild says: which read models it left unfinished, that reads
    stay on the tables they had, and the command that finishes them (a bare exit 143 said
    nothing, and Ctrl-C only "stopped by Ctrl-C")."""
    how, code = stopped_by(isinstance(exc, Terminated))
    try:
        runner.refresh()  # the workers' and this process's committed batches
        pending = {p.stable_name for p in runner.pending()}
        building = {key for key, (_generation, going) in runner.generations.items() if going}
        unfinished = [
            p.stable_name
            for p in chosen
            if (p.versioned_name in building if p.generation else p.stable_name in pending)
        ]
        if behind:
            head = runner.recorder.max_notification_id() or 0
            stored = runner.stored_positions()
            unfinished += [p.stable_name for p in behind if stored.get(p.storage_name, 0) < head]
    except Exception:  # the interrupted database may refuse a read: the message is said anyway
        unfinished = [p.stable_name for p in [*chosen, *behind]]
    # Without --force: it resumes the forced rebuilds in progress, where --force would also
    # start over those this run finished.
    again = "ledger projections rebuild" + (f" {name}" if name else "")
    if not unfinished:
        return Interrupted(f"rebuild stopped by {how} after every read model it rebuilt was switched in", code)
    return Interrupted(
        f"rebuild stopped by {how} with {plural(len(unfinished), 'read model')} unfinished "
        f"({', '.join(unfinished)}), still served from the tables they had; run `{again}` again to finish: "
        "it resumes where it stopped",
        code,
    )


def _left_stalled(runner: ProjectionRunner, active: list[Projection]) -> list[Stall]:
    """The stalls of these active versions once this process has tried their event again
    (a fixed handler gets past it, as in any process that has not tried it yet)."""
    stuck = [p for p in active if p.storage_name in runner.stalled]
    if stuck:
        runner.catch_up(stuck)
    return [stall for p in stuck if (stall := runner.stalled.get(p.storage_name)) is not None]


def _projections(runner: ProjectionRunner, name: str | None) -> list[Projection]:
    named = [p for p in runner.projections if name is None or _named(p, name)]
    if not named:
        if any(s.name == name for s in runner.status()):  # another time zone's usage read model
            raise InvalidAPIParameters(
                f"{name!r} is another time zone's usage read model: a process of that zone builds it "
                "(run this with LEDGER_TIMEZONE set to the zone, naming it `usage`)",
                field="name",
            )
        raise InvalidAPIParameters(f"no projection named {shown_key(name)}", field="name")
    return named


@projections_app.command("skip")
def skip(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="The stalled read model (usage_asia_seoul); a name several share (usage) means the one stalled.",
        ),
    ],
    position: Annotated[
        int,
        typer.Option(
            "--position",
            min=1,
            metavar="N",
            help="The event position it is stalled at (as `projections status` shows it).",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why; kept in the audit trail.")],
) -> None:
    """Step a stalled read model over the one event its handler cannot apply (the position
    `status` shows; any other is refused). The skip is an audited action (superadmin only,
    `ledger audit --entity-type projection`) and is honoured by every later rebuild of the
    same version; a new version reads the event again. The read model then catches up."""
    from domain.projection_ops import SkipProjectionEventAction
    from projections.status import describe_stall

    state = state_of(ctx)
    refuse_a_missing_ledger(state.db, "nothing to skip")  # a ledger made here has no stall
    with _ledger(state) as ledger:
        stable_name = _stalled_read_model(ledger.runner, name)
        action = SkipProjectionEventAction(projection=stable_name, position=position, reason=reason)
        result = state.run(ledger.processors.projection.skip_projection_event, action)
        ledger.runner.catch_up()
        (found,) = [s for s in ledger.runner.status() if s.name == stable_name]
        built_here = any(p.stable_name == stable_name for p in ledger.runner.projections)
    data = {
        "projection": result.projection,
        "version": result.version,
        "skipped": result.position,
        "cause": result.cause,
        "status": found.to_json(),
    }
    after = "now " + ("ok" if found.stall is None else describe_stall(found.stall))
    if not built_here:  # another zone's usage model: its stall stays recorded until its own zone catches it up
        after = "the processes that build it step over it as they catch up (this one does not build it)"
    state.output(
        data,
        lambda: typer.echo(
            safe(f"{result.projection} v{result.version} skips the event at position {result.position}; {after}")
        ),
    )


def _named(projection: Projection, name: str) -> bool:
    return name in (projection.name, projection.stable_name)


def _stalled_read_model(runner: ProjectionRunner, name: str) -> str:
    """The read model a skip of `name` means: by its full name, any `status` lists (another
    time zone's usage model too: only this process's zone is a projection here), or by the
    name of the projection it is a read model of (`usage`, one per zone), as `rebuild` takes
    it. Of several, the only one stalled; else a usage error naming them all, since taking
    the first refused a stalled zone's skip as 'not stalled'."""
    shared = {p.name for p in runner.projections if p.stable_name != p.name}  # usage: usage_utc, usage_asia_seoul
    recorded = dict.fromkeys([*(s.name for s in runner.status()), *(p.stable_name for p in runner.projections)])
    named = [r for r in recorded if r == name or (name in shared and r.startswith(f"{name}_"))]
    if not named:
        raise InvalidAPIParameters(f"no projection named {shown_key(name)}", field="name")
    stalled = [r for r in named if runner.stalls_of(r)]
    if len(named) > 1 and len(stalled) != 1:
        which = f"; stalled: {', '.join(stalled)}" if stalled else ", none stalled"
        raise typer.BadParameter(
            f"{name!r} names {plural(len(named), 'read model')} ({', '.join(named)}){which}: give the full name",
            param_hint="NAME",
        )
    return stalled[0] if len(named) > 1 else named[0]


@contextmanager
def _progress_bar() -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("rebuild", total=None)

        def update(position: int, head: int) -> None:
            progress.update(task, completed=position, total=head)

        yield update


def _standing(ledger: Ledger) -> int:
    """The position every read model of this code that is not stalled has reached: of a
    version this code builds (pending), the build's position, not that of the version
    still served, which stood at the head while the build was far behind."""
    ours = {p.stable_name for p in ledger.projections.all()}
    found = [
        (s.position, s.stall) if s.pending_version is None else (s.pending_position, s.pending_stall)
        for s in ledger.runner.status()
        if s.name in ours
    ]
    return min((position for position, stall in found if position is not None and stall is None), default=0)
