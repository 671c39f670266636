"""Tamper evidence: a hash chain over every stored event, written in the append's transaction.

Each event's link is `sha256(previous link, position, stream id, version, topic, state)`
and is stored in `ledger_chain` by the transaction that stores the event (the recorder
subclasses below), so no event is ever unsealed. `verify` walks events and links together
and names the first event that was altered, removed or inserted. A rewrite of the events
*and* of every later link is consistent with itself: it is caught by the head (position
and link) an auditor keeps elsewhere, `verify(recorder, expect=(position, link))`.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Composed, Identifier

CHAIN_TABLE = "ledger_chain"
GENESIS = bytes(32)
BATCH = 5000
_HEADER = struct.Struct(">Q16sQI")  # position, stream id, version, topic length


def link(previous: bytes, position: int, stream: uuid.UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The chain link of one event: one function for writing and verifying."""
    stream_bytes = stream.bytes if isinstance(stream, uuid.UUID) else uuid.UUID(stream).bytes
    topic_bytes = topic.encode()
    header = _HEADER.pack(position, stream_bytes, version, len(topic_bytes))
    return hashlib.sha256(previous + header + topic_bytes + state).digest()


def _links(previous: bytes, ids: Sequence[int], events: Sequence[StoredEvent]) -> list[tuple[int, bytes]]:
    rows = []
    for position, event in zip(ids, events, strict=True):
        previous = link(previous, position, event.originator_id, event.originator_version, event.topic, event.state)
        rows.append((position, previous))
    return rows


@dataclass(frozen=True)
class _Statements:
    """The chain's SQL in one dialect."""

    create: Any
    last: Any  # position, hash of the last link
    after: Any  # links after a position, in order, at most N
    insert: Any
    events_after: Any  # notification id, originator id, version, topic, state after a position

    @staticmethod
    def sqlite(events_table: str) -> _Statements:
        return _Statements(
            create=f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
            last=f"SELECT position, hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1",
            after=f"SELECT position, hash FROM {CHAIN_TABLE} WHERE position > ? ORDER BY position LIMIT ?",
            insert=f"INSERT INTO {CHAIN_TABLE} (position, hash) VALUES (?, ?)",
            events_after=f"SELECT rowid, originator_id, originator_version, topic, state FROM {events_table} "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
        )

    @staticmethod
    def postgres(schema: str, events_table: str) -> _Statements:
        chain, events = Identifier(schema, CHAIN_TABLE), Identifier(schema, events_table)

        def sql(text: str) -> Composed:
            return SQL(text).format(chain=chain, events=events)

        return _Statements(
            create=sql("CREATE TABLE IF NOT EXISTS {chain} (position bigint PRIMARY KEY, hash bytea NOT NULL)"),
            last=sql("SELECT position, hash FROM {chain} ORDER BY position DESC LIMIT 1"),
            after=sql("SELECT position, hash FROM {chain} WHERE position > %s ORDER BY position LIMIT %s"),
            insert=sql("INSERT INTO {chain} (position, hash) VALUES (%s, %s)"),
            events_after=sql(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
                "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            ),
        )


def _row(row: Any) -> tuple[Any, ...]:
    # The library's cursors yield sqlite3.Row on SQLite and dict rows on PostgreSQL.
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _append_links(curs: Any, sql: _Statements, ids: Sequence[int], events: Sequence[StoredEvent]) -> None:
    curs.execute(sql.last)
    last = curs.fetchone()
    previous = GENESIS if last is None else bytes(_row(last)[1])
    curs.executemany(sql.insert, _links(previous, ids, events))


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """Appends the events' links in the append's own transaction. SQLite has one writer at
    a time and the events are inserted first, so the last link read here is the latest."""

    def construct_create_table_statements(self) -> list[str]:
        self.chain_sql = _Statements.sqlite(self.events_table_name)
        return [*super().construct_create_table_statements(), self.chain_sql.create]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:
            _append_links(c, self.chain_sql, ids, stored_events)
        return ids


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """Appends the events' links in the append's own transaction, after the library's
    `LOCK TABLE ... IN EXCLUSIVE MODE` has serialised appends: the last link is the latest."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        if datastore.enable_db_functions:  # that path inserts without passing through our hook
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_sql = _Statements.postgres(datastore.schema, self.events_table_name)
        self.sql_create_statements.append(self.chain_sql.create)

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            _append_links(curs, self.chain_sql, ids, stored_events)
        return ids


def _query(recorder: Any, statement: Any, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(statement, params)
        return [_row(row) for row in curs.fetchall()]


def _batched(recorder: Any, statement: Any) -> Iterator[tuple[Any, ...]]:
    """Rows of a `position > ? ... LIMIT ?` statement, all of them, in batches."""
    position = 0
    while True:
        rows = _query(recorder, statement, (position, BATCH))
        yield from rows
        if len(rows) < BATCH:
            return
        position = rows[-1][0]


# Verifying


@dataclass(frozen=True)
class BadEvent:
    position: int
    stream: str | None
    version: int | None
    kind: str  # "altered", "removed", "inserted" or "rewritten"
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    head_position: int | None
    head_hash: str  # hex: with the position, what an auditor keeps
    first_bad: BadEvent | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def head(recorder: Any) -> tuple[int | None, str]:
    """The chain's last position and link (hex), without walking it."""
    rows = _query(recorder, recorder.chain_sql.last)
    return (None, GENESIS.hex()) if not rows else (int(rows[0][0]), bytes(rows[0][1]).hex())


def verify(recorder: Any, expect: tuple[int, str] | None = None) -> VerifyReport:
    """Walks every event with its link and stops at the first that does not hold. `expect`
    is a (position, hex link) an auditor kept: the chain must still pass through it."""
    sql = recorder.chain_sql
    events, links = _batched(recorder, sql.events_after), _batched(recorder, sql.after)
    previous, checked, position = GENESIS, 0, None
    kept: str | None = None
    event, chained = next(events, None), next(links, None)
    while event is not None or chained is not None:
        bad = _compare(event, chained, previous)
        if bad is not None:
            return VerifyReport(checked, position, previous.hex(), bad)
        assert chained is not None
        position, previous, checked = int(chained[0]), bytes(chained[1]), checked + 1
        if expect is not None and position == expect[0]:
            kept = previous.hex()
        event, chained = next(events, None), next(links, None)
    if expect is not None and kept != expect[1].lower():
        found = "no link" if kept is None else f"link {kept}"
        reason = f"the auditor's head is {expect[1]}, the chain has {found} at that position"
        return VerifyReport(checked, position, previous.hex(), BadEvent(expect[0], None, None, "rewritten", reason))
    return VerifyReport(checked, position, previous.hex(), None)


def _compare(event: tuple[Any, ...] | None, chained: tuple[Any, ...] | None, previous: bytes) -> BadEvent | None:
    if event is not None and (chained is None or event[0] < chained[0]):
        return BadEvent(event[0], str(event[1]), event[2], "inserted", "an event the chain never linked")
    if chained is not None and (event is None or chained[0] < event[0]):
        return BadEvent(chained[0], None, None, "removed", "the chain links an event that is gone")
    assert event is not None and chained is not None
    position, stream, version, topic, state = event
    if link(previous, position, stream, version, topic, bytes(state)) != bytes(chained[1]):
        reason = "its stream, version, topic, state or position differ from what was linked"
        return BadEvent(position, str(stream), version, "altered", reason)
    return None


# Sealing events stored before the chain existed


def seal_unchained(recorder: Any) -> int:
    """Links the events past the chain's end (a ledger written before the chain existed),
    in one write transaction serialised as appends are. Returns how many it linked."""
    last, _hash = head(recorder)
    if (recorder.max_notification_id() or 0) <= (last or 0):
        return 0  # the usual case: nothing to seal, no write lock taken
    sql: _Statements = recorder.chain_sql
    sealed = 0
    with recorder.datastore.transaction(commit=True) as curs:
        for statement in getattr(recorder, "lock_table_statements", ()):  # PostgreSQL's append lock
            curs.execute(statement)
        curs.execute(sql.last)
        found = curs.fetchone()
        position, previous = (0, GENESIS) if found is None else (int(_row(found)[0]), bytes(_row(found)[1]))
        while True:
            curs.execute(sql.events_after, (position, BATCH))
            rows = [_row(r) for r in curs.fetchall()]
            if not rows:
                return sealed
            events = [StoredEvent(r[1], r[2], r[3], bytes(r[4])) for r in rows]
            links = _links(previous, [int(r[0]) for r in rows], events)
            curs.executemany(sql.insert, links)
            sealed += len(links)
            position, previous = links[-1]
