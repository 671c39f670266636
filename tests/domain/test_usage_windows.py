"""domain.usage.windows: the local days a kernel touches, in zones that skipped one."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from domain.usage.windows import days_touched


def test_days_touched_over_the_whole_accepted_range_count_each_skipped_day_once() -> None:
    """A fact may span 1900 to 8999: Apia's 2011-12-30 and Kiritimati's 1994-12-31 (the
    years of their zones' listed transitions) are left out, and no year past those is."""
    start, end = datetime(1900, 1, 1, tzinfo=UTC), datetime(8999, 12, 31, 12, tzinfo=UTC)

    def dates(zone: ZoneInfo) -> int:
        return (end.astimezone(zone).date() - start.astimezone(zone).date()).days + 1

    for name in ("Pacific/Apia", "Pacific/Kiritimati"):
        zone = ZoneInfo(name)
        assert days_touched(start, end, zone) == dates(zone) - 1, name
    paris = ZoneInfo("Europe/Paris")
    assert days_touched(start, end, paris) == dates(paris)
