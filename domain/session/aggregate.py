"""The session aggregate: one compute session's life through the two gates.

Events: Created (enqueued: PENDING, with the policy the enqueue gate applied),
Admitted (RUNNING; the policy's name, source and version and every number weighed),
Deferred (stays PENDING; every reason; not repeated while nothing it names changes),
KernelAttached, KernelDetached, ActivityReported, Cancelled, TerminationStarted
(TERMINATING: terminated while kernels of it still run), Terminated.

A TERMINATING session still occupies what it was admitted with (its usage is released
only when it ends, as Backend.AI counts RUNNING and TERMINATING sessions): its last
kernel's end records Terminated with the reason the terminate gave, and releases it.

The stream id is `stream_id("session", SESSION_UUID)`, never the UUID itself, so a
session id can never name a kernel's or a group's stream. Times come from the events'
own timestamps (the ledger's clock when it decided), except reported activity, which
carries the platform's time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateSession, InvalidAPIParameters, InvalidSessionState, LedgerError
from domain.session.types import CANCELLED, ENDED, SessionStatus
from domain.times import require_not_ahead


class Session(Entity):
    ENTITY_TYPE = EntityType.SESSION

    class Admitted(Entity.Event):
        policy: dict[str, Any]  # name, source, version (and fallback, skipped levels)
        checks: list[dict[str, Any]]  # every limit weighed, as AdmissionCheck.to_json

        def apply(self, aggregate: Session) -> None:
            at = self.timestamp.isoformat()
            aggregate.fields["status"] = SessionStatus.RUNNING.value
            aggregate.fields["started_at"] = at
            aggregate.fields["admitted_under"] = self.policy
            aggregate.fields["decisions"] = aggregate.fields.get("decisions", 0) + 1
            aggregate.changed_at = self.timestamp

    class Deferred(Entity.Event):
        """Not admitted now: the session stays PENDING; `reasons` are the failed checks."""

        policy: dict[str, Any]
        reasons: list[dict[str, Any]]

        def apply(self, aggregate: Session) -> None:
            aggregate.fields["decisions"] = aggregate.fields.get("decisions", 0) + 1
            aggregate.fields["last_deferral"] = {"policy": self.policy, "reasons": self.reasons}

    class ActivityReported(Entity.Event):
        at: str

        def apply(self, aggregate: Session) -> None:
            aggregate.fields["last_activity_at"] = self.at

    class KernelAttached(Entity.Event):
        """A kernel of this admitted session started (recorded with the kernel's own start)."""

        kernel_id: str

        def apply(self, aggregate: Session) -> None:
            aggregate.kernels[self.kernel_id] = True
            aggregate.kernels_started += 1

    class KernelDetached(Entity.Event):
        kernel_id: str

        def apply(self, aggregate: Session) -> None:
            aggregate.kernels.pop(self.kernel_id, None)

    class Cancelled(Entity.Event):
        """`reason`: why the ledger cancelled it itself (`group_deleted`, `group_purged`,
        `keypair_deleted`); None when the platform did, as in every Cancelled event stored
        before reasons were kept."""

        reason: str | None = None

        def apply(self, aggregate: Session) -> None:
            aggregate.end(SessionStatus.CANCELLED, self.reason or CANCELLED, self.timestamp)

    class TerminationStarted(Entity.Event):
        """Terminated while kernels of it still run: TERMINATING, keeping its usage, its
        end reason the terminate's (it ends, Terminated, when its last kernel ends)."""

        reason: str

        def apply(self, aggregate: Session) -> None:
            aggregate.fields["status"] = SessionStatus.TERMINATING.value
            aggregate.fields["end_reason"] = self.reason
            aggregate.changed_at = self.timestamp

    class Terminated(Entity.Event):
        reason: str

        def apply(self, aggregate: Session) -> None:
            aggregate.end(SessionStatus.TERMINATED, self.reason, self.timestamp)

    def __init__(self) -> None:
        super().__init__()
        self.kernels: dict[str, bool] = {}  # its kernels not yet terminated
        # Kernels ever attached: a cluster session ends once all `cluster_size` of them have
        # run, not when the first to start ends before the others start.
        self.kernels_started = 0

    # Version 2 added `kernels_started`. A version 1 snapshot cannot say how many kernels
    # ran: one with kernels running ends, as before, when none runs.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["kernels_started"] = int(state["fields"].get("cluster_size", 1)) if state.get("kernels") else 0

    def incarnate(self, fields: dict[str, Any], at: datetime) -> None:
        super().incarnate(fields, at)
        self.fields["enqueued_at"] = at.isoformat()

    def end(self, status: SessionStatus, reason: str, at: datetime) -> None:
        self.fields["status"] = status.value
        self.fields["end_reason"] = reason
        self.fields["ended_at"] = at.isoformat()
        self.changed_at = at

    @property
    def status(self) -> SessionStatus:
        return SessionStatus(self.fields["status"])

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED

    def _refuse(self, operation: str, hint: str = "") -> InvalidSessionState:
        return InvalidSessionState(f"session {self.key} is {self.status.value}: cannot {operation}{hint}")

    def require_pending(self, operation: str) -> None:
        if self.status is not SessionStatus.PENDING:
            raise self._refuse(operation)

    def admit(self, policy: dict[str, Any], checks: list[dict[str, Any]]) -> None:
        self.require_pending("schedule")
        self.trigger_event(self.Admitted, policy=policy, checks=checks)

    def defer(self, policy: dict[str, Any], reasons: list[dict[str, Any]]) -> bool:
        """False (nothing recorded) when the last deferral had the same policy version and
        the same reasons, numbers included: a scheduler retrying a waiting session every few
        seconds adds an event only when something it decided on changed."""
        self.require_pending("schedule")
        if self.fields.get("last_deferral") == {"policy": policy, "reasons": reasons}:
            return False
        self.trigger_event(self.Deferred, policy=policy, reasons=reasons)
        return True

    @property
    def is_ending(self) -> bool:
        """Ended, or being ended (TERMINATING): nothing more ends it by hand."""
        return self.is_ended or self.status is SessionStatus.TERMINATING

    def cancel(self, reason: str | None = None) -> bool:
        """False (nothing recorded) when the session already ended or is being terminated
        (it ran: it ends TERMINATED when its kernels end). `reason`: why the ledger cancels
        it itself (a platform's cancel gives none: it reads `cancelled`)."""
        if self.is_ending:
            return False
        if self.status is SessionStatus.RUNNING:
            raise self._refuse("cancel", " (a running session is terminated)")
        self.trigger_event(self.Cancelled, reason=reason)
        return True

    def terminate(self, reason: str) -> bool:
        """Ends a pending or running session; a running one with kernels not yet
        terminated becomes TERMINATING instead, until its last kernel ends
        (`kernels_ended`). False (nothing recorded) if it already ended or is TERMINATING."""
        if self.is_ending:
            return False
        # Only a running session has kernels: attach_kernel refuses any other.
        event = self.TerminationStarted if self.kernels else self.Terminated
        self.trigger_event(event, reason=reason)
        return True

    def kernels_ended(self, reason: str) -> bool:
        """Its last kernel ended (`detach_kernel` said so): a TERMINATING session ends with
        the reason its terminate gave, a running one with `reason`. False (nothing
        recorded) if it already ended."""
        if self.status is SessionStatus.TERMINATING:
            self.trigger_event(self.Terminated, reason=self.fields["end_reason"])
            return True
        return self.terminate(reason)

    def attach_kernel(self, kernel_id: str, group_id: str, access_key: str) -> None:
        if group_id != self.fields["group_id"] or access_key != self.fields["access_key"]:
            # Else another tenant's kernel would run on this session's admission and, ending,
            # end the session and release its quota.
            raise InvalidAPIParameters(
                f"session {self.key} was admitted for another group or access key than the kernel's",
                field="session_id",
            )
        if self.status is not SessionStatus.RUNNING:
            raise self._refuse("start a kernel", " (only an admitted, running session runs kernels)")
        if kernel_id not in self.kernels:
            self.trigger_event(self.KernelAttached, kernel_id=kernel_id)

    def detach_kernel(self, kernel_id: str) -> bool:
        """True when this was the session's last kernel (the session then ends): none runs,
        and as many as its `cluster_size` have started, or it is TERMINATING (no more of
        its kernels can start). Until then a kernel of the cluster still to start
        attaches, and its group cannot be purged under it."""
        if kernel_id not in self.kernels:
            return False
        self.trigger_event(self.KernelDetached, kernel_id=kernel_id)
        if self.kernels:
            return False
        if self.status is SessionStatus.TERMINATING:
            return True
        return self.kernels_started >= int(self.fields.get("cluster_size", 1))

    def report_activity(self, at: datetime) -> bool:
        """Moves the last activity forward; an older time, or one after the end, records
        nothing (reports may arrive late and out of order). A time further ahead of the
        ledger's clock than `MAX_CLOCK_AHEAD` is refused naming `at`, whatever the state:
        activity is reported as it happens, and a time years ahead would exempt the session
        from `idle_timeout` until then."""
        require_not_ahead(at, self.ActivityReported.create_timestamp(), "at")
        if self.status is SessionStatus.PENDING:
            raise self._refuse("report activity", " (it has not started)")
        if self.is_ended:
            return False
        latest = self.fields.get("last_activity_at") or self.fields["started_at"]
        if at <= datetime.fromisoformat(latest):
            return False
        self.trigger_event(self.ActivityReported, at=at.isoformat())
        return True

    def duplicate(self) -> LedgerError:
        return DuplicateSession(f"session {self.key} already exists")
