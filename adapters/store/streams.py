"""Which of many streams exist, and their last versions, in one query per few hundred ids.

A bulk import asks, for every kernel it records, whether the ledger admitted the kernel's
session (a session stream exists); reading each stream for that was one query per fact.
This answers for a whole batch at once from the events table's (originator_id, version)
index. A command's unit of work confirms the versions of the cached copies it decided on
(and does not append to) the same way, in one query instead of one per stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from typing import Any

from adapters.store.chain import row_tuple
from adapters.store.quoting import quote_identifier

CHUNK = 500  # ids per query: under every driver's parameter limit


def existing_streams(recorder: Any, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The ids among `ids` whose stream holds at least one event."""
    return set(stream_versions(recorder, ids))


def stream_versions(recorder: Any, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The last version of each stream among `ids` that holds events (absent: none)."""
    wanted = list(ids)
    if not wanted:
        return {}
    postgres = hasattr(recorder.datastore, "schema")
    found: dict[uuid.UUID, int] = {}
    with recorder.datastore.transaction(commit=False) as curs:
        for first in range(0, len(wanted), CHUNK):
            chunk = wanted[first : first + CHUNK]
            if postgres:
                from psycopg.sql import SQL, Identifier

                table = Identifier(recorder.datastore.schema, recorder.events_table_name)
                query = (
                    "SELECT originator_id, MAX(originator_version) FROM {} "
                    "WHERE originator_id = ANY(%s) GROUP BY originator_id"
                )
                statement: Any = SQL(query).format(table)
                curs.execute(statement, (chunk,))
            else:
                # The ids as one JSON array parameter: no placeholder list pasted into the SQL.
                table_name = quote_identifier(recorder.events_table_name)
                statement = (
                    f"SELECT originator_id, MAX(originator_version) FROM {table_name} "
                    "WHERE originator_id IN (SELECT value FROM json_each(?)) GROUP BY originator_id"
                )
                curs.execute(statement, (json.dumps([i.hex for i in chunk]),))
            for row in curs.fetchall():
                raw, version = row_tuple(row)
                found[raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))] = version
    return found
