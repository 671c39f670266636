"""The engine's own fast conversions give what the slower library ones give."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from projections.projection import split
from projections.registry import build_projections
from projections.sql import _bind_processor, compact_json
from projections.usage import _CACHED, UsageProjection

SQLALCHEMY_DATETIME = sa.DateTime(timezone=True).dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
OFFSETS = st.one_of(st.none(), st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.datetimes(timezones=OFFSETS))
def test_sqlite_datetimes_are_written_as_sqlalchemy_writes_them(value: datetime) -> None:
    fast = _bind_processor(sa.DateTime(timezone=True), sqlite.dialect())
    assert fast is not None and fast is not SQLALCHEMY_DATETIME
    assert SQLALCHEMY_DATETIME is not None
    assert fast(value) == SQLALCHEMY_DATETIME(value)


@given(st.dates())
def test_sqlite_dates_in_a_datetime_column_go_through_sqlalchemy(value: date) -> None:
    fast = _bind_processor(sa.DateTime(timezone=True), sqlite.dialect())
    assert fast is not None and SQLALCHEMY_DATETIME is not None
    assert fast(value) == SQLALCHEMY_DATETIME(value)


def test_other_storage_formats_keep_sqlalchemys_processor() -> None:
    custom = sqlite.DATETIME(storage_format="%(year)04d/%(month)02d/%(day)02d")
    process = _bind_processor(custom, sqlite.dialect())
    assert process is not None and process(datetime(2024, 5, 6, 7, 8, tzinfo=UTC)) == "2024/05/06"


@given(JSON)
def test_compact_json_is_jsons_compact_text(value: Any) -> None:
    assert compact_json(value) == json.dumps(value, separators=(",", ":"))


def test_compact_json_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"when": datetime(2024, 1, 1)})


def test_split_shares_projections_out_by_cost() -> None:
    projections = build_projections(sa.MetaData()).all()
    two = split(projections, 2)
    shares = [{p.name for p in share} for share in two]
    assert len(shares) == 2 and not any({"history", "usage"} <= share for share in shares)
    assert sorted(p.name for share in two for p in share) == sorted(p.name for p in projections)
    assert split(projections, 1) == [sorted(projections, key=lambda p: -p.cost)]
    assert len(split(projections, 99)) == len(projections)
    assert split([], 4) == []


def test_the_usage_projections_conversion_caches_stay_bounded() -> None:
    """A long-running follower meets kernels anywhere in 1900-9000 (2.6M local days) and
    any slot amount: its caches of day bounds and amounts are emptied when full, and a
    value converted again is the same."""
    usage = UsageProjection(sa.MetaData(), "Asia/Kathmandu")
    first = datetime(1950, 1, 1, tzinfo=UTC)
    days = usage.seconds_per_day(first, first + timedelta(days=3000))
    later = datetime(2100, 3, 1, tzinfo=UTC)
    for _ in range(5):  # 15,000 more distinct days
        usage.seconds_per_day(later, later + timedelta(days=3000))
        later += timedelta(days=3000)
    assert len(usage._day_bounds) <= _CACHED
    assert usage.seconds_per_day(first, first + timedelta(days=3000)) == days
    for n in range(3 * _CACHED):
        assert usage._amount(f"{n}.5") == n + 0.5
    assert len(usage._amounts) <= _CACHED
