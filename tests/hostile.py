"""Hostile values of every kind a caller could pass where a field or parameter expects
one kind: what the deterministic sweeps (every input model's fields, every query's
parameters) try one at a time."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any


class _Opaque:
    """An object of no known kind."""


HOSTILE: list[Any] = [
    {},
    {"a": {}},
    [],
    [{}],
    set(),
    (),
    Decimal("sNaN"),  # cannot be hashed or compared
    Decimal("NaN"),
    float("nan"),
    float("inf"),
    -0.0,
    1.5,
    complex(1, 1),
    10**5000,  # too long to format as text
    -(10**30),
    2**63,
    -1,
    True,
    None,
    b"x",
    bytearray(b"x"),
    _Opaque(),
    "",
    " ",
    "x" * 5000,
    "\x00",
    "\u202e",
    "\ud800",  # a lone surrogate: no UTF-8 text holds it
    {"\udfff": "1"},  # ... as a key (a slot's or a host's name)
    "inf",
    "nan",
    "1e400",
    "\u0663",  # a digit int() reads
    datetime.datetime.min,
    # Times with no UTC time: before year 1 and after year 9999 once converted.
    datetime.datetime(1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
    datetime.datetime(9999, 12, 31, 23, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
    "cafe\u0301",  # not in NFC: stored names are
    datetime.date(2024, 1, 1),
    datetime.time(1),
    datetime.timedelta(days=1),
    uuid.UUID(int=0),
]
