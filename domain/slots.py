"""Resource slots: the known slot names (built-ins, aliases and LEDGER_EXTRA_SLOTS), the
bounded parsing of their quantities, and ResourceSlot, the mapping policies and kernels hold.

Quantities are parsed from user input here, once; events store their JSON form
(`ResourceSlot.to_json()`), so the event schema never depends on Python object layouts.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

from domain.errors import ConfigurationError, InvalidAPIParameters
from domain.frozen import FrozenMapping
from domain.shown import kind_of, shown


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


EXTRA_SLOTS_VARIABLE = "LEDGER_EXTRA_SLOTS"
# Slot names are keys of JSON maps and of the usage rollups' 64-character slot column.
_SLOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _entry(item: str) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def slots_from_env(value: str | None) -> dict[str, SlotKind]:
    """Parses LEDGER_EXTRA_SLOTS="name:count,name:bytes" (a bare name is a count).

    A bad entry raises ConfigurationError, one line naming the variable and the entry:
    a name that is empty or not ASCII letters, digits, '.', '_', '-' (at most 64), a kind
    other than count or bytes, a built-in slot or alias (redefining `cpu` as bytes would
    reread every stored value), or a name given twice."""
    extra: dict[str, SlotKind] = {}
    for raw_item in (value or "").split(","):
        item = raw_item.strip()
        if not item:
            continue
        name, _, kind_text = item.partition(":")
        name, kind_text = name.strip(), kind_text.strip().lower() or "count"

        def bad(why: str, item: str = item) -> ConfigurationError:
            return ConfigurationError(f"{EXTRA_SLOTS_VARIABLE}: bad entry {_entry(item)}: {why}")

        if not _SLOT_NAME.fullmatch(name):
            raise bad("a slot name is 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit")
        if name in _DEFAULT_SLOTS or name in SLOT_ALIASES:
            raise bad(f"{name!r} is a built-in slot and cannot be redefined")
        if name in extra:
            raise bad(f"{name!r} is given twice")
        try:
            extra[name] = SlotKind(kind_text)
        except ValueError:
            raise bad("the kind must be count or bytes") from None
    return extra


class _KnownSlots(MutableMapping[str, SlotKind]):
    """The known slots: the built-ins plus LEDGER_EXTRA_SLOTS, read at first use rather than
    at import, so that a bad variable is a ConfigurationError a caller can catch and show
    (not an import-time traceback in every command). Until the variable is valid, every
    use raises that error again."""

    def __init__(self) -> None:
        self._slots: dict[str, SlotKind] | None = None

    def _loaded(self) -> dict[str, SlotKind]:
        if self._slots is None:
            self._slots = {**_DEFAULT_SLOTS, **slots_from_env(os.environ.get(EXTRA_SLOTS_VARIABLE))}
        return self._slots

    def loaded(self) -> dict[str, SlotKind]:
        """The slots as a plain dict, for a loop's worth of look-ups at dict speed."""
        return self._loaded()

    def reload(self) -> None:
        """Forgets the loaded set: the next use reads the environment again."""
        self._slots = None

    def __getitem__(self, name: str) -> SlotKind:
        return self._loaded()[name]

    def __setitem__(self, name: str, kind: SlotKind) -> None:
        self._loaded()[name] = kind

    def __delitem__(self, name: str) -> None:
        del self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __repr__(self) -> str:
        return f"KNOWN_SLOTS({self._loaded()!r})"


KNOWN_SLOTS = _KnownSlots()


def check_slot_configuration() -> None:
    """Reads LEDGER_EXTRA_SLOTS now: raises ConfigurationError if it is bad (for a CLI or
    service to call at startup, so the error comes before any work)."""
    len(KNOWN_SLOTS)


# Quantities are bounded so that every layer holds them: bytes fit a BIGINT (int64) and
# stay exact as Python ints; counts have at most 15 integer digits and 3 decimals (18
# significant digits: exact in Decimal and NUMERIC, within 1e15 as a float). Infinity is
# for limits only ("unlimited"); what a kernel occupies is finite.
MAX_BYTES = 2**63 - 1
MAX_COUNT_DIGITS = 15
_COUNT_STEP = Decimal("0.001")
_COUNT_BOUND = Decimal(10**MAX_COUNT_DIGITS)  # exclusive
_MAX_QUANTITY_TEXT = 64  # longer text is refused before it is read
INFINITY = Decimal("Infinity")

# ASCII digits with optional '_' separators between digits (Python and Backend.AI's
# BinarySize accept "12_345"); a fraction may follow, or stand alone (".5k").
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_NUMBER = rf"(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})"
# A byte size: number, optional spaces, optional unit: a binary prefix (k..e, powers of
# 1024) with an optional b / ib / byte(s) / ibyte(s) tail, or a bare b / ib / byte(s).
_BYTES_RE = re.compile(rf"\s*({_NUMBER})\s*(?:([kmgtpe])(?:i?b|i?bytes?)?|i?b|i?bytes?)?\s*", re.IGNORECASE | re.ASCII)
_COUNT_RE = re.compile(rf"\s*[+-]?{_NUMBER}(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)
_BINARY_POWER = {None: 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def _is_infinite(raw: object) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() in ("inf", "infinity")
    if isinstance(raw, Decimal):
        return raw.is_infinite() and not raw.is_signed()
    if isinstance(raw, float):
        return raw == math.inf
    return False


# Parsed quantity texts, for the values a platform repeats (every kernel of a bulk import
# holds "2" cpus and "4g"): parsing one cost as much as the rest of its action. Only
# successes are kept (an error names its field); bounded by clearing when full.
_PARSED: dict[tuple[str, SlotKind, bool], Decimal] = {}
_PARSED_MAX = 4096


def _parse_quantity(raw: object, kind: SlotKind, field: str, *, allow_infinity: bool = True) -> Decimal:
    if type(raw) is not str:
        return _parse_quantity_once(raw, kind, field, allow_infinity=allow_infinity)
    key = (raw, kind, allow_infinity)
    value = _PARSED.get(key)
    if value is None:
        value = _parse_quantity_once(raw, kind, field, allow_infinity=allow_infinity)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = value
    return value


def _parse_quantity_once(raw: object, kind: SlotKind, field: str, *, allow_infinity: bool) -> Decimal:
    """One slot quantity, bounded and finite (or infinity, for limits when allowed).

    Bytes: an integer, or a byte size string: "16g" (binary prefixes, any case, optional
    b/ib/bytes tail), "124.32 KiB" (a fraction times a prefix is truncated to whole
    bytes: 127303), "12_345 bytes"; a count of bytes without a prefix cannot have a
    fraction ("1.5", "0.5b" refused; "8.000" is 8). Counts: decimals rounded half up to
    3 places. Refused: negatives, NaN, a non-zero value that would become 0
    ("cpu=0.0001", "mem=0.0001k"), and values beyond MAX_BYTES / 15 integer digits."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise InvalidAPIParameters(f"expected a number or a string, got {kind_of(raw)}", field=field)
    if _is_infinite(raw):
        if not allow_infinity:
            raise InvalidAPIParameters("must be finite (infinity is only for limits)", field=field)
        return INFINITY
    if isinstance(raw, str) and len(raw) > _MAX_QUANTITY_TEXT:
        raise InvalidAPIParameters(f"too long for a quantity ({len(raw)} characters)", field=field)
    if kind is SlotKind.BYTES:
        return _parse_bytes(raw, field)
    return _parse_count(raw, field)


def _parse_bytes(raw: str | int | float | Decimal, field: str) -> Decimal:
    power = 0
    if isinstance(raw, int):
        if raw < 0:
            raise InvalidAPIParameters(f"negative quantity {shown(raw)}", field=field)
        if raw > MAX_BYTES:
            raise InvalidAPIParameters(f"too large: a byte size is at most {MAX_BYTES}", field=field)
        return Decimal(raw)
    if isinstance(raw, str):
        match = _BYTES_RE.fullmatch(raw)
        if match is None:
            if raw.strip().startswith("-"):
                raise InvalidAPIParameters(f"negative quantity {shown(raw)}", field=field)
            raise InvalidAPIParameters(f"{shown(raw)} is not a byte size (e.g. 512m, 16g, 1.5GiB)", field=field)
        number, prefix = match.groups()
        power = _BINARY_POWER[prefix.lower() if prefix else None]
        if number.isdigit():  # the common "16g": whole, and ASCII (the pattern is), no Fraction needed
            whole = int(number) * 1024**power
            if whole > MAX_BYTES:
                raise InvalidAPIParameters(f"too large: a byte size is at most {MAX_BYTES} (8 EiB)", field=field)
            return Decimal(whole)
        exact = Fraction(number.replace("_", ""))
    else:  # float or Decimal: exact values, no rounding on the way
        if raw.is_nan() if isinstance(raw, Decimal) else math.isnan(raw):  # before comparing a NaN
            raise InvalidAPIParameters("not a number (NaN)", field=field)
        if raw < 0:  # -inf too (+inf was handled as infinity)
            raise InvalidAPIParameters(f"negative quantity {shown(raw)}", field=field)
        if raw > MAX_BYTES:
            raise InvalidAPIParameters(f"too large: a byte size is at most {MAX_BYTES}", field=field)
        exact = Fraction(raw)
    if power == 0 and exact.denominator != 1:
        raise InvalidAPIParameters(f"{shown(raw)}: a byte count has no fraction (use a unit, e.g. 1.5k)", field=field)
    scaled = exact * 1024**power
    whole = int(scaled)  # truncated to whole bytes, as Backend.AI's BinarySize
    if whole == 0 and scaled != 0:
        raise InvalidAPIParameters(f"{shown(raw)} is less than one byte", field=field)
    if whole > MAX_BYTES:
        raise InvalidAPIParameters(f"too large: a byte size is at most {MAX_BYTES} (8 EiB)", field=field)
    return Decimal(whole)


def _parse_count(raw: str | int | float | Decimal, field: str) -> Decimal:
    if isinstance(raw, int):
        if not -_COUNT_BOUND < raw < _COUNT_BOUND:  # before any conversion of a huge int
            if raw < 0:
                raise InvalidAPIParameters("negative quantity", field=field)
            raise InvalidAPIParameters(f"too large: at most {MAX_COUNT_DIGITS} integer digits", field=field)
        value = Decimal(raw)
    elif isinstance(raw, str):
        if not _COUNT_RE.fullmatch(raw):
            raise InvalidAPIParameters(f"{shown(raw)} is not a number", field=field)
        try:
            value = Decimal(raw.strip().replace("_", ""))
        except InvalidOperation:  # an exponent beyond what Decimal can hold
            raise InvalidAPIParameters(f"{shown(raw)} is out of range", field=field) from None
    elif isinstance(raw, float):
        value = Decimal(repr(raw))  # the float as written (1.2345678), not its binary expansion
    else:
        value = raw
    if value.is_nan():  # before any comparison: a signalling NaN raises on compare
        raise InvalidAPIParameters("not a number (NaN)", field=field)
    if value.is_signed() and not value.is_zero():
        raise InvalidAPIParameters(f"negative quantity {shown(raw)}", field=field)
    if value.is_infinite() or value.adjusted() >= MAX_COUNT_DIGITS:
        raise InvalidAPIParameters(f"too large: at most {MAX_COUNT_DIGITS} integer digits", field=field)
    rounded = value.copy_abs().quantize(_COUNT_STEP, rounding=ROUND_HALF_UP)  # "-0" is 0
    if rounded >= _COUNT_BOUND:
        raise InvalidAPIParameters(f"too large: at most {MAX_COUNT_DIGITS} integer digits", field=field)
    if rounded.is_zero() and not value.is_zero():
        raise InvalidAPIParameters(f"{shown(raw)} rounds to 0 (counts have 3 decimal places)", field=field)
    return rounded


def _same_decimals(given: ResourceSlot, parsed: Mapping[str, Decimal]) -> bool:
    """Whether a ResourceSlot holds exactly the parsed Decimals (an int equals its Decimal,
    but cannot be written as one)."""
    return given.keys() == parsed.keys() and all(
        type(value) is Decimal and value == parsed[name] for name, value in given.items()
    )


def _canonical(value: Decimal) -> str:
    if value.is_infinite():
        return "Infinity"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_BINARY_UNITS: tuple[str, ...] = ("", "k", "m", "g", "t", "p", "e")


def shown_quantity(slot: str, value: object) -> str:
    """A quantity as a person reads it: a byte slot's whole number of bytes in the largest
    binary unit that divides it exactly (3221225472 -> 3g, as policies are written, and
    read back by the parser), anything else as given (a count, 0, Infinity)."""
    text = _canonical(value) if isinstance(value, Decimal) else str(value)
    if KNOWN_SLOTS.get(slot) is not SlotKind.BYTES or not text.isdigit() or int(text) == 0:
        return text
    number, units = int(text), _BINARY_UNITS
    while number % 1024 == 0 and len(units) > 1:
        number, units = number // 1024, units[1:]
    return f"{number}{units[0]}"


class ResourceSlot(FrozenMapping[Decimal]):
    """Immutable mapping of known slot names to quantities (bytes for memory slots)."""

    __slots__ = ()

    @classmethod
    def from_user_input(
        cls, raw: object, field: str | None = "resource_slots", *, allow_infinity: bool = True
    ) -> ResourceSlot:
        """Parses `{"cpu": "4", "mem": "8g"}`; unknown names and negatives are refused.
        `inf` (unlimited) only with allow_infinity: limits, never what a kernel occupies.
        (Seed 003 passes None as the second argument, where Backend.AI takes slot types.)"""
        field = field or "resource_slots"
        known = KNOWN_SLOTS.loaded()
        # A ResourceSlot built directly (`ResourceSlot({"cpu": 4, "mem": "8g"})`) was never
        # parsed: it is read like any mapping below, so its ints, floats, texts and aliases
        # become what input becomes (it was checked only for equal values, so an int passed
        # and broke every later write of it with an AttributeError, and "4" was refused).
        if not isinstance(raw, Mapping):
            raise InvalidAPIParameters("expected a mapping of slot names to quantities", field=field)
        parsed: dict[str, Decimal] = {}
        for key, quantity in raw.items():
            name = SLOT_ALIASES.get(key, key) if isinstance(key, str) else key
            if not isinstance(name, str) or name not in known:
                names = ", ".join(sorted(known) + [f"{a} (={c})" for a, c in SLOT_ALIASES.items()])
                label = key if isinstance(key, str) and len(key) <= 40 else shown(key)
                raise InvalidAPIParameters(f"unknown slot {shown(key)}; known slots: {names}", field=f"{field}.{label}")
            if name in parsed:
                raise InvalidAPIParameters(
                    f"slot {name!r} given twice (directly and as an alias)", field=f"{field}.{key}"
                )
            parsed[name] = _parse_quantity(quantity, known[name], f"{field}.{key}", allow_infinity=allow_infinity)
        if isinstance(raw, ResourceSlot) and _same_decimals(raw, parsed):
            return raw  # already canonical: kept as it is
        return cls(parsed)

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> ResourceSlot:
        return cls({k: Decimal(v) for k, v in data.items()})

    def to_json(self) -> dict[str, str]:
        return {k: _canonical(self._data[k]) for k in sorted(self._data)}

    def __getitem__(self, key: str) -> Decimal:
        # Seed 001 gives "memory" and "gpu": a caller reads back by the names it gave, though
        # they are kept (and iterated) under their canonical names, `mem` and `cuda.device`.
        try:
            return self._data[key]
        except KeyError:
            canonical = SLOT_ALIASES.get(key) if isinstance(key, str) else None
            if canonical is None:
                raise
            return self._data[canonical]

    def __repr__(self) -> str:
        # One built directly holds what it was given until it is parsed (`from_user_input`):
        # shown as given, where its JSON form (Decimals only) raised an AttributeError.
        shown_values = {k: _canonical(v) if isinstance(v, Decimal) else v for k, v in sorted(self._data.items())}
        return f"{type(self).__name__}({shown_values!r})"
