"""A faster encoder for the library's JSON transcoder: orjson where it writes what the
library's `JSONTranscoder` would read back as the very same objects, the library's own
encoder everywhere else.

orjson writes UUIDs, enums and non-finite floats itself (as strings, values and null),
where the library writes `{"_type_": "uuid_hex", ...}`, refuses an unregistered enum and
writes NaN. So a state is first checked (`_plain`): only exact str, int, bool, None,
finite floats, dicts, lists, tuples and instances of registered transcodings (each of
whose encodings is checked in turn) go to orjson; anything else, and anything orjson
refuses (integers past 64 bits, non-str keys, lone surrogates), is encoded by the
library exactly as before, errors included. Decoding is the library's: what either
encoder wrote reads back through the same `object_hook`.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from enum import Enum
from typing import Any, Final

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

# Datetimes, dataclasses and subclasses of built-in types go to `default` (where only
# registered types and str subclasses are accepted), never to orjson's own encodings.
_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_LEAVES: Final = frozenset((str, int, bool, type(None)))
# json writes an instance of any of these (or of a subclass) itself, never through `default`.
_JSON_NATIVE: Final = (str, int, float, dict, list, tuple)

# How `_plain` treats a value of a type other than the exact built-in ones.
_PASSED: Final = 0  # a registered transcoding's type: `default` encodes it (and checks that)
_STR: Final = 1  # a str subclass: json writes its characters, and so does `default`
_STR_ENUM: Final = 2  # orjson writes its value: the same when the value is those characters
_OTHER: Final = 3  # the library's encoder decides (and refuses what it always refused)


class _NotPlain(Exception):
    """Raised inside `default`: this state is the library encoder's to write."""


class FastJSONTranscoder(JSONTranscoder):
    """The library's `JSONTranscoder` (same registrations, same decoding) whose `encode`
    uses orjson when that gives the same stored meaning."""

    def __init__(self) -> None:
        super().__init__()
        self._kinds: dict[type, int] = {}  # `_kind` of each type met, worked out once
        self._iso_datetimes = False  # datetimes are the library's DatetimeAsISO's: a shortcut

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        self._kinds.clear()
        found = self.types.get(datetime)
        self._iso_datetimes = type(found) is DatetimeAsISO and found.name == "datetime_iso"

    def encode(self, obj: Any) -> bytes:
        if self._plain(obj):
            try:
                return orjson.dumps(obj, default=self._default, option=_OPTIONS)
            except (orjson.JSONEncodeError, _NotPlain):
                pass  # too large an integer, a non-str key, a lone surrogate: as before
        return super().encode(obj)

    def _kind(self, kind: type) -> int:
        found = self._kinds.get(kind)
        if found is None:
            if issubclass(kind, str):
                found = _STR_ENUM if issubclass(kind, Enum) else _STR
            elif issubclass(kind, _JSON_NATIVE) or issubclass(kind, uuid.UUID | Enum):
                # json writes these subclasses itself; orjson writes UUIDs and enums its
                # own way, never through `default`.
                found = _OTHER
            else:
                found = _PASSED if kind in self.types else _OTHER
            self._kinds[kind] = found
        return found

    def _default(self, obj: Any) -> Any:
        if type(obj) is datetime and self._iso_datetimes:
            return {"_type_": "datetime_iso", "_data_": obj.isoformat()}  # every event's timestamp
        kind = self._kind(type(obj))
        if kind == _STR:
            return str.__str__(obj)  # its characters, whatever its own __str__ says
        if kind != _PASSED:
            raise _NotPlain
        transcoding = self.types[type(obj)]
        data = transcoding.encode(obj)
        if not self._plain(data):
            raise _NotPlain
        return {"_type_": transcoding.name, "_data_": data}

    def _other_plain(self, value: Any) -> bool:
        """`_plain` for a value of any type but the exact built-in ones."""
        kind = self._kind(type(value))
        if kind == _STR_ENUM:
            member: Any = value._value_
            return type(member) is str and str.__eq__(member, value)
        return kind != _OTHER

    def _plain(self, node: Any) -> bool:
        """Whether orjson writes `node` as the library would (registered values are
        checked again once encoded, in `_default`)."""
        kind = type(node)
        if kind in _LEAVES:
            return True
        if kind is dict:
            values: Any = node.values()
        elif kind is list or kind is tuple:
            values = node
        elif kind is float:
            return math.isfinite(node)
        else:
            return self._other_plain(node)
        for value in values:
            kind = type(value)
            if kind in _LEAVES:
                continue
            if kind is dict or kind is list or kind is tuple:
                if not self._plain(value):
                    return False
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif not self._other_plain(value):
                return False
        return True
