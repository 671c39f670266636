"""Value types shared by every aggregate: modifier states (OptionalState, TriState) and
enums, with ResourceSlot (from domain.slots) as part of the same public names.

Resource slots live in `domain.slots`, vfolder host permissions in `domain.hosts`, the
mapping both build on in `domain.frozen`.
"""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar

from pydantic_core import core_schema

from domain.errors import InvalidAPIParameters
from domain.shown import shown
from domain.slots import ResourceSlot as ResourceSlot  # one of the public names: domain.values.ResourceSlot

T = TypeVar("T")


class _Nop:
    """Marker for 'leave this field alone'."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOP"

    def __reduce__(self) -> str:
        # Copied and pickled by name, as the one NOP: states test `is NOP`, and a deep copy
        # of a modifier (`action.model_copy(deep=True)`, a worker process's pickle) held a
        # new _Nop in every field left alone, which the service read as a value to set.
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


class _ByNameEnum(enum.StrEnum):
    """Enums that accept their name or value in any letter case. String enums, as
    Backend.AI's are: a policy created with "LIMITED" reads back equal to "LIMITED"."""

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
        raise InvalidAPIParameters(f"{shown(raw)} is not one of {allowed}", field=field)


class DefaultForUnspecified(_ByNameEnum):
    """Slots a policy does not list are 0 (LIMITED) or unlimited (UNLIMITED)."""

    LIMITED = "LIMITED"
    UNLIMITED = "UNLIMITED"


class ProjectType(_ByNameEnum):
    GENERAL = "general"
    MODEL_STORE = "model-store"


class UserUpdateMode(enum.StrEnum):
    """How a group's member list changes: the users given are added, removed, or become the list."""

    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


# Kernel statuses that no longer occupy resources (REFERENCE.md, purge checks).
ENDED_STATUSES = ("TERMINATED", "CANCELLED")
