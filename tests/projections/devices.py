"""A test-only aggregate whose event schema evolved, and its read model in two versions.

Version 1 of the code stored `Device.Registered` with a name only; devices were named after
their site ("lab-3"). Version 2 added `location`: `class_version = 2` and an upcaster that
derives it from the name, so old events read as today's. The read model's version 2 adds
the column; rebuilding it from position 0 fills it for old and new devices alike.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from eventsourcing.domain import Aggregate
from sqlalchemy.engine import Connection

from projections.projection import Projection, on


class Device(Aggregate):
    class Registered(Aggregate.Created):
        class_version = 2
        name: str
        location: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["location"] = state["name"].rsplit("-", 1)[0]

    def __init__(self, name: str, location: str) -> None:
        self.name = name
        self.location = location

    @classmethod
    def register(cls, name: str, location: str) -> Device:
        return cls._create(
            cls.Registered, id=uuid.uuid5(uuid.NAMESPACE_URL, f"device:{name}"), name=name, location=location
        )


class DevicesV1(Projection):
    name = "devices"
    version = 1

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.rows = self.table("rows", sa.Column("device_id", sa.Uuid, primary_key=True), *self.columns())

    def columns(self) -> list[sa.Column[Any]]:
        return [sa.Column("name", sa.String(64), nullable=False)]

    def values(self, event: Any) -> dict[str, Any]:
        return {"device_id": event.originator_id, "name": event.name}

    @on(Device.Registered)
    def registered(self, conn: Connection, event: Any, _position: int) -> None:
        conn.execute(sa.insert(self.rows).values(**self.values(event)))


class DevicesV2(DevicesV1):
    version = 2

    def columns(self) -> list[sa.Column[Any]]:
        return [*super().columns(), sa.Column("location", sa.String(64), nullable=False)]

    def values(self, event: Any) -> dict[str, Any]:
        return {**super().values(event), "location": event.location}
