"""Small pieces every aggregate shares: stable ids, field diffs, the store port."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from eventsourcing.domain import Aggregate

from domain.errors import LedgerError, ObjectNotFound

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

# Fixed namespaces: an entity's stream id is a pure function of its natural key, so the
# stream itself guards uniqueness (creating version 1 twice conflicts in the store).
NAMESPACE = uuid.UUID("6f1c2a52-5d6e-4b8e-9a43-7f0b8e2d1c10")


@functools.lru_cache(maxsize=65536)
def stream_id(kind: str, key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}:{key}")


FieldChanges = dict[str, dict[str, Any]]


def diff_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> FieldChanges:
    """Only the fields whose value really changes, each as {"old": ..., "new": ...}."""
    return {
        name: {"old": current.get(name), "new": value} for name, value in wanted.items() if current.get(name) != value
    }


class VersionConflict(Exception):
    """Another writer appended to one of the streams first; the command is retried."""


class AggregateStore(Protocol):
    """What services need from the event store; adapters implement it."""

    def get(self, aggregate_id: uuid.UUID, cls: type[A]) -> A | None:
        """The aggregate's current state, or None if its stream is empty."""

    def save(self, *aggregates: Aggregate | None) -> None:
        """Appends every pending event of the aggregates atomically, or raises VersionConflict."""

    def run(self, command: Callable[[], R], entity_type: str, operation: str) -> R:
        """Runs load-decide-save, retrying a bounded number of times on version conflicts.

        Events saved inside carry the current action context (or a system one)."""


class Entity(Aggregate):
    """An entity named by a natural key whose stream survives delete and re-create.

    Subclasses get their own copies of these events (the library redefines nested
    events per aggregate class), so topics stay per entity type. They set ENTITY_TYPE
    and may override `check_deletable`, `duplicate` and `not_found`.
    """

    ENTITY_TYPE = "entity"

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

        def apply(self, aggregate: Entity) -> None:
            aggregate.incarnate(self.fields, self.timestamp)

    class Modified(Aggregate.Event):
        """Some fields changed; each entry holds the old and the new value."""

        changes: FieldChanges

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
        copying each top-level dict and list (fields, pending events, sets kept as dicts)
        is enough; subclasses must keep to that rule."""
        twin = object.__new__(type(self))
        twin.__dict__.update(
            {name: value.copy() if type(value) in (dict, list) else value for name, value in vars(self).items()}
        )
        return twin

    def incarnate(self, fields: dict[str, Any], at: datetime) -> None:
        self.fields = dict(fields)
        self.is_deleted = False
        self.created_at = self.changed_at = at

    @classmethod
    def id_for(cls, key: str) -> uuid.UUID:
        return stream_id(cls.ENTITY_TYPE, key)

    @classmethod
    def create(cls, key: str, fields: dict[str, Any]) -> Self:
        return cls._create(cls.Created, id=cls.id_for(key), key=key, fields=fields)

    def recreate(self, fields: dict[str, Any]) -> None:
        if not self.is_deleted:
            raise self.duplicate()
        self.trigger_event(self.Recreated, fields=fields)

    def modify(self, wanted: Mapping[str, Any]) -> FieldChanges:
        self.require_live()
        changes = diff_fields(self.fields, wanted)
        if changes:
            self.trigger_event(self.Modified, changes=changes)
        return changes

    def delete(self) -> None:
        self.require_live()
        self.check_deletable()
        self.trigger_event(self.Deleted)

    def require_live(self) -> None:
        if self.is_deleted:
            raise self.not_found()

    def check_deletable(self) -> None:
        """Raises when something still depends on this entity."""

    def duplicate(self) -> LedgerError:
        return LedgerError(f"{self.ENTITY_TYPE} {self.key!r} already exists")

    def not_found(self) -> LedgerError:
        return entity_not_found(self.ENTITY_TYPE, self.key)


def entity_not_found(entity_type: str, key: str) -> ObjectNotFound:
    return ObjectNotFound(f"{entity_type} {key!r} not found", entity_type=entity_type, entity_id=key)


class UnitOfWork:
    """The aggregates one command (or one batch of commands) loads and changes, saved
    together in one atomic append."""

    def __init__(self, store: AggregateStore) -> None:
        self._store = store
        self._loaded: dict[uuid.UUID, Aggregate] = {}

    def get(self, aggregate_id: uuid.UUID, cls: type[A]) -> A | None:
        if aggregate_id not in self._loaded:
            found = self._store.get(aggregate_id, cls)
            if found is None:
                return None
            self._loaded[aggregate_id] = found
        aggregate = self._loaded[aggregate_id]
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} holds a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def add(self, aggregate: A) -> A:
        self._loaded[aggregate.id] = aggregate
        return aggregate

    def commit(self) -> None:
        changed = [a for a in self._loaded.values() if a.pending_events]
        if changed:
            self._store.save(*changed)
