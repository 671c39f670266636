"""Read model of history: one row per event of every entity, with who did it and when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.actions.context import event_meta
from domain.entity import Entity
from projections.projection import Batch, BatchProjection, Handler
from projections.sql import POSITION, BulkInsert, chunks, compact_json

_ACTOR = ("user_id", "access_key", "role", "domain_name")
# `key`: the entity's own key, which some events carry to name their subject (domain.personal).
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "meta", "key"}
_CREATIONS = (Entity.Created, Entity.Recreated)  # a tuple: isinstance checks it faster than a union


def describe(event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes, details): changed fields as old/new, and any other payload of the event."""
    if isinstance(event, _CREATIONS):
        return {name: {"old": None, "new": value} for name, value in event.fields.items()}, {}
    if isinstance(getattr(event, "changes", None), dict):
        return dict(event.changes), {}
    payload = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    return {}, payload


class HistoryProjection(BatchProjection):
    """Who did what to which entity, when: a row per event. What the event changed is not
    copied into the row: `describe` reads it from the stored event when a history is asked
    for (the store keeps every event anyway, and copying it as JSON was most of the row's
    cost in a rebuild)."""

    name = "history"
    # 2: the position is SQLite's rowid (as a BIGINT key it was a second B-tree to insert into).
    # 3: rows refer to their stream by number; changes and details come from the events.
    version = 3
    cost = 1.3  # a row per event of every entity: a third more than usage's time in a rebuild

    def __init__(self, metadata: sa.MetaData, entities: Sequence[type[Entity]]) -> None:
        self._entity_types: dict[type, str] = {  # every event class of the entities -> its entity type
            member: entity.ENTITY_TYPE
            for entity in entities
            for member in (getattr(entity, attr) for attr in dir(entity))
            if isinstance(member, type) and issubclass(member, entity.Event) and member is not entity.Event
        }
        super().__init__(metadata)
        # A stream's number is the position of its first event: the same in every rebuild.
        self.streams = self.table(
            "streams",
            sa.Column("stream_id", sa.Uuid, primary_key=True),
            sa.Column("number", POSITION, nullable=False, unique=True),
            sa.Column("entity_type", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.String(256), nullable=False),
            sa.Index(None, "entity_type", "entity_id"),
        )
        self.entries = self.table(
            "entries",
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
            sa.Column("stream", POSITION, nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("event", sa.String(64), nullable=False),
            sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("action_id", sa.String(36)),
            sa.Column("request_id", sa.String(256)),
            sa.Column("actor", sa.JSON, nullable=False),
            sa.Index(None, "stream", "position"),
        )
        self._numbers: dict[Any, int] = {}  # stream id -> its number
        self._insert_stream = BulkInsert(self.streams)
        self._insert_entry = BulkInsert(self.entries, raw=("actor",))
        self._actors: dict[tuple[Any, ...], str] = {}  # the actor's JSON, by its values

    def computed_handlers(self) -> Mapping[type, Handler]:
        return dict.fromkeys(self._entity_types, self.record)

    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        """One executemany per table and at most one lookup of unknown streams per batch:
        a rebuild writes one row per event, and per-event statements dominated its time."""
        ours = [(position, event) for position, event in batch if type(event) in self._entity_types]
        streams = [self._new_stream(p, event) for p, event in ours if isinstance(event, Entity.Created)]
        # Not `set - self._numbers.keys()`: that walks (and hashes) every stream ever seen, per batch.
        numbers = self._numbers
        self._load_streams(conn, {event.originator_id for _p, event in ours if event.originator_id not in numbers})
        self._insert_stream(conn, streams)
        self._insert_entry(conn, [self._entry(position, event) for position, event in ours])

    def rolled_back(self) -> None:
        # A stream whose first event was rolled back (and then skipped) has no row: its
        # number must be read again, not taken from the cache.
        self._numbers.clear()

    def _new_stream(self, position: int, event: Any) -> list[Any]:
        self._numbers[event.originator_id] = position
        return self._insert_stream.row(
            stream_id=event.originator_id,
            number=position,
            entity_type=self._entity_types[type(event)],
            entity_id=event.key,
        )

    def _load_streams(self, conn: Connection, stream_ids: set[Any]) -> None:
        """Caches the numbers of the streams whose first event came in an earlier batch."""
        s = self.streams
        for chunk in chunks(list(stream_ids), 500):
            for row in conn.execute(sa.select(s.c.stream_id, s.c.number).where(s.c.stream_id.in_(chunk))):
                self._numbers[row.stream_id] = row.number

    def _entry(self, position: int, event: Any) -> list[Any]:
        meta = event_meta(event)
        return self._insert_entry.row(
            position=position,
            stream=self._numbers[event.originator_id],
            version=event.originator_version,
            event=type(event).__name__,
            occurred_at=event.timestamp,
            action_id=meta.get("action_id") or None,
            request_id=meta.get("request_id"),
            actor=self._actor(meta),
        )

    def _actor(self, meta: dict[str, Any]) -> str:
        """The actor as JSON text; a ledger has few actors, each serialised once."""
        get = meta.get
        values = (get("user_id"), get("access_key"), get("role"), get("domain_name"))  # _ACTOR, unrolled
        text = self._actors.get(values)
        if text is None:
            text = self._actors[values] = compact_json(dict(zip(_ACTOR, values, strict=True)))
        return text
