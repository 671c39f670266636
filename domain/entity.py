"""The Entity base every aggregate with a natural key shares: stable ids, field diffs,
and the Created / Recreated / Modified / Deleted events."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from eventsourcing.domain import Aggregate
from eventsourcing.utils import TopicError, resolve_topic

from domain.catalog import EntityType
from domain.errors import LedgerError, ObjectNotFound, UnknownEventType
from domain.shown import shown_key

# Fixed namespaces: an entity's stream id is a pure function of its natural key, so the
# stream itself guards uniqueness (creating version 1 twice conflicts in the store).
NAMESPACE = uuid.UUID("6f1c2a52-5d6e-4b8e-9a43-7f0b8e2d1c10")


@functools.lru_cache(maxsize=65536)
def stream_id(kind: str, key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}:{key}")


def event_class(topic: str, where: str) -> type:
    """The class a stored event's topic names; `unknown_event` for one this release does not know."""
    try:
        found: type = resolve_topic(topic)
    except TopicError:
        raise unknown_event(topic, where) from None
    return found


def unknown_event(topic: str, where: str, version: tuple[int, int] | None = None) -> UnknownEventType:
    """A stored event (`where`: which) of a type this release does not know, in the ledger's
    words, not as the library's TopicError: a newer release wrote it, so this process is to
    be upgraded, not retried. `version`: (stored, known) when the type is known but the
    event is of a later `class_version` of it, whose shape this release cannot read."""
    kind = topic.rpartition(":")[2] or topic
    if version is None:
        found = f"{where} is of a type this release does not know ({kind!r})"
    else:
        found = f"{where} is version {version[0]} of {kind!r}, which this release knows up to version {version[1]}"
    error = UnknownEventType(
        f"{found}: a newer release wrote it, so run that release (or `ledger verify`, if none did)"
    )
    error.found = found
    return error


FieldChanges = dict[str, dict[str, Any]]
_TICK = timedelta(microseconds=1)  # the smallest step of a stored time


def diff_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> FieldChanges:
    """Only the fields whose value really changes, each as {"old": ..., "new": ...}."""
    return {
        name: {"old": current.get(name), "new": value} for name, value in wanted.items() if current.get(name) != value
    }


class Entity(Aggregate):
    """An entity named by a natural key whose stream survives delete and re-create.

    Subclasses get their own copies of these events (the library redefines nested
    events per aggregate class), so topics stay per entity type. They set ENTITY_TYPE
    and may override `check_deletable`, `duplicate` and `missing`.
    """

    ENTITY_TYPE: ClassVar[EntityType]

    class Created(Aggregate.Created):
        """The entity came into being with every field set."""

        key: str
        fields: dict[str, Any]

        def apply(self, aggregate: Entity) -> None:
            aggregate.key = self.key
            aggregate.incarnate(self.fields, self.timestamp)

    class Recreated(Aggregate.Event):
        """A deleted entity's key was taken again; the stream continues."""

        fields: dict[str, Any]
        # The entity's key, so that the event names the subject of its personal values
        # (domain.personal); events stored before it was added have none.
        key: str | None = None

        def apply(self, aggregate: Entity) -> None:
            aggregate.incarnate(self.fields, self.timestamp)

    class Modified(Aggregate.Event):
        """Some fields changed; each entry holds the old and the new value."""

        changes: FieldChanges
        key: str | None = None  # as on Recreated

        def apply(self, aggregate: Entity) -> None:
            for field, change in self.changes.items():
                aggregate.fields[field] = change["new"]
            aggregate.changed_at = self.timestamp

    class Deleted(Aggregate.Event):
        """The entity was deleted; its key is free again."""

        def apply(self, aggregate: Entity) -> None:
            aggregate.is_deleted = True

    def __init__(self) -> None:
        self.key = ""
        self.fields: dict[str, Any] = {}
        self.is_deleted = False
        self.created_at: datetime | None = None
        self.changed_at: datetime | None = None  # last change of the fields themselves

    def clone(self) -> Self:
        """A private copy. Events replace field values and never change one in place, so
        copying each top-level dict and list (fields, pending events, small sets kept as
        dicts) is enough; subclasses must keep to that rule. Large sets are SharedMaps
        (`domain.sharedmap`): immutable, so the copy shares them."""
        # One copy of the instance dict, then its dicts and lists replaced in place (keys
        # unchanged while iterating): half the time of a comprehension, twice per command.
        state = self.__dict__.copy()
        for name, value in state.items():
            kind = type(value)
            if kind is dict or kind is list:
                state[name] = value.copy()
        twin = object.__new__(type(self))
        twin.__dict__ = state
        return twin

    def incarnate(self, fields: dict[str, Any], at: datetime) -> None:
        self.fields = dict(fields)
        self.is_deleted = False
        self.created_at = self.changed_at = at

    @classmethod
    def id_for(cls, key: str) -> uuid.UUID:
        return stream_id(cls.ENTITY_TYPE, key)

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """The library's, with a stream's times never going back: a writer whose clock is
        behind the stream's last event (another host, an NTP step back) stamps its event
        just after it. Time travel finds the version in force at a moment by a binary
        search over the stream's times, and read a later state for an earlier moment."""
        if kwargs.get("timestamp") is None:
            now = event_class.create_timestamp()
            last: datetime = self.modified_on
            kwargs["timestamp"] = now if now >= last else last + _TICK
        super().trigger_event(event_class, **kwargs)

    @property
    def entity_id(self) -> str:
        """What an action's result and the audit trail name this entity by: its key."""
        return self.key

    @classmethod
    def create(cls, key: str, fields: dict[str, Any]) -> Self:
        return cls._create(cls.Created, id=cls.id_for(key), key=key, fields=fields)

    def recreate(self, fields: dict[str, Any]) -> None:
        if not self.is_deleted:
            raise self.duplicate()
        self.trigger_event(self.Recreated, fields=fields, key=self.key)

    def modify(self, wanted: Mapping[str, Any]) -> FieldChanges:
        self.require_live()
        changes = diff_fields(self.fields, wanted)
        if changes:
            self.trigger_event(self.Modified, changes=changes, key=self.key)
        return changes

    def delete(self) -> None:
        self.require_live()
        self.check_deletable()
        self.trigger_event(self.Deleted)

    def require_live(self) -> None:
        if self.is_deleted:
            raise self.missing(self.key)

    def check_deletable(self) -> None:
        """Raises when something still depends on this entity."""

    def duplicate(self) -> LedgerError:
        return LedgerError(f"{self.ENTITY_TYPE} {self.key!r} already exists")

    @classmethod
    def missing(cls, key: str) -> LedgerError:
        """The error for a key with no live entity of this type (unknown, deleted, or
        another kind's stream)."""
        return entity_not_found(cls.ENTITY_TYPE, key)


def entity_not_found(entity_type: str, key: str) -> ObjectNotFound:
    # In words ('keypair resource policy'): the code already carries the type's identifier.
    return ObjectNotFound(
        f"{entity_type.replace('_', ' ')} {shown_key(key)} not found", entity_type=entity_type, entity_id=key
    )
