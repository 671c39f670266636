"""One form for every time the ledger writes in JSON: UTC as `2025-01-01T00:00:00Z`.

The entities' own JSON (`to_json`, shared with the CLI and the stored events) writes
Python's `+00:00`, pydantic's response models `Z`, so single reads and write answers said
one and lists, history and the token list the other; an action's input in the audit trail
kept its caller's offset. Every JSON body the API sends passes `utc_z`
(`LedgerJSONResponse`, `Call.command`), and so does the CLI's `--json` output, so a client
or a script parses one form, in UTC, whichever it read. Times are
found by their member's name (`at`, `deadline`, `*_at`, and a history change's `old` and
`new` under such a name), never by their look: a description that reads like a time is
the caller's text and is sent as stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# A time as Python writes one (`isoformat`), with its offset: an action's input keeps the
# offset its caller gave (`+09:00`), the entities' JSON writes UTC's `+00:00`.
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d(:\d\d(\.\d{1,6})?)?")
_CHANGE = frozenset({"old", "new"})


def is_time_member(name: str) -> bool:
    """Whether a member of this name holds a time (the API's naming rule)."""
    return name in ("at", "deadline") or name.endswith("_at")


def utc_z(data: Any) -> Any:
    """`data` (JSON-ready) with every UTC time written `...Z`."""
    if isinstance(data, dict):
        return {key: _member(key, value) for key, value in data.items()}
    if isinstance(data, list):
        return [utc_z(item) for item in data]
    return data


def _member(name: Any, value: Any) -> Any:
    if not (isinstance(name, str) and is_time_member(name)):
        return utc_z(value)
    if isinstance(value, str):
        return _z(value)
    if isinstance(value, dict) and value.keys() <= _CHANGE:  # a history change or a diff
        return {key: _z(each) if isinstance(each, str) else each for key, each in value.items()}
    return utc_z(value)


def _z(text: str) -> str:
    """`text` as the same instant in UTC, `...Z` (unchanged if it is not such a time)."""
    if not _ISO.fullmatch(text):
        return text
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # past year 1 or 9999 in UTC: left as written
        return text
    return moment.isoformat().removesuffix("+00:00") + "Z"


def utc_z_default(value: Any) -> Any:
    """A `json.dumps` default: a datetime as `utc_z` writes one, anything else as text."""
    if isinstance(value, datetime):
        return _z(value.isoformat())
    return str(value)
