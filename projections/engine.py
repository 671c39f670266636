"""The projection engine: read models fed from the notification log, exactly once.

A projection is a name, a version, its SQLAlchemy Core tables and one handler per
event type. The runner reads notifications in batches and, in one read-model
transaction, moves each projection's tracking row forward and applies the batch:
either both land or neither does, so a crash between batches loses nothing and
applies nothing twice. The tracking row is updated first and conditionally (it must
still hold the position this runner read), which also makes two runners racing over
one read model safe: the loser rolls back and re-reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder, Mapper
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from domain.errors import StoreUnavailable

Handler = Callable[[Connection, Any, int], None]


def on(*event_classes: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a projection method as the handler of the given event classes."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        method._handles = event_classes  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    name: ClassVar[str]
    version: ClassVar[int] = 1

    def __init__(self, metadata: sa.MetaData) -> None:
        self.metadata = metadata
        self.handlers: dict[type, Handler] = {}
        for attr in dir(type(self)):
            for event_class in getattr(getattr(type(self), attr), "_handles", ()):
                self.handlers[event_class] = getattr(self, attr)

    @property
    def key(self) -> str:
        return f"{self.name}_v{self.version}"

    def table(self, base: str, *columns: sa.Column[Any] | sa.Index) -> sa.Table:
        """A table of this projection's version; a new version gets new tables."""
        return sa.Table(f"{self.key}_{base}", self.metadata, *columns)

    def apply(self, conn: Connection, event: object, position: int) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(conn, event, position)


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
        self._lock = threading.RLock() if self.is_memory else None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._locked(), translate_db_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._locked(), translate_db_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def translate_db_errors() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"read model database error: {exc}") from exc


class _StalePosition(Exception):
    """Another runner moved a tracking row first; re-read and go on."""


class ProjectionRunner:
    tracking_metadata = sa.MetaData()
    tracking = sa.Table(
        "projection_tracking",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )

    def __init__(
        self,
        read_models: ReadModels,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        projections: Sequence[Projection],
        batch_size: int = 500,
    ) -> None:
        self.read_models = read_models
        self.recorder = recorder
        self.mapper = mapper
        self.projections = list(projections)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self.positions: dict[str, int] = {}

    def setup(self) -> None:
        """Creates missing tables and tracking rows; safe when several processes start at once."""
        tables = [*self.tracking_metadata.sorted_tables]
        for metadata in {id(p.metadata): p.metadata for p in self.projections}.values():
            tables += metadata.sorted_tables
        with self.read_models.begin() as conn:
            for table in tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        for projection in self.projections:
            try:
                with self.read_models.begin() as conn:
                    conn.execute(sa.insert(self.tracking).values(projection=projection.key, position=0))
            except StoreUnavailable:
                pass  # already tracked (by an earlier run, or a process starting beside us)
        self._read_positions()
        missing = [p.key for p in self.projections if p.key not in self.positions]
        if missing:
            raise StoreUnavailable(f"cannot create tracking rows for {', '.join(missing)}")

    def _read_positions(self) -> None:
        with self.read_models.connect() as conn:
            rows = conn.execute(sa.select(self.tracking)).all()
        self.positions = {row.projection: row.position for row in rows}

    def catch_up(self) -> int:
        """Applies every event recorded so far; returns the position reached."""
        with self._lock:
            head = self.recorder.max_notification_id() or 0
            while True:
                low = min(self.positions.get(p.key, 0) for p in self.projections)
                if low >= head:
                    return head
                notifications = self.recorder.select_notifications(
                    start=low, limit=self.batch_size, stop=head, inclusive_of_start=False
                )
                if not notifications:
                    return low
                try:
                    self._apply_batch([(n.id, self.mapper.to_domain_event(n)) for n in notifications])
                except _StalePosition:
                    self._read_positions()

    def _apply_batch(self, batch: list[tuple[int, Any]]) -> None:
        last = batch[-1][0]
        moved: dict[str, int] = {}
        with self.read_models.begin() as conn:
            for projection in self.projections:
                start = self.positions.get(projection.key, 0)
                if start >= last:
                    continue
                claimed = conn.execute(
                    sa.update(self.tracking)
                    .where(self.tracking.c.projection == projection.key)
                    .where(self.tracking.c.position == start)
                    .values(position=last)
                )
                if claimed.rowcount != 1:
                    raise _StalePosition(projection.key)
                for position, event in batch:
                    if position > start:
                        projection.apply(conn, event, position)
                moved[projection.key] = last
        self.positions.update(moved)
