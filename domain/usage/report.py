"""Report shaping: the per-kernel fields and the two report trees of REFERENCE.md
("Usage statistics"), from the kernels a `UsageReader` returns. Pure.

Both reports list in one stable order, whatever order the reader returns kernels in
(`report_order`): groups by group id; in a group, sessions by their start (their first
kernel's start in the report), then session id; in a session, kernels by start, then
kernel id.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from domain.usage.reader import KernelUsage
from domain.usage.windows import days_touched

USAGE_FIELDS = (
    "nfs", "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "shared_memory", "disk_allocated",
    "disk_used", "io_read", "io_write", "device_type", "smp", "gpu_mem_allocated", "gpu_allocated",
)  # fmt: skip


def finite(number: float) -> float:
    """`number`, or 0 when it is not finite: an older release let a kernel occupy `inf`
    (now refused), which holds no finite amount to report or add up."""
    return number if math.isfinite(number) else 0.0


def _float(value: Any) -> float:
    # float() of decimal text rounds exactly as float(Decimal(text)) does.
    return finite(0.0 if value is None else float(value))


def _int(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is int:
        return value
    try:
        return int(value)
    except ValueError:  # "1.5e3", "1024.0": through Decimal, truncated as before
        number = Decimal(str(value))
        return int(number) if number.is_finite() else 0  # `Infinity`, as in `_float`


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
        used_days = days_touched(kernel.started_at, kernel.terminated_at, tz)
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
        "email": kernel.email,
        "full_name": kernel.full_name,
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


def report_order(kernels: Iterable[KernelUsage]) -> list[KernelUsage]:
    """The kernels in the reports' order: group id, session start (the earliest start
    of the session's kernels among these), session id, kernel start, kernel id."""
    kernels = list(kernels)
    session_start: dict[tuple[str, str], datetime] = {}
    for k in kernels:
        key = (k.group_id, k.session_id)
        first = session_start.get(key)
        if first is None or k.started_at < first:
            session_start[key] = k.started_at
    return sorted(
        kernels,
        key=lambda k: (k.group_id, session_start[k.group_id, k.session_id], k.session_id, k.started_at, k.kernel_id),
    )


def month_report(kernels: Iterable[KernelUsage], tz: ZoneInfo) -> list[dict[str, Any]]:
    """One entry per group with the g_* totals and its kernels in `c_infos` (`report_order`)."""
    groups: dict[str, dict[str, Any]] = {}
    devices: dict[str, set[str]] = {}  # per group, sorted into g_device_type at the end
    for kernel in report_order(kernels):
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
    """A tree project -> sessions -> kernels (`report_order`); every node has a
    `total_usage` summed up."""
    projects: dict[str, dict[str, Any]] = {}
    for kernel in report_order(kernels):
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
