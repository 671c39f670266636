"""Usage reports of seed 003: inputs, windows, kernel selection and output shapes.

The numbers come from a read model through the `UsageReader` port; everything here is
pure: validation (with Backend.AI's messages), the report window in the configured time
zone, and the shapes of REFERENCE.md ("Usage statistics").
"""

from __future__ import annotations

import functools
import re
import uuid
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo

from domain.actions import BaseActionResult, BaseScopeAction
from domain.errors import InvalidAPIParameters
from domain.validation import TIME_MAX, TIME_MIN, field_of, nullable, parse_uuid

MAX_PERIOD_DAYS = 100
COUNTED_STATUSES = ("RUNNING", "TERMINATED")
USAGE_FIELDS = (
    "nfs", "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory", "disk_allocated",
    "disk_used", "io_read", "io_write", "device_type", "smp", "gpu_mem_allocated", "gpu_allocated",
)  # fmt: skip


def _parse_uuids(raw: Any, field: str) -> list[uuid.UUID] | None:
    if raw is None:
        return None
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple | set):
        raise InvalidAPIParameters("expected a list of group ids", field=field)
    return [parse_uuid(item, field) for item in raw]


class _UsageAction(BaseScopeAction):
    """A report over the groups it names, or over every group of the ledger."""

    @classmethod
    def entity_type(cls) -> str:
        return "group"

    def scope_type(self) -> str:
        return "project" if self.groups() else "ledger"

    def scope_id(self) -> str:
        return ",".join(str(g) for g in self.groups()) or "all"

    @abstractmethod
    def groups(self) -> list[uuid.UUID]:
        """The groups reported on; none means every group."""


class UsagePerMonthAction(_UsageAction):
    month: str
    group_ids: Annotated[list[uuid.UUID] | None, field_of(_parse_uuids)] = None

    @classmethod
    def operation_type(cls) -> str:
        return "usage_per_month"

    def groups(self) -> list[uuid.UUID]:
        return self.group_ids or []


class UsagePerPeriodAction(_UsageAction):
    start_date: str
    end_date: str
    project_id: Annotated[uuid.UUID | None, field_of(nullable(parse_uuid))] = None

    @classmethod
    def operation_type(cls) -> str:
        return "usage_per_period"

    def groups(self) -> list[uuid.UUID]:
        return [] if self.project_id is None else [self.project_id]


@dataclass(frozen=True)
class UsagePerMonthActionResult(BaseActionResult):
    result: list[dict[str, Any]]
    scope: str = ""  # the action's scope: which groups were reported on

    def entity_id(self) -> str | None:
        return self.scope


@dataclass(frozen=True)
class UsagePerPeriodActionResult(BaseActionResult):
    result: list[dict[str, Any]]
    scope: str = ""

    def entity_id(self) -> str | None:
        return self.scope


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


def month_window(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From the first of the month to the first of the next, local time. `month` is
    YYYYMM in ASCII digits, 190001 to 899912; otherwise InvalidAPIParameters naming
    `month`, its message starting with "Invalid date values"."""
    expected = f"YYYYMM between {MIN_REPORT_YEAR}01 and {MAX_REPORT_YEAR}12"
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise InvalidAPIParameters(f"{INVALID_DATE}: month must be {expected}", field="month")
    year, number = int(month[:4]), int(month[4:])
    if not (MIN_REPORT_YEAR <= year <= MAX_REPORT_YEAR and 1 <= number <= 12):
        raise InvalidAPIParameters(f"{INVALID_DATE}: month must be {expected}", field="month")
    start = datetime(year, number, 1, tzinfo=tz)
    nxt = start.replace(year=year + 1, month=1) if number == 12 else start.replace(month=number + 1)
    return _window_edge(start, "month", expected), _window_edge(nxt, "month", expected)


def _parse_day(raw: object, field: str, tz: ZoneInfo) -> datetime:
    expected = f"YYYYMMDD between {MIN_REPORT_YEAR}0101 and {MAX_REPORT_YEAR}1231"
    if not isinstance(raw, str) or not _DAY.fullmatch(raw):
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {expected}", field=field)
    year = int(raw[:4])
    try:
        if not MIN_REPORT_YEAR <= year <= MAX_REPORT_YEAR:
            raise ValueError(year)
        day = datetime(year, int(raw[4:6]), int(raw[6:]), tzinfo=tz)
    except ValueError:  # out of range, or a day the month does not have (20240230)
        raise InvalidAPIParameters(f"{INVALID_DATE}: {field} must be {expected}", field=field) from None
    return _window_edge(day, field, expected)


def period_window(start_date: str, end_date: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From the start date to the day after the end date (inclusive), local time. Dates
    are YYYYMMDD in ASCII digits, 19000101 to 89991231; a bad one is InvalidAPIParameters
    naming `start_date` or `end_date` ("Invalid date values: ...")."""
    start = _parse_day(start_date, "start_date", tz)
    end = _parse_day(end_date, "end_date", tz) + timedelta(days=1)
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise InvalidAPIParameters(f"Cannot query more than {MAX_PERIOD_DAYS} days")
    if end <= start:  # as in Backend.AI: checked after the end date was made inclusive
        raise InvalidAPIParameters("end_date must be later than start_date.")
    return start, end


@dataclass(frozen=True)
class KernelUsage:
    """One kernel as the usage read model keeps it."""

    kernel_id: str
    session_id: str
    session_name: str
    group_id: str
    group_name: str
    domain_name: str
    user_id: str
    access_key: str
    agent: str
    image: str
    occupied_slots: dict[str, str]
    nfs: list[str]
    started_at: datetime
    terminated_at: datetime | None
    status: str
    last_stats: dict[str, Any] | None


class UsageReader(Protocol):
    def kernels(self, start: datetime, end: datetime, group_ids: Iterable[str] | None) -> list[KernelUsage]:
        """Kernels that overlap [start, end): REFERENCE.md's selection rule."""


def overlaps(kernel: KernelUsage, start: datetime, end: datetime) -> bool:
    """REFERENCE.md: (terminated_at >= start and created_at < end and status in
    TERMINATED/RUNNING) or (created_at < end and RUNNING)."""
    if kernel.started_at >= end or kernel.status not in COUNTED_STATUSES:
        return False
    return kernel.status == "RUNNING" or (kernel.terminated_at is not None and kernel.terminated_at >= start)


def _float(value: Any) -> float:
    # float() of decimal text rounds exactly as float(Decimal(text)) does.
    return 0.0 if value is None else float(value)


def _int(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is int:
        return value
    try:
        return int(value)
    except ValueError:  # "1.5e3", "1024.0": through Decimal, truncated as before
        return int(Decimal(str(value)))


@functools.lru_cache(maxsize=1024)
def _device_types(slot_names: tuple[str, ...]) -> list[str]:
    return sorted({name.split(".")[0] for name in slot_names if name.startswith(("cuda.", "rocm.", "tpu."))})


def kernel_usage(kernel: KernelUsage, tz: ZoneInfo) -> dict[str, Any]:
    """The per-kernel fields of REFERENCE.md, from the kernel's slots and last stats."""
    slots, stats = kernel.occupied_slots, kernel.last_stats or {}
    gpu = slots.get("cuda.shares", slots.get("cuda.device", "0"))
    used_time = used_days = None
    if kernel.terminated_at is not None:
        used_time = str(kernel.terminated_at - kernel.started_at)
        local_end, local_start = kernel.terminated_at.astimezone(tz), kernel.started_at.astimezone(tz)
        used_days = local_end.toordinal() - local_start.toordinal() + 1
    return {
        "cpu_allocated": _float(slots.get("cpu")),
        "cpu_used": _float(stats.get("cpu_used")),
        "mem_allocated": _int(slots.get("mem")),
        "mem_used": _int(stats.get("mem_used")),
        "shared_memory": 0,
        "disk_allocated": 0,
        "disk_used": _int(stats.get("disk_used")),
        "io_read": _int(stats.get("io_read")),
        "io_write": _int(stats.get("io_write")),
        "used_time": used_time,
        "used_days": used_days,
        "device_type": list(_device_types(tuple(slots))),
        "smp": 0.0,
        "gpu_mem_allocated": _float(slots.get("cuda.mem")),
        "gpu_allocated": _float(gpu),
        "nfs": sorted(set(kernel.nfs)) or None,  # a vfolder mounted twice is listed once
    }


def container_info(kernel: KernelUsage, tz: ZoneInfo) -> dict[str, Any]:
    """One `c_infos` entry of the per-month report."""
    usage = kernel_usage(kernel, tz)
    return {
        "id": kernel.kernel_id,
        "session_id": kernel.session_id,
        "container_id": kernel.kernel_id,
        "domain_name": kernel.domain_name,
        "group_id": kernel.group_id,
        "group_name": kernel.group_name,
        "name": kernel.session_name,
        "access_key": kernel.access_key,
        "email": None,
        "full_name": None,
        "agent": kernel.agent,
        **usage,
        "image_id": kernel.image,
        "image_name": kernel.image,
        "created_at": str(kernel.started_at),
        "terminated_at": str(kernel.terminated_at),
        "status": kernel.status,
        "status_info": None,
        "status_changed": str(kernel.terminated_at or kernel.started_at),
        "cluster_mode": "single-node",
    }


_SUMMED = (
    "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory", "disk_allocated", "disk_used",
    "io_read", "io_write", "smp", "gpu_mem_allocated", "gpu_allocated",
)  # fmt: skip


_G_SUMMED = [(name, f"g_{name}") for name in _SUMMED]


def month_report(kernels: Iterable[KernelUsage], tz: ZoneInfo) -> list[dict[str, Any]]:
    """One entry per group with the g_* totals and its kernels in `c_infos`."""
    groups: dict[str, dict[str, Any]] = {}
    devices: dict[str, set[str]] = {}  # per group, sorted into g_device_type at the end
    for kernel in sorted(kernels, key=lambda k: (k.group_id, k.started_at, k.kernel_id)):
        info = container_info(kernel, tz)
        entry = groups.get(kernel.group_id)
        if entry is None:
            entry = groups[kernel.group_id] = {
                "domain_name": kernel.domain_name,
                "g_id": kernel.group_id,
                "g_name": kernel.group_name,
                **{total: 0 for _name, total in _G_SUMMED},
                "g_device_type": [],
                "c_infos": [],
            }
            devices[kernel.group_id] = set()
        for name, total in _G_SUMMED:
            entry[total] += info[name]
        devices[kernel.group_id].update(info["device_type"])
        entry["c_infos"].append(info)
    for group_id, entry in groups.items():
        entry["g_device_type"] = sorted(devices[group_id])
    return list(groups.values())


def _total(usages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {name: 0 for name in _SUMMED}
    nfs: set[str] = set()
    devices: set[str] = set()
    for usage in usages:
        for name in _SUMMED:
            total[name] += usage[name]
        nfs |= set(usage["nfs"] or [])
        devices |= set(usage["device_type"])
    return {**total, "nfs": sorted(nfs) or None, "device_type": sorted(devices)}


def period_report(kernels: Iterable[KernelUsage], tz: ZoneInfo) -> list[dict[str, Any]]:
    """A tree project -> sessions -> kernels; every node has a `total_usage` summed up."""
    projects: dict[str, dict[str, Any]] = {}
    for kernel in sorted(kernels, key=lambda k: (k.group_id, k.session_id, k.started_at, k.kernel_id)):
        usage = kernel_usage(kernel, tz)
        project = projects.setdefault(
            kernel.group_id,
            {
                "group_unit": "project",
                "project_id": kernel.group_id,
                "project_name": kernel.group_name,
                "domain_name": kernel.domain_name,
                "sessions": {},
            },
        )
        session = project["sessions"].setdefault(
            kernel.session_id,
            {
                "group_unit": "session",
                "session_id": kernel.session_id,
                "session_name": kernel.session_name,
                "project_id": kernel.group_id,
                "domain_name": kernel.domain_name,
                "user_id": kernel.user_id,
                "access_key": kernel.access_key,
                "kernels": [],
            },
        )
        session["kernels"].append(
            {
                "group_unit": "kernel",
                "kernel_id": kernel.kernel_id,
                "session_id": kernel.session_id,
                "agent": kernel.agent,
                "image": kernel.image,
                "status": kernel.status,
                "created_at": str(kernel.started_at),
                "terminated_at": str(kernel.terminated_at),
                "used_time": usage["used_time"],
                "used_days": usage["used_days"],
                "total_usage": {name: usage[name] for name in USAGE_FIELDS},
            }
        )
    result = []
    for project in projects.values():
        sessions = list(project["sessions"].values())
        for session in sessions:
            session["total_usage"] = _total(k["total_usage"] for k in session["kernels"])
        project["sessions"] = sessions
        project["total_usage"] = _total(s["total_usage"] for s in sessions)
        result.append(project)
    return result


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    """The local calendar days [start, end) touches."""
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
