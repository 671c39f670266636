"""Session data, the reasons an admission gives, and what the runtime limits need.

Quantities in events and results are the canonical text of `ResourceSlot.to_json`
("Infinity" for an unlimited limit), so a decision reads back exactly as it was made.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.slots import ResourceSlot


class SessionStatus(enum.StrEnum):
    PENDING = "PENDING"  # enqueued, waiting for the start gate
    RUNNING = "RUNNING"  # admitted: its slots count toward every limit
    # Terminated while kernels of it still run: its slots count toward every limit, as a
    # running session's, until its last kernel ends (then TERMINATED).
    TERMINATING = "TERMINATING"
    CANCELLED = "CANCELLED"  # ended before it ran
    TERMINATED = "TERMINATED"  # ended (after running, or withdrawn while pending)


ENDED = frozenset({SessionStatus.CANCELLED, SessionStatus.TERMINATED})

# A cancelled session's `end_reason`: the platform's cancel, or why the ledger cancelled
# it itself (each is the `Session.Cancelled` event's reason).
CANCELLED = "cancelled"
GROUP_DELETED = "group_deleted"  # its group was soft-deleted: no schedule could admit it
GROUP_PURGED = "group_purged"  # its group was purged (a pending session refuses no purge)
KEYPAIR_DELETED = "keypair_deleted"  # its keypair was deleted: none is left to decide on


class Scope(enum.StrEnum):
    """Whose limit: the keypair's effective policy (over the keypair's sessions, and over
    all its user's sessions), the group's or the domain's slots."""

    KEYPAIR = "keypair"
    USER = "user"
    GROUP = "group"
    DOMAIN = "domain"


class DueReason(enum.StrEnum):
    IDLE_TIMEOUT = "idle_timeout"
    MAX_SESSION_LIFETIME = "max_session_lifetime"


def quantity_json(value: Decimal) -> str:
    """One quantity as `ResourceSlot.to_json` writes it (`Infinity` for unlimited)."""
    return ResourceSlot({"q": value}).to_json()["q"]


@dataclass(frozen=True)
class AdmissionCheck:
    """One limit weighed by the start gate. `slot` is None for `max_concurrent_sessions`
    (a count of sessions, `requested` 1). `passed`: used + requested <= allowed."""

    limit: str
    scope: Scope
    scope_id: str
    slot: str | None
    requested: Decimal
    used: Decimal
    allowed: Decimal

    @property
    def passed(self) -> bool:
        return self.used + self.requested <= self.allowed

    def describe(self) -> str:
        what = self.limit if self.slot is None else f"{self.limit}.{self.slot}"
        return (
            f"{self.scope} {self.scope_id}: {what}: used {quantity_json(self.used)} + requested "
            f"{quantity_json(self.requested)} > allowed {quantity_json(self.allowed)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "scope": self.scope.value,
            "scope_id": self.scope_id,
            "slot": self.slot,
            "requested": quantity_json(self.requested),
            "used": quantity_json(self.used),
            "allowed": quantity_json(self.allowed),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdmissionCheck:
        return cls(
            data["limit"],
            Scope(data["scope"]),
            data["scope_id"],
            data["slot"],
            Decimal(data["requested"]),
            Decimal(data["used"]),
            Decimal(data["allowed"]),
        )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class SessionData:
    session_id: uuid.UUID
    access_key: str
    user_id: uuid.UUID | None
    group_id: uuid.UUID
    domain_name: str
    requested_slots: ResourceSlot
    cluster_size: int
    mounts: tuple[uuid.UUID, ...]
    status: SessionStatus
    enqueued_at: datetime
    started_at: datetime | None  # the running start (admission), where lifetime counts from
    last_activity_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    decisions: int  # start-gate decisions recorded (admitted or deferred)

    @classmethod
    def from_fields(cls, key: str, fields: dict[str, Any]) -> SessionData:
        user_id = fields.get("user_id")
        return cls(
            session_id=uuid.UUID(key),
            access_key=fields["access_key"],
            user_id=None if user_id is None else uuid.UUID(user_id),
            group_id=uuid.UUID(fields["group_id"]),
            domain_name=fields["domain_name"],
            requested_slots=ResourceSlot.from_json(fields["requested_slots"]),
            cluster_size=fields["cluster_size"],
            mounts=tuple(uuid.UUID(m) for m in fields["mounts"]),
            status=SessionStatus(fields["status"]),
            enqueued_at=datetime.fromisoformat(fields["enqueued_at"]),
            started_at=_time(fields.get("started_at")),
            last_activity_at=_time(fields.get("last_activity_at")),
            ended_at=_time(fields.get("ended_at")),
            end_reason=fields.get("end_reason"),
            decisions=fields.get("decisions", 0),
        )

    def to_json(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "session_id": str(self.session_id),
            "access_key": self.access_key,
            "user_id": None if self.user_id is None else str(self.user_id),
            "group_id": str(self.group_id),
            "domain_name": self.domain_name,
            "requested_slots": self.requested_slots.to_json(),
            "cluster_size": self.cluster_size,
            "mounts": [str(m) for m in self.mounts],
            "status": self.status.value,
            "enqueued_at": at(self.enqueued_at),
            "started_at": at(self.started_at),
            "last_activity_at": at(self.last_activity_at),
            "ended_at": at(self.ended_at),
            "end_reason": self.end_reason,
            "decisions": self.decisions,
        }


@dataclass(frozen=True)
class RunningSession:
    """What the runtime limits need of one running session (a read model can hold it)."""

    session_id: uuid.UUID
    access_key: str
    started_at: datetime
    last_activity_at: datetime | None = None

    @classmethod
    def of(cls, session: SessionData) -> RunningSession:
        assert session.started_at is not None, "only a running session has a running start"
        return cls(session.session_id, session.access_key, session.started_at, session.last_activity_at)


@dataclass(frozen=True)
class DueSession:
    """A running session past a deadline of its keypair's effective policy."""

    session_id: uuid.UUID
    access_key: str
    reason: DueReason
    deadline: datetime
    policy: str  # the effective policy's name when the deadline was computed
    # That policy as resolved (`EffectivePolicy.ref_json`: name, source, version, and
    # `deleted` when a deleted keypair's session runs on under a policy deleted since).
    policy_ref: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": str(self.session_id),
            "access_key": self.access_key,
            "reason": self.reason.value,
            "deadline": self.deadline.isoformat(),
            "policy": self.policy,
            "policy_ref": self.policy_ref,
        }
