"""The auditor's read models checked by `ledger verify`: the audit trail and the history index.

`ledger audit` reads the audit read model, and `history` takes each event's time and actor
from the history read model: rows that the hash chain does not cover. A row deleted or
altered in the database hid an action from the audit trail, or put another actor on an
event, while `verify` said intact. So verify builds both read models again from the
events, in a scratch SQLite file, and compares them row by row with the ledger's, up to
the position both have reached (`projections rebuild --force audit history` mends them).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from domain.errors import UnknownEventType
from domain.times import as_utc
from projections.database import ReadModelDatabase
from projections.registry import build_projections
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger
    from projections.projection import Projection

SHOWN = 3  # differing rows named per read model


@dataclass(frozen=True)
class BadReadModel:
    read_model: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"read_model": self.read_model, "reason": self.reason}


def check_read_models(ledger: Ledger) -> tuple[int, list[BadReadModel], str | None]:
    """(how many rows were compared, the differences found, why the differences prove
    nothing, when erasures kept coming)."""
    removed = _tail_removed(ledger)
    if removed is not None:
        return 0, [removed], None  # the comparison would stop short of the removed events anyway
    for _attempt in range(_ATTEMPTS):
        compared, bad, scratch_reached = _check_once(ledger)
        # An erasure appended meanwhile (by another process) rewrote rows the scratch had
        # built before it: a difference then may be the erasure's, not a tampering. Only
        # then is the whole check made again, with the erasure on both sides.
        if not bad or not _erased_after(ledger, scratch_reached):
            return compared, bad, None
    # Every attempt met an erasure appended meanwhile: its differences may all be those
    # erasures' (measured: erasures every 1.5 s beside a 15 s check), not a tampering.
    unsettled = (
        f"erasures were appended during each of {_ATTEMPTS} comparisons, so the differences found may be "
        "theirs: run it again when erasures pause"
    )
    return compared, [], unsettled


_ATTEMPTS = 3


def _erased_after(ledger: Ledger, position: int) -> bool:
    """Whether an event that erases a subject was stored after `position`."""
    from domain.personal import erasing_topics

    found = ledger.app.recorder.select_notifications(
        start=position, limit=1, topics=erasing_topics(), inclusive_of_start=False
    )
    return bool(found)


def _check_once(ledger: Ledger) -> tuple[int, list[BadReadModel], int]:
    """(rows compared, differences found, the lowest position the scratch copies reached)."""
    from adapters.bootstrap import recorded_skips

    live = [ledger.projections.audit, ledger.projections.history]
    app = ledger.app
    with tempfile.TemporaryDirectory(prefix="ledger-verify-") as folder:
        scratch = ReadModelDatabase(f"sqlite:///{folder}/read_models.db", {})
        try:
            built = build_projections(sa.MetaData(), ledger.timezone)
            fresh: list[Projection] = [built.audit, built.history]
            runner = ProjectionRunner(
                scratch, app.recorder, app.mapper, fresh, skip_log=lambda name: recorded_skips(app, name)
            )
            runner.setup()
            runner.catch_up()
            reached = {s.name: s.position or 0 for s in runner.status()}
            ledger.runner.catch_up(live)
            # A stalled one too, up to where it stopped: each batch commits its rows with its
            # position, so they are whole up to there (left out, its rows went unchecked).
            live_reached = {s.name: s.position or 0 for s in ledger.runner.status()}
            compared, bad = 0, []
            for mine, theirs in zip(live, fresh, strict=True):
                if mine.stable_name not in live_reached:
                    continue
                bound = min(reached.get(theirs.stable_name, 0), live_reached[mine.stable_name])
                count, found = _compare(ledger.read_models, mine, scratch, theirs, bound)
                compared += count
                bad += [BadReadModel(mine.stable_name, reason) for reason in found]
            for mine in live:
                bad += [BadReadModel(mine.stable_name, reason) for reason in _past_the_head(ledger, mine)]
        finally:
            scratch.engine.dispose()
    return compared, bad, min(reached.values(), default=0)


def _past_the_head(ledger: Ledger, live: Projection) -> list[str]:
    """Rows at a position past the store's last event, which the comparison (up to where
    both copies reached) never reads, while `ledger audit` lists them: forged. The rows
    first, then the head: it only grows, so a row another process applied meanwhile is
    at or below it."""
    start = ledger.app.recorder.max_notification_id() or 0
    candidates: list[tuple[str, str, int]] = []
    with ledger.read_models.connect() as conn:
        for table in live.tables:
            column = _position_column(table)
            if column is None:
                continue
            name = table.name[len(live.storage_name) :].lstrip("_")
            beyond = sa.select(column).where(column > start).order_by(column).limit(SHOWN)
            candidates += [(name, column.name, int(p)) for p in conn.execute(beyond).scalars()]
    head = ledger.app.recorder.max_notification_id() or 0
    return [
        f"table {name}: a row {column}={position} that no event gives (past the store's last event, {head})"
        for name, column, position in candidates
        if position > head
    ]


def _position_column(table: sa.Table) -> sa.Column[Any] | None:
    """The column holding the position of the event a row comes from, if any."""
    column = table.c.get("position")
    if column is None:
        column = table.c.get("number")  # the history's streams: the position of their first event
    return column


def _tail_removed(ledger: Ledger) -> BadReadModel | None:
    """Read models record how far they have applied the events: one past the store's last
    event applied events that are gone. The tail of the store was deleted, links and all,
    which the chain's walk alone cannot tell from a shorter ledger."""
    # The positions first, then the head: the head only grows, so an event appended and
    # applied by another process between the two reads is not taken for one removed.
    applied = ledger.runner.status()
    head = ledger.app.recorder.max_notification_id() or 0
    ahead = [s for s in applied if (s.position or 0) > head]
    if not ahead:
        return None
    furthest = max(ahead, key=lambda s: s.position or 0)
    reason = (
        f"it records having applied the events up to position {furthest.position}, "
        f"but the store's last event is at {head}: "
        f"the events after {head} were removed, with their links, or its position in projection_tracking was "
        "moved past them (then it skips as many new events)"
    )
    return BadReadModel(furthest.name, reason)


def _compare(
    live_db: ReadModelDatabase, live: Projection, scratch_db: ReadModelDatabase, fresh: Projection, bound: int
) -> tuple[int, list[str]]:
    """Walks both copies of each table together in key order (a merge), so that memory
    stays flat however long the trail: reading each whole into a dict took 226 MB at
    145,000 events, twice over."""
    compared, found = 0, []
    live_tables = {t.name[len(live.storage_name) :]: t for t in live.tables}
    for table in fresh.tables:
        suffix = table.name[len(fresh.storage_name) :]
        name = suffix.lstrip("_")
        # A table without a primary key (a batch's entities) is keyed by all its columns: by
        # an empty key, every row but one went unchecked.
        keys = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
        tell = _Differences(name)
        with scratch_db.connect() as scratch_conn, live_db.connect() as live_conn:
            theirs = _ordered(scratch_conn, table, keys, bound, tell)
            mine = _ordered(live_conn, live_tables[suffix], keys, bound, tell)
            row, expected = next(mine, None), next(theirs, None)
            while row is not None or expected is not None:
                if expected is None or (row is not None and row[0] < expected[0]):
                    assert row is not None
                    compared += 1
                    tell(f"a row {_key(keys, row[0])} that no event gives")
                    row = next(mine, None)
                elif row is None or expected[0] < row[0]:
                    tell(f"no row {_key(keys, expected[0])}, which the events give")
                    expected = next(theirs, None)
                else:
                    compared += 1
                    if row[1] != expected[1]:
                        differ = ", ".join(c for c in row[1] if row[1][c] != expected[1].get(c))
                        tell(f"the row {_key(keys, row[0])} differs from its events in {differ}")
                    row, expected = next(mine, None), next(theirs, None)
        found += tell.lines()
    return compared, found


class _Differences:
    """The differences found in one table: the first SHOWN told, the rest counted."""

    def __init__(self, table: str) -> None:
        self._table = table
        self._told: list[str] = []
        self._more = 0

    def __call__(self, reason: str) -> None:
        if len(self._told) < SHOWN:
            self._told.append(f"table {self._table}: {reason}")
        else:
            self._more += 1

    def lines(self) -> list[str]:
        return self._told + ([f"table {self._table}: {self._more} more rows differ"] if self._more else [])


def _key(names: list[str], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


_CHUNK = 2000  # rows fetched at a time from either copy


def _ordered(
    conn: sa.Connection, table: sa.Table, keys: list[str], bound: int, unreadable: Callable[[str], None]
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The table's rows up to `bound` as (key, plain values), in the order Python sorts the
    keys: text in byte order on PostgreSQL too (its own collation may differ from SQLite's,
    and a merge needs one order on both sides). A row that does not decode is told to
    `unreadable` and left out."""
    column = _position_column(table)
    bytewise = conn.dialect.name == "postgresql"
    order = [
        sa.collate(table.c[k], "C") if bytewise and isinstance(table.c[k].type, sa.String) else table.c[k] for k in keys
    ]
    # The stored values as the driver gives them, each decoded here as the column's type
    # would: SQLite keeps any text in a JSON or time column, and one that no longer decodes
    # is a row to name (`unreadable`), not a failure of the whole check.
    names = [c.name for c in table.columns]
    raw = [sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in table.columns]
    statement = sa.select(*raw).order_by(*order)
    if column is not None:
        statement = statement.where(column <= bound)
    result = conn.execution_options(yield_per=_CHUNK).execute(statement)
    driver_types = [described[1] for described in result.cursor.description]  # as SQLAlchemy passes them
    decoders = [
        c.type.dialect_impl(conn.dialect).result_processor(conn.dialect, driver_type)
        for c, driver_type in zip(table.columns, driver_types, strict=True)
    ]
    for row in result:
        values: dict[str, Any] = {}
        for name, stored, decode in zip(names, row, decoders, strict=True):
            try:
                values[name] = stored if decode is None else decode(stored)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                unreadable(
                    f"the row {_key(keys, tuple(row._mapping[k] for k in keys))} does not read back ({name}: {exc})"
                )
                break
        else:
            yield tuple(values[k] for k in keys), {k: _plain(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    """A value as both backends read it back: UTC times, JSON as sorted text."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def verify_ledger(ledger: Ledger, expect: tuple[int, str] | None = None) -> dict[str, Any]:
    """What `ledger verify` and `/v1/verify` answer: the store's check (`verify_store`: the
    chain, snapshots and keys) and the auditor's read models, `ok` only when all hold."""
    from adapters.store.snapshot_check import verify_store

    result = verify_store(ledger.app, expect)
    if not result["ok"]:
        # Read models are built from the events with the keys: against a store already
        # found altered, a comparison says nothing more (and its reads may fail on it).
        return result | {"read_models": {"checked": 0, "bad": [], "unsettled": None}}
    try:
        checked, bad, unsettled = check_read_models(ledger)
    except UnknownEventType as exc:
        # The chain, intact, holds it: a newer release appended it. Not checked, and not
        # the refusal's advice, which is to run this very command.
        checked, bad, unsettled = 0, [], f"{exc.found}: a newer release wrote it, so verify with that release"
    # `unsettled`: not ok, and not said to be altered either.
    models = {"checked": checked, "bad": [b.to_json() for b in bad], "unsettled": unsettled}
    return result | {"read_models": models, "ok": not bad and unsettled is None}
