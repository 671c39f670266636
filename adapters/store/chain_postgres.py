"""The hash chain's PostgreSQL half: its statements and recorder, in their own module so a
SQLite ledger never loads psycopg (`StoreConfig` names this recorder by topic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier

from adapters.store.chain import CHAIN_TABLE, ChainedInserts, LastLink, Statements


def postgres_statements(schema: str, events_table: str) -> Statements:
    chain, events = Identifier(schema, CHAIN_TABLE), Identifier(schema, events_table)

    def sql(text: str) -> Composed:
        return SQL(text).format(chain=chain, events=events)

    return Statements(
        create=sql("CREATE TABLE IF NOT EXISTS {chain} (position bigint PRIMARY KEY, hash bytea NOT NULL)"),
        last=sql("SELECT position, hash FROM {chain} ORDER BY position DESC LIMIT 1"),
        insert=sql("INSERT INTO {chain} (position, hash) VALUES (%s, %s)"),
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


class ChainedPostgresRecorder(ChainedInserts, PostgresApplicationRecorder):
    """Appends the events' links in the append's own transaction, after the library's
    `LOCK TABLE ... IN EXCLUSIVE MODE` has serialised appends: the last link is the latest."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        if datastore.enable_db_functions:  # that path inserts without passing through our hook
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_sql = postgres_statements(datastore.schema, self.events_table_name)
        self.sql_create_statements.append(self.chain_sql.create)
        self.last_link = LastLink()

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        self.link_and_erase(curs, ids, stored_events, kwargs)
        return ids
