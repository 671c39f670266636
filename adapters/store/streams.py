"""Which of many streams exist, in one query per few hundred ids.

A bulk import asks, for every kernel it records, whether the ledger admitted the kernel's
session (a session stream exists); reading each stream for that was one query per fact.
This answers for a whole batch at once from the events table's (originator_id, version)
index. Only existence is read, never a version: what a command decides on it is read
through its unit of work as usual.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from typing import Any

from adapters.store.quoting import quote_identifier

CHUNK = 500  # ids per query: under every driver's parameter limit


def existing_streams(recorder: Any, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The ids among `ids` whose stream holds at least one event."""
    wanted = list(ids)
    if not wanted:
        return set()
    postgres = hasattr(recorder.datastore, "schema")
    found: set[uuid.UUID] = set()
    with recorder.datastore.transaction(commit=False) as curs:
        for first in range(0, len(wanted), CHUNK):
            chunk = wanted[first : first + CHUNK]
            if postgres:
                from psycopg.sql import SQL, Identifier

                table = Identifier(recorder.datastore.schema, recorder.events_table_name)
                query = "SELECT DISTINCT originator_id FROM {} WHERE originator_id = ANY(%s)"
                statement: Any = SQL(query).format(table)
                curs.execute(statement, (chunk,))
            else:
                # The ids as one JSON array parameter: no placeholder list pasted into the SQL.
                table_name = quote_identifier(recorder.events_table_name)
                statement = (
                    f"SELECT DISTINCT originator_id FROM {table_name} "
                    "WHERE originator_id IN (SELECT value FROM json_each(?))"
                )
                curs.execute(statement, (json.dumps([i.hex for i in chunk]),))
            for row in curs.fetchall():
                raw = next(iter(row.values())) if isinstance(row, dict) else row[0]
                found.add(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
    return found
