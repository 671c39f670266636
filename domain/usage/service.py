"""Usage reports: the window in the configured zone, the kernels the reader finds in it,
and the report's shape. Reads only; the group service answers the seeds' names with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from zoneinfo import ZoneInfo

from domain.usage.actions import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
)
from domain.usage.reader import KernelUsage, UsageReader
from domain.usage.report import month_report, period_report
from domain.usage.windows import month_window, period_window


class UsageReports:
    def __init__(self, usage: UsageReader, timezone: str = "UTC") -> None:
        self._usage = usage
        self._tz = ZoneInfo(timezone)  # the reports' local time (configuration, default UTC)

    def per_month(self, action: UsagePerMonthAction, domain_name: str | None = None) -> UsagePerMonthActionResult:
        """`domain_name`: only the kernels of that domain's groups (an admin's report)."""
        start, end = month_window(action.month, self._tz)
        group_ids = [str(g) for g in action.group_ids] if action.group_ids else None
        kernels = _in_domain(self._usage.kernels(start, end, group_ids, domain_name), domain_name)
        report = month_report(kernels, self._tz)
        return UsagePerMonthActionResult(report, scope=action.entity_id() or "")

    def per_period(self, action: UsagePerPeriodAction, domain_name: str | None = None) -> UsagePerPeriodActionResult:
        """`domain_name`: only the kernels of that domain's groups (an admin's report)."""
        start, end = period_window(action.start_date, action.end_date, self._tz)
        group_ids = None if action.project_id is None else [str(action.project_id)]
        kernels = _in_domain(self._usage.kernels(start, end, group_ids, domain_name), domain_name)
        report = period_report(kernels, self._tz)
        return UsagePerPeriodActionResult(report, scope=action.entity_id() or "")


def _in_domain(kernels: Iterable[KernelUsage], domain_name: str | None) -> Iterable[KernelUsage]:
    """The kernels of `domain_name`'s groups (the reader narrows to them in SQL; kept here
    too, so that any reader is held to it); a kernel's user of another domain (a fact the
    platform reported names any user) is not named by that user's email and full name:
    an admin reads no other domain's personal values."""
    if domain_name is None:
        return kernels
    return [_named_in(k, domain_name) for k in kernels if k.domain_name == domain_name]


def _named_in(kernel: KernelUsage, domain_name: str) -> KernelUsage:
    """The kernel as `domain_name`'s admin reads it: a user of another domain without their
    email and full name, a group moved since to another domain without the name it has
    there (read as a group the ledger no longer knows is, ""), and another domain's
    vfolder it mounted without its host and name."""
    if kernel.user_domain not in (None, domain_name):
        kernel = replace(kernel, email=None, full_name=None)
    if kernel.group_domain not in (None, domain_name):
        kernel = replace(kernel, group_name="")
    if any(domain not in (None, domain_name) for _, domain in kernel.mounted):
        # Another domain's vfolder reads as its id, as a vfolder the ledger does not know does.
        nfs = [
            vfolder if domain not in (None, domain_name) else name
            for name, (vfolder, domain) in zip(kernel.nfs, kernel.mounted, strict=True)
        ]
        kernel = replace(kernel, nfs=nfs)
    return kernel
