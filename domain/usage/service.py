"""Usage reports: the window in the configured zone, the kernels the reader finds in it,
and the report's shape. Reads only; the group service answers the seeds' names with it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from domain.usage.actions import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
)
from domain.usage.reader import UsageReader
from domain.usage.report import month_report, period_report
from domain.usage.windows import month_window, period_window


class UsageReports:
    def __init__(self, usage: UsageReader, timezone: str = "UTC") -> None:
        self._usage = usage
        self._tz = ZoneInfo(timezone)  # the reports' local time (configuration, default UTC)

    def per_month(self, action: UsagePerMonthAction) -> UsagePerMonthActionResult:
        start, end = month_window(action.month, self._tz)
        group_ids = [str(g) for g in action.group_ids] if action.group_ids else None
        report = month_report(self._usage.kernels(start, end, group_ids), self._tz)
        return UsagePerMonthActionResult(report, scope=action.entity_id() or "")

    def per_period(self, action: UsagePerPeriodAction) -> UsagePerPeriodActionResult:
        start, end = period_window(action.start_date, action.end_date, self._tz)
        group_ids = None if action.project_id is None else [str(action.project_id)]
        report = period_report(self._usage.kernels(start, end, group_ids), self._tz)
        return UsagePerPeriodActionResult(report, scope=action.entity_id() or "")
