"""The reader port usage reports are answered through, and what it returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

COUNTED_STATUSES = ("RUNNING", "TERMINATED")


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
