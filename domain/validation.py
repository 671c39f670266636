"""Input validation shared by creators, modifiers and actions (pydantic 2 underneath).

Every model here raises `InvalidAPIParameters` naming the field; pydantic's
ValidationError never leaves this module. The parsers the fields run are in
`domain.parsers` (and `domain.times`); here they become pydantic field types.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

from domain.errors import InvalidAPIParameters
from domain.frozen import FrozenMapping
from domain.hosts import VFolderHostPermissionMap
from domain.parsers import Parser, parse_int, parse_name, parse_new_name, parse_positive_int, parse_uuid
from domain.shown import encodable
from domain.slots import ResourceSlot
from domain.values import OptionalState, TriState


def _as_ledger_error(exc: ValidationError, data: Mapping[str, Any]) -> InvalidAPIParameters:
    """Every refusal pydantic found, as one error naming the first and carrying the others."""
    return InvalidAPIParameters.joined(_refusal(err, data) for err in exc.errors())


UNKNOWN_FIELD = "unknown field"
# pydantic's words for these name the model's class, which means nothing to a client.
_IN_CLIENT_WORDS = {
    "extra_forbidden": UNKNOWN_FIELD,
    "missing": "is required",
    "model_type": "expected an object of fields",
    "model_attributes_type": "expected an object of fields",
    "dataclass_type": "expected an object of fields",
    "is_instance_of": "is not a value this field takes",
}


def _refusal(err: ErrorDetails, data: Mapping[str, Any]) -> InvalidAPIParameters:
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidAPIParameters):
        return cause
    if err["type"] == "string_unicode" and not err["loc"]:
        # pydantic cannot read a key holding a lone surrogate, so it names no field: no
        # field has such a name, so the key is an unknown one, named as any other is.
        unreadable = next((key for key in data if encodable(key) != key), None)
        if unreadable is not None:
            return InvalidAPIParameters(UNKNOWN_FIELD, field=_bounded(encodable(unreadable)))
    path = ".".join(str(part) for part in err["loc"])
    # An empty key is named as written in JSON; no path at all is the input as a whole.
    field = _bounded(path) if path else ('""' if err["loc"] else None)
    return InvalidAPIParameters(_IN_CLIENT_WORDS.get(err["type"], err["msg"]), field=field)


def _bounded(field: str) -> str:
    # An unknown key is user input: never echo a megabyte of it.
    return field if len(field) <= 120 else field[:117] + "..."


def _by_name(model: type[BaseModel], args: tuple[Any, ...], data: dict[str, Any]) -> dict[str, Any]:
    """Positional arguments given to a model, named by its fields in their declared order
    (a call that does not fit is Python's TypeError, as for any function)."""
    names = list(model.model_fields)
    if len(args) > len(names):
        raise TypeError(f"{model.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
    named = dict(zip(names, args, strict=False))
    twice = sorted(named.keys() & data.keys())
    if twice:
        raise TypeError(f"{model.__name__}() got multiple values for argument {twice[0]!r}")
    return {**named, **data}


class LedgerModel(BaseModel):
    """Frozen, strict about unknown fields, and raising only domain errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:  # the contract writes its actions as signatures: `DeleteKeyPairAction(access_key)`
            data = _by_name(type(self), args, data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _as_ledger_error(exc, data) from None
        self.after_init()

    def after_init(self) -> None:
        """Runs once per construction (not when an instance is passed on to another model)."""

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; `update`'s values are checked as a new model's are. pydantic's own copy
        sets them unchecked: a creator copied with `name=5` or a negative limit made a
        policy named 5, or one no read model could hold. It is made from the fields the
        original was given and the update: the others take their defaults again (a group's
        id the ledger drew is drawn anew, as for any other new action)."""
        if not update:
            return super().model_copy(deep=deep)
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**given, **update})

    def __setattr__(self, name: str, value: Any) -> None:
        raise _frozen(self, name)

    def __delattr__(self, name: str) -> None:
        raise _frozen(self, name)


def _frozen(model: BaseModel, name: str) -> InvalidAPIParameters:
    """An input is checked whole when it is made: a field changed afterwards would skip
    that (pydantic's own refusal is its ValidationError)."""
    return InvalidAPIParameters(
        f"a {type(model).__name__} cannot be changed once made: make a new one", field=_bounded(name)
    )


# Value-type parsers: slots and hosts parse themselves.


def parse_slots(raw: Any, field: str) -> ResourceSlot:
    """Slot limits (policies, groups): `inf` allowed, meaning unlimited."""
    return ResourceSlot.from_user_input(raw, field)


def parse_occupied_slots(raw: Any, field: str) -> ResourceSlot:
    """What a kernel holds: finite quantities only (reports multiply and sum them)."""
    return ResourceSlot.from_user_input(raw, field, allow_infinity=False)


def parse_hosts(raw: Any, field: str) -> VFolderHostPermissionMap:
    return VFolderHostPermissionMap.from_user_input(raw, field)


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
        if isinstance(raw, OptionalState | TriState):
            # A TriState is taken as tri_state_of takes an OptionalState: only its
            # nullify is refused (its nop and update were refused as "set to null").
            if raw.is_nop():
                return OptionalState.nop()
            raw = raw.value()
        if raw is None:
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


def built(model: type[LedgerModel]) -> BeforeValidator:
    """A nested input model (an action's creator or modifier) given as a mapping is built
    through its own constructor, so its refusals are domain errors naming its fields and
    its `after_init` runs (pydantic's own validation of a nested model skips both)."""

    def run(raw: Any) -> Any:
        return model(**raw) if isinstance(raw, dict) else raw

    return BeforeValidator(run)


NonNegativeInt = Annotated[int, field_of(parse_int)]
PositiveInt = Annotated[int, field_of(parse_positive_int)]
NullableNonNegativeInt = Annotated[int | None, field_of(nullable(parse_int))]
Slots = Annotated[ResourceSlot, field_of(parse_slots)]
OccupiedSlots = Annotated[ResourceSlot, field_of(parse_occupied_slots)]
NullableSlots = Annotated[ResourceSlot | None, field_of(nullable(parse_slots))]
VFolderHosts = Annotated[VFolderHostPermissionMap, field_of(parse_hosts)]
EntityName = Annotated[str, field_of(parse_name)]
NewEntityName = Annotated[str, field_of(parse_new_name)]  # a creator's name: see parse_new_name
UUIDField = Annotated[uuid.UUID, field_of(parse_uuid)]


_PLAIN = frozenset({str, int, float, bool})


def jsonable(value: Any) -> Any:
    """A JSON-ready form of any input value (for action specs, logs and audit rows).
    States left alone (nop) are left out of models; a nullified state is null."""
    kind = type(value)
    if value is None or kind in _PLAIN:
        return value
    form = _FORMS.get(kind)
    if form is None:
        form = _FORMS[kind] = _form_of(kind)
    return form(value)


def _form_of(kind: type) -> Callable[[Any], Any]:
    """How `jsonable` writes values of one type: the first rule that takes the type, worked
    out once per type (every command's spec goes through here, and the ABC checks are slow)."""
    if issubclass(kind, str | int | float):  # subclasses; the exact types never get here
        return _same
    if issubclass(kind, FrozenMapping):
        return _frozen_mapping
    if issubclass(kind, BaseModel):
        return _model
    if issubclass(kind, OptionalState | TriState):
        return _state
    if issubclass(kind, enum.Enum):
        return _enum_value
    if issubclass(kind, uuid.UUID | Decimal):
        return str
    if issubclass(kind, datetime):
        return _isoformat
    if issubclass(kind, Mapping):
        return _mapping
    if issubclass(kind, bytes):
        return _bytes
    if issubclass(kind, Iterable):
        return _listed
    return repr


_FORMS: dict[type, Callable[[Any], Any]] = {}


def _same(value: Any) -> Any:
    return value


def _frozen_mapping(value: FrozenMapping[Any]) -> Any:
    return value.to_json()


_STATES = (OptionalState, TriState)
_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}


def _model(value: BaseModel) -> dict[str, Any]:
    written = {}
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None:  # `model_fields` is a descriptor that checks how it is read: once per class
        names = _FIELD_NAMES[kind] = tuple(kind.model_fields)
    for name in names:
        field = getattr(value, name)
        if isinstance(field, _STATES) and field.is_nop():
            continue
        written[name] = jsonable(field)
    return written


def _state(value: OptionalState[Any] | TriState[Any]) -> Any:
    return jsonable(value.value())


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _isoformat(value: datetime) -> str:
    return value.isoformat()


def _mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): jsonable(v) for k, v in value.items()}


def _bytes(value: bytes) -> dict[str, Any]:
    # Bytes are file contents (a group's dotfiles may hold tokens): the audit keeps what
    # identifies them, never the content.
    return {"size": len(value), "sha256": hashlib.sha256(value).hexdigest()}


def _listed(value: Iterable[Any]) -> list[Any]:
    return [jsonable(v) for v in value]
