"""A read model's log of operator interventions, one stream per read model.

The stream is the durable record a runner consults when a handler fails: an event
skipped here for the projection's version is stepped over, by every process and by every
later rebuild of that version, so the read model never stalls on it again. The stream
id is a pure function of the read model's name, so two skips of one read model append to
one stream and conflict in the store instead of both landing unseen.
"""

from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate

from domain.catalog import EntityType
from domain.entity import stream_id
from domain.projection_ops.types import SkippedEvent


class ProjectionOps(Aggregate):
    class Opened(Aggregate.Created):
        """The first intervention on this read model."""

        lineage: str

    class EventSkipped(Aggregate.Event):
        """An operator told the read model's `version` to step over the event at `position`."""

        version: int
        position: int
        reason: str
        cause: str

        def apply(self, aggregate: ProjectionOps) -> None:
            aggregate.skipped.append(
                SkippedEvent(aggregate.lineage, self.version, self.position, self.reason, self.cause, self.timestamp)
            )

    def __init__(self, lineage: str) -> None:
        self.lineage = lineage
        self.skipped: list[SkippedEvent] = []

    @staticmethod
    def id_for(lineage: str) -> uuid.UUID:
        return stream_id(EntityType.PROJECTION, lineage)

    @classmethod
    def open(cls, lineage: str) -> ProjectionOps:
        return cls._create(cls.Opened, id=cls.id_for(lineage), lineage=lineage)

    def skips(self, version: int, position: int) -> bool:
        return any(s.version == version and s.position == position for s in self.skipped)

    def skip(self, version: int, position: int, reason: str, cause: str) -> None:
        """Records the skip, once: a second skip of the same event changes nothing."""
        if not self.skips(version, position):
            self.trigger_event(self.EventSkipped, version=version, position=position, reason=reason, cause=cause)
