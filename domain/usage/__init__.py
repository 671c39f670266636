"""Usage reports (seed 003): actions, windows, report shaping and the reader port."""

from domain.usage.actions import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
)
from domain.usage.reader import KernelUsage, UsageReader
from domain.usage.report import finite, month_report, period_report
from domain.usage.service import UsageReports
from domain.usage.windows import local_days, month_window, parse_timezone, period_window

__all__ = [
    "KernelUsage",
    "UsagePerMonthAction",
    "UsagePerMonthActionResult",
    "UsagePerPeriodAction",
    "UsagePerPeriodActionResult",
    "UsageReader",
    "UsageReports",
    "finite",
    "local_days",
    "month_report",
    "month_window",
    "parse_timezone",
    "period_report",
    "period_window",
]
