"""What every entity's commands share: its history, its state at a past time or version
(`show --at/--version`), and what changed between two points (`diff --from --to`).
Read from the event store; registers no command itself."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer

from adapters.cli.app import State
from adapters.cli.paging import LimitOption, fetch_size, output_page
from adapters.cli.render import fields_table, fmt, history_table, new_table, print_table
from domain.shown import shown_key
from domain.times import parse_point

# The paging options every `history` command takes (a group's holds two events per kernel
# it ever ran: read it a page at a time).
HistoryLimit = LimitOption
HistoryAfter = Annotated[
    int | None,
    typer.Option(
        "--after",
        min=0,
        metavar="POSITION",
        help="Start after the entry at this position: the cursor a previous --limit page printed.",
    ),
]
NewestFirst = Annotated[
    bool, typer.Option("--newest-first", help="The latest entry first (with --limit: the latest N).")
]


def show_history(
    state: State,
    entity_type: str,
    entity_id: str,
    limit: int | None = None,
    after: int | None = None,
    newest_first: bool = False,
) -> None:
    """Every event of an entity, across all its incarnations: who changed what, when;
    a page of them with `limit`, from `after`."""
    with state.reading() as ledger:
        queries = ledger.queries
        entries = queries.history(
            entity_type, entity_id, after=after, limit=fetch_size(limit), newest_first=newest_first
        )
        # A page past the last entry is empty; an entity without history is not found.
        unknown = not entries and (after is None or not queries.history(entity_type, entity_id, limit=1))
    if unknown:
        from adapters.read.timetravel import absent  # the state reads' wording; loaded once a ledger is

        raise absent(entity_type, entity_id)
    title = f"history of {entity_type} {shown_key(entity_id)}"
    output_page(
        state,
        entries,
        limit,
        lambda e: str(e.position),
        lambda e: e.to_json(),
        lambda shown: history_table(title, shown),
    )


def show_state(state: State, entity_type: str, entity_id: str, at: str | None, version: int | None) -> None:
    """An entity as it stood at a past time or version, read from the event store."""
    from adapters.read.timetravel import absent
    from domain.parsers import parse_positive_int
    from domain.times import parse_time

    moment = None if at is None else parse_time(at, "at")
    version = None if version is None else parse_positive_int(version, "version")  # versions start at 1
    with state.reading() as ledger:
        found = ledger.queries.state_at(entity_type, entity_id, at=moment, version=version)
    if found is None:
        raise absent(entity_type, entity_id, at)

    def human() -> None:
        status = " (deleted)" if found.deleted else ""
        when = found.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        title = f"{entity_type} {entity_id!r} at version {found.version}, {when}{status}"
        print_table(fields_table(found.fields, title))

    state.output(found.to_json(), human)


def show_diff(state: State, entity_type: str, entity_id: str, older: str, newer: str) -> None:
    """What changed in an entity between two versions or times: field, old, new."""
    from_version, from_at = parse_point(older, "older")  # the parameters: shown as --from, --to
    to_version, to_at = parse_point(newer, "newer")
    with state.reading() as ledger:
        changes = ledger.queries.diff(
            entity_type, entity_id, from_version=from_version, to_version=to_version, from_at=from_at, to_at=to_at
        )

    def human() -> None:
        table = new_table("field", "old", "new", title=f"{entity_type} {entity_id!r}: {older} -> {newer}")
        for field, change in changes.items():
            table.add_row(field, fmt(field, change["old"]), fmt(field, change["new"]))
        print_table(table)

    state.output(changes, human)
