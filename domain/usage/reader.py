"""The reader port usage reports are answered through, and what it returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class KernelUsage:
    """One kernel as the usage read model keeps it, with its user's `email` and
    `full_name` as the users read model holds them (None for a user the ledger does not
    know, or who has none), and the domain that user is in (`user_domain`), looked up when
    the report is read; and the domain its group is in now (`group_domain`)."""

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
    email: str | None = None
    full_name: str | None = None
    user_domain: str | None = None
    group_domain: str | None = None  # the domain the group is in now (None: unknown to the ledger)
    # Each mount of `nfs`, in its order: (vfolder id, the domain its group is in now, None: unknown).
    mounted: tuple[tuple[str, str | None], ...] = ()


class UsageReader(Protocol):
    def kernels(
        self, start: datetime, end: datetime, group_ids: Iterable[str] | None, domain_name: str | None = None
    ) -> list[KernelUsage]:
        """Kernels that overlap [start, end): REFERENCE.md's selection rule; with
        `domain_name`, only the kernels of that domain's groups."""
