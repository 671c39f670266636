"""The event store: the library's own recorders, configured from one URL.

`sqlite:///path` (embedded default, one file, WAL), `sqlite:///:memory:` (tests),
`postgresql://user[:password]@host[:port]/db[?schema=name]` (production).
Append-only is enforced by database triggers installed here; every stored event is
stamped with the current action context by `StampingMapper`.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, Recording, StoredEvent

from adapters.aggregate_cache import AggregateCache
from adapters.chain import CHAIN_TABLE, seal_unchained
from domain.actions.context import SYSTEM, action_context, current_context
from domain.base import VersionConflict
from domain.errors import ConcurrentModification, InvalidAPIParameters, LedgerError, StoreUnavailable
from domain.group.aggregate import Group
from domain.keypair.aggregate import KeyPair
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy
from domain.workload.aggregate import Kernel

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

DEFAULT_URL = "sqlite:///ledger.db"
SNAPSHOT_INTERVAL = 100
EVENTS_TABLE = {"sqlite": "stored_events", "postgresql": "ledger_events"}


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" or "postgresql"
    env: dict[str, str]
    read_model_url: str
    schema: str | None = None
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def events_table(self) -> str:
        return EVENTS_TABLE[self.kind]

    def connect_postgres(self) -> Any:
        """A psycopg connection (autocommit) to this PostgreSQL ledger's database, for what
        the library's pool does not do: DDL locks, LISTEN."""
        import psycopg  # only PostgreSQL ledgers need it loaded

        env = self.env
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=5,
            autocommit=True,
        )


def parse_url(url: str | None) -> StoreConfig:
    """Turns a ledger URL into the library's settings and a read-model URL."""
    url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
        path = unquote(url.split("://", 1)[1][1:]) if url.count("/") >= 3 else ""
        if not path:
            raise InvalidAPIParameters("a sqlite URL needs a path or :memory:", field="url")
        if path == ":memory:":
            # A named shared-cache database: every pooled connection sees the same events.
            db_name = f"file:ledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
            read_url = "sqlite://"
        else:
            db_name = str(Path(path))
            read_url = f"sqlite:///{db_name}"
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": db_name,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "adapters.chain:ChainedSQLiteRecorder",
        }
        return StoreConfig("sqlite", env, read_url, connect_args={"timeout": 30})
    if scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        schema = query.get("schema", [""])[0] or None
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_SCHEMA": schema or "",
            "APPLICATION_RECORDER_TOPIC": "adapters.chain:ChainedPostgresRecorder",
        }
        auth = parts.netloc
        read_url = f"postgresql+psycopg://{auth}{parts.path or '/postgres'}"
        connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
        return StoreConfig("postgresql", env, read_url, schema, connect_args)
    raise InvalidAPIParameters(f"unsupported database URL scheme {parts.scheme!r}", field="url")


class StampingMapper(Mapper[uuid.UUID]):
    """Stamps the action context (action id, request id, actor) on every stored event."""

    def to_stored_event(self, domain_event: DomainEventProtocol[uuid.UUID]) -> StoredEvent:
        if "meta" not in vars(domain_event):
            ctx = current_context() or SYSTEM
            # Events are frozen dataclasses; the stamp is added once, just before storing.
            object.__setattr__(domain_event, "meta", ctx.stamp())
        return super().to_stored_event(domain_event)


class LedgerApplication(Application[uuid.UUID]):
    """The event store and the aggregate store port the services use."""

    name = "Ledger"
    snapshotting_intervals = dict.fromkeys((KeyPairResourcePolicy, KeyPair, Group, Kernel), SNAPSHOT_INTERVAL)
    max_attempts = 20

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        super().__init__(env={**config.env, "MAPPER_TOPIC": "adapters.store:StampingMapper"})
        self.cache = AggregateCache()
        install_append_only_triggers(self)
        seal_unchained(self.recorder)  # events stored before the chain existed get their links

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """The library's save, minus its runtime Protocol checks per object (costly on
        Python 3.11 when a bulk import saves hundreds of aggregates at once)."""
        processing = ProcessingEvent[uuid.UUID]()
        for aggregate in objs:
            if aggregate is not None:
                processing.events.extend(aggregate.collect_events())
                processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[uuid.UUID]) -> None:
        """At most one snapshot per aggregate and save, taken from the saved aggregate in
        memory (the library re-reads the stream for every interval crossed)."""
        if self.snapshots is None:
            return
        appended: dict[uuid.UUID, int] = {}
        for event in processing_event.events:
            appended[event.originator_id] = appended.get(event.originator_id, 0) + 1
        snapshots = []
        for aggregate_id, count in appended.items():
            aggregate = processing_event.aggregates[aggregate_id]
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and aggregate.version // interval > (aggregate.version - count) // interval:
                snapshots.append(type(aggregate).Snapshot.take(aggregate))  # type: ignore[attr-defined]
        if snapshots:
            self.snapshots.put(snapshots)

    def get(self, aggregate_id: uuid.UUID, cls: type[A]) -> A | None:
        aggregate: Aggregate | None = self.cache.get(aggregate_id)
        if aggregate is None:
            try:
                aggregate = self._load(aggregate_id)
            except AggregateNotFoundError:
                return None
            except PersistenceError as exc:
                raise StoreUnavailable(f"event store read failed: {exc}") from exc
            self.cache.put(aggregate)
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} holds a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def _load(self, aggregate_id: uuid.UUID) -> Aggregate:
        # Snapshots exist only from SNAPSHOT_INTERVAL events on, so a shorter stream is
        # read whole in one query instead of a snapshot lookup plus a read.
        events = list(self.events.get(aggregate_id, limit=SNAPSHOT_INTERVAL))
        if len(events) == SNAPSHOT_INTERVAL:
            long_stream: Aggregate = self.repository.get(aggregate_id)
            return long_stream
        if not events:
            raise AggregateNotFoundError(aggregate_id)
        # Our events all mutate; the library's projector re-checks that with a runtime
        # Protocol isinstance, which costs more than the mutation on Python 3.11.
        aggregate: Aggregate | None = None
        for event in events:
            aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        assert aggregate is not None
        return aggregate

    def save_all(self, *aggregates: Aggregate | None) -> None:
        saving = [a for a in aggregates if a is not None]
        attempt = self.cache.attempt
        # An append checks the version its decision was made on; any other cached copy
        # the decision used is checked here, before anything is written.
        appending = {a.id for a in saving if a.pending_events}
        for aggregate_id, version in attempt.cached.items():
            if aggregate_id not in appending and aggregate_id not in attempt.confirmed:
                if self._stored_version(aggregate_id) != version:
                    self.cache.drop(aggregate_id)
                    raise VersionConflict(f"cached copy of {aggregate_id} is stale")
                attempt.confirmed.add(aggregate_id)
        try:
            self.save(*saving)
        except IntegrityError as exc:
            self.cache.drop(*(a.id for a in saving))
            raise VersionConflict(str(exc)) from exc
        for aggregate in saving:
            self.cache.put(aggregate)
        attempt.confirmed |= appending

    def _stored_version(self, aggregate_id: uuid.UUID) -> int | None:
        last = list(self.events.recorder.select_events(aggregate_id, desc=True, limit=1))
        return last[0].originator_version if last else None

    def run(self, command: Callable[[], R], entity_type: str, operation: str) -> R:
        """Runs a command; see `adapters.aggregate_cache` for why cached reads are safe."""
        attempt_state = self.cache.attempt
        fresh = False
        with action_context(None, entity_type, operation):
            for attempt in range(1, self.max_attempts + 1):
                attempt_state.begin(fresh=fresh)
                try:
                    result = command()
                except LedgerError:
                    if not attempt_state.needs_fresh_rerun:
                        raise
                    fresh = True  # the refusal rested on cached state: confirm it on fresh reads
                    continue
                except (IntegrityError, VersionConflict):
                    fresh = True
                    if attempt == self.max_attempts:
                        raise ConcurrentModification(
                            f"{entity_type} {operation}: gave up after {attempt} conflicting attempts"
                        ) from None
                    # Jittered backoff so that colliding writers spread out.
                    time.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                except PersistenceError as exc:
                    raise StoreUnavailable(f"event store write failed: {exc}") from exc
                finally:
                    attempt_state.fresh = True
                if not attempt_state.needs_fresh_rerun:
                    return result
                fresh = True  # no append confirmed the cached state the answer used
        raise ConcurrentModification(f"{entity_type} {operation}: no stable answer after {self.max_attempts} attempts")

    @property
    def store(self) -> AggregateStoreAdapter:
        return AggregateStoreAdapter(self)


class AggregateStoreAdapter:
    """`domain.base.AggregateStore` over the application."""

    def __init__(self, app: LedgerApplication) -> None:
        self.get = app.get
        self.save = app.save_all
        self.run = app.run


def install_append_only_triggers(app: LedgerApplication) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events table and on the hash
    chain fail."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    statements = []
    for table in (app.config.events_table, CHAIN_TABLE):
        if app.config.kind == "sqlite":
            statements += [
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {op} on {table} refused'); END"
                for op in ("UPDATE", "DELETE")
            ]
            continue
        schema = app.config.schema or "public"
        qualified = f'"{schema}"."{table}"'
        statements += [
            f'CREATE OR REPLACE FUNCTION "{schema}".ledger_append_only() RETURNS trigger '
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
            "'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$",
            f"CREATE OR REPLACE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {qualified} "
            f'FOR EACH ROW EXECUTE FUNCTION "{schema}".ledger_append_only()',
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {qualified} "
            f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".ledger_append_only()',
        ]
    with datastore.transaction(commit=True) as cursor:
        if app.config.kind == "postgresql":
            # Two processes opening one ledger at once must not race on the DDL.
            cursor.execute("SELECT pg_advisory_xact_lock(7412001)")
        for statement in statements:
            cursor.execute(statement)
