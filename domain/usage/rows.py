"""The reports flattened: one row per kernel, its group's (and session's) ids and names
beside its own fields, in the report's order. What a CSV export or a spreadsheet wants;
the totals are the sums of these rows (nfs and device types their unions). Pure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_AMOUNTS = (
    "cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "gpu_allocated", "gpu_mem_allocated",
    "io_read", "io_write", "disk_used", "device_type", "nfs",
)  # fmt: skip
_KERNEL = ("kernel_id", "agent", "image", "status", "created_at", "terminated_at", "used_time", "used_days")

MONTH_FIELDS: tuple[str, ...] = ("group_id", "group_name", "domain_name", "session_id", "session_name", "access_key")
MONTH_FIELDS += _KERNEL + _AMOUNTS
PERIOD_FIELDS: tuple[str, ...] = ("project_id", "project_name", "domain_name", "session_id", "session_name")
PERIOD_FIELDS += ("user_id", "access_key", *_KERNEL, *_AMOUNTS)


def _ended(value: str | None) -> str | None:
    return None if value in (None, "None") else value  # the reports keep str(None) for a running kernel


def month_rows(report: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A month report's kernels (`c_infos`), with MONTH_FIELDS each."""
    for group in report:
        for info in group["c_infos"]:
            row = {field: info[field] for field in ("group_id", "group_name", "domain_name", "session_id")}
            row.update(session_name=info["name"], access_key=info["access_key"], kernel_id=info["id"])
            row.update(agent=info["agent"], image=info["image_name"], status=info["status"])
            row.update(created_at=info["created_at"], terminated_at=_ended(info["terminated_at"]))
            row.update({field: info[field] for field in ("used_time", "used_days", *_AMOUNTS)})
            yield row


def period_rows(report: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A period report's kernels, with PERIOD_FIELDS each."""
    for project in report:
        for session in project["sessions"]:
            shared = {
                "project_id": project["project_id"],
                "project_name": project["project_name"],
                "domain_name": project["domain_name"],
                "session_id": session["session_id"],
                "session_name": session["session_name"],
                "user_id": session["user_id"],
                "access_key": session["access_key"],
            }
            for kernel in session["kernels"]:
                usage = kernel["total_usage"]
                row = dict(shared)
                row.update({field: kernel[field] for field in _KERNEL})
                row["terminated_at"] = _ended(kernel["terminated_at"])
                row.update({field: usage[field] for field in _AMOUNTS})
                yield row


def kernel_count(report: list[dict[str, Any]]) -> int:
    """How many kernels a month or period report lists."""
    if report and "c_infos" in report[0]:
        return sum(len(group["c_infos"]) for group in report)
    return sum(len(session["kernels"]) for project in report for session in project["sessions"])
