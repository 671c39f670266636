"""Tamper evidence: a hash chain over every stored event, written in the append's transaction.

Each event's link is `sha256(previous link, position, stream id, version, topic, state)`
and is stored in `ledger_chain` by the transaction that stores the event (the recorders
below and in `chain_postgres`), so no event is ever unsealed. `verify` walks events and
links together and names the first event that was altered, moved, removed or inserted. A rewrite of the events
*and* of every later link is consistent with itself: it is caught by the head (position
and link) an auditor keeps elsewhere, `verify(recorder, expect=(position, link))`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from adapters.store.group_commit import GroupCommit
from adapters.store.quoting import quote_identifier
from adapters.store.reads import DirectReads
from domain.errors import DamagedEvent, InvalidAPIParameters
from domain.parsers import parse_positive_int

log = logging.getLogger(__name__)

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
class Statements:
    """The chain's SQL in one dialect."""

    create: Any
    last: Any  # position, hash of the last link
    insert: Any
    events_after: Any  # notification id, originator id, version, topic, state after a position, at most N
    links_after: Any  # links after a position, in order, at most N
    unlinked_after: Any  # the first event past a position that has no link
    below_first: Any  # the first event at a position below 1, which no append gives
    insert_arrays: Any = None  # many links at once, as two arrays (positions, hashes); None: one row each

    @staticmethod
    def sqlite(events_table: str) -> Statements:
        chain, events = quote_identifier(CHAIN_TABLE), quote_identifier(events_table)
        return Statements(
            create=f"CREATE TABLE IF NOT EXISTS {chain} (position INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
            last=f"SELECT position, hash FROM {chain} ORDER BY position DESC LIMIT 1",
            insert=f"INSERT INTO {chain} (position, hash) VALUES (?, ?)",
            events_after=f"SELECT rowid, originator_id, originator_version, topic, state FROM {events} "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
            links_after=f"SELECT position, hash FROM {chain} WHERE position > ? ORDER BY position LIMIT ?",
            unlinked_after=f"SELECT e.rowid, e.originator_id, e.originator_version FROM {events} e "
            f"LEFT JOIN {chain} c ON c.position = e.rowid WHERE e.rowid > ? AND c.position IS NULL "
            "ORDER BY e.rowid LIMIT 1",
            below_first=f"SELECT rowid, originator_id, originator_version FROM {events} WHERE rowid < 1 "
            "ORDER BY rowid LIMIT 1",
        )


def row_tuple(row: Any) -> tuple[Any, ...]:
    """A row's values in order: the library's cursors yield sqlite3.Row on SQLite and dict
    rows on PostgreSQL."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _blob(value: Any) -> bytes:
    """A stored state or link as bytes: a row edited behind the ledger's back may hold text
    or a number where a blob belongs (SQLite keeps any type), and verify must report it as
    altered, not fail on it. Its type is part of what is hashed: text of the very bytes the
    ledger wrote is still a change (no read decodes it) and must not pass as intact."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return b"\0" + type(value).__name__.encode() + b"\0" + str(value).encode()


def _stream_id(raw: Any) -> str:
    # PostgreSQL returns UUIDs, SQLite the 32 hex digits it stores: one form in reports.
    try:
        return str(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
    except ValueError:
        return str(raw)


class LastLink:
    """The last link this process committed. An append whose first position directly
    follows it needs no read of the chain: appends are serialised (SQLite's one writer,
    PostgreSQL's table lock) and positions only grow, so an event committed by anyone in
    between would hold that very position. Any other first position reads the chain."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: tuple[int, bytes] | None = None

    def before(self, first: int) -> bytes | None:
        with self._lock:
            known = self._known
        return known[1] if known is not None and known[0] == first - 1 else None

    def committed(self, position: int, digest: bytes) -> None:
        with self._lock:
            if self._known is None or position > self._known[0]:
                self._known = (position, digest)


APPENDED = "chain_appended"
"""The keyword under which `ChainedInserts.insert_linked` hands the append a list for its
last link, kept as the LastLink once the transaction has committed."""


def append_links(
    curs: Any,
    sql: Statements,
    ids: Sequence[int],
    events: Sequence[StoredEvent],
    last: LastLink,
    appended: list[tuple[int, bytes]] | None,
) -> None:
    previous = last.before(ids[0])
    if previous is None:
        curs.execute(sql.last)
        row = curs.fetchone()
        if row is not None and int(row_tuple(row)[0]) >= ids[0]:
            # Positions only grow: the chain links this position already, so the events it
            # linked were deleted behind the ledger's back (SQLite hands their rowids out
            # again). The link's insert would fail and be retried as a conflict forever.
            raise DamagedEvent(
                f"the hash chain links position {ids[0]} already: stored events were removed "
                "behind the ledger's back; `ledger verify` names them"
            )
        previous = GENESIS if row is None else _blob(row_tuple(row)[1])  # a forged text link chains on; verify names it
    rows = _links(previous, ids, events)
    if len(rows) == 1:
        curs.execute(sql.insert, rows[0])
    elif sql.insert_arrays is not None:
        curs.execute(sql.insert_arrays, ([position for position, _ in rows], [digest for _, digest in rows]))
    else:
        curs.executemany(sql.insert, rows)
    if appended is not None:
        appended[:] = [rows[-1]]  # a retried attempt replaces what a rolled-back one left


class ChainedInserts:
    """What the chained recorders share (mixed in before the library's recorder):
    `insert_events` through group commit once enabled, else one transaction of its own,
    and, inside that transaction, the links and erasures after the events' insert."""

    group_commit: GroupCommit | None = None  # set by `enable_group_commit`
    last_link: LastLink
    chain_sql: Statements

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if self.group_commit is not None:
            return self.group_commit.insert(stored_events, kwargs)
        return self.insert_linked(stored_events, kwargs)

    def insert_linked(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> Sequence[int] | None:
        """One transaction: the events, their links, the keys they erase. The last link is
        kept only once the library's `insert_events` has committed."""
        appended: list[tuple[int, bytes]] = []
        ids = self.insert_in_transaction(stored_events, {**kwargs, APPENDED: appended})
        if appended:
            self.last_link.committed(*appended[-1])
        return ids

    def insert_in_transaction(
        self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
    ) -> Sequence[int] | None:
        """The library recorder's `insert_events` (next in the MRO), which calls back into
        `link_and_erase` inside its transaction."""
        insert = super().insert_events  # type: ignore[misc]
        ids: Sequence[int] | None = insert(stored_events, **kwargs)
        return ids

    def link_and_erase(
        self, cursor: Any, ids: Sequence[int] | None, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
    ) -> None:
        """In the append's transaction, once its events have their positions."""
        if ids:
            append_links(cursor, self.chain_sql, ids, stored_events, self.last_link, kwargs.get(APPENDED))
        erase_in(cursor, kwargs)


class ChainedSQLiteRecorder(DirectReads, ChainedInserts, SQLiteApplicationRecorder):
    """Appends the events' links in the append's own transaction. SQLite has one writer at
    a time and the events are inserted first, so the last link read here is the latest."""

    def construct_create_table_statements(self) -> list[str]:
        self.chain_sql = Statements.sqlite(self.events_table_name)
        self.last_link = LastLink()
        return [*super().construct_create_table_statements(), self.chain_sql.create]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        self.link_and_erase(c, ids, stored_events, kwargs)
        return ids


def enable_group_commit(recorder: Any) -> GroupCommit:
    """Concurrent appends of this process share transactions from now on (for a server:
    `ledger serve`; an embedded single-threaded ledger gains nothing from it)."""
    if not hasattr(recorder, "insert_linked"):
        raise TypeError(f"{type(recorder).__name__} does not keep a hash chain")
    committer = GroupCommit(recorder.insert_linked)
    recorder.group_commit = committer
    return committer


def erase_in(cursor: Any, saved: dict[str, Any]) -> None:
    """Destroys the keys of the subjects an append erases (`erase`: the subjects, `keys`:
    the ledger's SubjectKeys), in the append's own transaction: a purge and the
    destruction of its key commit together or not at all (docs/ERASURE.md)."""
    subjects = saved.get("erase")
    if subjects:
        saved["keys"].destroy_in(cursor, subjects)


def _recorder(source: Any) -> Any:
    """The chained recorder of an application (or the recorder itself)."""
    recorder = getattr(source, "recorder", source)
    if not hasattr(recorder, "chain_sql"):
        raise TypeError(f"{type(recorder).__name__} does not keep a hash chain")
    return recorder


def _query(recorder: Any, statement: Any, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(statement, params)
        return [row_tuple(row) for row in curs.fetchall()]


def _batched(recorder: Any, statement: Any, bound: int) -> Iterator[tuple[Any, ...]]:
    """Rows of a `position > ? ORDER BY position LIMIT ?` statement up to position `bound`,
    in batches (each one short read transaction). The bound is applied here, not in SQL:
    with a range condition PostgreSQL may plan a bitmap scan and a sort over the whole
    range for every batch instead of walking the index for N rows."""
    position = 0
    while True:
        rows = _query(recorder, statement, (position, BATCH))
        for row in rows:
            if row[0] > bound:
                return
            yield row
        if len(rows) < BATCH:
            return
        position = rows[-1][0]


def stored_events(source: Any) -> Iterator[tuple[int, str, Any, str, bytes]]:
    """Every stored event as raw rows, in position order, undecoded: (position, stream id,
    version, topic, stored bytes), up to the last position stored when the walk began.
    The version as stored: SQLite keeps any type in a row altered behind the ledger's
    back, which the chain's walk names."""
    recorder = _recorder(source)
    bound = recorder.max_notification_id() or 0
    for position, stream, version, topic, state in _batched(recorder, recorder.chain_sql.events_after, bound):
        yield int(position), _stream_id(stream), version, str(topic), _blob(state)


def stored_event_at(source: Any, position: int) -> tuple[int, str, Any, str, bytes] | None:
    """The stored event at `position` as `stored_events` gives it, or None."""
    recorder = _recorder(source)
    rows = _query(recorder, recorder.chain_sql.events_after, (position - 1, 1))
    if not rows or int(rows[0][0]) != position:
        return None
    at, stream, version, topic, state = rows[0]
    return int(at), _stream_id(stream), version, str(topic), _blob(state)


# Verifying


@dataclass(frozen=True)
class BadEvent:
    position: int
    stream: str | None  # the originator id of the event found there, if any
    version: int | None
    kind: str  # "altered", "reordered", "removed", "inserted" or "rewritten"
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


_KEPT_LINK = re.compile("[0-9a-fA-F]{64}")


def parse_head(raw: str, field: str) -> tuple[int, str]:
    """A head an auditor kept, `POSITION:SHA256HEX` as `verify` prints it (`ledger verify
    --expect-head`, `/v1/verify?expect_head=`). Positions start at 1: a position 0 or a
    malformed link is refused, never walked and reported as a rewritten chain."""
    position, sep, digest = raw.strip().partition(":")
    if not sep or not _KEPT_LINK.fullmatch(digest):
        raise InvalidAPIParameters("expected POSITION:SHA256HEX, as verify prints its head", field=field)
    return parse_positive_int(position, field), digest


def head(source: Any) -> tuple[int | None, str]:
    """The chain's last position and link (hex), without walking it. `source` is the
    ledger's application or its recorder."""
    recorder = _recorder(source)
    rows = _query(recorder, recorder.chain_sql.last)
    return (None, GENESIS.hex()) if not rows else (int(rows[0][0]), _blob(rows[0][1]).hex())


def verify(source: Any, expect: tuple[int, str] | None = None) -> VerifyReport:
    """Walks every event with its link and stops at the first that does not hold. `source`
    is the ledger's application or its recorder; `expect` is a (position, hex link) an
    auditor kept: the chain must still pass through it.

    Raw rows and sha256 only, no decoding. The walk is bounded by the head read first:
    every append commits its events and links together, in position order, so everything
    at or below that head was complete when it was read and appends racing the walk are
    neither seen half-done nor reported. Past the head, only an event without a link (one
    statement, one snapshot) is reported: a legitimate append always has its link."""
    recorder = _recorder(source)
    sql = recorder.chain_sql
    top, _hex = head(recorder)
    bound = top or 0
    if below := _query(recorder, sql.below_first):
        # The walk reads from position 1 on, but a stream's reads take any row: a forgery
        # at 0 or below (SQLite rowids, an explicit PostgreSQL id) was applied unseen.
        at, stream, version = below[0]
        reason = "an event at a position below 1, which no append gives"
        return VerifyReport(0, None, GENESIS.hex(), BadEvent(int(at), _stream_id(stream), version, "inserted", reason))
    events, links = _batched(recorder, sql.events_after, bound), _batched(recorder, sql.links_after, bound)
    previous, checked, position = GENESIS, 0, None
    kept: str | None = None
    event, chained = next(events, None), next(links, None)
    while event is not None or chained is not None:
        bad = _compare(event, chained, previous, events, position or 0)
        if bad is not None and bad.kind == "altered" and event is not None:
            bad = _only_the_link(recorder, bad, event, previous)
        if bad is not None:
            return VerifyReport(checked, position, previous.hex(), bad)
        assert chained is not None
        position, previous, checked = int(chained[0]), _blob(chained[1]), checked + 1
        if expect is not None and position == expect[0]:
            kept = previous.hex()
        event, chained = next(events, None), next(links, None)
    bad = None
    if expect is not None and kept is None and expect[0] > (position or 0):
        # Not rewritten: the chain stops short of the kept head (its tail went, links and all).
        reason = f"the chain ends at {position or 0}, before the auditor's head: the events after it were removed"
        bad = BadEvent(expect[0], None, None, "removed", reason)
    elif expect is not None and kept != expect[1].lower():  # at or below the head: before the tail
        found = "no link" if kept is None else f"link {kept}"
        reason = (
            f"the auditor's head is {expect[1]}, the chain has {found} at that position: an event at or "
            "before it was altered and the links after it made again (which one: compare with a backup)"
        )
        bad = BadEvent(expect[0], None, None, "rewritten", reason)
    elif unlinked := _query(recorder, sql.unlinked_after, (bound,)):
        at, stream, version = unlinked[0]
        reason = "an event past the chain's head that no append linked"
        bad = BadEvent(int(at), _stream_id(stream), version, "inserted", reason)
    return VerifyReport(checked, position, previous.hex(), bad)


LOOKAHEAD = 1000  # events searched for the one a broken link was made for (failure path only)
_STORED_STREAM = re.compile("[0-9a-f]{32}")  # how the SQLite recorder writes a UUID


def stored_stream(raw: Any) -> uuid.UUID | None:
    """The stream id of a stored row (an event's or a snapshot's): a UUID on PostgreSQL,
    the library's 32 lower-case hex digits on SQLite; None for any other value, which
    SQLite keeps all the same and no read of the stream finds (it looks for that spelling)."""
    if isinstance(raw, uuid.UUID):
        return raw
    return uuid.UUID(raw) if isinstance(raw, str) and _STORED_STREAM.fullmatch(raw) else None


def _stored_link(previous: bytes, position: int, stream: Any, version: Any, topic: Any, state: Any) -> bytes | None:
    """The link of a stored row, or None when a column is not as an append writes it, so
    that it matches no link. SQLite keeps any type, and the link hashes a stream id's 16
    bytes: the same UUID with dashes or in capitals hashed alike, while the stream's
    reads, which look for the library's own spelling, no longer found the event."""
    if stored_stream(stream) is None or not isinstance(topic, str):
        return None
    if type(version) is not int or not 0 <= version < 2**64:
        return None
    return link(previous, position, stream, version, topic, _blob(state))


def _compare(
    event: tuple[Any, ...] | None,
    chained: tuple[Any, ...] | None,
    previous: bytes,
    rest: Iterator[tuple[Any, ...]],
    after: int,
) -> BadEvent | None:
    """`after`: the position of the last event that held (`previous` is its link)."""
    if event is not None and (chained is None or event[0] < chained[0]):
        return BadEvent(event[0], _stream_id(event[1]), event[2], "inserted", "an event the chain never linked")
    if chained is not None and (event is None or chained[0] < event[0]):
        return BadEvent(chained[0], None, None, "removed", "the chain links an event that is gone")
    assert event is not None and chained is not None
    position, stream, version, topic, state = event
    expected = _blob(chained[1])
    if _stored_link(previous, position, stream, version, topic, state) == expected:
        return None
    # Is the event this link was made for further on? Then rows were moved, not edited.
    for _, (moved, *content) in zip(range(LOOKAHEAD), rest, strict=False):
        m_stream, m_version, m_topic, m_state = content
        if _stored_link(previous, position, m_stream, m_version, m_topic, m_state) == expected:
            reason = f"the event linked at this position is now at {moved}"
            return BadEvent(position, _stream_id(stream), version, "reordered", reason)
    reason = "its stream, version, topic, state or position differ from what was linked"
    if position == after + 1 and after > 0:
        # The link before held, but it may have been made again for an altered event: then
        # this event is intact and only this link tells (nothing kept says which).
        reason += f", or event {after} was altered and its link made again"
    if position > after + 1:
        # Neither event nor link between: an event deleted with its link leaves the next
        # link unverifiable, which reads as this event altered (a PostgreSQL gap is legit).
        gap = f"event at {after + 1} was" if position == after + 2 else f"events at {after + 1} to {position - 1} were"
        reason += f", or the {gap} removed with {'its link' if position == after + 2 else 'their links'}"
    return BadEvent(position, _stream_id(stream), version, "altered", reason)


def _only_the_link(recorder: Any, bad: BadEvent, event: tuple[Any, ...], previous: bytes) -> BadEvent:
    """`bad` told as an altered link row when the event holds: the next link follows from
    the link this event gives (a link edited alone), not from the one stored."""
    own = _stored_link(previous, *event)
    sql: Statements = recorder.chain_sql
    after = _query(recorder, sql.events_after, (event[0], 1))
    linked = _query(recorder, sql.links_after, (event[0], 1))
    if own is not None and not after:
        return replace(bad, reason=bad.reason + ", or its link alone was altered (no event after it tells which)")
    if own is None or not after or not linked or after[0][0] != linked[0][0]:
        return bad
    if _stored_link(own, *after[0]) != _blob(linked[0][1]):
        return bad
    reason = (
        f"the event holds, but its link in the chain table was altered: the link at {after[0][0]} "
        "follows from the link this event gives, not from the one stored"
    )
    return replace(bad, reason=reason)


# Sealing events stored before the chain existed


def seal_unchained(source: Any) -> int:
    """Links the events of a ledger written before the chain existed (events, and not one
    link yet), in one write transaction serialised as appends are. Returns how many it
    linked.

    Only a chain with no link at all is sealed: once the chain exists every append links
    its own events, so an event past the head of a non-empty chain was written behind the
    ledger's back, and sealing it on the next open (`ledger verify` opens the ledger too)
    would launder it. `verify` reports it as inserted instead."""
    recorder = _recorder(source)
    last, _hash = head(recorder)
    if last is not None or not recorder.max_notification_id():
        return 0  # the usual case: nothing to seal, no write lock taken
    sql: Statements = recorder.chain_sql
    sealed = 0
    with recorder.datastore.transaction(commit=True) as curs:
        for statement in getattr(recorder, "lock_table_statements", ()):  # PostgreSQL's append lock
            curs.execute(statement)
        curs.execute(sql.last)
        if curs.fetchone() is not None:
            return 0  # another process sealed it (or appended) since we looked
        position, previous = 0, GENESIS
        while True:
            curs.execute(sql.events_after, (position, BATCH))
            rows = [row_tuple(r) for r in curs.fetchall()]
            if not rows:
                # Said aloud: a chain emptied behind the ledger's back looks just like this,
                # and only a head an auditor kept (`verify --expect-head`) tells the two apart.
                log.warning("hash chain started over %d events stored without links (through %d)", sealed, position)
                return sealed
            events = [StoredEvent(r[1], r[2], r[3], bytes(r[4])) for r in rows]
            links = _links(previous, [int(r[0]) for r in rows], events)
            curs.executemany(sql.insert, links)
            sealed += len(links)
            position, previous = links[-1]
