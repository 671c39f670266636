"""What services need from the event store (the port adapters implement), and the unit
of work one command loads, changes and saves through."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from eventsourcing.domain import Aggregate

from domain.entity import Entity
from domain.errors import LedgerError, ObjectNotFound

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E", bound=Entity)
R = TypeVar("R")


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


class UnitOfWork:
    """The aggregates one command (or one batch of commands) loads and changes, saved
    together in one atomic append. Each aggregate is loaded once, so every decision of
    the command sees the changes the earlier ones made."""

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

    def create(self, cls: type[E], key: str, fields: dict[str, Any]) -> E:
        """A new entity `key`, or the deleted one created again (its stream, and so its
        history, continues); a live one refuses with `duplicate()`."""
        found = self.get(cls.id_for(key), cls)
        if found is None:
            return self.add(cls.create(key, fields))
        found.recreate(fields)
        return found

    def commit(self) -> None:
        changed = [a for a in self._loaded.values() if a.pending_events]
        if changed:
            self._store.save(*changed)


def load_live(work: UnitOfWork, cls: type[E], key: str, field: str | None = None) -> E:
    """The live entity of type `cls` named `key`; `cls.missing(key)` when its stream is
    empty, holds a deleted one, or holds another kind (ids named by the caller's UUID
    may name any kind's stream). `field`: the input that named it, for the error to name."""
    found = work.get(cls.id_for(key), Entity)
    if not isinstance(found, cls) or found.is_deleted:
        raise naming(cls.missing(key), field)
    return found


def naming(error: LedgerError, field: str | None) -> LedgerError:
    """A not-found `error` naming `field`, the input that named the missing entity; of
    its own class (a `GroupNotFound` stays one). Any other error, or no field: as is."""
    if field is None or not isinstance(error, ObjectNotFound):
        return error
    return type(error)(error.reason, entity_type=error.entity_type, entity_id=error.entity_id, field=field)


@runtime_checkable
class ClearHistory(Protocol):
    """What an erasure needs from the store beyond `AggregateStore`."""

    def clear_history(self, aggregate_id: uuid.UUID, key: str, subject: str) -> tuple[int, int]:
        """(events, values): how many stored events and snapshots hold how many personal
        values of `subject` stored in clear: the entity's own and any other stream's (audit
        records, kernels). `key`: the entity's key, for its events stored before they
        named it."""
        ...


@runtime_checkable
class SubjectKeyCheck(Protocol):
    """Whether a subject has a key, for an erasure of a subject no entity's stream holds."""

    def has_key(self, subject: str) -> bool:
        """Whether `subject` (`user:<id>`, `group:<id>`) has a stored data key: something
        was sealed under it (a refused command's input) and no erasure destroyed it since."""
        ...
