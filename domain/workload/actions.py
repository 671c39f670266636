"""Workload fact actions: what usage reports and purge checks need (DESIGN.md contract)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from domain.actions import BaseAction, BaseActionResult, BaseBatchAction
from domain.actions.base import batch_label
from domain.errors import InvalidAPIParameters
from domain.validation import (
    EntityName,
    NonNegativeInt,
    OccupiedSlots,
    UUIDField,
    field_of,
    parse_time,
    parse_uuid,
)
from domain.values import shown

MAX_AMOUNT_DIGITS = 15  # integer digits, as slot counts: float() and NUMERIC hold it
_AMOUNT_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\s*", re.ASCII)


def parse_amount(raw: Any, field: str) -> Decimal:
    """A measured amount (cpu time used): finite, >= 0, at most 15 integer digits, in
    ASCII text or a number; read back by reports through float()."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise InvalidAPIParameters(f"expected a number, got {type(raw).__name__}", field=field)
    if isinstance(raw, int) and not 0 <= raw < 10**MAX_AMOUNT_DIGITS:  # before str() of a huge int
        raise InvalidAPIParameters(f"must be >= 0 with at most {MAX_AMOUNT_DIGITS} integer digits", field=field)
    if isinstance(raw, str) and (len(raw) > 64 or not _AMOUNT_TEXT.fullmatch(raw)):
        raise InvalidAPIParameters(f"{shown(raw)} is not a number", field=field)
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(repr(raw) if isinstance(raw, float) else str(raw).strip())
    except ArithmeticError:
        raise InvalidAPIParameters(f"{shown(raw)} is not a number", field=field) from None
    if value.is_nan() or value.is_infinite() or (value.is_signed() and not value.is_zero()):
        raise InvalidAPIParameters(f"must be a finite number >= 0, got {shown(raw)}", field=field)
    if not value.is_zero() and value.adjusted() >= MAX_AMOUNT_DIGITS:
        raise InvalidAPIParameters(f"must be >= 0 with at most {MAX_AMOUNT_DIGITS} integer digits", field=field)
    if len(value.as_tuple().digits) > 40:  # a Decimal object may carry any precision
        raise InvalidAPIParameters("too many digits (at most 40)", field=field)
    return value.copy_abs()  # "-0" is 0


def parse_uuid_list(raw: Any, field: str) -> list[uuid.UUID]:
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise InvalidAPIParameters("expected a list of UUIDs", field=field)
    return [parse_uuid(item, field) for item in raw]


def parse_end_status(raw: Any, field: str) -> str:
    status = raw.strip().upper() if isinstance(raw, str) else None
    if status not in ("TERMINATED", "CANCELLED"):
        raise InvalidAPIParameters(f"{shown(raw)} is not TERMINATED or CANCELLED", field=field)
    return status


Time = Annotated[datetime, field_of(parse_time)]
Amount = Annotated[Decimal, field_of(parse_amount)]


class WorkloadAction(BaseAction):
    ENTITY: ClassVar[str]
    ID_FIELD: ClassVar[str]

    @classmethod
    def entity_type(cls) -> str:
        return cls.ENTITY

    def entity_id(self) -> str | None:
        return str(getattr(self, self.ID_FIELD))


class CreateVFolderAction(WorkloadAction):
    ENTITY: ClassVar[str] = "vfolder"
    ID_FIELD: ClassVar[str] = "vfolder_id"
    vfolder_id: UUIDField
    name: EntityName
    host: EntityName
    group_id: UUIDField

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class StartKernelAction(WorkloadAction):
    ENTITY: ClassVar[str] = "kernel"
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
    mounts: Annotated[list[uuid.UUID], field_of(parse_uuid_list)] = []
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
    ENTITY: ClassVar[str] = "kernel"
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


class TerminateKernelAction(WorkloadAction):
    ENTITY: ClassVar[str] = "kernel"
    ID_FIELD: ClassVar[str] = "kernel_id"
    kernel_id: UUIDField
    terminated_at: Time
    status: Annotated[str, field_of(parse_end_status)] = "TERMINATED"

    @classmethod
    def operation_type(cls) -> str:
        return "terminate"


class CreateEndpointAction(WorkloadAction):
    ENTITY: ClassVar[str] = "endpoint"
    ID_FIELD: ClassVar[str] = "endpoint_id"
    endpoint_id: UUIDField
    group_id: UUIDField
    name: EntityName

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class DestroyEndpointAction(WorkloadAction):
    ENTITY: ClassVar[str] = "endpoint"
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


class RecordWorkloadBatchAction(BaseBatchAction):
    """Many facts recorded in one atomic append (bulk import): all land or none."""

    actions: list[WorkloadAction]

    @classmethod
    def entity_type(cls) -> str:
        return "workload"

    @classmethod
    def operation_type(cls) -> str:
        return "record_batch"

    def entity_ids(self) -> Sequence[str]:
        return [f"{a.entity_type()}:{a.entity_id()}" for a in self.actions]


@dataclass(frozen=True)
class RecordWorkloadBatchActionResult(BaseActionResult):
    recorded: int
    entity_ids: Sequence[str]

    def entity_id(self) -> str | None:
        return batch_label(self.entity_ids)
