"""Kernel facts and the sessions the ledger admitted (issue 12: a kernel of an admitted
session attaches to it; a session ends when all its kernels are terminated, and one
terminated while they ran, TERMINATING, ends then too, with its terminate's reason).

For the workload service to call inside the unit of work that records the kernel fact,
so the kernel's event, the session's and the released usage are one append. A kernel
whose `session_id` names no session the ledger admitted (imported history) is recorded
as before and counts toward no limit: both functions return None for it.
"""

from __future__ import annotations

from domain.ports import UnitOfWork
from domain.session.aggregate import Session
from domain.session.usage import release_usage

ALL_KERNELS_ENDED = "all_kernels_terminated"


def attach_kernel(work: UnitOfWork, session_id: str, kernel_id: str, group_id: str, access_key: str) -> Session | None:
    """Records a started kernel on its admitted session (InvalidSessionState when that
    session is pending or ended, InvalidAPIParameters naming `session_id` when it was
    admitted for another group or access key); None when the ledger never admitted it."""
    session = work.get(Session.id_for(session_id), Session)
    if session is not None:
        session.attach_kernel(kernel_id, group_id, access_key)
    return session


def detach_kernel(work: UnitOfWork, session_id: str, kernel_id: str) -> Session | None:
    """Records a terminated kernel on its session; the last one ends the session
    (reason `all_kernels_terminated`, or a TERMINATING session's terminate's reason) and
    releases its usage. None for imported history."""
    session = work.get(Session.id_for(session_id), Session)
    if session is not None and session.detach_kernel(kernel_id) and session.kernels_ended(ALL_KERNELS_ENDED):
        release_usage(work, session)
    return session
