"""The state of an entity at any past version or moment, read from the event store itself.

An auditor's question is answered from the events, not from a read model: the version
in force at a moment is found by a binary search over the stream's event times (an
entity's events are appended in time order), and that version is rebuilt by the
library's repository from the nearest snapshot at or below it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from adapters.store import LedgerApplication
from adapters.store.application import reading
from domain.aggregates import ENTITY_KINDS
from domain.entity import Entity
from domain.errors import InvalidAPIParameters, ObjectNotFound
from domain.group.aggregate import Group, GroupNameIndex, name_index_id
from domain.parsers import parse_positive_int
from domain.shown import shown, shown_key
from domain.times import as_utc


def entity_kind(entity_type: str) -> type[Entity]:
    """The entity class of `entity_type`; an unknown type is refused, naming the known ones."""
    kind = ENTITY_KINDS.get(entity_type)
    if kind is None:
        known = ", ".join(sorted(ENTITY_KINDS))
        raise InvalidAPIParameters(f"unknown entity type {shown(entity_type)} (known: {known})", field="entity_type")
    return kind


def absent(
    entity_type: str, entity_id: str, at: str | None = None, version: int | None = None, latest: int | None = None
) -> ObjectNotFound:
    """The not-found of a state asked for (`at` as the caller gave it) and not there, or not
    the caller's: one wording for `ledger X show --at/--version`, `history` and `GET
    .../state`, the type in words as every not-found names it (`entity_not_found`)."""
    if at is not None:
        then = f"did not exist at {at}"
    else:
        then = "has no history" if version is None else f"has no version {version}"
    if latest is not None:
        then += f" (latest: {latest})"
    words = entity_type.replace("_", " ")
    return ObjectNotFound(f"{words} {shown_key(entity_id)} {then}", entity_type=entity_type, entity_id=entity_id)


@dataclass(frozen=True)
class EntityState:
    """An entity as it stood after its event number `version`."""

    entity_type: str
    entity_id: str
    version: int
    recorded_at: datetime  # when that event was stored
    created_at: datetime | None  # when this incarnation of the entity was created
    deleted: bool  # deleted (or purged) at that point; `fields` then hold its last values
    fields: dict[str, Any]  # a group's include `members`: the user ids in it then

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "version": self.version,
            "recorded_at": self.recorded_at.isoformat(),
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "deleted": self.deleted,
            "fields": self.fields,
        }


class TimeTravel:
    def __init__(self, app: LedgerApplication) -> None:
        self._app = app

    def state_at(
        self, entity_type: str, entity_id: str, at: datetime | None = None, version: int | None = None
    ) -> EntityState | None:
        """The state after `version`, or the state in force at `at` (None: the entity did not
        exist yet), or the current state when neither is given."""
        if at is not None and version is not None:
            raise InvalidAPIParameters("give a time or a version, not both", field="at")
        stream = self._stream(entity_type, entity_id)
        if version is not None:
            version = parse_positive_int(version, "version")  # as the CLI and HTTP parsers refuse it
        try:
            with reading(stream):  # an event altered behind the ledger's back: DamagedEvent
                if at is not None:
                    version = self._version_at(stream, as_utc(at))
                    if version == 0:
                        return None
                entity = self._app.replayed(stream, version)
        except AggregateNotFoundError:
            raise absent(entity_type, entity_id, version=version) from None
        assert isinstance(entity, Entity)  # every stream the entity types name holds one
        if version is not None and entity.version < version:
            raise absent(entity_type, entity_id, version=version, latest=entity.version)
        fields = dict(entity.fields)
        if isinstance(entity, Group):
            # Who was in it then is part of what it was (an auditor's "members at T", and
            # a diff's joins and leaves); in the order they joined.
            fields["members"] = list(entity.members)
        return EntityState(
            entity_type,
            entity_id,
            entity.version,
            entity.modified_on,
            entity.created_at,
            entity.is_deleted,
            fields,
        )

    def group_named_at(self, domain_name: str, name: str, at: datetime) -> str | None:
        """The id of the group that held `name` in the domain at `at` (None: no group did),
        from the name index's own stream: a name freed by a purge, or given up by a
        rename, may have been held by another group then than now."""
        stream = name_index_id(domain_name, name)
        with reading(stream):
            version = self._version_at(stream, as_utc(at))
            if version == 0:
                return None
            index: GroupNameIndex = self._app.repository.get(stream, version=version)
        return index.holder

    def _stream(self, entity_type: str, entity_id: str) -> uuid.UUID:
        kind = entity_kind(entity_type)
        try:
            return kind.id_for(str(entity_id))
        except ValueError:
            raise InvalidAPIParameters(f"not a {entity_type} id: {shown_key(entity_id)}", field="entity_id") from None

    def _version_at(self, stream: uuid.UUID, at: datetime) -> int:
        """The last version stored at or before `at` (0 if none): a binary search that reads
        one event per step, so a stream of 100,000 events costs about 17 reads."""
        events = self._app.events
        last = list(events.get(stream, desc=True, limit=1))
        if not last:
            return 0
        low, high = 0, last[0].originator_version  # invariant: time(low) <= at < time(high + 1)
        if _time(last[0]) <= at:
            return high
        high -= 1
        while low < high:
            middle = (low + high + 1) // 2
            (event,) = events.get(stream, gt=middle - 1, lte=middle)
            if _time(event) <= at:
                low = middle
            else:
                high = middle - 1
        return low


def _time(event: Any) -> datetime:
    stamp: datetime = event.timestamp  # every aggregate event has one; the protocol omits it
    return stamp
