"""How user input appears in error messages: short, and never read in full."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from decimal import Decimal

# The policy limits 0 (or null) lifts, as the start gate, admission, the runtime limits
# and the vfolder checks read them: tables say "no limit" beside such a value, which an
# operator would otherwise read as "none allowed" (the options' help says the same).
NO_LIMIT_AT_ZERO = frozenset(
    (
        "max_concurrent_sessions",
        "max_session_lifetime",
        "idle_timeout",
        "max_pending_session_count",
        "max_vfolder_count",
    )
)
NO_LIMIT_AT_NULL = frozenset(("max_pending_session_resource_slots",))

# The largest integer any field holds (int64): larger ones are named by their size.
_LARGEST_SHOWN_INT = 2**63 - 1


def shown(raw: object, limit: int = 40) -> str:
    """A short repr of user input for messages: never echo a 5000-digit number or a
    megabyte string (and never call str() on a huge int, which raises); containers and
    other objects are named by their type."""
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) > _LARGEST_SHOWN_INT:
        return f"an integer of {raw.bit_length()} bits"
    if isinstance(raw, str | bytes):
        text = repr(raw[: limit + 1])
    elif isinstance(raw, Decimal):  # as JSON wrote it (1E+400), not Decimal('1E+400')
        text = str(raw)
    elif isinstance(raw, int | float | enum.Enum):
        text = repr(raw)
    else:
        text = kind_of(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Past the longest key an entity may have (a name of 256 characters, quoted):
# a lookup of a 10 kB name is answered in one short line, a real key in full.
_KEY_SHOWN = 260


def shown_key(key: object) -> str:
    """An entity's key (a name, an access key, an id) as a message names it: quoted, whole
    when it could be a real key, cut when no entity could have it."""
    return shown(key, _KEY_SHOWN)


def kind_of(raw: object) -> str:
    """What kind of value `raw` is, in the words of the JSON a caller sent (`null`, `a
    boolean`, `a number`, `a string`, `a list`, `an object`), not Python's type names
    (`NoneType`, `dict`); any other object by its type's name."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int | float | Decimal):
        return "a number"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, bytes | bytearray):
        return "bytes"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, Mapping):
        return "an object"
    return f"a {type(raw).__name__}"


def encodable(text: str) -> str:
    """`text` with each lone surrogate written as its escape (`\\udfff`): what an error
    carries is written as UTF-8 (JSON, a terminal, pydantic's own errors), which a lone
    surrogate cannot be."""
    if text.isascii():  # the common case, at C speed
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def plural(count: int, noun: str) -> str:
    """`1 event`, `2 events`, `0 batches`, `3 entries`: a count and its noun, agreeing."""
    if count == 1:
        return f"{count} {noun}"
    if noun.endswith(("s", "x", "ch", "sh")):
        return f"{count} {noun}es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}s"


def some(ids: Iterable[str], most: int = 5) -> str:
    """The first few of many ids, sorted, and how many more: a message names a sample."""
    ordered = sorted(ids)
    more = f" and {len(ordered) - most} more" if len(ordered) > most else ""
    return ", ".join(ordered[:most]) + more
