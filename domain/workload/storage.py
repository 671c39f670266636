"""Storage limits on creating a vfolder for an owner (issue 12 item 5).

A `CreateVFolderAction` with `owner_access_key` is a decision, on a vfolder of the owner's
user: the host must grant `create-vfolder` in the union of the domain's, the groups' (the
vfolder's and every other group of the user: `user_groups`) and the owner's effective
policy's `allowed_vfolder_hosts` (any level can grant, none can deny, as in Backend.AI),
and the owner's vfolders stay within `max_vfolder_count` of that policy (0 or null is
unlimited). Without an owner the action is a fact the platform reports (an imported
history): recorded as before, checked against nothing, counted nowhere.

Race-free as the session gates are: the owner's vfolders are a SET on one stream
(`VFolderUsage`, key `vfolders:AK`), appended to in the same save as the vfolder, so two
creations that both read room for one conflict in the store and the loser decides
again on the winner's count. A group's purge removes its vfolders, so it takes them out
of their owners' sets in its own append (else they would count forever).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from domain.catalog import EntityType
from domain.domains.aggregate import Domain
from domain.effective_policy import EffectivePolicy, live_entity, resolve_for_keypair
from domain.entity import Entity, stream_id
from domain.errors import InvalidAPIParameters, QuotaExceeded
from domain.group.aggregate import Group
from domain.hosts import VFolderHostPermission
from domain.keypair.aggregate import KeyPair
from domain.ports import UnitOfWork, load_live
from domain.session.admission import HostGrant, granting
from domain.session.types import Scope
from domain.sharedmap import shared
from domain.user.aggregate import User
from domain.workload.aggregate import VFolder

MAX_VFOLDER_COUNT = "max_vfolder_count"


class VFolderUsage(Entity):
    """The vfolders an owner (a keypair) created under the storage limits: a set, never a
    counter. Shares the usage kind of the session scopes (its key, `vfolders:AK`, never
    names a session scope's stream)."""

    ENTITY_TYPE = EntityType.SESSION_USAGE

    class Added(Entity.Event):
        vfolder_id: str

        def apply(self, aggregate: VFolderUsage) -> None:
            aggregate.vfolders = shared(aggregate.vfolders).set(self.vfolder_id, True)

    class Retired(Entity.Event):
        """Its keypair was created again, a new incarnation: the deleted keypair's vfolders
        stay, but count no more against the new keypair's `max_vfolder_count`."""

        def apply(self, aggregate: VFolderUsage) -> None:
            aggregate.vfolders = {}

    class Removed(Entity.Event):
        """Its group was purged: the vfolder is gone and counts no more."""

        vfolder_id: str

        def apply(self, aggregate: VFolderUsage) -> None:
            aggregate.vfolders = shared(aggregate.vfolders).without(self.vfolder_id)

    def __init__(self) -> None:
        super().__init__()
        self.vfolders: Mapping[str, bool] = {}

    @staticmethod
    def key_for(access_key: str) -> str:
        return f"vfolders:{access_key}"

    @classmethod
    def open(cls, access_key: str) -> VFolderUsage:
        return cls.create(cls.key_for(access_key), {"scope": "keypair", "scope_id": access_key, "counts": "vfolders"})

    def add(self, vfolder_id: str) -> None:
        if vfolder_id not in self.vfolders:
            self.trigger_event(self.Added, vfolder_id=vfolder_id)

    def retire(self) -> None:
        if self.vfolders:
            self.trigger_event(self.Retired)

    def remove(self, vfolder_id: str) -> None:
        if vfolder_id in self.vfolders:
            self.trigger_event(self.Removed, vfolder_id=vfolder_id)


def retire_keypair_vfolders(work: UnitOfWork, access_key: str) -> None:
    """The deleted keypair's vfolders count no more for the keypair created again under
    its access key (a new incarnation), in the creation's own append."""
    usage = work.get(vfolder_usage_id(access_key), VFolderUsage)
    if usage is not None:
        usage.retire()


def vfolder_usage_id(access_key: str) -> uuid.UUID:
    return stream_id(VFolderUsage.ENTITY_TYPE, VFolderUsage.key_for(access_key))


USER_GROUPS = "any group of the user"  # the groups a user's vfolder is weighed against, as a refusal says


def user_groups(work: UnitOfWork, keypair: KeyPair, first: Group) -> list[Group]:
    """The groups whose grants reach the keypair's user's own vfolders (REFERENCE: storage,
    every group of the user): `first` (the group the vfolder is created or the session
    runs in) and every live, active group the user is a member of. Read, not appended
    to, as the limits are: a membership change racing the decision is ordered after it."""
    groups = {first.key: first}
    user_id = keypair.fields.get("user_id")
    user = live_entity(work, User, User.id_for(str(user_id))) if user_id is not None else None
    for group_id in sorted(user.groups if user is not None else ()):
        group = live_entity(work, Group, Group.id_for(group_id))
        if group is not None and group.fields.get("is_active", True):
            groups.setdefault(group.key, group)
    return list(groups.values())


def admit_vfolder(work: UnitOfWork, owner: str, group: Group, vfolder_id: str, name: str, host: str) -> None:
    """Checks the host grant and the owner's count (raising `VFolderHostNotAllowed` or
    `QuotaExceeded`), then adds the vfolder to the owner's set in `work`."""
    keypair = load_live(work, KeyPair, owner, field="owner_access_key")
    if keypair.fields["domain_name"] != group.fields["domain_name"]:
        raise InvalidAPIParameters(
            f"keypair {owner} is in domain {keypair.fields['domain_name']!r}, the vfolder's group "
            f"{group.key} in {group.fields['domain_name']!r}",
            field="owner_access_key",
        )
    policy: EffectivePolicy = resolve_for_keypair(work, keypair)
    domain_name = group.fields["domain_name"]
    domain = live_entity(work, Domain, Domain.id_for(domain_name))
    levels = [
        HostGrant.of(Scope.DOMAIN, domain_name, domain.fields if domain is not None else {}),
        *(HostGrant.of(Scope.GROUP, g.key, g.fields) for g in user_groups(work, keypair, group)),
        HostGrant(Scope.KEYPAIR, owner, policy.policy.allowed_vfolder_hosts, policy.name),
    ]
    granting(f"vfolder {name!r} of {owner}", host, VFolderHostPermission.CREATE, levels, USER_GROUPS, field="host")
    found = work.get(vfolder_usage_id(owner), VFolderUsage)
    usage = work.add(found if found is not None else VFolderUsage.open(owner))
    cap = policy.policy.max_vfolder_count
    if cap and cap > 0 and vfolder_id not in usage.vfolders and len(usage.vfolders) + 1 > cap:
        raise QuotaExceeded(
            f"keypair {owner}: {MAX_VFOLDER_COUNT} of {policy.label()}: {len(usage.vfolders)} owned + 1 > {cap}",
            limit=MAX_VFOLDER_COUNT,
            scope="keypair",
            scope_id=owner,
        )
    usage.add(vfolder_id)


def release_group_vfolders(work: UnitOfWork, group: Group) -> None:
    """Takes the purged group's vfolders out of their owners' sets, in `work`."""
    for vfolder_id in sorted(group.vfolders):
        vfolder = work.get(VFolder.id_for(vfolder_id), VFolder)
        owner = vfolder.fields.get("owner_access_key") if vfolder is not None else None
        usage = work.get(vfolder_usage_id(owner), VFolderUsage) if owner is not None else None
        if usage is not None:
            work.add(usage).remove(vfolder_id)
