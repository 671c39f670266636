"""The SQLite persistence module of the ledger: the library's, with compiled statements
kept and one dedicated connection for writing.

- The library opens its pooled connections with `cached_statements=True`, which `sqlite3`
  reads as a cache of one statement: an append alternates BEGIN, the events' INSERT and
  the chain's INSERT, so each was compiled again on every command (measured here: a read
  transaction with one SELECT 36 us with a cache of one, 8 us with 128). The ledger's
  connections keep `sqlite3`'s default of 128.
- Appends take the library pool's writer slot (a semaphore, the writer lock, a condition
  and the pool's queue) for a connection that is always the same one: SQLite has one
  writer per file, and the pool issues one writer at a time. A file ledger writes on one
  connection of its own behind a lock with the pool's timeout, and reads through the pool
  as before. An in-memory ledger keeps the library's pool for both: there, reads and
  writes must exclude each other, which the pool arranges.
- Appends of several processes to one file take turns on a file lock beside it
  (`adapters/store/write_lock.py`), not in SQLite's sleeping busy handler.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from eventsourcing.persistence import ConnectionPoolClosedError, ConnectionUnavailableError, InterfaceError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from adapters.store.config import StoreClosed
from adapters.store.write_lock import FileWriteLock

STATEMENT_CACHE: Final = 128  # sqlite3's own default


class LedgerClosed(ConnectionPoolClosedError, StoreClosed):
    """A closed SQLite ledger's pool asked for a connection. The library's own error is no
    PersistenceError, so it got out of every command and query as itself; as the store's
    `StoreClosed` too (a closed PostgreSQL ledger's), it is translated wherever the store's
    errors are, and says the same."""


class CachingConnectionPool(SQLiteConnectionPool):
    """The library's pool; its connections keep compiled statements."""

    def get_connection(self, timeout: float | None = None, *, is_writer: bool | None = None) -> SQLiteConnection:
        if self.closed:
            raise LedgerClosed
        return super().get_connection(timeout, is_writer=is_writer)

    def connect(self) -> sqlite3.Connection:
        """A connection made as the pool makes its own, owned by the caller."""
        try:
            conn = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,  # handed to one thread at a time
                isolation_level=None,  # autocommit: the library issues BEGIN itself
                cached_statements=STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as exc:
            raise InterfaceError(exc) from exc
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        conn.row_factory = sqlite3.Row  # the library's recorders read rows by column name
        return conn

    def _create_connection(self) -> SQLiteConnection:
        return SQLiteConnection(sqlite_conn=self.connect(), max_age=self.max_age)


class LedgerSQLiteDatastore(SQLiteDatastore):
    """The library's datastore over the caching pool, writing on a connection of its own."""

    pool: CachingConnectionPool

    def __init__(self, db_name: str, **kwargs: Any) -> None:
        super().__init__(db_name, **kwargs)
        library_pool = self.pool
        self.pool = CachingConnectionPool(
            db_name=library_pool.db_name,
            lock_timeout=library_pool.lock_timeout,
            pool_size=library_pool.pool_size,
            max_overflow=library_pool.max_overflow,
            pool_timeout=library_pool.pool_timeout,
            max_age=library_pool.max_age,
            pre_ping=library_pool.pre_ping,
        )
        library_pool.close()  # it never opened a connection: pools connect on first use
        self._writing = threading.Lock()
        # The writing connection, as the library's transactions use it and as sqlite3's.
        self._writer: tuple[SQLiteConnection, sqlite3.Connection] | None = None
        self._file_lock = None if self.pool.is_sqlite_memory_mode else FileWriteLock(f"{db_name}-lock")

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        pool = self.pool
        if not commit or pool.is_sqlite_memory_mode:
            with super().transaction(commit=commit) as cursor:
                yield cursor
            return
        # The pool's own words for a writer that does not come back in time.
        if not self._writing.acquire(timeout=pool.pool_timeout):
            raise ConnectionUnavailableError("Timed out waiting for return of writer")
        try:
            if pool.closed:
                raise LedgerClosed
            if self._writer is None:
                raw = pool.connect()
                self._writer = (SQLiteConnection(sqlite_conn=raw, max_age=pool.max_age), raw)
            # Past the timeout the append waits in SQLite's busy handler instead, as before.
            file_lock = self._file_lock
            timeout = pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT
            locked = file_lock is not None and file_lock.acquire(timeout)
            try:
                with self._writer[0].transaction(commit=True) as cursor:
                    yield cursor
            finally:
                if locked and file_lock is not None:
                    file_lock.release()
        finally:
            self._writing.release()

    @contextmanager
    def idle_writer(self) -> Iterator[sqlite3.Connection | None]:
        """The writing connection while no append is under way (None if one is, or none
        was made yet), held for one autocommit read: its page cache holds what the last
        commit wrote, which another connection reads again from the file."""
        if self._writer is None or not self._writing.acquire(blocking=False):
            yield None
            return
        try:
            writer = self._writer  # None if the ledger closed in between
            yield None if writer is None else writer[1]
        finally:
            self._writing.release()

    def close(self) -> None:
        writing = getattr(self, "_writing", None)  # None: __init__ failed before it (close runs from __del__)
        if writing is not None:
            with writing:
                writer, self._writer = self._writer, None
                if writer is not None:
                    writer[0].close()
                file_lock = getattr(self, "_file_lock", None)
                if file_lock is not None:
                    file_lock.close()
        super().close()


class LedgerSQLiteFactory(SQLiteFactory):
    """`PERSISTENCE_MODULE` of a SQLite ledger: the library's factory over the datastore above."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        library = self.datastore
        self.datastore = LedgerSQLiteDatastore(
            db_name=library.pool.db_name,
            lock_timeout=library.pool.lock_timeout,
            single_row_tracking=library.single_row_tracking,
            originator_id_type=library.originator_id_type,
        )
        library.close()
