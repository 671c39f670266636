"""The query API's arguments, checked against their annotations before any is used.

The queries are called in-process as well as through the HTTP API and the CLI (which
check their inputs first). A wrong type reached a query's SQL or string handling and came
back as whatever broke first: an AttributeError for text given as a date, a TypeError for
a list given as an entity type, sqlite3's OverflowError for a 5,000-digit number given as
a name, and, on PostgreSQL only, the driver's refusal of a NUL character. `checked`
refuses each of those as `InvalidAPIParameters` naming the parameter, on both backends
alike. Only the kinds the queries take are known here: text, integers (64-bit, what both
databases store), booleans, datetimes, dates, UUIDs and None.

Text is passed on in NFC, as every command stores names and keys: a policy created as
"cafe" + U+0301 is stored as "caf\u00e9", and a query by the name as given must find it.
A datetime that has no UTC time (0001-01-01 at +05:00 is before year 1 in UTC) is refused
here too, instead of overflowing where the query converts it.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
import unicodedata
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from domain.errors import InvalidAPIParameters
from domain.times import as_utc

F = TypeVar("F", bound=Callable[..., Any])

_INT64 = range(-(2**63), 2**63)
_NAMES: dict[type, str] = {
    str: "text",
    int: "an integer",
    bool: "true or false",
    datetime: "a datetime",
    date: "a date",
    uuid.UUID: "a UUID",
    type(None): "null",
}


def _kinds(annotation: Any) -> tuple[type, ...]:
    """The runtime types an annotation admits (`X | None` and `Union` alike)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(kind for arm in typing.get_args(annotation) for kind in _kinds(arm))
    if annotation not in _NAMES:
        raise TypeError(f"checked: no rule for {annotation!r}")
    return (annotation,)


def _check(name: str, value: Any, kinds: tuple[type, ...]) -> Any:
    """The value the query is given: `value`, or its text in NFC."""
    # bool is an int to Python, never to a query: it is taken only where bool is named.
    admitted = bool in kinds if type(value) is bool else isinstance(value, kinds)
    if not admitted:
        expected = " or ".join(_NAMES[k] for k in kinds)
        raise InvalidAPIParameters(f"must be {expected}, not {type(value).__name__}", field=name)
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidAPIParameters("must not contain a NUL character", field=name)
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidAPIParameters("must be valid Unicode text (a lone surrogate)", field=name) from None
        return unicodedata.normalize("NFC", value)
    if isinstance(value, datetime):
        try:
            as_utc(value)
        except (OverflowError, ValueError, TypeError):  # TypeError, ValueError: a tzinfo that cannot answer
            raise InvalidAPIParameters("must be a time that exists in UTC (years 1 to 9999)", field=name) from None
    elif isinstance(value, int) and type(value) is not bool and value not in _INT64:
        raise InvalidAPIParameters("is out of range (a 64-bit integer)", field=name)
    return value


def checked(func: F) -> F:
    """Checks every argument a caller passes against its parameter's annotation before
    the call (defaults are the query's own). A call that does not fit the signature at
    all is the caller's bug: the function itself raises Python's TypeError for it."""
    parameters = inspect.signature(func).parameters
    positional = [
        name
        for name, parameter in parameters.items()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    by_keyword = {name for name, parameter in parameters.items() if parameter.kind != parameter.POSITIONAL_ONLY}
    rules: dict[str, tuple[type, ...]] | None = None

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal rules
        if rules is None:  # resolved on first use: the annotations name the module's own types
            hints = typing.get_type_hints(func)
            rules = {name: _kinds(hints[name]) for name in parameters if name != "self"}  # assigned whole
        known = rules
        # Matched by hand (signature.bind costs ~5 us a call); extra or unknown arguments
        # are left for the call itself to refuse.
        args = (
            tuple(
                value if name == "self" else _check(name, value, known[name])
                for name, value in zip(positional, args, strict=False)
            )
            + args[len(positional) :]
        )
        kwargs = {
            name: _check(name, value, known[name]) if name in by_keyword and name in known else value
            for name, value in kwargs.items()
        }
        return func(*args, **kwargs)

    return typing.cast(F, call)
