"""The projection engine: read models fed from the notification log, exactly once.

A projection is a name, a version, its SQLAlchemy Core tables and one handler per
event type. The runner reads notifications in batches and, in one read-model
transaction, moves each projection's tracking row forward and applies the batch:
either both land or neither does, so a crash between batches loses nothing and
applies nothing twice. The tracking row is updated first and conditionally (it must
still hold the position this runner read), which also makes two runners racing over
one read model safe: the loser rolls back and re-reads.

Versions. Tables are named after the projection's key, `{name}_v{version}_{table}`, and
`projection_versions` records which version of each read model is active. Code whose
version is newer than the active one has a *pending* version: it is built in its own
tables, from position 0, with its own tracking row, while the old version's tables keep
answering the processes that still run old code. When the pending version has caught up,
one transaction makes it active, deletes the old tracking row and drops the old tables;
old code then refuses to read (`ReadModelVersionMismatch`) instead of reading tables that
are gone. A build that is killed resumes from its tracking row.
"""

from __future__ import annotations

import bisect
import gc
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.utils import resolve_topic
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

from domain.errors import ReadModelStalled, ReadModelVersionMismatch, StoreUnavailable
from domain.projection_ops import SkippedEvent, Stall

Handler = Callable[[Connection, Any, int], None]
# A table keyed by event position: on SQLite an INTEGER key is the rowid itself, where a
# BIGINT key would be a second B-tree beside it.
POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Batch = Sequence[tuple[int, Any]]  # (position, event), positions ascending
Progress = Callable[[int, int], None]  # (position reached, head)
SkipLog = Callable[[str], Sequence[SkippedEvent]]  # a read model's recorded skips, by its lineage
GENERATIONS = "ledger_generations"  # MetaData.info key: {projection key: forced rebuild number}


def on(*event_classes: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a projection method as the handler of the given event classes."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        method._handles = event_classes  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    name: ClassVar[str]
    version: ClassVar[int] = 1
    # The relative cost of applying one event, by which a rebuild shares projections out
    # between processes (`split`); bench/rebuild.py prints each projection's time.
    cost: ClassVar[float] = 1.0

    def __init__(self, metadata: sa.MetaData) -> None:
        self.metadata = metadata
        self.handlers: dict[type, Handler] = {}
        for attr in dir(type(self)):
            for event_class in getattr(getattr(type(self), attr), "_handles", ()):
                self.handlers[event_class] = getattr(self, attr)

    @property
    def key(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def generation(self) -> int:
        """0, or the number of the forced rebuild this object builds (`ProjectionRunner.force`):
        the metadata its tables are made in says so, since subclasses make their tables in
        their constructors."""
        generation: int = self.metadata.info.get(GENERATIONS, {}).get(self.key, 0)
        return generation

    @property
    def store_key(self) -> str:
        """The name its tables and tracking row are stored under: the key, or for a forced
        rebuild in progress `{key}r{generation}` (no `_` after the key, so the key's own
        tables, `{key}_…`, never match it)."""
        return f"{self.key}r{self.generation}" if self.generation else self.key

    @property
    def lineage(self) -> str:
        """The key without its version: the read model that successive versions replace
        (`usage_utc` for the key `usage_v1_utc`). Keys must start with `{name}_v{version}`."""
        prefix = f"{self.name}_v{self.version}"
        if not self.key.startswith(prefix):
            raise TypeError(f"{type(self).__name__}.key {self.key!r} does not start with {prefix!r}")
        return self.name + self.key[len(prefix) :]

    def table(self, base: str, *columns: sa.Column[Any] | sa.Index) -> sa.Table:
        """A table of this projection's version; a new version gets new tables."""
        return sa.Table(f"{self.store_key}_{base}", self.metadata, *columns)

    def apply(self, conn: Connection, event: object, position: int) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(conn, event, position)

    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        """Applies the events in order. A projection may override this to use fewer SQL
        statements per batch; the rows it leaves must be those of applying each event. The
        runner passes only events of the classes in `handlers` (the others are not decoded)."""
        for position, event in batch:
            self.apply(conn, event, position)

    def rolled_back(self) -> None:
        """What this projection applied since its last commit was rolled back: a cache of
        rows it wrote (not read) must forget them. Nothing to forget by default."""


Factory = Callable[[sa.MetaData], Sequence[Projection]]  # this code's projections, in new metadata


class BulkInsert:
    """Inserts many rows of a table in one driver-level operation: COPY on PostgreSQL (an
    executemany there is one round of the protocol per row), else one executemany. Values
    go through the columns' own bind processors, as SQLAlchemy converts them, but in one
    tight loop: SQLAlchemy's per-row parameter handling cost more than the inserts
    themselves in a rebuild. A row is a tuple of every column's value, in the table's
    column order; no defaults are applied. Columns named in `raw` are given in driver form
    already (say JSON text a projection serialised once for many rows)."""

    def __init__(self, table: sa.Table, raw: Sequence[str] = ()) -> None:
        self.table = table
        self.raw = set(raw)
        self._writers: dict[str, Callable[[Connection, Sequence[Sequence[Any]]], None]] = {}

    def __call__(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            name = conn.dialect.name
            if name not in self._writers:
                self._writers[name] = self._writer(conn.dialect)
            self._writers[name](conn, rows)

    def _writer(self, dialect: sa.Dialect) -> Callable[[Connection, Sequence[Sequence[Any]]], None]:
        columns = [column.key for column in self.table.columns]
        processors = [
            (i, _bind_processor(column.type, dialect))
            for i, column in enumerate(self.table.columns)
            if column.key not in self.raw
        ]
        steps = [(i, process) for i, process in processors if process is not None]

        def convert(row: Sequence[Any]) -> list[Any]:
            values = list(row)
            for i, process in steps:
                if values[i] is not None:
                    values[i] = process(values[i])
            return values

        if dialect.name == "postgresql":
            quote = dialect.identifier_preparer.quote
            copy = f"COPY {quote(self.table.name)} ({', '.join(map(quote, columns))}) FROM STDIN"
            return lambda conn, rows: _copy(conn, copy, map(convert, rows))
        compiled = sa.insert(self.table).compile(dialect=dialect, column_keys=columns)
        order = compiled.positiontup
        if order is None:  # a named paramstyle
            return lambda conn, rows: _executemany(
                conn, compiled.string, [dict(zip(columns, convert(r), strict=True)) for r in rows]
            )
        if list(order) == columns:  # qmark style, values in column order: no reordering
            return lambda conn, rows: _executemany(conn, compiled.string, list(map(tuple, map(convert, rows))))
        positions = [columns.index(name) for name in order]
        return lambda conn, rows: _executemany(
            conn, compiled.string, [tuple(values[i] for i in positions) for values in map(convert, rows)]
        )


def _bind_processor(type_: Any, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor; for SQLite's DATETIME in its default storage
    format, an equivalent one five times faster (a rebuild formats a time per row)."""
    impl = type_.dialect_impl(dialect)
    if type(impl) is sqlite.DATETIME and impl._storage_format == sqlite.DATETIME._storage_format:
        return _sqlite_datetime
    process: Callable[[Any], Any] | None = impl.bind_processor(dialect)
    return process


def _sqlite_datetime(value: Any) -> Any:
    # SQLAlchemy writes "YYYY-MM-DD HH:MM:SS.ffffff" from the fields as they are, offset
    # dropped; isoformat gives the same 26 characters, then the offset if any. A date goes
    # through SQLAlchemy's own conversion.
    if type(value) is not datetime:
        return _SQLITE_DATETIME(value)
    return value.isoformat(" ", "microseconds")[:26]


_SQLITE_DATETIME: Callable[[Any], Any] = sa.DateTime().dialect_impl(sqlite.dialect()).bind_processor(
    sqlite.dialect()
) or (lambda value: value)


def compact_json(value: Any) -> str:
    """JSON text without spaces, as projections store it in their raw JSON columns; the C
    encoder is built once (`json.dumps` builds one per call: half the cost for small values)."""
    return "".join(_COMPACT(value, 0)) if _COMPACT is not None else _COMPACT_FALLBACK.encode(value)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder `json` itself uses for compact one-shot encoding, if this Python has it."""
    try:
        return json.encoder.c_make_encoder(  # type: ignore[attr-defined, no-any-return]
            None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
    except TypeError:  # no C accelerator (None), or another signature
        return None


_COMPACT_FALLBACK = json.JSONEncoder(separators=(",", ":"))
_COMPACT = _c_encoder()


def _executemany(conn: Connection, sql: str, params: list[Any]) -> None:
    conn.exec_driver_sql(sql, params)


def _copy(conn: Connection, statement: str, rows: Iterator[list[Any]]) -> None:
    # The connection's own driver connection: the COPY is part of the batch's transaction.
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


class ReadModels:
    """The read-model database. A private in-memory database has one connection, so a
    lock serialises its users; file and server databases are used concurrently."""

    def __init__(self, url: str, connect_args: dict[str, Any]) -> None:
        self.is_memory = url == "sqlite://"
        kwargs: dict[str, Any] = {"connect_args": dict(connect_args)}
        if self.is_memory:
            kwargs["poolclass"] = sa.StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        self.engine: Engine = sa.create_engine(url, **kwargs)
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
    def begin(self) -> Iterator[Connection]:
        with self._locked(), self._translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._locked(), self._translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            self._explain()
            raise StoreUnavailable(f"read model database error: {exc}") from exc

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


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _sqlite_read_model_settings(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (`_sqlite_begin`)
    # In WAL mode (the ledger's files), no fsync at each read-model commit: a power cut can
    # then lose the last commits, but their rows and their tracking position together, so
    # the events are applied again; a crash of the process loses nothing. The event store's
    # own connections keep their synchronous commits. (A catch-up of a few events: -35%.)
    # Checkpoints every 40 MB of WAL instead of 4 MB: each one copies pages back and syncs,
    # and at the default they took a third of a rebuild's commit time.
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=10000")


class _StalePosition(Exception):
    """Another runner moved a tracking row first; re-read and go on."""


@dataclass(frozen=True)
class ProjectionStatus:
    """One read model: its active version and position, the version this code builds
    beside it if that one is newer, a forced rebuild in progress, where any of them is
    stalled, and the events operators told it to skip."""

    name: str
    version: int
    position: int | None
    head: int
    pending_version: int | None = None
    pending_position: int | None = None
    stall: Stall | None = None
    pending_stall: Stall | None = None
    rebuild_position: int | None = None  # a forced rebuild of the active version
    rebuild_stall: Stall | None = None
    skips: tuple[SkippedEvent, ...] = ()

    @property
    def lag(self) -> int | None:
        return None if self.position is None else max(0, self.head - self.position)

    def to_json(self) -> dict[str, Any]:
        last = self.skips[-1] if self.skips else None
        return {
            "name": self.name,
            "version": self.version,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "pending_version": self.pending_version,
            "pending_position": self.pending_position,
            "stalled": _stall_json(self.stall),
            "pending_stalled": _stall_json(self.pending_stall),
            "rebuild_position": self.rebuild_position,
            "rebuild_stalled": _stall_json(self.rebuild_stall),
            "skips": len(self.skips),
            "last_skip": None
            if last is None
            else {"version": last.version, "position": last.position, "reason": last.reason, "at": last.at.isoformat()},
        }


def _stall_json(stall: Stall | None) -> dict[str, Any] | None:
    if stall is None:
        return None
    return {"version": stall.version, "position": stall.position, "cause": stall.cause, "at": stall.at.isoformat()}


def describe_stall(stall: Stall) -> str:
    return f"stalled at position {stall.position}: {stall.cause}"


class ProjectionRunner:
    tracking_metadata = sa.MetaData()
    tracking = sa.Table(
        "projection_tracking",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    garbage = sa.Table(  # keys of replaced versions whose tables are still to be dropped
        "projection_garbage",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
    )
    versions = sa.Table(
        "projection_versions",
        tracking_metadata,
        sa.Column("name", sa.String(128), primary_key=True),  # a projection's lineage
        sa.Column("version", sa.Integer, nullable=False),  # the active version
        sa.Column("projection", sa.String(128), nullable=False),  # the active version's key
    )
    # Where a projection's build (a tracking row's key) stopped because its handler raised:
    # the event at `position` is not applied, everything before it is. Beside the tracking
    # rows, so it survives restarts; a row whose position the tracking row has passed (a
    # skip, a fixed handler) no longer counts.
    stalls = sa.Table(
        "projection_stalls",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("lineage", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("stalled_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Forced rebuilds of an active version, by its key: the last generation started (never
    # reused: a finished one's tables keep their generation's index and constraint names)
    # and whether it is still being built.
    rebuilds = sa.Table(
        "projection_rebuilds",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("building", sa.Boolean, nullable=False),
    )

    def __init__(
        self,
        read_models: ReadModels,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        projections: Sequence[Projection],
        batch_size: int = 1000,
        *,
        skip_log: SkipLog | None = None,
        factory: Factory | None = None,
    ) -> None:
        self.read_models = read_models
        self.recorder = recorder
        self.mapper = mapper
        self.projections = list(projections)
        self.batch_size = batch_size
        self.skip_log = skip_log
        self.factory = factory
        self._lock = threading.Lock()
        self.positions: dict[str, int] = {}
        self.active: dict[str, tuple[int, str]] = {}  # lineage -> (active version, its key)
        self.stalled: dict[str, Stall] = {}  # store key -> where it stopped (only stalls still in force)
        self.generations: dict[str, tuple[int, bool]] = {}  # key -> (last forced rebuild, still building)
        self._classes: dict[str, type] = {}  # topic -> event class (aliases of renamed topics too)
        self._builds: dict[str, Projection] = {}  # store key -> a forced rebuild's projection
        # Each process tries a stalled projection's event once (its code may read it now),
        # then leaves it alone until a skip is recorded: no retry on every query or wake.
        self._retried: set[str] = set()
        self._skips: dict[str, Sequence[SkippedEvent]] = {}  # lineage -> skips, read since `_looked_at`
        self._looked_at = -1  # the head when stalls and skips were last re-read

    def setup(self) -> None:
        """Creates missing tables, versions and tracking rows; safe when several processes
        start at once. A read model this code has never seen starts at this code's version;
        one whose version here is newer than the active one is pending (`build_pending`).
        Raises `ReadModelVersionMismatch` if newer code already replaced a version."""
        self._create(self.tracking_metadata.sorted_tables)
        self._insert_missing(self.versions, [self._version_row(p) for p in self.projections])
        self._read_state()
        self._refuse_outdated_code()
        self._create(self._tables())
        self._insert_missing(self.tracking, [{"projection": p.store_key, "position": 0} for p in self.projections])
        self._read_state()
        missing = [p.key for p in self.projections if p.store_key not in self.positions]
        if missing:
            raise StoreUnavailable(f"cannot create tracking rows for {', '.join(missing)}")
        self._refuse_outdated_code(discard=True)  # in case newer code activated meanwhile
        if self._explain_replaced_version not in self.read_models.explainers:
            self.read_models.explainers.append(self._explain_replaced_version)

    def build_pending(self, progress: Progress | None = None) -> None:
        """Builds every pending version and makes it active (see `catch_up`)."""
        if self.pending():
            self.catch_up(self.pending(), progress)
            self.collect_garbage()  # the replaced tables: this process is building anyway

    def _tables(self, projections: Sequence[Projection] | None = None) -> list[sa.Table]:
        chosen = self.projections if projections is None else projections
        metadatas = {id(p.metadata): p.metadata for p in chosen}.values()
        return [table for metadata in metadatas for table in metadata.sorted_tables]

    @staticmethod
    def _version_row(projection: Projection) -> dict[str, Any]:
        return {"name": projection.lineage, "version": projection.version, "projection": projection.key}

    def _create(self, tables: Sequence[sa.Table]) -> None:
        """Creates the missing tables with their indexes. Existing ones are skipped before
        any DDL: on PostgreSQL even `CREATE INDEX IF NOT EXISTS` locks the table, so it
        would queue behind a runner's batch and could deadlock with it."""
        with self.read_models.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
        missing = [table for table in tables if table.name not in existing]
        if not missing:
            return
        with self.read_models.begin() as conn:
            for table in missing:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))

    def _insert_missing(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Inserts the rows whose primary key is absent; concurrent inserters all succeed.
        Rows already there are left alone, without waiting on a batch that updates them."""
        (key,) = table.primary_key.columns
        with self.read_models.connect() as conn:
            present = set(conn.execute(sa.select(key)).scalars())
        rows = [row for row in rows if row[key.key] not in present]
        if not rows:
            return
        with self.read_models.begin() as conn:
            conn.execute(insert_for(conn, table).on_conflict_do_nothing(), rows)

    def refresh(self) -> None:
        """Re-reads versions and positions, which other processes may have moved."""
        self._read_state()
        self._refuse_outdated_code()

    def stored_positions(self) -> dict[str, int]:
        """Every tracking row's position, as committed (other processes' work included)."""
        with self.read_models.connect() as conn:
            return {row.projection: row.position for row in conn.execute(sa.select(self.tracking))}

    def _read_state(self) -> None:
        with self.read_models.connect() as conn:
            positions = conn.execute(sa.select(self.tracking)).all()
            versions = conn.execute(sa.select(self.versions)).all()
            stalls = conn.execute(sa.select(self.stalls)).all()
            rebuilds = conn.execute(sa.select(self.rebuilds)).all()
        self.positions = {row.projection: row.position for row in positions}
        self.active = {row.name: (row.version, row.projection) for row in versions}
        self.stalled = {
            row.projection: Stall(row.lineage, row.version, row.position, row.cause, _utc(row.stalled_at))
            for row in stalls
            if row.projection in self.positions and self.positions[row.projection] < row.position
        }
        self.generations = {row.projection: (row.generation, row.building) for row in rebuilds}

    def _refuse_outdated_code(self, discard: bool = False) -> None:
        for projection in self.projections:
            version, _key = self.active[projection.lineage]
            if version > projection.version:
                if discard:
                    self._discard(projection.key)
                raise ReadModelVersionMismatch(
                    f"read model {projection.lineage} is at version {version}, this code has version "
                    f"{projection.version}: run the newer code"
                )

    def _discard(self, key: str) -> None:
        """Takes away the tables and tracking row of a version that is not and will never be active."""
        with self.read_models.begin() as conn:
            conn.execute(sa.delete(self.tracking).where(self.tracking.c.projection == key))
            conn.execute(sa.delete(self.stalls).where(self.stalls.c.projection == key))
            self._retire_tables(conn, key)

    def _explain_replaced_version(self) -> None:
        """A read failed: if newer code replaced one of our versions, say so."""
        self._read_state()
        for projection in self.projections:
            self._position(projection)
        self._refuse_outdated_code()

    def pending(self) -> list[Projection]:
        """This code's projections whose version is newer than the active one."""
        return [p for p in self.projections if self.active[p.lineage][0] < p.version]

    def catch_up(self, only: Sequence[Projection] | None = None, progress: Progress | None = None) -> int:
        """Applies every event recorded so far (to `only` these projections, if given) and
        activates each pending version (and swaps in each forced rebuild) that has caught
        up; returns the position reached by those not stalled. A projection whose handler
        raises stalls there alone (`_apply_isolated`); the others go on past it.
        `progress(position, head)` is called before each batch and at the end."""
        chosen = self.projections if only is None else list(only)
        if not chosen:
            return self.recorder.max_notification_id() or 0
        with self._lock:
            head = self.recorder.max_notification_id() or 0
            self._look_at_stalls(chosen, head)
            # A forced rebuild another process (a rebuild worker) swapped in is done.
            chosen = [p for p in chosen if not p.generation or p.store_key in self.positions]
            if not chosen:
                return head
            while True:
                moving = [p for p in chosen if not self._held(p)]
                low = min(self._position(p) for p in (moving or chosen))
                if progress is not None:
                    progress(min(low, head), head)
                if not moving or low >= head:
                    break
                with gc_paused():
                    if not self._next_batch(moving, low, head):
                        break
            self._activate_caught_up(chosen, head)
            return low

    def _look_at_stalls(self, chosen: Sequence[Projection], head: int) -> None:
        """With a chosen projection stalled, re-reads the state (another process may have
        rebuilt it or got past the event) and, lazily, the skips (a skip is an event: none
        can have come unless the head moved). Once per head, so a follower or a query does
        not re-read on every call while nothing happens."""
        if head == self._looked_at or not any(p.store_key in self.stalled for p in chosen):
            return
        self._looked_at = head
        self._skips.clear()
        self._read_state()

    def _held(self, projection: Projection) -> bool:
        """Stalled, already tried by this process, and its event not skipped."""
        stall = self.stalled.get(projection.store_key)
        if stall is None or projection.store_key not in self._retried:
            return False
        return stall.position not in self._skipped(projection)

    def _skipped(self, projection: Projection, fresh: bool = False) -> set[int]:
        """The positions operators told this projection's version to step over."""
        if self.skip_log is None:
            return set()
        if fresh or projection.lineage not in self._skips:
            self._skips[projection.lineage] = self.skip_log(projection.lineage)
        return {s.position for s in self._skips[projection.lineage] if s.version == projection.version}

    def _next_batch(self, chosen: Sequence[Projection], low: int, head: int) -> bool:
        """Reads the batch after `low`, decodes the events the chosen projections handle
        (decoding is most of a batch's cost; a projection ignores the others anyway), and
        applies them; False if there is nothing after `low`. If a handler raises, the batch
        is rolled back and applied again with each projection isolated (`_apply_batch`):
        no savepoints cost anything while every handler succeeds."""
        notifications = self.recorder.select_notifications(
            start=low, limit=self.batch_size, stop=head, inclusive_of_start=False
        )
        if not notifications:
            return False
        wanted = {cls for projection in chosen for cls in projection.handlers}
        classes, decode = self._classes, self.mapper.to_domain_event
        batch = []
        for notification in notifications:
            cls = classes.get(notification.topic)
            if cls is None:
                cls = classes[notification.topic] = resolve_topic(notification.topic)
            if cls in wanted:
                batch.append((notification.id, decode(notification)))
        for isolated in (False, True):
            try:
                self._apply_batch(chosen, batch, notifications[-1].id, isolated)
            except _StalePosition:
                self._read_state()
            except Exception as exc:
                if isolated or _infrastructure(exc):
                    raise
                continue
            return True
        return True  # (not reached: the isolated pass returns or raises)

    def _position(self, projection: Projection) -> int:
        position = self.positions.get(projection.store_key)
        if position is None:
            if projection.generation:
                raise StoreUnavailable(f"the rebuild of {projection.key} was finished or discarded by another process")
            # deleted by the activation of a newer version
            raise ReadModelVersionMismatch(
                f"read model {projection.key} was replaced by a newer version: run the newer code"
            )
        return position

    def _apply_batch(self, chosen: Sequence[Projection], batch: Batch, last: int, isolated: bool = False) -> None:
        """Applies the events (positions up to `last`) and moves the tracking rows to `last`.
        `isolated`: each projection in a savepoint of its own, so that one whose handler
        raises stalls before that event (its tracking row stops there, the stall recorded
        beside it) while the others' rows and positions commit."""
        moved: dict[str, int] = {}
        stalled: dict[str, Stall] = {}
        with self.read_models.begin() as conn:
            for projection in chosen:
                key = projection.store_key
                start = self._position(projection)
                if start >= last:
                    continue
                claimed = conn.execute(
                    sa.update(self.tracking)
                    .where(self.tracking.c.projection == key)
                    .where(self.tracking.c.position == start)
                    .values(position=last)
                )
                if claimed.rowcount != 1:
                    raise _StalePosition(key)
                if key in self.stalled:
                    self._retried.add(key)
                events = batch[bisect.bisect_right(batch, start, key=lambda item: item[0]) :]
                failure = None
                if isolated:
                    failure = self._apply_isolated(conn, projection, events)
                elif events:
                    projection.apply_batch(conn, events)
                if failure is None:
                    moved[key] = last
                    continue
                stall = Stall(projection.lineage, projection.version, failure[0], failure[1], datetime.now(UTC))
                moved[key] = stall.position - 1
                conn.execute(
                    sa.update(self.tracking).where(self.tracking.c.projection == key).values(position=moved[key])
                )
                row = {"projection": key, **{f: getattr(stall, f) for f in ("lineage", "version", "position", "cause")}}
                upsert = insert_for(conn, self.stalls).values(**row, stalled_at=stall.at)
                conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["projection"],
                        set_={c: upsert.excluded[c] for c in ("lineage", "version", "position", "cause", "stalled_at")},
                    )
                )
                stalled[key] = stall
        self.positions.update(moved)
        for key in moved:
            self.stalled.pop(key, None)
        self.stalled.update(stalled)
        self._retried.update(stalled)

    def _apply_isolated(self, conn: Connection, projection: Projection, events: Batch) -> tuple[int, str] | None:
        """Applies the events in a savepoint; if a handler raises, finds the first event
        that fails on its own (one savepoint per event) and applies those before it. An
        event an operator skipped for this version is stepped over when it fails.
        Returns (position, cause) of the event it stalls on, or None."""
        try:
            with conn.begin_nested():
                projection.apply_batch(conn, events)
            return None
        except Exception as exc:
            projection.rolled_back()
            if _infrastructure(exc):
                raise
        skipped: set[int] | None = None
        for position, event in events:
            try:
                with conn.begin_nested():
                    projection.apply_batch(conn, [(position, event)])
            except Exception as exc:
                projection.rolled_back()
                if _infrastructure(exc):
                    raise
                if skipped is None:
                    skipped = self._skipped(projection, fresh=True)
                if position not in skipped:
                    return position, one_line(exc)
        return None

    def require(self, *projections: Projection) -> None:
        """Raises `ReadModelStalled` if one of the projections (a query's read models) is
        stalled. What this process knows of a stall is confirmed first: another process may
        have rebuilt the read model or stepped it over the event since."""
        for projection in projections:
            if projection.store_key not in self.stalled:
                continue
            self._read_state()
            stall = self.stalled.get(projection.store_key)
            if stall is None:
                self.catch_up([projection])
                continue
            since = stall.at.isoformat(timespec="seconds")
            raise ReadModelStalled(
                f"read model {stall.lineage} is {describe_stall(stall)} (since {since}); "
                f"other read models go on: fix its handler and run `ledger projections rebuild --force "
                f"{stall.lineage}`, or `ledger projections skip {stall.lineage} --position {stall.position} "
                "--reason TEXT`",
                projection=stall.lineage,
                position=stall.position,
                cause=stall.cause,
            )

    def stalls_of(self, lineage: str) -> list[Stall]:
        """Where the read model's builds (active, pending, forced rebuild) are stalled, as
        committed now (`domain.projection_ops.StalledProjections`)."""
        self._read_state()
        return [stall for stall in self.stalled.values() if stall.lineage == lineage]

    def force(self, projections: Sequence[Projection]) -> list[Projection]:
        """Starts a forced rebuild of each projection's active version (a fixed handler, a
        damaged table): a new generation of its tables, built from the first event beside
        the active ones, which `catch_up` swaps in when it has caught up. One in progress
        is resumed, not restarted. Returns the builds, to pass to `catch_up`."""
        keys = [p.key for p in projections if self.active[p.lineage][0] == p.version]
        with self.read_models.begin() as conn:
            for key in keys:
                row = conn.execute(sa.select(self.rebuilds).where(self.rebuilds.c.projection == key)).first()
                if row is None:
                    fresh = {"projection": key, "generation": 1, "building": True}
                    conn.execute(insert_for(conn, self.rebuilds).on_conflict_do_nothing(), fresh)
                elif not row.building:
                    conn.execute(
                        sa.update(self.rebuilds)
                        .where(self.rebuilds.c.projection == key, self.rebuilds.c.generation == row.generation)
                        .values(generation=row.generation + 1, building=True)
                    )
        self._read_state()
        return self.builds(keys)

    def builds(self, keys: Sequence[str] | None = None) -> list[Projection]:
        """The forced rebuilds in progress of this code's active versions (`keys` only, if
        given), their tables and tracking rows created. Needs the runner's `factory`."""
        wanted = {
            key: generation
            for key, (generation, building) in self.generations.items()
            if building and (keys is None or key in keys)
        }
        ours = [p for p in self.projections if p.key in wanted and self.active[p.lineage][0] == p.version]
        missing = [p for p in ours if f"{p.key}r{wanted[p.key]}" not in self._builds]
        if missing:
            if self.factory is None:
                raise TypeError("this runner has no projection factory to build a forced rebuild with")
            made = {p.key: p for p in self.factory(sa.MetaData(info={GENERATIONS: wanted}))}
            for projection in missing:
                build = made[projection.key]
                self._builds[build.store_key] = build
            new = [made[p.key] for p in missing]
            self._create(self._tables(new))
            self._insert_missing(self.tracking, [{"projection": p.store_key, "position": 0} for p in new])
            self._read_state()
        return [self._builds[f"{p.key}r{wanted[p.key]}"] for p in ours]

    def _activate_caught_up(self, chosen: Sequence[Projection], head: int) -> None:
        for projection in chosen:
            if projection.generation:
                if self.positions.get(projection.store_key, -1) >= head:
                    self._swap_in(projection)
            elif projection in self.pending() and self._position(projection) >= head:
                self._activate(projection)

    def _activate(self, projection: Projection) -> None:
        """Makes a caught-up pending version the active one and, in the same transaction,
        takes the old version's tables away from old code: dropped on PostgreSQL; renamed
        `replaced_…` and marked as garbage on SQLite, where `collect_garbage` drops them
        after (old code then fails on a missing table and refuses to read, at once). The
        update comes first and is conditional: of several processes activating at once, one
        does it and the others only re-read."""
        old_version, old_key = self.active[projection.lineage]
        with self.read_models.begin() as conn:
            flipped = conn.execute(
                sa.update(self.versions)
                .where(self.versions.c.name == projection.lineage, self.versions.c.version == old_version)
                .values(version=projection.version, projection=projection.key)
            )
            if flipped.rowcount == 1:
                conn.execute(sa.delete(self.tracking).where(self.tracking.c.projection == old_key))
                conn.execute(sa.delete(self.stalls).where(self.stalls.c.projection == old_key))
                self._retire_tables(conn, old_key)
        self._read_state()
        self._refuse_outdated_code()  # another process may have activated a still newer version

    def _swap_in(self, build: Projection) -> None:
        """Puts a caught-up forced rebuild in place of its active version, in one
        transaction: the active tables are retired as a replaced version's are, the
        build's renamed to the active names (so every process's tables, bound to those
        names, now read the new rows), and the active tracking row takes the build's
        position (processes ahead of it find their position stale and re-read). The stall
        goes with the old tables. Conditional, like `_activate`: one process swaps."""
        key, generation, build_key = build.key, build.generation, build.store_key
        with self.read_models.begin() as conn:
            done = conn.execute(
                sa.update(self.rebuilds)
                .where(self.rebuilds.c.projection == key, self.rebuilds.c.generation == generation)
                .where(self.rebuilds.c.building.is_(True))
                .values(building=False)
            )
            if done.rowcount == 1:
                tracked = self.tracking.c.projection
                position = conn.execute(sa.select(self.tracking.c.position).where(tracked == build_key)).scalar_one()
                self._retire_tables(conn, key, _REPLACED + build_key)
                quote = conn.dialect.identifier_preparer.quote
                for name in tables_of(conn, build_key):
                    renamed = key + name[len(build_key) :]
                    conn.exec_driver_sql(f"ALTER TABLE {quote(name)} RENAME TO {quote(renamed)}")
                conn.execute(sa.update(self.tracking).where(tracked == key).values(position=position))
                conn.execute(sa.delete(self.tracking).where(tracked == build_key))
                conn.execute(sa.delete(self.stalls).where(self.stalls.c.projection.in_([key, build_key])))
        self._builds.pop(build_key, None)
        self._retried.discard(key)
        self._read_state()

    def _retire_tables(self, conn: Connection, key: str, garbage: str | None = None) -> None:
        """Takes the tables of version `key` away, in the caller's transaction: dropped on
        PostgreSQL; on SQLite renamed `garbage` (default `replaced_{key}`) + their own name
        after the key, and left to `collect_garbage`."""
        if conn.dialect.name != "sqlite":
            for name in tables_of(conn, key):
                conn.execute(DropTable(sa.Table(name, sa.MetaData())))
            return
        garbage = garbage or _REPLACED + key
        quote = conn.dialect.identifier_preparer.quote
        for name in tables_of(conn, key):
            conn.exec_driver_sql(f"ALTER TABLE {quote(name)} RENAME TO {quote(garbage + name[len(key) :])}")
        conn.execute(insert_for(conn, self.garbage).on_conflict_do_nothing(), {"projection": garbage})

    def collect_garbage(self, max_chunks: int | None = None) -> bool:
        """Drops the tables of replaced versions (SQLite's; PostgreSQL drops them in the
        switch); True when none is left. A DROP of a large table holds SQLite's one write
        lock while it frees every page (minutes for millions of rows, with the event store
        in the same file), so the rows go first, `GARBAGE_CHUNK` per transaction, and the
        empty table after; `max_chunks` bounds one call's work. Not run by the catch-up
        that activates a version (a query's read-your-writes would wait on it), nor when a
        ledger is opened with nothing to build, but by a `build_pending` that built,
        `ledger projections rebuild` and, a few chunks per wake, the follower; a collection
        cut short is taken up by the next one."""
        used = 0
        with self.read_models.connect() as conn:
            keys = list(conn.execute(sa.select(self.garbage.c.projection)).scalars())
        for key in keys:
            with self.read_models.connect() as conn:
                names = tables_of(conn, key)
            for name in names:
                if self.read_models.engine.dialect.name == "sqlite":
                    emptied, chunks = self._empty_in_chunks(name, None if max_chunks is None else max_chunks - used)
                    used += chunks
                    if not emptied:
                        return False
                with self.read_models.begin() as conn:
                    conn.execute(DropTable(sa.Table(name, sa.MetaData()), if_exists=True))
            with self.read_models.begin() as conn:
                conn.execute(sa.delete(self.garbage).where(self.garbage.c.projection == key))
        return True

    def _empty_in_chunks(self, name: str, limit: int | None) -> tuple[bool, int]:
        """Deletes the table's rows, a chunk per transaction, at most `limit` chunks:
        (emptied, chunks used)."""
        quoted = self.read_models.engine.dialect.identifier_preparer.quote(name)
        delete = sa.text(f"DELETE FROM {quoted} WHERE rowid IN (SELECT rowid FROM {quoted} LIMIT {GARBAGE_CHUNK})")
        chunks = 0
        while limit is None or chunks < limit:
            with self.read_models.begin() as conn:
                deleted = conn.execute(delete).rowcount
            chunks += 1
            if deleted < GARBAGE_CHUNK:
                return True, chunks
        return False, chunks

    def status(self) -> list[ProjectionStatus]:
        """Every read model recorded in the database (this code's and others', such as the
        usage model of another time zone), with this code's pending versions, forced
        rebuilds in progress, stalls and recorded skips."""
        self._read_state()
        head = self.recorder.max_notification_id() or 0
        ours = {p.lineage: p for p in self.projections}
        found = []
        for name, (version, key) in sorted(self.active.items()):
            mine = ours.get(name)
            pending = mine if mine is not None and mine.version > version else None
            generation, building = self.generations.get(key, (0, False))
            build_key = f"{key}r{generation}" if building else None
            found.append(
                ProjectionStatus(
                    name=name,
                    version=version,
                    position=self.positions.get(key),
                    head=head,
                    pending_version=None if pending is None else pending.version,
                    pending_position=None if pending is None else self.positions.get(pending.key),
                    stall=self.stalled.get(key),
                    pending_stall=None if pending is None else self.stalled.get(pending.key),
                    rebuild_position=None if build_key is None else self.positions.get(build_key),
                    rebuild_stall=None if build_key is None else self.stalled.get(build_key),
                    skips=tuple(self.skip_log(name)) if self.skip_log is not None else (),
                )
            )
        return found


def _utc(at: datetime) -> datetime:
    # SQLite hands back a naive time (stored in UTC), PostgreSQL an aware one.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An error as one short line for status and messages: the driver's own error for a
    database one (SQLAlchemy's text adds the statement and its parameters)."""
    shown = getattr(exc, "orig", None) or exc
    text = " ".join(f"{type(shown).__name__}: {shown}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _infrastructure(exc: BaseException) -> bool:
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


def insert_for(conn: Connection, table: sa.Table) -> Any:
    """An INSERT in the connection's dialect, which has ON CONFLICT (PostgreSQL or SQLite)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """`items` in slices of at most `size`: for `IN (...)` lists under every driver's limit."""
    return (items[first : first + size] for first in range(0, len(items), size))


def split(projections: Sequence[Projection], parts: int) -> list[list[Projection]]:
    """Shares the projections out into at most `parts` groups of about equal cost, the
    costliest first, each onto the group that costs least so far."""
    groups: list[list[Projection]] = [[] for _ in range(max(1, min(parts, len(projections))))]
    loads = [0.0] * len(groups)
    for projection in sorted(projections, key=lambda p: -p.cost):
        lightest = loads.index(min(loads))
        groups[lightest].append(projection)
        loads[lightest] += projection.cost
    return [group for group in groups if group]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector during one batch. A batch's thousands of rows
    and events live until its end, so each collection the allocations trigger promotes them
    and, more and more often, re-traverses every long-lived object (projection caches grow
    with the ledger); reference counting frees them anyway. A 300,000-event rebuild of
    history and groups took 15-20% less time."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def tables_of(conn: Connection, key: str) -> list[str]:
    """The tables of the projection version `key` (named `{key}_{table}`)."""
    return sorted(name for name in sa.inspect(conn).get_table_names() if name.startswith(f"{key}_"))


GARBAGE_CHUNK = 20_000  # rows of a replaced table deleted per transaction (SQLite)
_REPLACED = "replaced_"  # the prefix of a replaced version's tables still to be dropped (SQLite)
