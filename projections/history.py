"""Read model of history: one row per event of every entity, with who did it and what changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.actions.context import event_meta
from domain.base import Entity
from projections.engine import POSITION, Batch, BulkInsert, Projection, compact_json

_JSON_COLUMNS = ("actor", "changes", "details")  # serialised here: see `HistoryProjection._actor`
_ACTOR = ("user_id", "access_key", "role", "domain_name")
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "meta"}
_CREATIONS = (Entity.Created, Entity.Recreated)  # a tuple: isinstance checks it faster than a union


def describe(event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes, details): changed fields as old/new, and any other payload of the event."""
    if isinstance(event, _CREATIONS):
        return {name: {"old": None, "new": value} for name, value in event.fields.items()}, {}
    if isinstance(getattr(event, "changes", None), dict):
        return dict(event.changes), {}
    payload = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    return {}, payload


class HistoryProjection(Projection):
    name = "history"
    # 2: the position is SQLite's rowid (as a BIGINT key it was a second B-tree to insert into).
    version = 2
    cost = 2.0  # a row per event of every entity: twice usage's time in a rebuild

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
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
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
        self._keys: dict[Any, tuple[str, str]] = {}  # stream id -> (entity type, entity id)
        self._insert_stream = BulkInsert(self.streams)
        self._insert_entry = BulkInsert(self.entries, raw=_JSON_COLUMNS)
        self._actors: dict[tuple[Any, ...], str] = {}  # the actor's JSON, by its values

    def record(self, conn: Connection, event: Any, position: int) -> None:
        self.apply_batch(conn, [(position, event)])

    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        """One executemany per table and at most one lookup of unknown streams per batch:
        a rebuild writes one row per event, and per-event statements dominated its time."""
        ours = [(position, event) for position, event in batch if type(event) in self._entity_types]
        streams = [self._new_stream(event) for _position, event in ours if isinstance(event, Entity.Created)]
        # Not `set - self._keys.keys()`: that walks (and hashes) every stream ever seen, per batch.
        keys = self._keys
        self._load_streams(conn, {event.originator_id for _position, event in ours if event.originator_id not in keys})
        self._insert_stream(conn, streams)
        self._insert_entry(conn, [self._entry(position, event) for position, event in ours])

    def _new_stream(self, event: Any) -> tuple[Any, ...]:
        entity_type = self._entity_types[type(event)]
        self._keys[event.originator_id] = (entity_type, event.key)
        return (event.originator_id, entity_type, event.key)  # the columns of `streams`, in order

    def _load_streams(self, conn: Connection, stream_ids: set[Any]) -> None:
        """Caches who the streams are whose first event came in an earlier batch."""
        wanted = list(stream_ids)
        for first in range(0, len(wanted), 500):  # well under every driver's parameter limit
            chunk = wanted[first : first + 500]
            for row in conn.execute(sa.select(self.streams).where(self.streams.c.stream_id.in_(chunk))):
                self._keys[row.stream_id] = (row.entity_type, row.entity_id)

    def _entry(self, position: int, event: Any) -> tuple[Any, ...]:
        """The columns of `entries`, in order."""
        entity_type, entity_id = self._keys[event.originator_id]
        meta = event_meta(event)
        changes, details = describe(event)
        return (
            position,
            entity_type,
            entity_id,
            event.originator_version,
            type(event).__name__,
            event.timestamp,
            meta.get("action_id") or None,
            meta.get("request_id"),
            self._actor(meta),
            _json(changes),
            _json(details),
        )

    def _actor(self, meta: dict[str, Any]) -> str:
        """The actor as JSON text; a ledger has few actors, each serialised once."""
        get = meta.get
        values = (get("user_id"), get("access_key"), get("role"), get("domain_name"))  # _ACTOR, unrolled
        text = self._actors.get(values)
        if text is None:
            text = self._actors[values] = _json(dict(zip(_ACTOR, values, strict=True)))
        return text


def _json(value: dict[str, Any]) -> str:
    return compact_json(value) if value else "{}"
