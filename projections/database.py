"""The read-model database: its engine and connections, one transaction per use, and
database errors translated into the ledger's (`StoreUnavailable`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from domain.errors import ReadModelVersionMismatch, StoreUnavailable
from domain.personal import withheld


class ReadModelDatabase:
    """The read-model database. A private in-memory database has one connection, so a
    lock serialises its users; file and server databases are used concurrently."""

    def __init__(self, url: str, connect_args: dict[str, Any]) -> None:
        self.is_memory = url == "sqlite://"
        kwargs: dict[str, Any] = {"connect_args": dict(connect_args)}
        if self.is_memory:
            kwargs["poolclass"] = sa.StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.engine.dialect.name == "postgresql":
            sa.event.listen(self.engine, "connect", lambda conn, _record: iso_dates(conn))
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_read_model_settings)
            # pysqlite opens transactions itself, only before DML, so a SAVEPOINT that comes
            # first would open one that its RELEASE commits: SQLAlchemy's documented remedy
            # is to turn that off and BEGIN explicitly. The runner isolates each projection
            # of a batch in a savepoint when a handler fails.
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._lock = threading.RLock() if self.is_memory else None
        # Called when a statement fails, to raise a more precise error if they know one (a
        # runner: "this version was replaced", where the database only says "no such table").
        self.explainers: list[Callable[[], None]] = []
        self._explaining = threading.local()

    @contextmanager
    def begin(self, immediate: bool = False) -> Iterator[Connection]:
        """One transaction. `immediate`: on SQLite, take the write lock when it begins (for
        a transaction that reads, then writes what it read: begun deferred, its first write
        fails at once with "database is locked" if another writer committed in between,
        without waiting out the busy timeout)."""
        with self._locked(), self._translated(), self.engine.connect() as conn:
            if immediate:
                conn = conn.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._locked(), self._translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection whose statements all read one state of the read models: a read of
        several statements (a usage report's ended, then running kernels) must not see a
        write committed between two of them. PostgreSQL's READ COMMITTED gives each
        statement its own snapshot, REPEATABLE READ one per transaction; SQLite's
        transaction reads one already."""
        with self.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            self._explain()
            raise StoreUnavailable(f"read model database error: {driver_message(exc)}") from exc

    def _explain(self) -> None:
        if getattr(self._explaining, "active", False):
            return  # an explainer's own statement failed: the first error stands
        self._explaining.active = True
        try:
            for explain in self.explainers:
                explain()
        except ReadModelVersionMismatch:
            raise
        except StoreUnavailable:
            pass
        finally:
            self._explaining.active = False

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    def close(self) -> None:
        self.engine.dispose()


_IMMEDIATE = "ledger_begin_immediate"


def iso_dates(conn: Any) -> None:
    """Has a psycopg connection's session write times in ISO (DateStyle), the only style
    psycopg reads back: a server, database or role setting (or the client's PGDATESTYLE)
    of 'SQL, DMY' or 'German' made every read of a time fail with NotImplementedError,
    though every write succeeded. The style is reported by the server at connect, so a
    session already in ISO costs nothing; a SET beats every other source of the setting."""
    style = conn.info.parameter_status("DateStyle")
    if style is not None and style.startswith("ISO"):
        return
    autocommit = conn.autocommit
    conn.autocommit = True  # kept by the session, not undone with a transaction
    try:
        conn.execute("SET DateStyle TO ISO")
    finally:
        conn.autocommit = autocommit


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")


def _sqlite_read_model_settings(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (`_sqlite_begin`)
    # Deleted and overwritten rows are zeroed in the file (and the pages the WAL copies):
    # an erasure leaves no plaintext of what a row held (docs/ERASURE.md).
    dbapi_connection.execute("PRAGMA secure_delete=ON")
    # In WAL mode (the ledger's files), no fsync at each read-model commit: a power cut can
    # then lose the last commits, but their rows and their tracking position together, so
    # the events are applied again; a crash of the process loses nothing. The event store's
    # own connections keep their synchronous commits. (A catch-up of a few events: -35%.)
    # Checkpoints every 40 MB of WAL instead of 4 MB: each one copies pages back and syncs,
    # and at the default they took a third of a rebuild's commit time.
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=10000")


def driver_message(exc: SQLAlchemyError) -> str:
    """The database's own words for a failed statement, on one line. SQLAlchemy's text adds
    the statement, the values bound to it (a projected row's, personal ones included) and a
    link to its documentation: not for an operator's error line or an HTTP client's."""
    orig = getattr(exc, "orig", None)
    shown = orig if orig is not None else (exc.args[0] if exc.args else type(exc).__name__)
    return " ".join(str(shown).split())


def one_line(exc: BaseException, limit: int = 300, withhold: Iterable[str] = ()) -> str:
    """An error as one short line for status and messages: the driver's own error for a
    database one (SQLAlchemy's text adds the statement and its parameters). `withhold`:
    personal values it must not name (replaced before the cut, which could halve one)."""
    shown = getattr(exc, "orig", None) or exc
    text = withheld(" ".join(f"{type(shown).__name__}: {shown}".split()), withhold)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_infrastructure_failure(exc: BaseException) -> bool:
    """True for a failure of the database rather than of a handler: it must not stall one
    projection (it would stall them all, for nothing), so it is raised as before. A lost
    connection, a lock timeout, a deadlock; not a constraint violation or a missing table
    (on SQLite "no such table" is an OperationalError too: a damaged read model stalls
    alone, and `rebuild --force` mends it)."""
    if isinstance(exc, ReadModelVersionMismatch):
        return True
    if isinstance(exc, StoreUnavailable):
        if not isinstance(exc.__cause__, SQLAlchemyError):
            return True
        exc = exc.__cause__
    if isinstance(exc, SQLAlchemyError):
        if getattr(exc, "connection_invalidated", False) or isinstance(exc, InterfaceError | DisconnectionError):
            return True
        if isinstance(exc, OperationalError):
            message = str(getattr(exc, "orig", exc))
            return not message.startswith(_SQLITE_SCHEMA_ERRORS)
    return False


_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column", "table ")  # "table x has no column named y"
