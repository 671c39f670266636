"""The hash chain's PostgreSQL half: its statements and recorder, in their own module so a
SQLite ledger never loads psycopg (`StoreConfig` names this recorder by topic)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import DataError, postgres, pq
from psycopg.adapt import Dumper, PyFormat
from psycopg.generators import send
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg.types.array import ListBinaryDumper

from adapters.store.chain import CHAIN_TABLE, ChainedInserts, LastLink, Statements


def postgres_statements(schema: str, events_table: str) -> Statements:
    chain, events = Identifier(schema, CHAIN_TABLE), Identifier(schema, events_table)

    def sql(text: str) -> Composed:
        return SQL(text).format(chain=chain, events=events)

    return Statements(
        create=sql("CREATE TABLE IF NOT EXISTS {chain} (position bigint PRIMARY KEY, hash bytea NOT NULL)"),
        last=sql("SELECT position, hash FROM {chain} ORDER BY position DESC LIMIT 1"),
        insert=sql("INSERT INTO {chain} (position, hash) VALUES (%s, %s)"),
        # One statement for a batch's links: executemany sends a Bind and an Execute per row.
        insert_arrays=sql("INSERT INTO {chain} (position, hash) SELECT * FROM unnest(%b::bigint[], %b::bytea[])"),
        events_after=sql(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ),
        links_after=sql("SELECT position, hash FROM {chain} WHERE position > %s ORDER BY position LIMIT %s"),
        unlinked_after=sql(
            "SELECT e.notification_id, e.originator_id, e.originator_version FROM {events} e "
            "LEFT JOIN {chain} c ON c.position = e.notification_id "
            "WHERE e.notification_id > %s AND c.position IS NULL ORDER BY e.notification_id LIMIT 1"
        ),
        below_first=sql(
            "SELECT notification_id, originator_id, originator_version FROM {events} "
            "WHERE notification_id < 1 ORDER BY notification_id LIMIT 1"
        ),
    )


_BEGIN, _COMMIT = b"BEGIN", b"COMMIT"


class ChainedPostgresRecorder(ChainedInserts, PostgresApplicationRecorder):
    """Appends the events' links in the append's own transaction, after the library's
    `LOCK TABLE ... IN EXCLUSIVE MODE` has serialised appends: the last link is the latest.

    The append sends the library's statements (its lock, notify and insert), in two round
    trips where the library's `insert_events` takes five: one from BEGIN to the insert
    (which returns the positions the links need), one for the links, the erasures and
    COMMIT. Every append pays each round trip, and group commit's leader holds the table
    lock across them while the other writers wait."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        if datastore.enable_db_functions:  # that path inserts without passing through our hook
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_sql = postgres_statements(datastore.schema, self.events_table_name)
        self.sql_create_statements.append(self.chain_sql.create)
        self.last_link = LastLink()
        self._rendered: list[bytes] | None = None  # see `_locking`
        self._dumper: type[Dumper] | None = None  # see `_binary_events`

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # the library's insert_events' retry
    def insert_in_transaction(
        self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        rows = StoredEventRows(
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        )
        failed: BaseException | None = None
        ids: Sequence[int] | None = None
        # Raised inside the pooled connection's context, which turns psycopg's errors into
        # the library's and rolls back what an error left open (past it, it commits).
        with self.datastore.get_connection() as conn:
            self._binary_events(conn)  # before the cursor: a cursor copies the adapters it opens with
            with conn.pipeline() as pipeline, conn.cursor() as curs:
                try:
                    curs.execute(_BEGIN)
                    self._insert_events(curs, stored_events, **kwargs)
                    for statement in self._rendered or self._locking(conn):
                        curs.execute(statement)
                    curs.execute(self.insert_events_statement, (rows,))
                    # psycopg's pipeline flushes once after its last command, then waits for
                    # results: the tail of an insert larger than the socket buffers took in
                    # (10,000 facts, or fewer on a loaded host) stayed unsent, and client
                    # and server waited for each other forever. Sent whole first.
                    conn.wait(send(conn.pgconn))
                    pipeline.sync()  # a duplicate stream version is raised here, as in the library
                    ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
                    self.link_and_erase(curs, ids, stored_events, kwargs)
                    curs.execute(_COMMIT)  # sent with the links as the pipeline ends
                except Exception as exc:
                    failed = exc  # raised once out of the pipeline, as the library does
            if failed is not None:
                raise failed
        return ids

    def _locking(self, conn: Any) -> list[bytes]:
        """The library's lock statements (`_lock_table`) and NOTIFY (`_notify_channel`),
        rendered once: composing them again took a tenth of each append."""
        notify = SQL("NOTIFY {0}").format(Identifier(self.channel_name))
        self._rendered = [_as_bytes(statement, conn) for statement in [*self.lock_table_statements, notify]]
        return self._rendered

    def _binary_events(self, conn: Any) -> None:
        """The library's insert takes its events as an array of its composite type, which
        psycopg writes in text, escaping each state through a regex (a third of an
        append's time at 20 events). The ledger's dumper writes the same composite in
        binary; psycopg's own binary composite dumper, which looks up a dumper per field,
        made appends 1.1-1.24x slower than this one (2 to 200 events, interleaved)."""
        name = self.stored_event_type_name
        row_type = self.datastore.psycopg_python_types[name]
        if self._dumper is None:
            info = self.datastore.psycopg_type_adapters[name]
            id_type = postgres.types[self.datastore.originator_id_type].oid
            if tuple(info.field_types) != (id_type, _INT8, _TEXT, _BYTEA):
                return  # not the composite this dumper writes: the library's text it is
            self._dumper = type("StoredEventDumper", (StoredEventDumper,), {"oid": info.oid, "id_oid": id_type})
        adapters = conn.adapters
        if adapters.get_dumper(row_type, PyFormat.BINARY) is not self._dumper:
            adapters.register_dumper(row_type, self._dumper)
            adapters.register_dumper(StoredEventRows, ListBinaryDumper)  # `%s` takes it for these rows only


class StoredEventRows(list[Any]):
    """The rows of one append: a list that psycopg writes as a binary array."""


_UUID, _INT8, _TEXT, _BYTEA = (postgres.types[name].oid for name in ("uuid", "int8", "text", "bytea"))
_FIELDS = struct.Struct(">iIi")  # field count, then the first field's type and length
_FIELD = struct.Struct(">Ii")  # a field's type and length
_VERSION = struct.Struct(">Iiq")  # bigint's type, length and value


class StoredEventDumper(Dumper):
    """One stored event as the library's composite (originator id, version, topic, state)
    in PostgreSQL's binary record format: the field count, then each field's type,
    length and bytes. Subclassed per ledger with the composite's `oid` and `id_oid`."""

    format = pq.Format.BINARY
    id_oid: int

    def dump(self, obj: Any) -> bytes:
        originator_id, version, topic, state = obj
        try:
            # As the id's column takes it (the library's text path lets PostgreSQL parse it):
            # a UUID given as text is that UUID, and text that is none is refused.
            if self.id_oid != _UUID:
                stream = str(originator_id).encode()
            elif isinstance(originator_id, uuid.UUID):
                stream = originator_id.bytes
            else:
                stream = uuid.UUID(originator_id).bytes
            name = topic.encode()
            return b"".join(
                (
                    _FIELDS.pack(4, self.id_oid, len(stream)),
                    stream,
                    _VERSION.pack(_INT8, 8, version),
                    _FIELD.pack(_TEXT, len(name)),
                    name,
                    _FIELD.pack(_BYTEA, len(state)),
                    state,
                )
            )
        except (struct.error, ValueError, TypeError, AttributeError) as exc:  # ValueError: also UnicodeEncodeError
            # What the library's text path would have refused, refused as psycopg would.
            raise DataError(f"stored event {originator_id} v{version} cannot be written: {exc}") from exc


def _as_bytes(statement: Any, conn: Any) -> bytes:
    if not isinstance(statement, Composable):  # the library composes all of its statements
        raise TypeError(f"not a composed statement: {statement!r}")
    return statement.as_bytes(conn)
