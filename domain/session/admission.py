"""The two gates as pure functions of a policy, the usage read and the request.

Enqueue (a hard gate, refusals are errors): `max_containers_per_session`, the mounts'
hosts (`mount_grant`), `max_pending_session_count` and `max_pending_session_resource_slots` of the
keypair's effective policy. Pending limits: null or <= 0 is unlimited, and a pending cap
bounds only the slots it lists (REFERENCE: the later Backend.AI's enqueue checks).

Schedule (the start gate, a refusal is an answer): for the keypair, its user, the group
and the domain, used + requested <= allowed, as `AdmissionCheck`s. The user level weighs
the user's sessions over all their keypairs against the asking keypair's effective policy
(Backend.AI weighs them against the user's main keypair's policy; the ledger has no main
keypair), so a second keypair does not double what its policy allows. Sessions in use count against
`max_concurrent_sessions` (0 is unlimited). Slots: the policy's limit per slot
(`EffectivePolicy.slot_limit`: unlisted is 0 under LIMITED, unlimited under UNLIMITED);
a group's or domain's unlisted slot is unlimited. Every slot the request or the usage
names is weighed, as Backend.AI compares whole slot maps: a scope already above a
lowered limit admits nothing more until it drains, even in a slot the request does not
use. A slot neither requested nor used passes trivially and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.effective_policy import EffectivePolicy
from domain.errors import QuotaExceeded, VFolderHostNotAllowed
from domain.hosts import VFolderHostPermission, VFolderHostPermissionMap
from domain.session.types import AdmissionCheck, Scope, quantity_json
from domain.slots import INFINITY, ResourceSlot, shown_quantity

ZERO = Decimal(0)
ONE = Decimal(1)


def _unlimited_if_not_positive(value: int | Decimal | None) -> bool:
    return value is None or value <= 0


def enqueue_checks(
    policy: EffectivePolicy,
    access_key: str,
    *,
    cluster_size: int,
    requested: ResourceSlot,
    pending_count: int,
    pending_total: Mapping[str, Decimal],
) -> list[AdmissionCheck]:
    """Every limit the enqueue gate weighs, in the order it refuses: containers, pending
    count, pending slots (slots in name order; a slot cap of null or <= 0 is left out)."""
    data = policy.policy
    count_cap = data.max_pending_session_count
    checks = [
        AdmissionCheck(
            "max_containers_per_session",
            Scope.KEYPAIR,
            access_key,
            None,
            Decimal(cluster_size),
            ZERO,
            Decimal(data.max_containers_per_session),
        ),
        AdmissionCheck(
            "max_pending_session_count",
            Scope.KEYPAIR,
            access_key,
            None,
            ONE,
            Decimal(pending_count),
            INFINITY if _unlimited_if_not_positive(count_cap) else Decimal(count_cap),  # type: ignore[arg-type]
        ),
    ]
    caps = data.max_pending_session_resource_slots or ResourceSlot()
    for slot in sorted(caps):
        if not _unlimited_if_not_positive(caps[slot]):
            want, held = requested.get(slot, ZERO), pending_total.get(slot, ZERO)
            checks.append(
                AdmissionCheck(
                    "max_pending_session_resource_slots", Scope.KEYPAIR, access_key, slot, want, held, caps[slot]
                )
            )
    return checks


def enqueue_refusal(policy: EffectivePolicy, checks: Iterable[AdmissionCheck]) -> QuotaExceeded | None:
    """The first of `enqueue_checks` the request breaks, as the refusal, or None."""
    failed = next((check for check in checks if not check.passed), None)
    if failed is None:
        return None
    allowed = quantity_json(failed.allowed)
    if failed.limit == "max_containers_per_session":
        detail = f"cluster_size {quantity_json(failed.requested)} > {allowed}"
    elif failed.limit == "max_pending_session_count":
        detail = f"{quantity_json(failed.used)} pending + 1 > {allowed}"
    else:
        # In the units the policy was written in (12g, not 12884901888), as decisions are shown.
        slot = failed.slot or ""
        requested, used = shown_quantity(slot, failed.requested), shown_quantity(slot, failed.used)
        detail = f"{slot}: pending {used} + requested {requested} > {shown_quantity(slot, failed.allowed)}"
    # The version too, as an admission or a deferral records it.
    return QuotaExceeded(
        f"keypair {failed.scope_id}: {failed.limit} of {policy.label()}: {detail}",
        limit=failed.limit,
        scope=failed.scope.value,
        scope_id=failed.scope_id,
    )


@dataclass(frozen=True)
class HostGrant:
    """One level's `allowed_vfolder_hosts` and whose they are, as a decision names it:
    scope `domain`, `group`, or `keypair` (its effective policy, named by `policy`)."""

    scope: Scope
    scope_id: str
    hosts: VFolderHostPermissionMap
    policy: str | None = None

    @classmethod
    def of(cls, scope: Scope, scope_id: str, fields: Mapping[str, Any]) -> HostGrant:
        """A domain's or group's grants, from its stored fields."""
        return cls(scope, scope_id, VFolderHostPermissionMap.from_json(fields.get("allowed_vfolder_hosts") or {}))

    def to_json(self) -> dict[str, str]:
        found = {"scope": self.scope.value, "scope_id": self.scope_id}
        return found if self.policy is None else {**found, "policy": self.policy}


def granting(
    what: str,
    host: str,
    permission: VFolderHostPermission,
    levels: Iterable[HostGrant],
    groups_named: str,
    field: str | None = None,
) -> list[dict[str, str]]:
    """The levels granting `permission` on `host`, united host by host (REFERENCE: storage:
    any level can grant, none can deny); `VFolderHostNotAllowed` naming `what` when none
    does (`groups_named`: which groups were weighed, as the refusal says; `field`: the
    input that asked for the host). Creating a
    vfolder needs `create-vfolder`, mounting one `mount-in-session`."""
    found = [level.to_json() for level in levels if permission in level.hosts.get(host, frozenset())]
    if not found:
        raise VFolderHostNotAllowed(
            f"{what}: on host {host!r}, neither the domain, {groups_named} nor the effective policy "
            f"grants {permission.value!r}",
            host=host,
            permission=permission.value,
            field=field,
        )
    return found


def mount_grant(
    what: str, vfolder_id: str, host: str, levels: Sequence[HostGrant], groups_named: str
) -> dict[str, Any]:
    """A mount as the enqueue records it: the levels granting `mount-in-session` on the
    mounted vfolder's `host` (`granted_by`, every one that grants: `granting`)."""
    permission = VFolderHostPermission.MOUNT_IN_SESSION
    granted_by = granting(what, host, permission, levels, groups_named, field="mounts")
    return {"vfolder_id": vfolder_id, "host": host, "permission": permission.value, "granted_by": granted_by}


def _slot_checks(
    limit: str,
    scope: Scope,
    scope_id: str,
    requested: ResourceSlot,
    used: Mapping[str, Decimal],
    allowed_for: Mapping[str, Decimal] | None,
    policy: EffectivePolicy | None = None,
) -> list[AdmissionCheck]:
    checks = []
    for slot in sorted(set(requested) | set(used)):
        want, held = requested.get(slot, ZERO), used.get(slot, ZERO)
        if not want and not held:
            continue
        allowed = policy.slot_limit(slot) if policy is not None else (allowed_for or {}).get(slot, INFINITY)
        checks.append(AdmissionCheck(limit, scope, scope_id, slot, want, held, allowed))
    return checks


def admission_checks(
    policy: EffectivePolicy,
    access_key: str,
    requested: ResourceSlot,
    *,
    keypair_running: int,
    keypair_used: Mapping[str, Decimal],
    user: tuple[str, Mapping[str, Decimal]] | None = None,
    group_id: str,
    group_limits: Mapping[str, Decimal],
    group_used: Mapping[str, Decimal],
    domain_name: str,
    domain_limits: Mapping[str, Decimal] | None,
    domain_used: Mapping[str, Decimal],
) -> list[AdmissionCheck]:
    """Every limit the start gate weighs, passed or not (the admission event keeps them
    all; the failed ones are the reasons). `user`: the keypair's user and what all their
    sessions hold (None: a keypair without a user); weighed when it differs from what the
    keypair holds (the user's other keypairs hold sessions). `domain_limits` None: no domain entity
    (a ledger from before domains), so no domain limit."""
    cap = policy.policy.max_concurrent_sessions
    checks = [
        AdmissionCheck(
            "max_concurrent_sessions",
            Scope.KEYPAIR,
            access_key,
            None,
            ONE,
            Decimal(keypair_running),
            INFINITY if cap <= 0 else Decimal(cap),
        )
    ]
    checks += _slot_checks("total_resource_slots", Scope.KEYPAIR, access_key, requested, keypair_used, None, policy)
    # Under one keypair the user's sessions are the keypair's: the same check, left out.
    if user is not None and dict(user[1]) != dict(keypair_used):
        checks += _slot_checks("total_resource_slots", Scope.USER, user[0], requested, user[1], None, policy)
    checks += _slot_checks("total_resource_slots", Scope.GROUP, group_id, requested, group_used, group_limits)
    checks += _slot_checks("total_resource_slots", Scope.DOMAIN, domain_name, requested, domain_used, domain_limits)
    return checks
