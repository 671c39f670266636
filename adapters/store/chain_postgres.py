"""The hash chain's PostgreSQL half: its statements and recorder, in their own module so a
SQLite ledger never loads psycopg (`StoreConfig` names this recorder by topic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Composable, Composed, Identifier

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
        self._rendered: tuple[list[bytes], bytes] | None = None  # see `_statements`
        # The events as four arrays in binary, not the library's array of its composite
        # type: psycopg writes a composite in text, escaping each state with a regex.
        self.insert_arrays = SQL(
            "INSERT INTO {events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::integer[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(
            events=Identifier(datastore.schema, self.events_table_name),
            id_type=Identifier(datastore.originator_id_type),
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # the library's insert_events' retry
    def insert_in_transaction(
        self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        failed: BaseException | None = None
        ids: Sequence[int] | None = None
        # Raised inside the pooled connection's context, which turns psycopg's errors into
        # the library's and rolls back what an error left open (past it, it commits).
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.cursor() as curs:
                try:
                    locking, insert = self._rendered or self._statements(conn)
                    curs.execute(_BEGIN)
                    self._insert_events(curs, stored_events, **kwargs)
                    for statement in locking:
                        curs.execute(statement)
                    curs.execute(insert, columns)
                    pipeline.sync()  # a duplicate stream version is raised here, as in the library
                    ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
                    self.link_and_erase(curs, ids, stored_events, kwargs)
                    curs.execute(_COMMIT)  # sent with the links as the pipeline ends
                except Exception as exc:
                    failed = exc  # raised once out of the pipeline, as the library does
            if failed is not None:
                raise failed
        return ids

    def _statements(self, conn: Any) -> tuple[list[bytes], bytes]:
        """The library's lock statements (`_lock_table`) and NOTIFY (`_notify_channel`),
        then the insert, rendered once: composing them again took a tenth of each append."""
        notify = SQL("NOTIFY {0}").format(Identifier(self.channel_name))
        locking = [_as_bytes(statement, conn) for statement in [*self.lock_table_statements, notify]]
        self._rendered = locking, self.insert_arrays.as_bytes(conn)
        return self._rendered


def _as_bytes(statement: Any, conn: Any) -> bytes:
    if not isinstance(statement, Composable):  # the library composes all of its statements
        raise TypeError(f"not a composed statement: {statement!r}")
    return statement.as_bytes(conn)
