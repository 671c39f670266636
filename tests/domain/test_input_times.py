"""The input domain of times and usage report dates: every accepted time converts to UTC
and to every zone; out-of-range ones are InvalidAPIParameters naming the field
(see test_input_domain)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidAPIParameters
from domain.times import parse_time
from domain.usage import UsagePerMonthAction, UsagePerPeriodAction, month_window, parse_timezone, period_window
from domain.workload.actions import TerminateKernelAction
from tests.domain.inputs import ZONES, kernel, refused

# Times


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
        "1900-01-01T00:00:00+00:01",  # 1899 in UTC
        "2024-01-01T00:00:00+23:59",  # an offset no zone has
        "2024-01-01T00:00:00+05:30:15.5",  # a fraction of a second in the offset
        "\uff12\uff10\uff12\uff14-01-01",
        "x" * 5000,
        "",
        "yesterday",
        0,
        1.5,
        True,
        ["2024-01-01"],
        date(2024, 1, 1),
        None,
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_times_that_some_zone_or_utc_cannot_hold_are_refused(raw: object) -> None:
    refused(parse_time, raw, "at", field="at")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),  # naive is UTC
        ("2024-01-01T09:00:00+09:00", datetime(2024, 1, 1, tzinfo=UTC)),
        # RFC 3339 (5.6) lets "T" and "Z" be lower case: "t" was read, "z" refused.
        ("2024-01-01T00:00:00z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01t00:00:00.5z", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("8999-12-31T23:59:59.999999Z", datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)),
        (datetime(1900, 1, 1, 9, tzinfo=ZoneInfo("Asia/Seoul")), datetime(1900, 1, 1, 0, 32, 8, tzinfo=UTC)),
    ],
)
def test_times_in_range_keep_their_semantics(raw: object, expected: datetime) -> None:
    parsed = parse_time(raw, "at")
    assert parsed == expected and parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("2026-02-29T00:00:00", "day is out of range for month"),  # no leap day in 2026
        ("2026-04-31", "day is out of range for month"),
        ("2026-13-01T00:00:00Z", "month must be in 1..12"),
        ("2026-12-31T24:00:00", "hour must be in 0..23"),
        ("2026-12-31T23:60:00", "minute must be in 0..59"),
    ],
)
def test_a_well_formed_time_that_names_no_instant_says_which_part_is_out_of_range(raw: str, why: str) -> None:
    """`ledger session due --now 2026-02-29T00:00:00` said only "is not an ISO 8601 time",
    which it is in form: a user checking a calendar edge was not told the day does not exist."""
    error = refused(parse_time, raw, "now", field="now")
    assert error.message == f"now: {raw!r} is not a valid date and time: {why}"


def test_text_that_is_not_iso_8601_is_still_called_so() -> None:
    assert refused(parse_time, "tomorrow", "now", field="now").message == "now: 'tomorrow' is not an ISO 8601 time"


def test_a_time_keeps_the_offset_it_was_given() -> None:
    assert parse_time("2024-01-01T09:00:00+09:00", "at").isoformat() == "2024-01-01T09:00:00+09:00"


@pytest.mark.parametrize("field", ["started_at"])
def test_kernel_times_are_checked(field: str) -> None:
    refused(kernel, field=field, started_at="0001-01-01T00:00:00+01:00")
    refused(TerminateKernelAction, field="terminated_at", kernel_id=uuid.uuid4(), terminated_at=10**5000)


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none() | st.timezones())
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
)
def test_property_any_accepted_time_converts_to_utc_and_every_zone(raw: datetime | str) -> None:
    try:
        parsed = parse_time(raw, "at")
    except InvalidAPIParameters as exc:
        assert exc.field == "at"
        return
    utc = parsed.astimezone(UTC)
    for zone in ZONES:
        local = parsed.astimezone(zone)
        assert local.date() + timedelta(days=1) > local.date()  # day windows around it exist too
        assert local - timedelta(days=1) < local
    # The stored form reads back as the same instant (compared in UTC: Python does not
    # call a time in a DST gap equal to anything in another zone).
    assert parse_time(parsed.isoformat(), "at").astimezone(UTC) == utc
    assert parse_time(utc.isoformat(), "at") == utc


# Usage report dates


@pytest.mark.parametrize(
    "month",
    ["999912", "000101", "189812", "900101", "٢٠٢٤١٠", "\uff12\uff10\uff12\uff14\uff11\uff10", "202413", "2024-1"],
)
@pytest.mark.parametrize("zone", ["Asia/Seoul", "UTC", "Etc/GMT+12"])
def test_report_months_outside_1899_9000_are_refused_naming_month(month: str, zone: str) -> None:
    error = refused(month_window, month, ZoneInfo(zone), field="month")
    assert error.reason.startswith("Invalid date values")
    assert "YYYYMM between 189901 and 900012" in error.reason


@pytest.mark.parametrize("month", ["202413", "\ud800", "x" * 100_000, "٢٠٢٤١٠", " 202410", 202410, None, "900101"])
def test_a_report_month_is_refused_when_the_action_is_made(month: object) -> None:
    """A month was read only by the service: a lone surrogate then failed the refused
    attempt's audit record (its input could not be stored), and a 100 kB one was stored."""
    error = refused(UsagePerMonthAction, field="month", month=month)
    assert error.reason.startswith("Invalid date values")
    assert UsagePerMonthAction(month="189912").month == "189912"


@pytest.mark.parametrize(
    ("start", "end", "field"), [("20240230", "20240301", "start_date"), ("20240101", "\ud800", "end_date")]
)
def test_report_dates_are_refused_when_the_action_is_made(start: str, end: str, field: str) -> None:
    refused(UsagePerPeriodAction, field=field, start_date=start, end_date=end)
    # The order and the 100-day limit are the window's (Backend.AI's messages, after the zone).
    assert UsagePerPeriodAction(start_date="20241031", end_date="20241001").end_date == "20241001"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("99991231", "99991231", "start_date"),
        ("00010101", "00010102", "start_date"),
        ("20240101", "99991231", "end_date"),
        ("90001231", "90010101", "end_date"),
        ("18981231", "18990101", "start_date"),
        ("٢٠٢٤١٠٠١", "20241002", "start_date"),
        ("20241001", "2024101", "end_date"),  # strptime would read 2024-10-1
        ("20240230", "20240301", "start_date"),
    ],
)
def test_report_periods_outside_1899_9000_are_refused_naming_the_date(start: str, end: str, field: str) -> None:
    for zone in ("Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12"):
        error = refused(period_window, start, end, ZoneInfo(zone), field=field)
        assert error.reason.startswith("Invalid date values")
        assert "YYYYMMDD between 18990101 and 90001231" in error.reason


def test_report_window_edges_are_accepted_and_relational_messages_kept() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    # One year beyond accepted times on each side: 1900-01-01T00:00Z is December 1899
    # in New York, 8999-12-31T23:00Z is 9000 in Seoul; both months must be reportable.
    assert month_window("189912", ZoneInfo("America/New_York"))[0] == datetime(
        1899, 12, 1, tzinfo=ZoneInfo("America/New_York")
    )
    assert month_window("900012", seoul)[1] == datetime(9001, 1, 1, tzinfo=seoul)
    assert period_window("90001231", "90001231", seoul)[1] == datetime(9001, 1, 1, tzinfo=seoul)
    assert period_window("18990101", "18990101", ZoneInfo("Pacific/Kiritimati"))[0].year == 1899
    assert refused(period_window, "20240101", "20240410", seoul).message == "Cannot query more than 100 days"
    assert refused(period_window, "20241002", "20241001", seoul).message == "end_date must be later than start_date."


@settings(max_examples=200)
@given(st.from_regex(r"\A[0-9]{6}\Z"), st.sampled_from(ZONES))
def test_property_any_accepted_month_window_converts_to_utc(month: str, zone: ZoneInfo) -> None:
    try:
        start, end = month_window(month, zone)
    except InvalidAPIParameters as exc:
        assert exc.field == "month"
        return
    assert start.astimezone(UTC) < end.astimezone(UTC)
    for other in ZONES:
        assert start.astimezone(other) < end.astimezone(other)


# The report's time zone

NOT_ZONES = ["localtime", "posixrules", "Factory"]


@pytest.mark.parametrize(
    "raw", [*NOT_ZONES, "", "posix/Asia/Seoul", "right/UTC", "utc", " UTC", "Asia", "zone.tab", "/etc/localtime", None]
)
def test_a_time_zone_no_user_means_is_refused_naming_timezone(raw: object) -> None:
    """`localtime` (the host's /etc/localtime) was accepted and built a read model whose
    meaning depended on the machine; an empty zone fell back to the default."""
    error = refused(parse_timezone, raw, field="timezone")
    assert error.reason.startswith("unknown time zone")


def test_every_zone_available_timezones_lists_is_accepted_as_given() -> None:
    for zone in sorted(available_timezones() - set(NOT_ZONES)):
        assert parse_timezone(zone) == zone
