"""Read model of the audit trail: one row per action outcome, indexed for the auditor's filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.actions.base import batch_label
from domain.audit import AuditRecord
from projections.projection import Batch, BatchProjection, on
from projections.sql import POSITION, BulkInsert

_TIMES = ("started_at", "ended_at")


class AuditProjection(BatchProjection):
    name = "audit"
    # 2: the position is SQLite's rowid (see `POSITION`).
    # 3: a batch's entities in their own indexed rows; its `entity_id` a bounded label
    #    (a comma-joined list of 300 ids broke PostgreSQL's B-tree index).
    version = 3
    cost = 0.1  # one row per action, not per event

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.entries = self.table(
            "entries",
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
            sa.Column("action_id", sa.String(36), nullable=False, unique=True),
            sa.Column("entity_type", sa.String(64), nullable=False),
            sa.Column("operation", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.Text),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("duration", sa.Float, nullable=False),
            sa.Column("error_code", sa.String(128)),
            sa.Column("request_id", sa.String(256)),
            sa.Column("triggered_by", sa.String(36)),
            sa.Column("access_key", sa.String(256)),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("domain_name", sa.String(256)),
            sa.Column("spec", sa.JSON, nullable=False),
            # The auditor's questions: one entity's trail, a time window, one actor's doings.
            sa.Index(None, "entity_type", "entity_id", "started_at"),
            sa.Index(None, "started_at"),
            sa.Index(None, "triggered_by", "started_at"),
            sa.Index(None, "access_key", "started_at"),
        )
        # Every entity a batch action touched, so an auditor finds the batch by any of them.
        self.batch_entities = self.table(
            "batch_entities",
            sa.Column("position", POSITION, nullable=False),
            sa.Column("entity_id", sa.Text, nullable=False),
            sa.Index(None, "entity_id", "position"),
        )
        # A row is the event's position, then its entry's values in the order of the columns after it.
        self._entry_columns = list(self.entries.columns.keys())[1:]
        self._insert = BulkInsert(self.entries)
        self._insert_entities = BulkInsert(self.batch_entities)

    @on(AuditRecord.Recorded)
    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        rows = []
        entities: list[tuple[int, str]] = []
        for position, event in batch:
            if type(event) is AuditRecord.Recorded:
                entry = event.entry
                ids = _batch_ids(entry)
                if ids:
                    entry = {**entry, "entity_id": batch_label(ids)}
                    entities.extend((position, entity_id) for entity_id in ids)
                rows.append(self._row(position, entry))
        self._insert(conn, rows)
        self._insert_entities(conn, entities)

    def _row(self, position: int, entry: dict[str, Any]) -> tuple[Any, ...]:
        values = [datetime.fromisoformat(entry[c]) if c in _TIMES else entry.get(c) for c in self._entry_columns]
        return (position, *values)


def _batch_ids(entry: dict[str, Any]) -> list[str]:
    """The entities of a batch action's record. Records written before `entity_ids`
    existed packed them into `entity_id`, comma-joined (batch ids never hold commas)."""
    ids: list[str] = entry.get("entity_ids") or []
    if not ids and entry.get("operation") in _LEGACY_BATCH_OPERATIONS and "," in (entry.get("entity_id") or ""):
        ids = entry["entity_id"].split(",")
    return ids


_LEGACY_BATCH_OPERATIONS = frozenset({"record_batch"})
