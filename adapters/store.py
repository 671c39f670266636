"""The event store: the library's own recorders, configured from one URL.

`sqlite:///path` (embedded default, one file, WAL), `sqlite:///:memory:` (tests),
`postgresql://user[:password]@host[:port]/db[?schema=name]` (production; the schema is a
plain identifier, folded to lower case: `validate_schema`).
Append-only is enforced by database triggers installed here; every stored event is
stamped with the current action context by `StampingMapper`.
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, Recording, StoredEvent
from sqlalchemy.engine import url as sa_url

from adapters.aggregate_cache import AggregateCache
from adapters.chain import CHAIN_TABLE, quote_identifier, quote_string, seal_unchained
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
SNAPSHOTS_TABLE = "ledger_snapshots"  # the library's name for the application "Ledger" (PostgreSQL)
STORED_EVENT_TYPE = "stored_event_uuid"  # the library's composite type for inserts (PostgreSQL)


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
    """Turns a ledger URL into the library's settings and a read-model URL. A URL the
    ledger cannot use is an `InvalidAPIParameters` naming `url` (or `schema`), one line."""
    url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # say an unclosed IPv6 bracket
        raise InvalidAPIParameters(f"malformed database URL: {exc}", field="url") from None
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        return _sqlite_config(url, parts.query)
    if scheme in ("postgresql", "postgres"):
        return _postgres_config(parts)
    raise InvalidAPIParameters(
        f"unsupported database URL scheme {parts.scheme!r} (use sqlite:/// or postgresql://)", field="url"
    )


def _sqlite_config(url: str, query: str) -> StoreConfig:
    if query:
        raise InvalidAPIParameters(f"a sqlite URL takes no query parameters, got {query!r}", field="url")
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


def _postgres_config(parts: SplitResult) -> StoreConfig:
    bad_port = InvalidAPIParameters(
        f"the port in {parts.netloc.rpartition('@')[2]!r} is not a number from 1 to 65535", field="url"
    )
    try:
        port = 5432 if parts.port is None else parts.port
    except ValueError:  # urllib's message names neither the URL nor what to do
        raise bad_port from None
    if port == 0:
        raise bad_port
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise InvalidAPIParameters("a postgresql URL needs a database: postgresql://user@host/DB", field="url")
    if "/" in dbname:
        raise InvalidAPIParameters(f"{dbname!r} is not a database name", field="url")
    schema = _schema_from_query(parts.query)
    host = parts.hostname or "127.0.0.1"
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_SCHEMA": schema or "",
        "APPLICATION_RECORDER_TOPIC": "adapters.chain:ChainedPostgresRecorder",
    }
    read_url = sa_url.URL.create(
        "postgresql+psycopg", username=user, password=password or None, host=host, port=port, database=dbname
    ).render_as_string(hide_password=False)
    # The schema is a checked identifier (letters, digits, underscores): nothing in it can
    # end the option or add another one.
    connect_args = {"options": f"-csearch_path={quote_identifier(schema)}"} if schema else {}
    return StoreConfig("postgresql", env, read_url, schema, connect_args)


SCHEMA_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently cut


def _schema_from_query(query: str) -> str | None:
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidAPIParameters(f"malformed query {query!r} (expected ?schema=NAME)", field="url") from None
    unknown = sorted(set(params) - {"schema"})
    if unknown:
        raise InvalidAPIParameters(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            "(only ?schema=NAME is understood)",
            field="url",
        )
    values = params.get("schema")
    if values is None:
        return None
    if len(values) > 1:
        raise InvalidAPIParameters("schema is given more than once", field="url")
    return validate_schema(values[0])


def validate_schema(name: str) -> str:
    """The schema a `?schema=` value names, folded to lower case as PostgreSQL folds an
    unquoted name, so `Prod` and `prod` are one schema on every run; and the library needs
    it so, since it looks its composite type up by the unquoted name `schema.type`. Only
    plain identifiers are accepted: every statement quotes it anyway, but a name that
    needs quoting cannot be written unquoted where the library does."""
    if not SCHEMA_PATTERN.fullmatch(name):
        raise InvalidAPIParameters(
            f"{name!r} is not a schema name: use letters, digits and underscores, not starting with a digit",
            field="schema",
        )
    folded = name.lower()
    if len(folded.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidAPIParameters(f"{name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes", field="schema")
    if folded.startswith("pg_") or folded == "information_schema":
        raise InvalidAPIParameters(f"{name!r} is a name PostgreSQL reserves for system schemas", field="schema")
    return folded


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
        env = {**config.env, "MAPPER_TOPIC": "adapters.store:StampingMapper"}
        set_up = config.kind == "postgresql" and postgres_is_set_up(config)
        if set_up:
            env["CREATE_TABLE"] = "no"  # see `postgres_is_set_up`
        super().__init__(env=env)
        self.cache = AggregateCache()
        if not set_up:
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


APPEND_ONLY_FUNCTION = "ledger_append_only"


def _protected_tables(config: StoreConfig) -> tuple[str, ...]:
    # Snapshots are not protected: they are derived from the events and can be taken again.
    return (config.events_table, CHAIN_TABLE)


def _trigger_names(table: str) -> tuple[str, str]:
    return f"{table}_no_update_delete", f"{table}_no_truncate"


def install_append_only_triggers(app: LedgerApplication) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events table and on the hash
    chain fail. Every name is quoted as an identifier (the schema comes from a URL)."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    if app.config.kind == "sqlite":
        statements: list[Any] = [
            f"CREATE TRIGGER IF NOT EXISTS {quote_identifier(f'{table}_no_{op.lower()}')} "
            f"BEFORE {op} ON {quote_identifier(table)} BEGIN SELECT RAISE(ABORT, "
            f"{quote_string(f'the ledger is append-only: {op} on {table} refused')}); END"
            for table in _protected_tables(app.config)
            for op in ("UPDATE", "DELETE")
        ]
    else:
        statements = _postgres_trigger_statements(app.config)
    with datastore.transaction(commit=True) as cursor:
        if app.config.kind == "postgresql":
            # Two processes opening one ledger at once must not race on the DDL.
            cursor.execute("SELECT pg_advisory_xact_lock(7412001)")
        for statement in statements:
            cursor.execute(statement)


def _postgres_trigger_statements(config: StoreConfig) -> list[Any]:
    from psycopg.sql import SQL, Identifier  # only PostgreSQL ledgers need it loaded

    schema = config.schema or "public"
    function = Identifier(schema, APPEND_ONLY_FUNCTION)
    statements = [
        SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$"
        ).format(function=function)
    ]
    for table in _protected_tables(config):
        row_trigger, truncate_trigger = _trigger_names(table)
        names = {"table": Identifier(schema, table), "function": function}
        statements += [
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION {function}()"
            ).format(trigger=Identifier(row_trigger), **names),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            ).format(trigger=Identifier(truncate_trigger), **names),
        ]
    return statements


def postgres_is_set_up(config: StoreConfig) -> bool:
    """Whether this PostgreSQL ledger's tables, type, index, trigger function and triggers
    all exist. Then opening it runs no DDL at all: `CREATE ... IF NOT EXISTS` and `CREATE
    OR REPLACE` need CREATE on the schema or ownership even when nothing is created, and
    `CREATE INDEX IF NOT EXISTS` locks the table; a role granted only the use of a ledger
    its owner set up must be able to open it. Reads the catalogs only, which any role may."""
    schema = config.schema or "public"
    tables = [config.events_table, SNAPSHOTS_TABLE, CHAIN_TABLE]
    relations = [*tables, f"{config.events_table}_notification_id_idx"]
    triggers = [name for table in _protected_tables(config) for name in _trigger_names(table)]
    query = """
        SELECT
          (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = ANY(%(relations)s)) = cardinality(%(relations)s)
          AND EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = %(schema)s AND t.typname = %(type)s)
          AND EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %(schema)s AND p.proname = %(function)s)
          AND (SELECT count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND g.tgname = ANY(%(triggers)s)
              AND NOT g.tgisinternal) = cardinality(%(triggers)s)
    """
    params = {
        "schema": schema,
        "relations": relations,
        "tables": list(_protected_tables(config)),
        "type": STORED_EVENT_TYPE,
        "function": APPEND_ONLY_FUNCTION,
        "triggers": triggers,
    }
    with config.connect_postgres() as conn:
        row = conn.execute(query, params).fetchone()
    return bool(row and row[0])


def ensure_postgres_schema(conn: Any, config: StoreConfig) -> None:
    """Creates the ledger's schema unless it exists, on `conn` (autocommit). Checked first:
    `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the database even when the schema is
    there, which a role that only uses a ledger has not."""
    import psycopg  # only PostgreSQL ledgers need it loaded
    from psycopg.sql import SQL, Identifier

    schema = config.schema or "public"
    # The library finds its composite type by the unquoted name `schema.type`, which
    # PostgreSQL cannot parse when the schema is a keyword it reserves (select, user, int).
    keyword = conn.execute("SELECT 1 FROM pg_get_keywords() WHERE word = %s AND catcode <> 'U'", (schema,))
    if keyword.fetchone() is not None:
        raise InvalidAPIParameters(
            f"{schema!r} is an SQL keyword PostgreSQL reserves; choose another name", field="schema"
        )
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None:
        return
    try:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot create schema {schema!r}: {' '.join(str(exc).split())}") from exc
