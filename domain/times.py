"""Times: the accepted range (parse_time) and reading a stored time back in UTC (as_utc)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.errors import InvalidAPIParameters
from domain.shown import kind_of, shown

# Accepted times: 1900-01-01T00:00Z <= t < 9000-01-01T00:00Z once converted to UTC, with
# a UTC offset of at most 18 hours in whole seconds. Every IANA zone is within a day of
# UTC, so such a time converts to UTC and to every zone (and a report's day and month
# windows around it stay inside datetime's years 1..9999); PostgreSQL's timestamptz and
# SQLite's text hold all of them.
TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)
MAX_UTC_OFFSET = timedelta(hours=18)
_MAX_TIME_TEXT = 64
# How far past the ledger's clock a time the platform reports as its "now" (a session's
# activity) may be: hosts' clocks differ a little (NTP keeps them well within a second;
# five minutes is Kerberos' customary allowance). Further ahead it is refused: one report
# dated years ahead would otherwise hold off `idle_timeout` until then.
MAX_CLOCK_AHEAD = timedelta(minutes=5)
# `datetime.fromisoformat`'s reasons for a well-formed date or time that does not exist.
_OUT_OF_RANGE = re.compile(
    r"day is out of range for month|year -?\d+ is out of range|(?:month|hour|minute|second) must be in \d+\.\.\d+"
)


def parse_time(raw: Any, field: str) -> datetime:
    """ISO 8601 text or a datetime; a time without a zone is taken as UTC (`Z` is UTC).

    Refused (InvalidAPIParameters naming the field): other types (int, float, bool,
    date, list...), text that is not ISO 8601 in ASCII, an offset beyond +-18:00 or with
    a fraction of a second, and times outside TIME_MIN..TIME_MAX in UTC (years 1900 to
    8999), so that every accepted time converts to UTC and to every IANA zone.
    The time keeps the offset it was given."""
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > _MAX_TIME_TEXT or not text.isascii():
            raise InvalidAPIParameters(f"{shown(raw)} is not an ISO 8601 time", field=field)
        if text.endswith("z"):  # RFC 3339 5.6: "Z" may be lower case; fromisoformat reads only "Z"
            text = text[:-1] + "Z"
        try:
            raw = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            # A time well formed but naming no instant (2026-02-29, 24:00) says which part
            # is out of range; the library's other reasons say no more than this message.
            out_of_range = _OUT_OF_RANGE.fullmatch(str(exc))
            if out_of_range is not None:
                why = out_of_range.group(0)
                raise InvalidAPIParameters(f"{shown(raw)} is not a valid date and time: {why}", field=field) from None
            raise InvalidAPIParameters(f"{shown(raw)} is not an ISO 8601 time", field=field) from None
    if not isinstance(raw, datetime):
        raise InvalidAPIParameters(f"expected a time, got {kind_of(raw)}", field=field)
    try:
        offset = raw.utcoffset()
    except (ValueError, TypeError, OverflowError):  # a custom tzinfo that cannot answer
        raise InvalidAPIParameters("the time's zone has no valid UTC offset", field=field) from None
    if offset is None:
        raw = raw.replace(tzinfo=UTC)
    elif abs(offset) > MAX_UTC_OFFSET or offset.microseconds:
        raise InvalidAPIParameters("UTC offset must be whole seconds within +-18:00", field=field)
    try:
        utc = raw.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        utc = None
    if utc is None or not TIME_MIN <= utc < TIME_MAX:
        raise InvalidAPIParameters(
            "must be from 1900-01-01T00:00:00Z to before 9000-01-01T00:00:00Z (in UTC)", field=field
        )
    parsed: datetime = raw
    return parsed


def query_time(raw: datetime | str, field: str) -> datetime:
    """A query's point in time: ISO 8601 text read as `parse_time` reads it, a datetime as
    given (a query stores nothing, so it may ask about any time UTC holds)."""
    return parse_time(raw, field) if isinstance(raw, str) else raw


def time_or_none(raw: datetime | str | None, field: str) -> datetime | None:
    """`query_time`, or None."""
    return None if raw is None else query_time(raw, field)


def parse_window(since: Any, until: Any, what: str) -> tuple[datetime | None, datetime | None]:
    """[since, until), each parsed (`parse_time`; None is open), refused (naming `since`)
    when it holds no instant: it can match no `what`, and an empty answer would read as
    "nothing happened then". The one check of the CLI, the HTTP API and the queries, so all
    say it in the same words, the values as they were given."""
    start = None if since is None else _bound(since, "since")
    end = None if until is None else _bound(until, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidAPIParameters(
            f"{_as_given(since)} is not before until {_as_given(until)}: no {what} could match", field="since"
        )
    return start, end


# Fractional digits past the sixth (RFC 3339 allows any number; .NET writes seven), which
# `datetime.fromisoformat` drops. The only "." or "," of an ISO 8601 time is a fraction's.
_PAST_MICROSECONDS = re.compile(r"[.,][0-9]{6}([0-9]+)")


def _bound(raw: Any, field: str) -> datetime:
    """A window's bound: the first microsecond at or after the instant given. Stored times
    are whole microseconds, so `t >= since` and `t < until` then hold exactly when they
    hold of the bound as given; cut down to its microsecond, as the parser does, the bound
    fell below the instant, and a kernel started at that microsecond fell on the wrong side."""
    at = parse_time(raw, field)
    beyond = _PAST_MICROSECONDS.search(raw) if isinstance(raw, str) else None
    if beyond is not None and beyond.group(1).strip("0"):
        at += timedelta(microseconds=1)
    return at


def _as_given(raw: Any) -> str:
    return shown(raw.isoformat() if isinstance(raw, datetime) else raw, limit=_MAX_TIME_TEXT + 2)


def require_not_ahead(at: datetime, now: datetime, field: str) -> None:
    """Refuses (naming `field`) a reported time more than MAX_CLOCK_AHEAD past `now`, the
    ledger's clock."""
    if at > now + MAX_CLOCK_AHEAD:
        minutes = int(MAX_CLOCK_AHEAD.total_seconds() // 60)
        raise InvalidAPIParameters(
            f"{as_utc(at).isoformat()} is more than {minutes} minutes ahead of the ledger's clock "
            f"({as_utc(now).isoformat()})",
            field=field,
        )


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC; a naive time is taken as UTC already (SQLite returns the
    ledger's UTC times naive, PostgreSQL in its session's zone)."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def parse_point(raw: str, field: str) -> tuple[int | None, datetime | None]:
    """A point in an entity's history: a version number (from 1), or an ISO 8601 time (UTC
    if no zone). A refused point is named `field`, as the caller's user typed it."""
    from domain.parsers import parse_positive_int

    if raw.strip().isascii() and raw.strip().isdigit():
        return parse_positive_int(raw, field), None
    return None, parse_time(raw, field)
