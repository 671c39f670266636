"""Report windows: a month or a span of days, local time in the configured zone.

Inputs are read as Backend.AI reads them (its messages kept), bounded so that every
window's edges are representable in every zone and in UTC.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidAPIParameters
from domain.shown import shown
from domain.times import TIME_MAX, TIME_MIN

MAX_PERIOD_DAYS = 100


# Report dates are the years of every accepted time in any zone (a zone is within a day
# of UTC, so one year more on each side: 1900-01-01T00:00Z is December 1899 in New York),
# and no further: a window's local start and end are then representable in every zone
# and in UTC (datetime stops at year 9999), which a year-9999 or year-0 month would not be.
MIN_REPORT_YEAR, MAX_REPORT_YEAR = TIME_MIN.year - 1, TIME_MAX.year
_MONTH = re.compile(r"[0-9]{6}")  # ASCII digits: \d and int() also read "٢٠٢٤١٠"
_DAY = re.compile(r"[0-9]{8}")
INVALID_DATE = "Invalid date values"  # Backend.AI's message, kept as every refusal's start


def _window_edge(at: datetime, field: str, expected: str) -> datetime:
    """The edge itself, once it is known to convert to UTC (and so to any zone)."""
    try:
        at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {expected}", field=field) from None
    return at


_MONTH_EXPECTED = f"YYYYMM between {MIN_REPORT_YEAR}01 and {MAX_REPORT_YEAR}12"
_DAY_EXPECTED = f"YYYYMMDD between {MIN_REPORT_YEAR}0101 and {MAX_REPORT_YEAR}1231"


def parse_month(month: object, field: str = "month") -> str:
    """YYYYMM in ASCII digits, 189901 to 900012 (what an action accepts: a report's
    month is checked when the action is made, so a refused one is recorded as asked)."""
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {_MONTH_EXPECTED}", field=field)
    if not (MIN_REPORT_YEAR <= int(month[:4]) <= MAX_REPORT_YEAR and 1 <= int(month[4:]) <= 12):
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {_MONTH_EXPECTED}", field=field)
    return month


def parse_day(raw: object, field: str) -> str:
    """YYYYMMDD in ASCII digits, a day the calendar has, 18990101 to 90001231."""
    if not isinstance(raw, str) or not _DAY.fullmatch(raw):
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {_DAY_EXPECTED}", field=field)
    try:
        if not MIN_REPORT_YEAR <= int(raw[:4]) <= MAX_REPORT_YEAR:
            raise ValueError(raw)
        date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:  # out of range, or a day the month does not have (20240230)
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {_DAY_EXPECTED}", field=field) from None
    return raw


# Files ZoneInfo opens that zoneinfo.available_timezones() does not list as zones, or that no
# user means: `localtime` is the host's /etc/localtime (a read model's meaning would depend
# on the machine), `posixrules` and `Factory` are tzcode's template and placeholder, and
# posix/ and right/ are copies of the zones (right/ counting leap seconds).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_FOLDERS = ("posix/", "right/")


def parse_timezone(raw: object, field: str = "timezone") -> str:
    """An IANA time zone name (`UTC`, `Asia/Seoul`), as available_timezones() lists them,
    less the names above; checked by opening it, since listing them reads every zone file
    (50 ms, at every open of the ledger)."""
    if not isinstance(raw, str) or raw in _NOT_ZONES or raw.startswith(_NOT_ZONE_FOLDERS):
        raise InvalidAPIParameters(f"unknown time zone {shown(raw)}", field=field)
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: '', a path, a file that is no zone
        raise InvalidAPIParameters(f"unknown time zone {shown(raw)}", field=field) from None
    return raw


def report_day(day: date, field: str) -> date:
    """A day of a report's years (parse_day's), so that its local midnight and the next one
    convert to UTC in every zone: date.max has no next day, date.min none west of UTC.
    A datetime (a date to Python) is its own date: compared with a day column as it is,
    it is bound as a timestamp, and SQLite and PostgreSQL then disagree on that day."""
    if not MIN_REPORT_YEAR <= day.year <= MAX_REPORT_YEAR:
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be a day of {_DAY_EXPECTED}", field=field)
    return date(day.year, day.month, day.day)


def month_window(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From the first of the month to the first of the next, local time. `month` is
    YYYYMM in ASCII digits, 189901 to 900012; otherwise InvalidAPIParameters naming
    `month`, its message starting with "Invalid date values"."""
    month = parse_month(month)
    year, number = int(month[:4]), int(month[4:])
    start = datetime(year, number, 1, tzinfo=tz)
    nxt = start.replace(year=year + 1, month=1) if number == 12 else start.replace(month=number + 1)
    return _window_edge(start, "month", _MONTH_EXPECTED), _window_edge(nxt, "month", _MONTH_EXPECTED)


def _parse_day(raw: object, field: str, tz: ZoneInfo) -> datetime:
    text = parse_day(raw, field)
    day = datetime(int(text[:4]), int(text[4:6]), int(text[6:]), tzinfo=tz)
    return _window_edge(day, field, _DAY_EXPECTED)


def _dates_refused(reason: str) -> InvalidAPIParameters:
    """The two dates refused together: the message is the seed's words alone (REFERENCE:
    `InvalidAPIParameters("Cannot query more than 100 days")`), and `field` names the end
    date, as every refusal of an input names its field (over HTTP too)."""
    error = InvalidAPIParameters(reason)
    error.field = "end_date"
    return error


def period_window(start_date: str, end_date: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From the start date to the day after the end date (inclusive), local time. Dates
    are YYYYMMDD in ASCII digits, 18990101 to 90001231; a bad one is InvalidAPIParameters
    naming `start_date` or `end_date` ("Invalid date values: ...")."""
    start = _parse_day(start_date, "start_date", tz)
    end = _parse_day(end_date, "end_date", tz) + timedelta(days=1)
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise _dates_refused(f"Cannot query more than {MAX_PERIOD_DAYS} days")
    if end <= start:  # as in Backend.AI: checked after the end date was made inclusive
        raise _dates_refused("end_date must be later than start_date.")
    return start, end


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    """The local calendar days [start, end) touches."""
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def days_touched(start: datetime, end: datetime, tz: ZoneInfo) -> int:
    """How many local calendar days [start, end] touches, counting both ends (a report's
    used_days): the dates' distance plus one, less the days the zone skipped between
    them (Pacific/Apia has no 2011-12-30: its clocks went from UTC-10 to UTC+14)."""
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    years = range(max(first.year, _LISTED_YEARS.start), min(last.year, _LISTED_YEARS.stop - 1) + 1)
    skipped = sum(1 for year in years for day in _skipped_days(tz, year) if first < day < last)
    return (last - first).days + 1 - skipped


# Years a zone may have skipped a day in: those of its listed transitions. Past them the
# zone repeats a yearly rule of an hour or so, which skips no day; before 1900 the ledger
# stores no time. A kernel fact may span millennia: those years are not scanned.
_LISTED_YEARS = range(1900, 2101)


@functools.lru_cache(maxsize=4096)
def _skipped_days(tz: ZoneInfo, year: int) -> tuple[date, ...]:
    """The local days of `year` that have no instant in `tz`: their midnight and the next
    one are the same instant. Read once per zone and year (365 conversions), since a
    report asks for every kernel it lists (`days_touched` asks only of _LISTED_YEARS)."""
    day, found = date(year, 1, 1), []
    midnight = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        next_midnight = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
        if next_midnight <= midnight:
            found.append(day)
        day, midnight = nxt, next_midnight
    return tuple(found)
