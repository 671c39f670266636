"""Read model of `Entity` aggregates: one row per key, live or deleted, fields as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.entity import Entity
from domain.erasure import SUBJECT_ERASURES
from domain.personal import erased_fields
from projections.projection import Handler, Projection


class EntityProjection(Projection):
    aggregate: ClassVar[type[Entity]]
    key_length: ClassVar[int] = 256
    cost: ClassVar[float] = 0.1  # policies, keypairs and groups change rarely
    # The fields of a row that are personal values sealed under the entity's own subject,
    # erased by an erasure that raced the entity's create (`erased_without_stream`).
    personal: ClassVar[tuple[str, ...]] = ()

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.rows = self.table(
            "rows",
            sa.Column("key", sa.String(self.key_length), primary_key=True),
            sa.Column("stream_id", sa.Uuid, nullable=False, unique=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("fields", sa.JSON, nullable=False),
            sa.Column("is_deleted", sa.Boolean, nullable=False),
            *self.extra_columns(),
        )

    def computed_handlers(self) -> Mapping[type, Handler]:
        """The life of the projection's aggregate, which each subclass names (a subclass's
        own `@on` handler wins)."""
        entity = self.aggregate
        handlers: dict[type, Handler] = {
            entity.Created: self.created,
            entity.Recreated: self.recreated,
            entity.Modified: self.modified,
            entity.Deleted: self.deleted,
        }
        if self.personal:
            handlers |= dict.fromkeys(SUBJECT_ERASURES, self.erased_without_stream)
        return handlers

    def erased_without_stream(self, conn: Connection, event: Any, _position: int) -> None:
        """An erasure on a stream of its own (domain/erasure.py) was decided while no stream
        of this entity held its subject, but a create racing it may have sealed the new
        entity's values under the key it destroyed: the row keeps what a rebuild reads then."""
        kind, _, key = str(event.subject).partition(":")
        if kind != self.aggregate.ENTITY_TYPE:
            return
        try:
            stream = self.aggregate.id_for(key)
        except ValueError:  # not an id of this kind: no row is keyed by it
            return
        rows = self.rows
        found = conn.execute(sa.select(rows.c.fields).where(rows.c.stream_id == stream)).first()
        if found is not None:
            erased = erased_fields(found.fields, self.personal)
            conn.execute(sa.update(rows).where(rows.c.stream_id == stream).values(fields=erased))

    def extra_columns(self) -> list[sa.Column[Any]]:
        return []

    def created(self, conn: Connection, event: Any, _position: int) -> None:
        conn.execute(
            sa.insert(self.rows).values(
                key=event.key,
                stream_id=event.originator_id,
                created_at=event.timestamp,
                modified_at=event.timestamp,
                version=event.originator_version,
                fields=event.fields,
                is_deleted=False,
            )
        )

    def recreated(self, conn: Connection, event: Any, _position: int) -> None:
        self.touch(conn, event, created_at=event.timestamp, fields=event.fields, is_deleted=False)

    def modified(self, conn: Connection, event: Any, _position: int) -> None:
        row = conn.execute(sa.select(self.rows.c.fields).where(self.rows.c.stream_id == event.originator_id)).one()
        fields = {**row.fields, **{name: change["new"] for name, change in event.changes.items()}}
        self.touch(conn, event, fields=fields)

    def deleted(self, conn: Connection, event: Any, _position: int) -> None:
        self.touch(conn, event, is_deleted=True)

    def touch(self, conn: Connection, event: Any, **values: Any) -> None:
        conn.execute(
            sa.update(self.rows)
            .where(self.rows.c.stream_id == event.originator_id)
            .values(modified_at=event.timestamp, version=event.originator_version, **values)
        )

    def live(self) -> sa.Select[Any]:
        return sa.select(self.rows).where(self.rows.c.is_deleted.is_(False))
