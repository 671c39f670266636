"""What a group's purge does to its sessions (REFERENCE: group purge; a purge removes the
group's sessions, and a kernel that occupies resources refuses it).

An admitted session occupies its slots as Backend.AI's scheduled kernels do, so it
refuses the purge, as active kernels do; a pending one is cancelled and released from
every scope, in the purge's own append. The group's usage is then closed: the append to
its stream makes a decision on the group racing the purge (an enqueue, a schedule)
conflict with it in the store, and the decision, taken again, finds the group purged.
"""

from __future__ import annotations

from domain.errors import PurgeGroupActionActiveKernelsError
from domain.ports import UnitOfWork, load_live
from domain.session.aggregate import Session
from domain.session.types import Scope
from domain.session.usage import ScopeUsage, release_usage, usage_id
from domain.shown import plural


def close_group_sessions(work: UnitOfWork, group_id: str) -> None:
    """Refuses the purge while the group has admitted sessions; else cancels its pending
    ones and closes its usage, in `work`."""
    usage = work.get(usage_id(Scope.GROUP, group_id), ScopeUsage) or ScopeUsage.open(Scope.GROUP, group_id)
    if usage.running:
        admitted = sorted(usage.running)
        raise PurgeGroupActionActiveKernelsError(
            f"group {group_id} has {plural(len(admitted), 'admitted session')} still running "
            f"(terminate them first): {', '.join(admitted[:5])}{' ...' if len(admitted) > 5 else ''}"
        )
    for session_id in sorted(usage.pending):
        session = load_live(work, Session, session_id)
        session.cancel()
        release_usage(work, session)
    work.add(usage).close()
