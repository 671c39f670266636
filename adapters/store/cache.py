"""Optimistic aggregate cache for the write path.

A command may decide on a cached copy of an aggregate without reading the store,
because what it decides is checked when it is saved: a stale copy has an old version,
so its save conflicts, the copy is dropped, and the command runs again on fresh reads.
A cached copy the command saves without appending to is checked against the store's
version before the save. A decision that writes nothing (a domain error, a no-op) is
never trusted to a cached copy: the command runs again on fresh reads before its
answer is given. So the cache
changes how often the store is read, never what a command decides.

The cache keeps its own copy of each aggregate and hands out a fresh copy on every
`get` (`Entity.clone`), so no other thread or failed attempt can touch what a command
decides on.

An erasure clears the cache (copies may hold the erased subject's values in clear). A
copy read before that clear is not put after it: whoever puts says which `generation`
its copy was read in (as `SubjectKeys` does for keys), so a read in flight during an
erasure cannot bring the erased values back.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any

from domain.entity import Entity


class AttemptState(threading.local):
    """What the current thread's command attempt has done so far."""

    def __init__(self) -> None:
        self.fresh = True  # outside a command, always read the store
        self.cached: dict[uuid.UUID, int] = {}  # id -> version of the copy handed out
        self.confirmed: set[uuid.UUID] = set()

    def begin(self, *, fresh: bool) -> None:
        self.fresh = fresh
        self.cached, self.confirmed = {}, set()

    @property
    def needs_fresh_rerun(self) -> bool:
        """Some cached copy the attempt used was not confirmed by the store."""
        return not self.confirmed.issuperset(self.cached)


class AggregateCache:
    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._copies: OrderedDict[uuid.UUID, Entity] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every `clear`
        self.attempt = AttemptState()

    @property
    def generation(self) -> int:
        """To be taken before reading what will be `put` (see the module's docstring)."""
        with self._lock:
            return self._generation

    def get(self, aggregate_id: uuid.UUID) -> Entity | None:
        if self.attempt.fresh:
            return None
        with self._lock:
            kept = self._copies.get(aggregate_id)
            if kept is not None:
                self._copies.move_to_end(aggregate_id)
        if kept is None:
            return None
        self.attempt.cached[aggregate_id] = kept.version
        return kept.clone()

    def put(self, aggregate: Any, generation: int) -> None:
        """Keeps a copy, unless the cache was cleared since `generation` was taken."""
        if not isinstance(aggregate, Entity):
            return  # only entities know how to copy themselves cheaply
        kept = aggregate.clone()
        with self._lock:
            if generation != self._generation:
                return  # read before an erasure's clear: it may hold erased values
            self._copies[aggregate.id] = kept
            self._copies.move_to_end(aggregate.id)
            while len(self._copies) > self._maxsize:
                self._copies.popitem(last=False)

    def clear(self) -> None:
        """Drops every copy (an erasure: copies may hold the erased subject's values)."""
        with self._lock:
            self._generation += 1
            self._copies.clear()

    def drop(self, *aggregate_ids: uuid.UUID) -> None:
        with self._lock:
            for aggregate_id in aggregate_ids:
                self._copies.pop(aggregate_id, None)
