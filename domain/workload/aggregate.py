"""Workload facts reported by the platform: vfolders, kernels, endpoints.

Each is an `Entity` keyed by its own UUID. Kernel events: Created (started, RUNNING,
with occupied slots and mounts), StatsReported, Terminated. VFolder: Created.
Endpoint: Created, Deleted (destroyed). Starting and ending workload is also recorded
on the group's stream (see `domain.group.aggregate`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateWorkloadId, InvalidAPIParameters, KernelAlreadyTerminated, LedgerError
from domain.personal import declare, personal
from domain.values import ENDED_STATUSES

MAX_KERNEL_SPAN = timedelta(days=3653)  # ten years


def id_field(entity_type: str) -> str:
    """The input that names a workload entity's id (the facts' `kernel_id`, `vfolder_id`,
    `endpoint_id`): what a refusal of a taken id points at."""
    return f"{entity_type}_id"


class _Workload(Entity):
    @classmethod
    def id_for(cls, key: str) -> uuid.UUID:
        return uuid.UUID(key)

    def duplicate(self) -> LedgerError:
        return DuplicateWorkloadId(f"{self.ENTITY_TYPE} {self.key} already exists", field=id_field(self.ENTITY_TYPE))

    @classmethod
    def create_for(cls, key: uuid.UUID, fields: dict[str, Any]) -> Self:
        """`create` from the UUID itself: its stream id, with no text parsed back (a bulk
        import creates thousands)."""
        return cls._create(cls.Created, id=key, key=str(key), fields=fields)


def _counters(stats: Mapping[str, Any]) -> tuple[Decimal, int, int, int, int]:
    """A report's counters in a fixed order (cpu time first: it only grows while a kernel
    runs), to tell which of two reports of one instant is kept."""
    return (
        Decimal(stats.get("cpu_used", 0)),
        stats.get("mem_used", 0),
        stats.get("io_read", 0),
        stats.get("io_write", 0),
        stats.get("disk_used", 0),
    )


class VFolder(_Workload):
    ENTITY_TYPE = EntityType.VFOLDER


class Endpoint(_Workload):
    ENTITY_TYPE = EntityType.ENDPOINT


class Kernel(_Workload):
    ENTITY_TYPE = EntityType.KERNEL

    class StatsReported(Entity.Event):
        stats: dict[str, Any]  # reported_at, cpu_used, mem_used, io_read, io_write, disk_used

        def apply(self, aggregate: Kernel) -> None:
            aggregate.fields["last_stats"] = self.stats

    class Terminated(Entity.Event):
        terminated_at: str
        status: str

        def apply(self, aggregate: Kernel) -> None:
            aggregate.fields["terminated_at"] = self.terminated_at
            aggregate.fields["status"] = self.status

    @property
    def group_id(self) -> uuid.UUID:
        return uuid.UUID(self.fields["group_id"])

    def report_stats(self, stats: dict[str, Any]) -> bool:
        """Records the kernel's latest stats (True if it did). A report older than the last
        one recorded (overtaken by a later one on its way), or the same report again (a
        resumed import repeats some), records nothing: the reports keep what was measured
        last, whatever order they arrive in (at one instant, the larger counters). A report
        from before the start or after the end is refused."""
        at = datetime.fromisoformat(stats["reported_at"])
        if at < datetime.fromisoformat(self.fields["started_at"]):
            raise InvalidAPIParameters(
                f"stats reported before the kernel started (started {self.fields['started_at']})", field="reported_at"
            )
        ended = self.fields.get("terminated_at")
        if ended is not None and at > datetime.fromisoformat(ended):
            raise InvalidAPIParameters(f"stats reported after the kernel ended (ended {ended})", field="reported_at")
        last = self.fields.get("last_stats")
        if last is not None:
            last_at = datetime.fromisoformat(last["reported_at"])
            if last_at > at or (last_at == at and _counters(last) >= _counters(stats)):
                # Overtaken, or a report of the same instant that is no larger: two reports of
                # one instant keep the larger counters whatever order they come in, so an
                # import run again (or in another order) records nothing twice.
                return False
        self.trigger_event(self.StatsReported, stats=stats)
        return True

    def terminate(self, terminated_at: str, status: str) -> None:
        if self.fields["status"] in ENDED_STATUSES:
            raise KernelAlreadyTerminated(f"kernel {self.key} already ended ({self.fields['status']})")
        started = datetime.fromisoformat(self.fields["started_at"])
        span = datetime.fromisoformat(terminated_at) - started
        if span < timedelta(0):
            # A negative span would read as negative usage in every report.
            raise InvalidAPIParameters(
                f"a kernel cannot end before it started (started {self.fields['started_at']})", field="terminated_at"
            )
        last = self.fields.get("last_stats")
        if last is not None and datetime.fromisoformat(terminated_at) < datetime.fromisoformat(last["reported_at"]):
            # Its stats would be from after its end, which `report_stats` refuses: an import
            # run again would then stop at the stats it recorded the first time.
            raise InvalidAPIParameters(
                f"a kernel cannot end before its last stats report (reported {last['reported_at']})",
                field="terminated_at",
            )
        if span > MAX_KERNEL_SPAN:
            # Usage keeps a rollup row per day a kernel ran: a 1900-to-8999 kernel would be
            # millions of rows in one projection batch.
            raise InvalidAPIParameters(
                f"a kernel cannot run longer than {MAX_KERNEL_SPAN.days} days (started {self.fields['started_at']})",
                field="terminated_at",
            )
        self.trigger_event(self.Terminated, terminated_at=terminated_at, status=status)


# Personal values (issue 14, docs/ERASURE.md): a kernel's user id, access key and session
# name, sealed with its group's key (erased when the group is purged). Only a kernel's
# Created (and Recreated) event holds them, with the group id beside them in `fields`.
KERNEL_FIELDS_PERSONAL = ("user_id", "access_key", "session_name")


def kernel_subject(state: Mapping[str, Any]) -> str | None:
    """`group:<uuid>` of the kernel's group, from its fields."""
    fields = state.get("fields")
    group_id = fields.get("group_id") if isinstance(fields, Mapping) else None
    return None if group_id is None else f"group:{group_id}"


_KERNEL_FIELDS = personal(*(f"fields.{f}" for f in KERNEL_FIELDS_PERSONAL), subject=kernel_subject)
declare(Kernel.Created, _KERNEL_FIELDS)
declare(Kernel.Recreated, _KERNEL_FIELDS)
