"""The session service: each decision and its effect on usage in one unit of work.

Enqueue reads the keypair's usage and appends the pending session to it, with the
session's Created event, in one save; schedule appends the admission to the session and
to the keypair's, its user's, the group's and the domain's usage in one save. A concurrent decision
on any of those scopes conflicts in the store, and `AggregateStore.run` decides again on
the winner's usage: N schedules racing for K free places admit exactly K.

A deferral appends to the session only: deciding it on usage a concurrent release has
just changed leaves the session PENDING, to be scheduled again, never over a limit.
Limits (the policy, the group's and the domain's slots) are read, not appended to: a
decision and a concurrent edit of a limit are ordered as if the decision came first, and
the decision's event names the policy version it applied.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.domains.aggregate import Domain
from domain.effective_policy import (
    EffectivePolicy,
    PolicySource,
    deleted_keypair_state,
    live_entity,
    resolve_for_deleted,
    resolve_for_keypair,
)
from domain.errors import InvalidAPIParameters
from domain.group.aggregate import Group
from domain.keypair.aggregate import KeyPair
from domain.keypair_resource_policy.aggregate import SYSTEM_POLICY, KeyPairResourcePolicy
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from domain.ports import AggregateStore, UnitOfWork, load_live, naming
from domain.session.actions import (
    CancelSessionAction,
    CancelSessionActionResult,
    EnqueueSessionAction,
    EnqueueSessionActionResult,
    ReportSessionActivityAction,
    ReportSessionActivityActionResult,
    ScheduleSessionAction,
    ScheduleSessionActionResult,
    TerminateSessionAction,
    TerminateSessionActionResult,
)
from domain.session.admission import HostGrant, admission_checks, enqueue_checks, enqueue_refusal, mount_grant
from domain.session.aggregate import Session
from domain.session.runtime import sessions_due
from domain.session.types import DueSession, RunningSession, Scope, SessionData, SessionStatus
from domain.session.usage import ScopeUsage, load_usage, release_usage, session_scopes, usage_id
from domain.slots import ResourceSlot
from domain.workload.aggregate import VFolder
from domain.workload.storage import USER_GROUPS, user_groups

SESSION = EntityType.SESSION


def session_data(session: Session) -> SessionData:
    return SessionData.from_fields(session.key, session.fields)


def _slots(fields: dict[str, Any], name: str) -> ResourceSlot:
    return ResourceSlot.from_json(fields.get(name) or {})


def _mount_grant(
    work: UnitOfWork, mount: str, keypair: KeyPair, session_group: Group, levels: list[HostGrant]
) -> dict[str, Any]:
    """Which levels grant `mount-in-session` on a mounted vfolder's host (`mount_grant`):
    `levels` (the domain's and the effective policy's) and the groups the vfolder's owner
    reaches: a user's vfolder (created by a keypair) any group of the session's user, a
    project's vfolder (no owner) that project's group. A purged group's vfolders went
    with it (not found, as every query answers); another domain's are not the session's
    to mount."""
    vfolder = load_live(work, VFolder, mount, field="mounts")
    group = live_entity(work, Group, Group.id_for(vfolder.fields["group_id"]))
    if group is None:
        raise naming(vfolder.missing(mount), "mounts")
    domain_name = session_group.fields["domain_name"]
    if group.fields["domain_name"] != domain_name:
        raise InvalidAPIParameters(
            f"vfolder {mount} is in domain {group.fields['domain_name']!r}, the session in {domain_name!r}",
            field="mounts",
        )
    if vfolder.fields.get("owner_access_key") is None:
        groups, named = [group], "its project's group"
    else:
        groups, named = user_groups(work, keypair, session_group), USER_GROUPS
    weighed = [levels[0], *(HostGrant.of(Scope.GROUP, g.key, g.fields) for g in groups), *levels[1:]]
    return mount_grant(f"mounts: vfolder {mount}", mount, vfolder.fields["host"], weighed, named)


class SessionService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    @takes_action
    async def enqueue_session(self, action: EnqueueSessionAction) -> EnqueueSessionActionResult:
        key = str(action.session_id)
        requested = action.requested_slots
        # A repeated id is the same mount: kept once, in order, as a group's repeated
        # member ids are (a list's exact repeats collapse; only clashing entries refuse).
        mounts = [str(m) for m in dict.fromkeys(action.mounts)]

        def enqueue() -> tuple[Session, EffectivePolicy]:
            work = UnitOfWork(self._store)
            existing = work.get(Session.id_for(key), Session)
            if existing is not None:
                raise existing.duplicate()
            # A reference the caller gave that names nothing is refused naming its field.
            keypair = load_live(work, KeyPair, action.access_key, field="access_key")
            group = load_live(work, Group, str(action.group_id), field="group_id")
            group.require_active()
            domain_name = keypair.fields["domain_name"]
            if group.fields["domain_name"] != domain_name:
                raise InvalidAPIParameters(
                    f"group {action.group_id} is in domain {group.fields['domain_name']!r}, "
                    f"keypair {action.access_key} in {domain_name!r}",
                    field="group_id",
                )
            policy = resolve_for_keypair(work, keypair)
            usage = load_usage(work, Scope.KEYPAIR, action.access_key)
            checks = enqueue_checks(
                policy,
                action.access_key,
                cluster_size=action.cluster_size,
                requested=requested,
                pending_count=len(usage.pending),
                pending_total=usage.pending_total,
            )
            refusal = enqueue_refusal(policy, checks)
            if refusal is not None:
                raise refusal
            grants = []
            if mounts:
                domain = live_entity(work, Domain, Domain.id_for(domain_name))
                policy_hosts = policy.policy.allowed_vfolder_hosts
                # The domain's first, the policy's last, the groups' between (`_mount_grant`).
                levels = [
                    HostGrant.of(Scope.DOMAIN, domain_name, domain.fields if domain is not None else {}),
                    HostGrant(Scope.KEYPAIR, action.access_key, policy_hosts, policy.name),
                ]
                grants = [_mount_grant(work, m, keypair, group, levels) for m in mounts]
            fields = {
                "access_key": action.access_key,
                "user_id": keypair.fields.get("user_id"),
                "group_id": str(action.group_id),
                "domain_name": domain_name,
                "requested_slots": requested.to_json(),
                "cluster_size": action.cluster_size,
                "mounts": mounts,
                "status": SessionStatus.PENDING.value,
                "enqueued_under": policy.ref_json(),
                "enqueue_checks": [check.to_json() for check in checks],  # what the decision weighed
                "mount_grants": grants,  # which levels granted each mount's host
                "decisions": 0,
            }
            session = work.add(Session.create(key, fields))
            work.add(usage).add_pending(key, requested.to_json())
            # The group's usage knows its pending sessions too: a purge cancels them, and
            # this append conflicts with a purge racing it.
            work.add(load_usage(work, Scope.GROUP, str(action.group_id))).add_pending(key, requested.to_json())
            work.commit()
            return session, policy

        session, policy = self._store.run(enqueue, SESSION, "enqueue")
        return EnqueueSessionActionResult(session_data(session), policy.ref_json())

    @takes_action
    async def schedule_session(self, action: ScheduleSessionAction) -> ScheduleSessionActionResult:
        key = str(action.session_id)

        def schedule() -> ScheduleSessionActionResult:
            work = UnitOfWork(self._store)
            session = load_live(work, Session, key)
            if session.status is SessionStatus.RUNNING:  # decided already: nothing to decide
                policy_ref = session.fields.get("admitted_under", {})
                return ScheduleSessionActionResult(session_data(session), True, (), (), policy_ref, changed=False)
            session.require_pending("schedule")
            fields = session.fields
            access_key, group_id, domain_name = fields["access_key"], fields["group_id"], fields["domain_name"]
            requested = _slots(fields, "requested_slots")
            policy = resolve_for_keypair(work, load_live(work, KeyPair, access_key))
            group = load_live(work, Group, group_id)
            group.require_active()
            domain = live_entity(work, Domain, Domain.id_for(domain_name))
            scopes = dict(session_scopes(fields))
            usages = {scope: load_usage(work, scope, scope_id) for scope, scope_id in scopes.items()}
            user = usages.get(Scope.USER)
            checks = admission_checks(
                policy,
                access_key,
                requested,
                keypair_running=len(usages[Scope.KEYPAIR].running),
                keypair_used=usages[Scope.KEYPAIR].running_total,
                user=None if user is None else (scopes[Scope.USER], user.running_total),
                group_id=group_id,
                group_limits=_slots(group.fields, "total_resource_slots"),
                group_used=usages[Scope.GROUP].running_total,
                domain_name=domain_name,
                domain_limits=None if domain is None else _slots(domain.fields, "total_resource_slots"),
                domain_used=usages[Scope.DOMAIN].running_total,
            )
            reasons = tuple(check for check in checks if not check.passed)
            changed = True
            if reasons:
                changed = session.defer(policy.ref_json(), [reason.to_json() for reason in reasons])
            else:
                session.admit(policy.ref_json(), [check.to_json() for check in checks])
                for usage in usages.values():
                    work.add(usage).start(key, fields["requested_slots"])
            work.commit()
            return ScheduleSessionActionResult(
                session_data(session), not reasons, reasons, tuple(checks), policy.ref_json(), changed
            )

        return self._store.run(schedule, SESSION, "schedule")

    def _end(self, key: str, end: Callable[[Session], bool]) -> tuple[Session, bool]:
        """Ends the session (`end(session)` says whether it recorded the end) and, once it
        has ended, releases it from every scope holding it, in one save. Releasing is
        idempotent. A TERMINATING session keeps its usage: its kernels still run, and its
        last kernel's end releases it."""
        work = UnitOfWork(self._store)
        session = load_live(work, Session, key)
        changed = end(session)
        if session.is_ended:
            release_usage(work, session)
        work.commit()
        return session, changed

    @takes_action
    async def cancel_session(self, action: CancelSessionAction) -> CancelSessionActionResult:
        key = str(action.session_id)
        session, changed = self._store.run(lambda: self._end(key, Session.cancel), SESSION, "cancel")
        return CancelSessionActionResult(session_data(session), changed)

    @takes_action
    async def terminate_session(self, action: TerminateSessionAction) -> TerminateSessionActionResult:
        key, reason = str(action.session_id), action.reason

        def end(session: Session) -> bool:
            return session.terminate(reason)

        session, changed = self._store.run(lambda: self._end(key, end), SESSION, "terminate")
        return TerminateSessionActionResult(session_data(session), changed)

    @takes_action
    async def report_session_activity(self, action: ReportSessionActivityAction) -> ReportSessionActivityActionResult:
        key = str(action.session_id)

        def report() -> tuple[Session, bool]:
            work = UnitOfWork(self._store)
            session = load_live(work, Session, key)
            changed = session.report_activity(action.at)
            work.commit()
            return session, changed

        session, changed = self._store.run(report, SESSION, "report_activity")
        return ReportSessionActivityActionResult(session_data(session), changed)

    # Reads for queries (no action: nothing is decided or recorded)

    def effective_policy_of(self, access_key: str, work: UnitOfWork | None = None) -> EffectivePolicy:
        """The keypair's effective policy now. A keypair deleted while its sessions still
        run answers the policy its delete recorded (`resolve_for_deleted`): live, as it
        stands; deleted since, as it last stood, named deleted. Their limits must not
        vanish with the keypair, nor move to another level's policy once nothing live
        names it. The system policy for an access key the ledger never had."""
        work = work or UnitOfWork(self._store)
        keypair = work.get(KeyPair.id_for(access_key), KeyPair)
        if keypair is None:
            system = load_live(work, KeyPairResourcePolicy, SYSTEM_POLICY)
            assert system.created_at is not None
            data = KeyPairResourcePolicyData.from_fields(system.name, system.created_at, system.fields)
            return EffectivePolicy(data, PolicySource.SYSTEM, system.version)
        if keypair.is_deleted:
            return resolve_for_deleted(work, deleted_keypair_state(keypair))
        return resolve_for_keypair(work, keypair)

    def sessions_due(self, sessions: Iterable[RunningSession], now: datetime) -> list[DueSession]:
        """`runtime.sessions_due` with each keypair's policy resolved now (edits apply at
        the next call), once per keypair. A session still running from a deleted
        incarnation of its access key (the key was created again since) runs under that
        keypair's last policy, as a deleted keypair's sessions do: not the new keypair's."""
        work = UnitOfWork(self._store)
        resolved: dict[tuple[str, ...], EffectivePolicy] = {}

        def policy_of(session: RunningSession) -> EffectivePolicy:
            usage = work.get(usage_id(Scope.KEYPAIR, session.access_key), ScopeUsage)
            under = None if usage is None else usage.retired_under.get(str(session.session_id))
            key = (session.access_key,) if under is None else (session.access_key, json.dumps(under, sort_keys=True))
            found = resolved.get(key)
            if found is None:
                found = resolved[key] = (
                    self.effective_policy_of(session.access_key, work)
                    if under is None
                    else resolve_for_deleted(work, under)
                )
            return found

        return sessions_due(sessions, policy_of, now)

    def session(self, session_id: uuid.UUID) -> SessionData:
        return session_data(load_live(UnitOfWork(self._store), Session, str(session_id)))

    def usage(self, scope: Scope, scope_id: str) -> ScopeUsage:
        """A scope's usage as recorded (empty when nothing was ever admitted there)."""
        return load_usage(UnitOfWork(self._store), scope, scope_id)
