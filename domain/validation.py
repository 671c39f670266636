"""Input validation shared by creators, modifiers and actions (pydantic 2 underneath).

Every model here raises `InvalidAPIParameters` naming the field; pydantic's
ValidationError never leaves this module.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

from domain.errors import InvalidAPIParameters
from domain.values import (
    DefaultForUnspecified,
    FrozenMapping,
    OptionalState,
    ProjectType,
    ResourceSlot,
    TriState,
    VFolderHostPermissionMap,
)

T = TypeVar("T")
Parser = Callable[[Any, str], Any]


def _as_ledger_error(exc: ValidationError, model: str) -> InvalidAPIParameters:
    err: ErrorDetails = exc.errors()[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidAPIParameters):
        return InvalidAPIParameters(cause.reason, field=cause.field)
    field = ".".join(str(part) for part in err["loc"]) or model
    if err["type"] == "extra_forbidden":
        return InvalidAPIParameters(f"unknown field for {model}", field=field)
    if err["type"] == "missing":
        return InvalidAPIParameters("is required", field=field)
    return InvalidAPIParameters(err["msg"], field=field)


class LedgerModel(BaseModel):
    """Frozen, strict about unknown fields, and raising only domain errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _as_ledger_error(exc, type(self).__name__) from None
        self.after_init()

    def after_init(self) -> None:
        """Runs once per construction (not when an instance is passed on to another model)."""


# Parsers: (raw, field) -> value, raising InvalidAPIParameters that names the field.


def parse_int(raw: Any, field: str, *, minimum: int = 0) -> int:
    if isinstance(raw, bool):
        raise InvalidAPIParameters("expected an integer, got a boolean", field=field)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw.strip())
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int):
        raise InvalidAPIParameters(f"expected an integer, got {raw!r}", field=field)
    if raw < minimum:
        raise InvalidAPIParameters(f"must be at least {minimum}, got {raw}", field=field)
    return raw


def parse_positive_int(raw: Any, field: str) -> int:
    return parse_int(raw, field, minimum=1)


def parse_name(raw: Any, field: str, *, max_length: int = 256) -> str:
    if not isinstance(raw, str):
        raise InvalidAPIParameters(f"expected a string, got {type(raw).__name__}", field=field)
    if not 1 <= len(raw) <= max_length:
        raise InvalidAPIParameters(f"must be 1 to {max_length} characters, got {len(raw)}", field=field)
    if _CONTROL.search(raw):
        raise InvalidAPIParameters("must not contain control characters", field=field)
    return raw


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_uuid(raw: Any, field: str) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise InvalidAPIParameters(f"{raw!r} is not a UUID", field=field) from None


def parse_slots(raw: Any, field: str) -> ResourceSlot:
    return ResourceSlot.from_user_input(raw, field)


def parse_hosts(raw: Any, field: str) -> VFolderHostPermissionMap:
    return VFolderHostPermissionMap.from_user_input(raw, field)


def parse_default_for_unspecified(raw: Any, field: str) -> DefaultForUnspecified:
    result: DefaultForUnspecified = DefaultForUnspecified.parse(raw, field=field)
    return result


def parse_project_type(raw: Any, field: str) -> ProjectType:
    result: ProjectType = ProjectType.parse(raw, field=field)
    return result


def nullable(parse: Parser) -> Parser:
    def parse_or_none(raw: Any, field: str) -> Any:
        return None if raw is None else parse(raw, field)

    return parse_or_none


def field_of(parse: Parser) -> BeforeValidator:
    """Runs a parser as a pydantic before-validator, passing the field's name."""

    def run(raw: Any, info: ValidationInfo) -> Any:
        return parse(raw, info.field_name or "value")

    return BeforeValidator(run)


def optional_state_of(parse: Parser) -> BeforeValidator:
    """Modifier field that may be left alone or updated: plain values mean update."""

    def run(raw: Any, info: ValidationInfo) -> OptionalState[Any]:
        field = info.field_name or "value"
        if isinstance(raw, OptionalState):
            return raw if raw.is_nop() else OptionalState.update(parse(raw.value(), field))
        if raw is None or isinstance(raw, TriState):
            raise InvalidAPIParameters("cannot be set to null", field=field)
        return OptionalState.update(parse(raw, field))

    return BeforeValidator(run)


def tri_state_of(parse: Parser) -> BeforeValidator:
    """Modifier field that may also be nullified: None means set to null."""

    def run(raw: Any, info: ValidationInfo) -> TriState[Any]:
        field = info.field_name or "value"
        if isinstance(raw, TriState | OptionalState):
            if raw.is_nop():
                return TriState.nop()
            raw = raw.value()
        return TriState.nullify() if raw is None else TriState.update(parse(raw, field))

    return BeforeValidator(run)


NonNegativeInt = Annotated[int, field_of(parse_int)]
PositiveInt = Annotated[int, field_of(parse_positive_int)]
NullableNonNegativeInt = Annotated[int | None, field_of(nullable(parse_int))]
Slots = Annotated[ResourceSlot, field_of(parse_slots)]
NullableSlots = Annotated[ResourceSlot | None, field_of(nullable(parse_slots))]
VFolderHosts = Annotated[VFolderHostPermissionMap, field_of(parse_hosts)]
EntityName = Annotated[str, field_of(parse_name)]
UUIDField = Annotated[uuid.UUID, field_of(parse_uuid)]


_PLAIN = frozenset({str, int, float, bool})


def jsonable(value: Any) -> Any:
    """A JSON-ready form of any input value (for action specs, logs and audit rows).
    States left alone (nop) are left out of models; a nullified state is null."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, str | int | float):  # subclasses, after the exact-type fast path
        return value
    if isinstance(value, FrozenMapping):
        return value.to_json()
    if isinstance(value, BaseModel):
        fields = {name: getattr(value, name) for name in type(value).model_fields}
        return {
            name: jsonable(field)
            for name, field in fields.items()
            if not (isinstance(field, OptionalState | TriState) and field.is_nop())
        }
    if isinstance(value, OptionalState | TriState):
        return jsonable(value.value())
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        # Bytes are file contents (a group's dotfiles may hold tokens): the audit keeps
        # what identifies them, never the content.
        return {"size": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Iterable):
        return [jsonable(v) for v in value]
    return repr(value)


def parse_time(raw: Any, field: str) -> datetime:
    """ISO 8601 text or a datetime; a time without a zone is taken as UTC."""
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidAPIParameters(f"{raw!r} is not an ISO 8601 time", field=field) from None
    if not isinstance(raw, datetime):
        raise InvalidAPIParameters(f"expected a time, got {type(raw).__name__}", field=field)
    return raw if raw.tzinfo else raw.replace(tzinfo=UTC)


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC; a naive time is taken as UTC already (SQLite returns the
    ledger's UTC times naive, PostgreSQL in its session's zone)."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
