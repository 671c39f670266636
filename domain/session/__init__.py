"""Sessions under the policies (issue 12): the enqueue and start gates, usage as sets of
sessions per keypair, group and domain, and the runtime limits."""

from domain.session.actions import (
    CancelSessionAction,
    CancelSessionActionResult,
    EnqueueSessionAction,
    EnqueueSessionActionResult,
    ReportSessionActivityAction,
    ReportSessionActivityActionResult,
    ScheduleSessionAction,
    ScheduleSessionActionResult,
    SessionAction,
    TerminateSessionAction,
    TerminateSessionActionResult,
)
from domain.session.aggregate import Session
from domain.session.kernels import attach_kernel, detach_kernel
from domain.session.runtime import sessions_due
from domain.session.service import SessionService
from domain.session.types import (
    AdmissionCheck,
    DueReason,
    DueSession,
    RunningSession,
    Scope,
    SessionData,
    SessionStatus,
)
from domain.session.usage import ScopeUsage, usage_id

__all__ = [
    "AdmissionCheck",
    "CancelSessionAction",
    "CancelSessionActionResult",
    "DueReason",
    "DueSession",
    "EnqueueSessionAction",
    "EnqueueSessionActionResult",
    "ReportSessionActivityAction",
    "ReportSessionActivityActionResult",
    "RunningSession",
    "ScheduleSessionAction",
    "ScheduleSessionActionResult",
    "Scope",
    "ScopeUsage",
    "Session",
    "SessionAction",
    "SessionData",
    "SessionService",
    "SessionStatus",
    "TerminateSessionAction",
    "TerminateSessionActionResult",
    "attach_kernel",
    "detach_kernel",
    "sessions_due",
    "usage_id",
]
