"""Read model of history: one row per event of every entity, with who did it and what changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.actions.context import event_meta
from domain.base import Entity
from projections.engine import Projection

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "meta"}


def describe(event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes, details): changed fields as old/new, and any other payload of the event."""
    if isinstance(event, Entity.Created | Entity.Recreated):
        return {name: {"old": None, "new": value} for name, value in event.fields.items()}, {}
    if isinstance(getattr(event, "changes", None), dict):
        return dict(event.changes), {}
    payload = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    return {}, payload


class HistoryProjection(Projection):
    name = "history"
    version = 1

    def __init__(self, metadata: sa.MetaData, entities: Sequence[type[Entity]]) -> None:
        super().__init__(metadata)
        self.streams = self.table(
            "streams",
            sa.Column("stream_id", sa.Uuid, primary_key=True),
            sa.Column("entity_type", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.String(256), nullable=False),
        )
        self.entries = self.table(
            "entries",
            sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("entity_type", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.String(256), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("event", sa.String(64), nullable=False),
            sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("action_id", sa.String(36)),
            sa.Column("request_id", sa.String(256)),
            sa.Column("actor", sa.JSON, nullable=False),
            sa.Column("changes", sa.JSON, nullable=False),
            sa.Column("details", sa.JSON, nullable=False),
            sa.Index(None, "entity_type", "entity_id", "position"),
        )
        self._entity_types: dict[type, str] = {}
        for entity in entities:
            for attr in dir(entity):
                member = getattr(entity, attr)
                if isinstance(member, type) and issubclass(member, entity.Event) and member is not entity.Event:
                    self.handlers[member] = self.record
                    self._entity_types[member] = entity.ENTITY_TYPE
        self._keys: dict[Any, tuple[str, str]] = {}

    def record(self, conn: Connection, event: Any, position: int) -> None:
        entity_type, entity_id = self._stream(conn, event)
        meta = event_meta(event)
        changes, details = describe(event)
        conn.execute(
            sa.insert(self.entries).values(
                position=position,
                entity_type=entity_type,
                entity_id=entity_id,
                version=event.originator_version,
                event=type(event).__name__,
                occurred_at=event.timestamp,
                action_id=meta.get("action_id") or None,
                request_id=meta.get("request_id"),
                actor={k: meta.get(k) for k in ("user_id", "access_key", "role", "domain_name")},
                changes=changes,
                details=details,
            )
        )

    def _stream(self, conn: Connection, event: Any) -> tuple[str, str]:
        stream_id = event.originator_id
        if isinstance(event, Entity.Created):
            entity_type = self._entity_types[type(event)]
            conn.execute(
                sa.insert(self.streams).values(stream_id=stream_id, entity_type=entity_type, entity_id=event.key)
            )
            self._keys[stream_id] = (entity_type, event.key)
        if stream_id not in self._keys:
            row = conn.execute(sa.select(self.streams).where(self.streams.c.stream_id == stream_id)).one()
            self._keys[stream_id] = (row.entity_type, row.entity_id)
        return self._keys[stream_id]
