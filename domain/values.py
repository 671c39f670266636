"""Value types shared by every aggregate: resource slots, tri-states, enums, vfolder hosts.

Values are parsed from user input here, once; events store their JSON form
(`to_json()`), so the event schema never depends on Python object layouts.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Generic, TypeVar

from pydantic_core import core_schema

from domain.errors import InvalidAPIParameters

T = TypeVar("T")


class _Nop:
    """Marker for 'leave this field alone'."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOP"


NOP = _Nop()


class OptionalState(Generic[T]):
    """A modifier field that is either left alone or updated; it can never become null."""

    __slots__ = ("_value",)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Validated by the field's own before-validator; pydantic only checks the type.
        return core_schema.is_instance_schema(cls)

    def __init__(self, value: T | _Nop = NOP) -> None:
        if value is None:
            raise InvalidAPIParameters("an OptionalState cannot hold null; use TriState to nullify")
        self._value = value

    @classmethod
    def update(cls, value: T) -> OptionalState[T]:
        return cls(value)

    @classmethod
    def nop(cls) -> OptionalState[T]:
        return cls()

    def is_nop(self) -> bool:
        return self._value is NOP

    def value(self) -> T:
        if isinstance(self._value, _Nop):
            raise ValueError("a nop state has no value")
        return self._value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash((type(self), repr(self._value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"


class TriState(Generic[T]):
    """A modifier field that is left alone, updated, or set to null (nullify)."""

    __slots__ = ("_value",)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Validated by the field's own before-validator; pydantic only checks the type.
        return core_schema.is_instance_schema(cls)

    def __init__(self, value: T | _Nop | None = NOP) -> None:
        self._value = value

    @classmethod
    def update(cls, value: T) -> TriState[T]:
        if value is None:
            raise InvalidAPIParameters("TriState.update() needs a value; use nullify() for null")
        return cls(value)

    @classmethod
    def nullify(cls) -> TriState[T]:
        return cls(None)

    @classmethod
    def nop(cls) -> TriState[T]:
        return cls()

    def is_nop(self) -> bool:
        return self._value is NOP

    def is_nullify(self) -> bool:
        return self._value is None

    def value(self) -> T | None:
        if isinstance(self._value, _Nop):
            raise ValueError("a nop state has no value")
        return self._value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash((type(self), repr(self._value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"


class _ByNameEnum(enum.Enum):
    """Enums that accept their name or value in any letter case."""

    @classmethod
    def parse(cls, raw: object, *, field: str) -> Any:
        if isinstance(raw, cls):
            return raw
        if isinstance(raw, str):
            wanted = raw.strip().lower()
            for member in cls:
                if wanted in (member.name.lower(), str(member.value).lower()):
                    return member
        allowed = ", ".join(m.name for m in cls)
        raise InvalidAPIParameters(f"{raw!r} is not one of {allowed}", field=field)


class DefaultForUnspecified(_ByNameEnum):
    """Slots a policy does not list are 0 (LIMITED) or unlimited (UNLIMITED)."""

    LIMITED = "LIMITED"
    UNLIMITED = "UNLIMITED"


class ProjectType(_ByNameEnum):
    GENERAL = "general"
    MODEL_STORE = "model-store"


V = TypeVar("V")


class FrozenMapping(Mapping[str, V]):
    """An immutable str-keyed mapping that compares equal to any mapping with the same
    items and shows itself by its JSON form."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, V] | None = None) -> None:
        self._data: dict[str, V] = dict(data or {})

    def to_json(self) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


# Resource slots


class SlotKind(enum.Enum):
    COUNT = "count"
    BYTES = "bytes"


_DEFAULT_SLOTS: dict[str, SlotKind] = {
    "cpu": SlotKind.COUNT,
    "mem": SlotKind.BYTES,
    "cuda.device": SlotKind.COUNT,
    "cuda.shares": SlotKind.COUNT,
    "cuda.mem": SlotKind.BYTES,
    "rocm.device": SlotKind.COUNT,
    "tpu.device": SlotKind.COUNT,
}

# Seed 001 writes "memory" and "gpu"; they are documented aliases, stored under the
# canonical name so that one resource is never counted under two names.
SLOT_ALIASES: dict[str, str] = {"memory": "mem", "gpu": "cuda.device"}


def _slots_from_env() -> dict[str, SlotKind]:
    """LEDGER_EXTRA_SLOTS="name:count,name:bytes" adds deployment-specific slots."""
    extra: dict[str, SlotKind] = {}
    for item in filter(None, (s.strip() for s in os.environ.get("LEDGER_EXTRA_SLOTS", "").split(","))):
        name, _, kind = item.partition(":")
        extra[name.strip()] = SlotKind(kind.strip() or "count")
    return extra


KNOWN_SLOTS: dict[str, SlotKind] = {**_DEFAULT_SLOTS, **_slots_from_env()}


def register_slot(name: str, kind: SlotKind = SlotKind.COUNT) -> None:
    """Makes a slot name known (the set of known slots is configuration)."""
    KNOWN_SLOTS[name] = kind


_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtpe])?(?:i?b|bytes)?\s*$", re.IGNORECASE)
_BINARY_POWER = {None: 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_COUNT_STEP = Decimal("0.001")
INFINITY = Decimal("Infinity")


def _is_infinite(raw: object) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() in ("inf", "infinity")
    if isinstance(raw, Decimal):
        return raw.is_infinite() and raw > 0  # comparing a signalling NaN would raise
    if isinstance(raw, float):
        return raw == math.inf
    return False


def _parse_quantity(raw: object, kind: SlotKind, field: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise InvalidAPIParameters(f"expected a number or a string, got {type(raw).__name__}", field=field)
    if _is_infinite(raw):
        return INFINITY
    if kind is SlotKind.BYTES and isinstance(raw, str):
        match = _BYTES_RE.match(raw)
        if match is None:
            if raw.strip().startswith("-"):
                raise InvalidAPIParameters(f"negative quantity {raw!r}", field=field)
            raise InvalidAPIParameters(f"{raw!r} is not a byte size (e.g. 512m, 16g, 1.5GiB)", field=field)
        number, suffix = match.groups()
        power = _BINARY_POWER[suffix.lower() if suffix else None]
        if number.isdigit():
            return Decimal(int(number) * 1024**power)
        # Exact arithmetic: Decimal's 28-digit context would round large sizes silently.
        return Decimal(int(Fraction(number) * 1024**power))
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidAPIParameters(f"{raw!r} is not a number", field=field) from None
    if not value.is_finite():
        raise InvalidAPIParameters(f"{raw!r} is not a finite number", field=field)
    if value < 0:
        raise InvalidAPIParameters(f"negative quantity {raw!r}", field=field)
    value = value.copy_abs()  # "-0" is 0: one value, one JSON form
    if kind is SlotKind.BYTES:
        return Decimal(int(value))
    try:
        return value.quantize(_COUNT_STEP, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds
        raise InvalidAPIParameters(f"{raw!r} is too large", field=field) from None


def _canonical(value: Decimal) -> str:
    if value.is_infinite():
        return "Infinity"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class ResourceSlot(FrozenMapping[Decimal]):
    """Immutable mapping of known slot names to quantities (bytes for memory slots)."""

    __slots__ = ()

    @classmethod
    def from_user_input(cls, raw: object, field: str | None = "resource_slots") -> ResourceSlot:
        """Parses `{"cpu": "4", "mem": "8g"}`; unknown names and negatives are refused.
        (Seed 003 passes None as the second argument, where Backend.AI takes slot types.)"""
        field = field or "resource_slots"
        if isinstance(raw, ResourceSlot):
            return raw
        if not isinstance(raw, Mapping):
            raise InvalidAPIParameters("expected a mapping of slot names to quantities", field=field)
        parsed: dict[str, Decimal] = {}
        for key, quantity in raw.items():
            name = SLOT_ALIASES.get(key, key) if isinstance(key, str) else key
            if not isinstance(name, str) or name not in KNOWN_SLOTS:
                known = ", ".join(sorted(KNOWN_SLOTS) + [f"{a} (={c})" for a, c in SLOT_ALIASES.items()])
                raise InvalidAPIParameters(f"unknown slot {key!r}; known slots: {known}", field=f"{field}.{key}")
            if name in parsed:
                raise InvalidAPIParameters(
                    f"slot {name!r} given twice (directly and as an alias)", field=f"{field}.{key}"
                )
            parsed[name] = _parse_quantity(quantity, KNOWN_SLOTS[name], f"{field}.{key}")
        return cls(parsed)

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> ResourceSlot:
        return cls({k: Decimal(v) for k, v in data.items()})

    def to_json(self) -> dict[str, str]:
        return {k: _canonical(self._data[k]) for k in sorted(self._data)}


# VFolder host permissions


class VFolderHostPermission(enum.Enum):
    CREATE = "create-vfolder"
    MODIFY = "modify-vfolder"
    DELETE = "delete-vfolder"
    MOUNT_IN_SESSION = "mount-in-session"
    UPLOAD_FILE = "upload-file"
    DOWNLOAD_FILE = "download-file"
    INVITE_OTHERS = "invite-others"
    SET_USER_PERM = "set-user-specific-permission"


ALL_VFOLDER_PERMISSIONS = frozenset(VFolderHostPermission)


def _parse_permissions(raw: object, field: str) -> frozenset[VFolderHostPermission]:
    if raw is None:
        return ALL_VFOLDER_PERMISSIONS
    items: Iterable[object] = [raw] if isinstance(raw, str | VFolderHostPermission) else raw  # type: ignore[assignment]
    if not isinstance(items, Iterable):
        raise InvalidAPIParameters("expected null or a list of permissions", field=field)
    result = set()
    for item in items:
        if isinstance(item, VFolderHostPermission):
            result.add(item)
            continue
        try:
            result.add(VFolderHostPermission(str(item).strip().lower()))
        except ValueError:
            allowed = ", ".join(p.value for p in VFolderHostPermission)
            raise InvalidAPIParameters(f"unknown permission {item!r}; allowed: {allowed}", field=field) from None
    return frozenset(result)


class VFolderHostPermissionMap(FrozenMapping[frozenset[VFolderHostPermission]]):
    """Host name -> permissions. A list of hosts, or a host mapped to null, grants all."""

    __slots__ = ()

    @classmethod
    def from_user_input(cls, raw: object, field: str = "allowed_vfolder_hosts") -> VFolderHostPermissionMap:
        if isinstance(raw, VFolderHostPermissionMap):
            return raw
        if isinstance(raw, str):
            raise InvalidAPIParameters("expected a list of hosts or a mapping of hosts", field=field)
        if isinstance(raw, Mapping):
            pairs = list(raw.items())
        elif isinstance(raw, Iterable):
            pairs = [(host, None) for host in raw]
        else:
            raise InvalidAPIParameters("expected a list of hosts or a mapping of hosts", field=field)
        data: dict[str, frozenset[VFolderHostPermission]] = {}
        for host, perms in pairs:
            if not isinstance(host, str) or not host.strip():
                raise InvalidAPIParameters(f"host name must be a non-empty string, got {host!r}", field=field)
            # Seed 003 writes {"local": "local"}: a host mapped to its own name grants all.
            data[host] = _parse_permissions(None if perms == host else perms, f"{field}.{host}")
        return cls(data)

    @classmethod
    def from_json(cls, data: Mapping[str, list[str]]) -> VFolderHostPermissionMap:
        return cls({h: frozenset(VFolderHostPermission(p) for p in ps) for h, ps in data.items()})

    def to_json(self) -> dict[str, list[str]]:
        return {h: sorted(p.value for p in self._data[h]) for h in sorted(self._data)}
