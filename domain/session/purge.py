"""What a group's delete, purge or move to another domain, and a keypair's delete (and
its creation again) do to their sessions (REFERENCE: group purge; a purge removes the
group's sessions, and a kernel that occupies resources refuses it).

A group's soft delete cancels its pending sessions, released from every scope, in the
delete's own append: no schedule could admit one in an inactive group, and each held its
keypair's pending places. Its admitted sessions run on (Backend.AI's delete stops
nothing). The append to its usage makes an enqueue racing the delete conflict with it.

An admitted session occupies its slots as Backend.AI's scheduled kernels do, so it
refuses the purge, as active kernels do; a pending one is cancelled and released from
every scope, in the purge's own append. The group's usage is then closed: the append to
its stream makes a decision on the group racing the purge (an enqueue, a schedule)
conflict with it in the store, and the decision, taken again, finds the group purged.

A move refuses while the group holds a pending or admitted session or an active kernel:
each was decided against its domain's limits and counts in its domain's usage (a kernel
is reported under it), which the move would leave behind. A move of a group holding none
appends to its usage as the purge does, so a racing enqueue, taken again, finds the group
in the other domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.errors import GroupMoveActiveWorkload
from domain.group.aggregate import Group
from domain.ports import UnitOfWork, load_live
from domain.session.aggregate import Session
from domain.session.types import GROUP_DELETED, GROUP_PURGED, KEYPAIR_DELETED, Scope
from domain.session.usage import ScopeUsage, load_usage, release_usage, usage_id
from domain.shown import plural, some


def admitted_mounts(work: UnitOfWork, group: Group) -> dict[str, list[str]]:
    """The group's admitted sessions, each with the vfolder ids it mounts: what
    `Group.check_purgeable` weighs beside the active kernels, in the purge's own checks.
    A group without vfolders has none a session could mount: its sessions are not read."""
    running = load_usage(work, Scope.GROUP, str(group.id)).running
    if not group.vfolders:
        return {key: [] for key in running}
    return {key: list(load_live(work, Session, key).fields.get("mounts") or ()) for key in running}


def close_group_sessions(work: UnitOfWork, group_id: str) -> list[str]:
    """Cancels the group's pending sessions (`GROUP_PURGED`: a pending session occupies
    nothing, as a PENDING kernel refuses no purge) and closes its usage, in `work`, once
    `Group.check_purgeable` passed with its `admitted_mounts` (an admitted one refuses the
    purge there, in the order of the checks). The ids of the sessions it cancelled."""
    usage = load_usage(work, Scope.GROUP, group_id)
    assert not usage.running, "check_purgeable refuses a purge under an admitted session"
    return _cancel_pending_and_close(work, usage, GROUP_PURGED)


def close_deleted_group_sessions(work: UnitOfWork, group_id: str, deleted: bool) -> list[str]:
    """Cancels a soft-deleted group's pending sessions (`GROUP_DELETED`) and records the
    close on its usage, in `work`. `deleted`: the delete recorded the group's change (it
    was active); then the close is recorded even with nothing pending, so an enqueue or
    an admission racing it conflicts. A delete of a group already inactive records
    nothing unless sessions still wait (enqueued before it was made inactive by a modify,
    or soft-deleted by an older release, which left them PENDING): those it cancels.
    The ids of the sessions it cancelled."""
    usage = load_usage(work, Scope.GROUP, group_id)
    return _cancel_pending_and_close(work, usage, GROUP_DELETED) if deleted or usage.pending else []


def close_keypair_sessions(work: UnitOfWork, access_key: str) -> list[str]:
    """A deleted keypair's pending sessions can never be admitted (no live keypair to
    decide on): they are cancelled (`KEYPAIR_DELETED`) and released from every scope, in
    the delete's own append, as a purged group's are. Its admitted ones run on, under its
    last policy, which the delete records (`KeyPair.deleted_under`, `resolve_for_deleted`;
    once the key is created again, `retire_keypair_sessions` keeps it with them). The keypair's
    usage records the close, so an enqueue or a schedule racing the delete conflicts with
    it and, taken again, finds the keypair deleted. The ids of the sessions it cancelled."""
    return _cancel_pending_and_close(work, load_usage(work, Scope.KEYPAIR, access_key), KEYPAIR_DELETED)


def retire_keypair_sessions(work: UnitOfWork, access_key: str, deleted: Mapping[str, Any]) -> None:
    """A keypair created again is a new incarnation: the deleted one's admitted sessions,
    still running, count no more against its limits (they still count for their user,
    group and domain), in the creation's own append, so a release racing it conflicts.
    They run on under the deleted keypair's last policy, never the new one's, so what
    `resolve_for_deleted` reads of it (`deleted`: `deleted_keypair_state`) is kept with
    them."""
    usage = work.get(usage_id(Scope.KEYPAIR, access_key), ScopeUsage)
    if usage is not None:
        usage.retire(deleted)


def _cancel_pending_and_close(work: UnitOfWork, usage: ScopeUsage, reason: str) -> list[str]:
    """Cancels the scope's pending sessions (`reason`: why, on each), releasing each from
    every scope, and records the scope's close, in `work`; their ids."""
    cancelled = sorted(usage.pending)
    for session_id in cancelled:
        session = load_live(work, Session, session_id)
        session.cancel(reason)
        release_usage(work, session)
    work.add(usage).close()
    return cancelled


def move_group_sessions(work: UnitOfWork, group: Group, old_domain: str, new_domain: str) -> None:
    """Refuses the group's move while it holds sessions or active kernels; else records
    the move on its usage, in `work` (a kernel start racing it conflicts on the group's
    own stream, which the move appends to)."""
    usage = load_usage(work, Scope.GROUP, str(group.id))
    held = [
        f"{plural(len(ids), what)} ({some(ids)})"
        for what, ids in (
            ("pending session", usage.pending),
            ("admitted session", usage.running),
            ("active kernel", group.kernels),
        )
        if ids
    ]
    if held:
        raise GroupMoveActiveWorkload(
            f"group {group.key} holds {', '.join(held)}, weighed against the limits of domain {old_domain!r} "
            f"and counted in its usage: end them before moving the group to {new_domain!r}",
            field="domain_name",
        )
    work.add(usage).moved(new_domain)
