"""Input parsers: (raw, field) -> value, raising InvalidAPIParameters that names the field.

Integers, text and names, UUIDs, slugs and access keys, booleans, file contents,
container registries, measured amounts, and the enums of `domain.values`. Times are in
`domain.times`; slots and hosts parse themselves (`domain.slots`, `domain.hosts`).
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.errors import InvalidAPIParameters
from domain.shown import kind_of, shown
from domain.values import ENDED_STATUSES, DefaultForUnspecified, ProjectType, UserUpdateMode

Parser = Callable[[Any, str], Any]


INT64_MAX = 2**63 - 1  # every integer field fits a BIGINT column and a JSON number
_MAX_INT_TEXT = 21  # sign and 20 digits: int64 needs 19; longer text is refused unread
_INT_TEXT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() also reads "٣"


def parse_int(raw: Any, field: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer in minimum..maximum (int64 at most): an int, an integral float, or
    ASCII decimal text. Out-of-range values are refused before any conversion."""
    if isinstance(raw, bool):
        raise InvalidAPIParameters("expected an integer, got a boolean", field=field)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > _MAX_INT_TEXT:
            raise InvalidAPIParameters(f"too many digits (at most {maximum})", field=field)
        if not _INT_TEXT.fullmatch(text):
            raise InvalidAPIParameters(f"expected an integer, got {shown(raw)}", field=field)
        raw = int(text)
    elif isinstance(raw, float):
        if not raw.is_integer():  # also NaN and infinities
            raise InvalidAPIParameters(f"expected an integer, got {shown(raw)}", field=field)
        if not -(2.0**63) <= raw < 2.0**63:  # int(1e300) would be a 300-digit int
            raise InvalidAPIParameters(f"must be at most {maximum}", field=field)
        raw = int(raw)
    if not isinstance(raw, int):
        # A Decimal is shown as JSON writes it, so it is named a decimal here: shown alone,
        # Decimal('5') read "expected an integer, got 5".
        got = f"the decimal {shown(raw)}" if isinstance(raw, Decimal) else shown(raw)
        raise InvalidAPIParameters(f"expected an integer, got {got}", field=field)
    value = int(raw)  # an int subclass (IntEnum) becomes a plain int
    if value > maximum:
        raise InvalidAPIParameters(f"must be at most {maximum}", field=field)
    if value < minimum:
        got = f", got {value}" if value >= -INT64_MAX else ""
        raise InvalidAPIParameters(f"must be at least {minimum}{got}", field=field)
    return value


def parse_positive_int(raw: Any, field: str) -> int:
    return parse_int(raw, field, minimum=1)


# Text. Names are what tables, histories and error messages print, so two different
# names must never print alike: they are NFC-normalised (one form per visible text) and
# may hold no control, format (invisible, bidi), separator, surrogate, private-use or
# unassigned characters.

_NAME_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# Letters and marks that render as nothing (Hangul fillers, braille blank, variation
# selectors, Mongolian free variation selectors, ...).
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Bidi controls reorder what follows them: refused even in free text ("Trojan source").
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEXT_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def _name_char_ok(char: str) -> bool:
    if char == " ":
        return True
    if char.isspace() or char in _INVISIBLE:  # NBSP, ideographic space...: only plain spaces
        return False
    return unicodedata.category(char) not in _NAME_FORBIDDEN_CATEGORIES


def _text_char_ok(char: str, multiline: bool) -> bool:
    if multiline:
        if char in "\n\t":
            return True
        return char not in _BIDI_CONTROLS and unicodedata.category(char) not in _TEXT_FORBIDDEN_CATEGORIES
    return _name_char_ok(char)


def _normalised(raw: Any, field: str, max_length: int) -> str:
    if not isinstance(raw, str):
        raise InvalidAPIParameters(f"expected a string, got {kind_of(raw)}", field=field)
    if len(raw) > 4 * max_length:  # NFC at most shrinks a few-fold: refuse before reading
        raise InvalidAPIParameters(f"must be at most {max_length} characters", field=field)
    return unicodedata.normalize("NFC", raw)


def _refuse_bad_char(text: str, field: str, ok: Callable[[str], bool], allowed: str) -> None:
    if text.isascii() and text.isprintable():  # the common case, at C speed: every rule allows it
        return
    for index, char in enumerate(text):
        if not ok(char):
            raise InvalidAPIParameters(
                f"must not contain control or invisible characters ({allowed}; found U+{ord(char):04X} at {index})",
                field=field,
            )


def parse_name(raw: Any, field: str, *, max_length: int = 256) -> str:
    """A name: 1..max_length characters after NFC normalisation, printable, plain spaces
    only and none at either end (so "base" and "base " are not two policies)."""
    name = _normalised(raw, field, max_length)
    if not 1 <= len(name) <= max_length:
        raise InvalidAPIParameters(f"must be 1 to {max_length} characters, got {len(name)}", field=field)
    _refuse_bad_char(name, field, _name_char_ok, "visible characters and plain spaces only")
    if name[0] == " " or name[-1] == " ":
        raise InvalidAPIParameters("must not start or end with a space", field=field)
    return name


_DOT_SEGMENTS = frozenset({".", ".."})


def parse_new_name(raw: Any, field: str, *, max_length: int = 256) -> str:
    """The name of an entity being made (or renamed): a name, and not `.` or `..`, which a
    URL cannot hold as a path segment (`/v1/domains/..` is `/v1`), so the entity could not
    be read, changed or deleted by its name. Only new names: a name already stored, and
    every read or reference to one, keep `parse_name`."""
    name = parse_name(raw, field, max_length=max_length)
    if name in _DOT_SEGMENTS:
        raise InvalidAPIParameters(f"must not be {name!r}: a URL cannot name it as a path segment", field=field)
    return name


def parse_text(raw: Any, field: str, *, max_length: int, multiline: bool = False) -> str:
    """Free text of 0..max_length characters after NFC normalisation. One line: no
    control or invisible characters, as names. Multiline (descriptions): newlines and
    tabs allowed; other control characters (ESC...), line/paragraph separators and bidi
    controls refused, other format characters (emoji joiners) kept."""
    text = _normalised(raw, field, max_length)
    if len(text) > max_length:
        raise InvalidAPIParameters(f"must be at most {max_length} characters, got {len(text)}", field=field)
    if multiline:
        _refuse_bad_char(text, field, lambda c: _text_char_ok(c, True), "newlines and tabs allowed")
    else:
        _refuse_bad_char(text, field, _name_char_ok, "one line of visible characters and spaces")
    return text


def text_parser(max_length: int, *, multiline: bool = False) -> Parser:
    """parse_text as a (raw, field) parser for field_of and the state wrappers."""

    def parse(raw: Any, field: str) -> str:
        return parse_text(raw, field, max_length=max_length, multiline=multiline)

    return parse


def name_parser(max_length: int) -> Parser:
    """parse_name with another bound, as a (raw, field) parser."""

    def parse(raw: Any, field: str) -> str:
        return parse_name(raw, field, max_length=max_length)

    return parse


# REFERENCE.md: a group's description <= 512 (free text over lines), integration_id <= 512
# (one line); an operator's reason for a skip is kept in the audit trail.
parse_description = text_parser(512, multiline=True)
parse_integration_id = text_parser(512)
parse_projection_name = name_parser(128)
parse_reason = name_parser(1000)


def parse_uuid(raw: Any, field: str) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    if not isinstance(raw, str):
        raise InvalidAPIParameters(f"expected a UUID string, got {kind_of(raw)}", field=field)
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidAPIParameters(f"{shown(raw)} is not a UUID", field=field) from None


def parse_uuid_list(raw: Any, field: str) -> list[uuid.UUID]:
    """A list (or tuple or set) of UUIDs, each a UUID or its text. A string is refused,
    not read as a sequence of characters."""
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple | set | frozenset):
        raise InvalidAPIParameters("expected a list of UUIDs", field=field)
    return [parse_uuid(item, field) for item in raw]


_SLUG = re.compile(r"^[\w.-]+$")  # \w is unicode-aware: letters and digits of any script


def parse_slug(raw: Any, field: str) -> str:
    """A group name: a name of at most 64 characters in letters, digits, '_', '-' and '.'."""
    name = parse_name(raw, field, max_length=64)
    if not _SLUG.match(name):
        raise InvalidAPIParameters("must be a slug: letters, digits, '_', '-' and '.' only", field=field)
    return name


def parse_access_key(raw: Any, field: str) -> str:
    """A name of at most 128 characters without whitespace."""
    key = parse_name(raw, field, max_length=128)
    if any(ch.isspace() for ch in key):
        raise InvalidAPIParameters("must not contain whitespace", field=field)
    return key


def parse_new_access_key(raw: Any, field: str) -> str:
    """The access key of a keypair being made: an access key, and a new name (it is the
    keypair's URL path segment)."""
    return parse_new_name(parse_access_key(raw, field), field, max_length=128)


def parse_bool(raw: Any, field: str) -> bool:
    """A bool, or the text true / false in any case."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidAPIParameters(f"expected true or false, got {shown(raw)}", field=field)


MAX_DOTFILES = 64 * 1024


def parse_dotfiles(raw: Any, field: str) -> bytes:
    """File contents: bytes, or text stored as UTF-8, of at most 64 KiB."""
    data = raw.encode() if isinstance(raw, str) else raw
    if not isinstance(data, bytes | bytearray):
        raise InvalidAPIParameters(f"expected bytes or a string, got {kind_of(raw)}", field=field)
    if len(data) > MAX_DOTFILES:
        raise InvalidAPIParameters(f"must be at most {MAX_DOTFILES} bytes, got {len(data)}", field=field)
    return bytes(data)


MAX_REGISTRY_VALUE = 256


def parse_container_registry(raw: Any, field: str) -> dict[str, str]:
    """`{}` or `{registry, project}`: each value one line of at most 256 characters,
    parsed as a name (it is shown in listings and names an external registry)."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise InvalidAPIParameters("expected {} or {registry, project} with string values", field=field)
    unknown = set(raw) - {"registry", "project"}
    if unknown:
        shown_keys = ", ".join(shown(k, 20) for k in sorted(unknown)[:3])
        raise InvalidAPIParameters(f"unknown keys {shown_keys}; allowed: registry, project", field=field)
    return {key: parse_name(value, f"{field}.{key}", max_length=MAX_REGISTRY_VALUE) for key, value in raw.items()}


def parse_user_update_mode(raw: Any, field: str) -> UserUpdateMode:
    """add, remove or replace, in any case."""
    if isinstance(raw, UserUpdateMode):
        return raw
    if not isinstance(raw, str):  # str() of a huge int raises: only text is read
        raise InvalidAPIParameters(f"{shown(raw)} is not one of add, remove, replace", field=field)
    try:
        return UserUpdateMode(raw.strip().lower())
    except ValueError:
        raise InvalidAPIParameters(f"{shown(raw)} is not one of add, remove, replace", field=field) from None


MAX_AMOUNT_DIGITS = 15  # integer digits, as slot counts: float() and NUMERIC hold it
_AMOUNT_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\s*", re.ASCII)


def parse_amount(raw: Any, field: str) -> Decimal:
    """A measured amount (cpu time used): finite, >= 0, at most 15 integer digits, in
    ASCII text or a number; read back by reports through float()."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise InvalidAPIParameters(f"expected a number, got {kind_of(raw)}", field=field)
    if isinstance(raw, int) and not 0 <= raw < 10**MAX_AMOUNT_DIGITS:  # before str() of a huge int
        raise InvalidAPIParameters(f"must be >= 0 with at most {MAX_AMOUNT_DIGITS} integer digits", field=field)
    if isinstance(raw, str) and (len(raw) > 64 or not _AMOUNT_TEXT.fullmatch(raw)):
        raise InvalidAPIParameters(f"{shown(raw)} is not a number", field=field)
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(repr(raw) if isinstance(raw, float) else str(raw).strip())
    except ArithmeticError:
        raise InvalidAPIParameters(f"{shown(raw)} is not a number", field=field) from None
    if value.is_nan() or value.is_infinite() or (value.is_signed() and not value.is_zero()):
        raise InvalidAPIParameters(f"must be a finite number >= 0, got {shown(raw)}", field=field)
    if not value.is_zero() and value.adjusted() >= MAX_AMOUNT_DIGITS:
        raise InvalidAPIParameters(f"must be >= 0 with at most {MAX_AMOUNT_DIGITS} integer digits", field=field)
    if len(value.as_tuple().digits) > 40:  # a Decimal object may carry any precision
        raise InvalidAPIParameters("too many digits (at most 40)", field=field)
    return value.copy_abs()  # "-0" is 0


def json_float(text: str) -> float | Decimal:
    """`parse_float` for every `json.loads` of caller input: a JSON number with a fraction
    or exponent as a float, unless the float would overflow: 1e400 is then the exact
    Decimal, so the field's own parser refuses it as too large, naming the field, instead
    of reading float('inf'), which slot limits take as "unlimited". Likewise a non-zero
    number that underflows (1e-400) is the exact Decimal, not 0.0: an integer limit took
    it as 0 (for a lifetime or a timeout, "unlimited"), a slot as nothing."""
    value = float(text)
    underflow = value == 0.0 and any(digit in "123456789" for digit in re.split("[eE]", text)[0])
    if not underflow and value not in (math.inf, -math.inf):
        return value
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond even Decimal's range
        raise ValueError(f"the number {shown(text)} is out of range") from None


def parse_end_status(raw: Any, field: str) -> str:
    """How a kernel ended: TERMINATED or CANCELLED, in any case."""
    status = raw.strip().upper() if isinstance(raw, str) else None
    if status not in ENDED_STATUSES:
        raise InvalidAPIParameters(f"{shown(raw)} is not TERMINATED or CANCELLED", field=field)
    return status


def parse_default_for_unspecified(raw: Any, field: str) -> DefaultForUnspecified:
    result: DefaultForUnspecified = DefaultForUnspecified.parse(raw, field=field)
    return result


def parse_project_type(raw: Any, field: str) -> ProjectType:
    result: ProjectType = ProjectType.parse(raw, field=field)
    return result
