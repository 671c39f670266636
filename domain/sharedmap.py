"""An immutable mapping for an aggregate's large membership sets.

A group's running kernels, a domain's running sessions or a policy's keypairs may hold
thousands of entries, and every command works on a private copy of each aggregate it
touches (the aggregate cache hands out a clone and keeps a clone of what was saved). A
plain dict made each copy, and each change, cost in proportion to the set. A `SharedMap`
is never changed in place: a clone shares it, and a change makes a new map that shares
all but one bucket with the old one, so a copy costs nothing and a change about n/64.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

V = TypeVar("V")

_WIDE = 64  # buckets of a large map (a power of two: a key's bucket is its hash's low bits)
_SPLIT_AT = 128  # entries from which a map is split: below, one small dict is copied whole
_NO_BUCKET: dict[Any, Any] = {}  # every empty bucket; never written (buckets are copied first)


class SharedMap(Mapping[str, V]):
    __slots__ = ("_buckets", "_size")

    _buckets: tuple[dict[str, V], ...]
    _size: int

    def __init__(self, entries: Mapping[str, V] | None = None) -> None:
        items = dict(entries or {})
        if len(items) < _SPLIT_AT:
            self._buckets = (items,)
        else:
            buckets: list[dict[str, V]] = [{} for _ in range(_WIDE)]
            for key, value in items.items():
                buckets[hash(key) & (_WIDE - 1)][key] = value
            self._buckets = tuple(b or _NO_BUCKET for b in buckets)
        self._size = len(items)

    def _bucket(self, key: str) -> int:
        return hash(key) & (len(self._buckets) - 1)

    def __getitem__(self, key: str) -> V:
        return self._buckets[self._bucket(key)][key]

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._buckets[hash(key) & (len(self._buckets) - 1)]
        except TypeError:  # an unhashable key is in no map
            return False

    def __iter__(self) -> Iterator[str]:
        # In no particular order (see `to_dict`): readers that show entries sort them.
        for bucket in self._buckets:
            yield from bucket

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"SharedMap({dict(self)!r})"

    def set(self, key: str, value: V) -> SharedMap[V]:
        """A map with `key` set to `value`."""
        if len(self._buckets) == 1 and self._size + 1 >= _SPLIT_AT and key not in self:
            return SharedMap({**self._buckets[0], key: value})
        index = self._bucket(key)
        bucket = dict(self._buckets[index])
        grown = key not in bucket
        bucket[key] = value
        return self._replaced(index, bucket, self._size + grown)

    def without(self, key: str) -> SharedMap[V]:
        """A map without `key` (this one if it holds no such key)."""
        if key not in self:
            return self
        index = self._bucket(key)
        bucket = dict(self._buckets[index])
        del bucket[key]
        return self._replaced(index, bucket or _NO_BUCKET, self._size - 1)

    def _replaced(self, index: int, bucket: dict[str, V], size: int) -> SharedMap[V]:
        changed = object.__new__(SharedMap)
        buckets = list(self._buckets)
        buckets[index] = bucket
        changed._buckets = tuple(buckets)
        changed._size = size
        return changed

    def to_dict(self) -> dict[str, V]:
        """A plain dict of the entries (what a snapshot stores). Their order is the buckets'
        and differs between processes (string hashes do): a mapping's order means nothing
        here, and sorting would cost a snapshot of a large set more than writing it."""
        merged: dict[str, V] = {}
        for bucket in self._buckets:
            merged.update(bucket)
        return merged


def plain_state(state: dict[str, Any]) -> None:
    """Replaces each SharedMap among a state's values with its plain dict, in place."""
    for name, value in state.items():
        if type(value) is SharedMap:
            state[name] = value.to_dict()


def shared(entries: Mapping[str, V]) -> SharedMap[V]:
    """`entries` as a SharedMap: an aggregate built by `__init__` or read from a snapshot
    holds a plain dict until its first change."""
    return entries if isinstance(entries, SharedMap) else SharedMap(entries)
