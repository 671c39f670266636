"""Workload fact actions: what usage reports and purge checks need (DESIGN.md contract)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import Field

from domain.actions import BaseAction, BaseActionResult, BaseBatchAction
from domain.actions.base import batch_label
from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters
from domain.keypair.actions import AccessKey
from domain.shown import kind_of
from domain.validation import EntityName, NonNegativeInt, OccupiedSlots, UUIDField, field_of
from domain.workload.types import Amount, EndStatus, Time, UUIDList, stats_json


class WorkloadAction(BaseAction):
    ENTITY: ClassVar[EntityType]
    ID_FIELD: ClassVar[str]

    @classmethod
    def entity_type(cls) -> str:
        return cls.ENTITY

    def entity_id(self) -> str | None:
        return str(getattr(self, self.ID_FIELD))

    def entity_uuid(self) -> uuid.UUID:
        """The id of the entity the fact is on (a workload entity's stream id)."""
        found: uuid.UUID = getattr(self, self.ID_FIELD)
        return found


class CreateVFolderAction(WorkloadAction):
    """`owner_access_key`: the keypair creating it, under the storage limits of
    `domain.workload.storage` (the host must grant `create-vfolder`; the owner's
    `max_vfolder_count`). Without it the vfolder is a reported fact (imported history),
    recorded unchecked and counted nowhere, as before those limits."""

    ENTITY: ClassVar[EntityType] = EntityType.VFOLDER
    ID_FIELD: ClassVar[str] = "vfolder_id"
    vfolder_id: UUIDField
    name: EntityName
    host: EntityName
    group_id: UUIDField
    owner_access_key: AccessKey | None = None

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class StartKernelAction(WorkloadAction):
    ENTITY: ClassVar[EntityType] = EntityType.KERNEL
    ID_FIELD: ClassVar[str] = "kernel_id"
    kernel_id: UUIDField
    session_id: UUIDField
    session_name: EntityName
    group_id: UUIDField
    domain_name: EntityName
    user_id: UUIDField
    access_key: EntityName
    occupied_slots: OccupiedSlots  # what the kernel holds: finite, never "inf"
    started_at: Time
    # A factory, not `[]`: pydantic deep-copies a mutable default on every instance.
    mounts: UUIDList = Field(default_factory=list)
    image: EntityName = "unknown"
    agent: EntityName = "unknown"

    @classmethod
    def operation_type(cls) -> str:
        return "start"

    def kernel_fields(self) -> dict[str, Any]:
        """The started kernel's fields, as its Created event stores them."""
        return {
            "session_id": str(self.session_id),
            "session_name": self.session_name,
            "group_id": str(self.group_id),
            "domain_name": self.domain_name,
            "user_id": str(self.user_id),
            "access_key": self.access_key,
            "occupied_slots": self.occupied_slots.to_json(),
            "started_at": self.started_at.isoformat(),
            "mounts": [str(m) for m in self.mounts],
            "image": self.image,
            "agent": self.agent,
            "status": "RUNNING",
            "terminated_at": None,
            "last_stats": None,
        }


class ReportKernelStatsAction(WorkloadAction):
    ENTITY: ClassVar[EntityType] = EntityType.KERNEL
    ID_FIELD: ClassVar[str] = "kernel_id"
    kernel_id: UUIDField
    reported_at: Time
    cpu_used: Amount = Decimal(0)
    mem_used: NonNegativeInt = 0
    io_read: NonNegativeInt = 0
    io_write: NonNegativeInt = 0
    disk_used: NonNegativeInt = 0

    @classmethod
    def operation_type(cls) -> str:
        return "report_stats"

    def stats(self) -> dict[str, Any]:
        return stats_json(self.reported_at, self.cpu_used, self.mem_used, self.io_read, self.io_write, self.disk_used)


class TerminateKernelAction(WorkloadAction):
    ENTITY: ClassVar[EntityType] = EntityType.KERNEL
    ID_FIELD: ClassVar[str] = "kernel_id"
    kernel_id: UUIDField
    terminated_at: Time
    status: EndStatus = "TERMINATED"

    @classmethod
    def operation_type(cls) -> str:
        return "terminate"


class CreateEndpointAction(WorkloadAction):
    ENTITY: ClassVar[EntityType] = EntityType.ENDPOINT
    ID_FIELD: ClassVar[str] = "endpoint_id"
    endpoint_id: UUIDField
    group_id: UUIDField
    name: EntityName

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class DestroyEndpointAction(WorkloadAction):
    ENTITY: ClassVar[EntityType] = EntityType.ENDPOINT
    ID_FIELD: ClassVar[str] = "endpoint_id"
    endpoint_id: UUIDField

    @classmethod
    def operation_type(cls) -> str:
        return "destroy"


@dataclass(frozen=True)
class WorkloadActionResult(BaseActionResult):
    """Which workload entity the fact was recorded on, and its fields after it."""

    entity: str
    id: uuid.UUID
    fields: dict[str, Any]

    def entity_id(self) -> str | None:
        return str(self.id)


def parse_facts(raw: Any, field: str) -> list[WorkloadAction]:
    """A batch's facts: built actions only. Anything else is refused naming its position
    (pydantic would try to build the abstract WorkloadAction from a mapping and fail with
    a TypeError)."""
    if not isinstance(raw, list | tuple):
        raise InvalidAPIParameters(f"must be a list of workload facts, not {kind_of(raw)}", field=field)
    for position, item in enumerate(raw):
        if not isinstance(item, WorkloadAction):
            kinds = ", ".join(kind.__name__ for kind in WorkloadAction.__subclasses__())
            raise InvalidAPIParameters(f"{kind_of(item)} is not a workload fact ({kinds})", field=f"{field}.{position}")
    return list(raw)


class RecordWorkloadBatchAction(BaseBatchAction):
    """Many facts recorded in one atomic append (bulk import): all land or none. With
    `skip_recorded`, a fact already recorded exactly as given is skipped instead of refused
    (an import run again, whole or from an earlier line, records nothing twice); a fact that
    differs from what is recorded under its id is refused as ever."""

    actions: Annotated[list[WorkloadAction], field_of(parse_facts)]
    skip_recorded: bool = False

    @classmethod
    def entity_type(cls) -> str:
        return EntityType.WORKLOAD

    @classmethod
    def operation_type(cls) -> str:
        return "record_batch"

    def entity_ids(self) -> Sequence[str]:
        return [f"{a.entity_type()}:{a.entity_id()}" for a in self.actions]


@dataclass(frozen=True)
class RecordWorkloadBatchActionResult(BaseActionResult):
    """`recorded`: the facts that stored something; `unchanged`: those that stored nothing
    (recorded already exactly as given, skipped by `skip_recorded`, or a stats report
    the kernel's later one overtook)."""

    recorded: int
    entity_ids: Sequence[str]
    unchanged: int = 0

    def entity_id(self) -> str | None:
        return batch_label(self.entity_ids)
