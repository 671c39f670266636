"""Reading a stream of a SQLite ledger without the library's pool and explicit transaction.

A stream the aggregate cache misses is read on the command's path: a kernel start asks
whether its session exists, a cold aggregate is loaded. Through the library's pool and its
BEGIN ... ROLLBACK that read cost ~110 us here, against ~10 us for the same SELECT in
autocommit mode. It runs on the ledger's writing connection while no append is under way
(`LedgerSQLiteDatastore.idle_writer`: the pages the last commit wrote are in its cache,
where another connection reads them again from the file; 7% per kernel fact on disk), else
on a connection of the reading thread's own. One SELECT reads one snapshot of the WAL, so
it sees exactly what the library's read transaction would: everything committed before it
began.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent

from adapters.store.connections import CachingConnectionPool
from adapters.store.quoting import quote_identifier


class DirectReads:
    """`select_events` as one autocommit SELECT on the idle writing connection, else on
    this thread's own (mixed in before the library's SQLite recorder). An in-memory ledger,
    a file not in WAL mode, a closed ledger or any error goes the library's way, which says
    what went wrong in its own terms."""

    datastore: Any
    events_table_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._direct_reads = _Connections()
        super().__init__(*args, **kwargs)

    def _direct(self) -> sqlite3.Connection | None:
        pool = self.datastore.pool
        # Only the ledger's pool makes connections for others (a closed ledger must not read).
        if not isinstance(pool, CachingConnectionPool):
            return None
        if pool.is_sqlite_memory_mode or not pool.is_journal_mode_wal or pool.closed:
            return None
        return self._direct_reads.of_this_thread(pool.connect)

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        rows = self._rows(*_select(self.events_table_name, originator_id, gt, lte, desc, limit))
        if rows is not None:
            convert = self.convert_originator_id  # type: ignore[attr-defined]  # the library recorder's
            return [StoredEvent(convert(row[0]), row[1], row[2], row[3]) for row in rows]
        library: Sequence[StoredEvent] = super().select_events(  # type: ignore[misc]  # next in the MRO
            originator_id, gt=gt, lte=lte, desc=desc, limit=limit
        )
        return library

    def _rows(self, statement: str, params: list[Any]) -> list[Any] | None:
        """The SELECT's rows, or None: the library's way then."""
        idle_writer = getattr(self.datastore, "idle_writer", None)  # the ledger's SQLite datastore has it
        if idle_writer is not None:
            with idle_writer() as writer:
                if writer is not None:
                    try:
                        rows: list[Any] = writer.execute(statement, params).fetchall()
                    except sqlite3.Error:
                        return None
                    return rows
        conn = self._direct()
        if conn is None:
            return None
        try:
            return conn.execute(statement, params).fetchall()
        except sqlite3.Error:
            self._direct_reads.drop_this_thread()  # this thread's only: others may be reading
            return None

    def close_direct_reads(self) -> None:
        self._direct_reads.close()


class _Held:
    """A thread's read connection: closed when its thread ends (the thread-local holding it
    goes) or when the ledger closes, whichever comes first."""

    __slots__ = ("__weakref__", "conn", "generation")

    def __init__(self, conn: sqlite3.Connection, generation: int) -> None:
        self.conn = conn
        self.generation = generation

    def __del__(self) -> None:
        self.conn.close()


class _Connections:
    """One read connection per thread; the ledger's close closes them all."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._generation = 0  # a close retires every thread's connection

    def of_this_thread(self, connect: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
        """This thread's connection, made by `connect` (in autocommit mode, so each SELECT
        reads its own snapshot; usable from any thread, so whichever ends it closes it)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.generation == self._generation:
            return held.conn
        conn = connect()
        with self._lock:
            held = _Held(conn, self._generation)
            self._all.add(held)
        self._local.held = held
        return conn

    def drop_this_thread(self) -> None:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            self._local.held = None
            with self._lock:
                self._all.discard(held)
            held.conn.close()

    def close(self) -> None:
        with self._lock:
            retired, self._all = list(self._all), weakref.WeakSet()
            self._generation += 1
        for held in retired:
            held.conn.close()


def _select(
    table: str, originator_id: uuid.UUID | str, gt: int | None, lte: int | None, desc: bool, limit: int | None
) -> tuple[str, list[Any]]:
    """The library's SELECT of one stream, with its order and bounds."""
    statement = (
        "SELECT originator_id, originator_version, topic, state FROM "
        + quote_identifier(table)
        + " WHERE originator_id = ?"
    )
    params: list[Any] = [originator_id.hex if isinstance(originator_id, uuid.UUID) else originator_id]
    if gt is not None:
        statement += " AND originator_version > ?"
        params.append(gt)
    if lte is not None:
        statement += " AND originator_version <= ?"
        params.append(lte)
    statement += " ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC"
    if limit is not None:
        statement += " LIMIT ?"
        params.append(limit)
    return statement, params
