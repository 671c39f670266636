"""A read model's log of operator interventions, one stream per read model.

The stream is the durable record a runner consults when a handler fails: an event
skipped here for the projection's version is stepped over, by every process and by every
later rebuild of that version, so the read model never stalls on it again. The stream
id is a pure function of the read model's name, so two skips of one read model append to
one stream and conflict in the store instead of both landing unseen.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import Aggregate

from domain.catalog import EntityType
from domain.entity import stream_id
from domain.personal import declare, personal
from domain.projection_ops.types import SkippedEvent


class ProjectionOps(Aggregate):
    class Opened(Aggregate.Created):
        """The first intervention on this read model. Its field keeps the stored name
        `lineage` (the read model's stable name): the events already stored carry it, and
        the library passes it to `__init__` by that name."""

        lineage: str

    class EventSkipped(Aggregate.Event):
        """An operator told the read model's `version` to step over the event at `position`."""

        version: int
        position: int
        reason: str
        cause: str
        # The subject whose key seals `cause` (the skipped event held its personal values):
        # erasing it erases the message too. None: nothing sealed (every skip stored before).
        cause_subject: str | None = None

        def apply(self, aggregate: ProjectionOps) -> None:
            skipped = SkippedEvent(
                aggregate.stable_name, self.version, self.position, self.reason, self.cause, self.timestamp
            )
            aggregate.skipped.append(skipped)

    def __init__(self, lineage: str) -> None:  # named as `Opened` stores it
        self.stable_name = lineage
        self.skipped: list[SkippedEvent] = []

    @staticmethod
    def id_for(stable_name: str) -> uuid.UUID:
        return stream_id(EntityType.PROJECTION, stable_name)

    @classmethod
    def open(cls, stable_name: str) -> ProjectionOps:
        return cls._create(cls.Opened, id=cls.id_for(stable_name), lineage=stable_name)

    def skips(self, version: int, position: int) -> bool:
        return any(s.version == version and s.position == position for s in self.skipped)

    def skip(self, version: int, position: int, reason: str, cause: str, cause_subject: str | None = None) -> None:
        """Records the skip, once: a second skip of the same event changes nothing."""
        if not self.skips(version, position):
            self.trigger_event(
                self.EventSkipped,
                version=version,
                position=position,
                reason=reason,
                cause=cause,
                cause_subject=cause_subject,
            )


def _cause_subject(state: Mapping[str, Any]) -> str | None:
    subject = state.get("cause_subject")
    return subject if isinstance(subject, str) else None


declare(ProjectionOps.EventSkipped, personal("cause", subject=_cause_subject))
