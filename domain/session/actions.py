"""Session actions and results (issue 12's names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.keypair.actions import AccessKey
from domain.parsers import parse_int
from domain.session.types import AdmissionCheck, SessionData
from domain.validation import EntityName, OccupiedSlots, UUIDField, field_of
from domain.workload.types import Time, UUIDList

# The sessions read model keeps a session's size in an SQL integer, 32 bits on PostgreSQL:
# a larger one (a policy may allow up to 2**63-1 containers) stalled it there.
MAX_CLUSTER_SIZE = 2**31 - 1


def _parse_cluster_size(raw: Any, field: str) -> int:
    return parse_int(raw, field, minimum=1, maximum=MAX_CLUSTER_SIZE)


class SessionAction(BaseAction):
    session_id: UUIDField

    @classmethod
    def entity_type(cls) -> str:
        return EntityType.SESSION

    def entity_id(self) -> str | None:
        return str(self.session_id)


class EnqueueSessionAction(SessionAction):
    """`requested_slots`: what the whole session asks for (all its containers), finite.
    `mounts`: the ids of the vfolders it mounts (each vfolder's host is read from its
    stream)."""

    access_key: AccessKey
    group_id: UUIDField
    requested_slots: OccupiedSlots
    cluster_size: Annotated[int, field_of(_parse_cluster_size)] = 1
    # A factory, not `[]`: pydantic deep-copies a mutable default on every instance.
    mounts: UUIDList = Field(default_factory=list)

    @classmethod
    def operation_type(cls) -> str:
        return "enqueue"


class ScheduleSessionAction(SessionAction):
    @classmethod
    def operation_type(cls) -> str:
        return "schedule"


class CancelSessionAction(SessionAction):
    @classmethod
    def operation_type(cls) -> str:
        return "cancel"


class TerminateSessionAction(SessionAction):
    reason: EntityName

    @classmethod
    def operation_type(cls) -> str:
        return "terminate"


class ReportSessionActivityAction(SessionAction):
    at: Time

    @classmethod
    def operation_type(cls) -> str:
        return "report_activity"


@dataclass(frozen=True)
class _SessionResult(BaseActionResult):
    session: SessionData

    def entity_id(self) -> str | None:
        return str(self.session.session_id)


@dataclass(frozen=True)
class EnqueueSessionActionResult(_SessionResult):
    """`policy`: the effective policy the enqueue gate applied (name, source, version)."""

    policy: dict[str, Any]


@dataclass(frozen=True)
class ScheduleSessionActionResult(_SessionResult):
    """`admitted`; `reasons`: the failed checks when not admitted (empty when admitted);
    `checks`: every check weighed; `policy`: name, source, version of the effective
    policy decided on. `changed` False: nothing recorded, because the session was
    already running (nothing decided) or the deferral repeats the last one exactly."""

    admitted: bool
    reasons: tuple[AdmissionCheck, ...]
    checks: tuple[AdmissionCheck, ...]
    policy: dict[str, Any]
    changed: bool = True


@dataclass(frozen=True)
class CancelSessionActionResult(_SessionResult):
    """`changed` False: the session had already ended (release is idempotent)."""

    changed: bool


@dataclass(frozen=True)
class TerminateSessionActionResult(_SessionResult):
    changed: bool


@dataclass(frozen=True)
class ReportSessionActivityActionResult(_SessionResult):
    """`changed` False: not later than the last activity, or the session had ended."""

    changed: bool
