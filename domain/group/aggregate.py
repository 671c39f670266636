"""The group (project) aggregate and the index that keeps names unique per domain.

Group events: Created, Modified (from `Entity`), MembersAdded, MembersRemoved, Deleted
(soft: inactive, integration id cleared), Purged; and the workload facts its purge
checks need, recorded on its stream so that a purge and a new kernel or endpoint in
the group conflict in the store: VFolderAdded, KernelStarted, KernelEnded,
EndpointCreated, EndpointDestroyed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity, FieldChanges, diff_fields, stream_id
from domain.errors import (
    DuplicateGroupName,
    GroupNotActive,
    GroupNotFound,
    LedgerError,
    PurgeGroupActionActiveEndpointsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
)
from domain.personal import ERASED, declare, erases, personal
from domain.sharedmap import shared
from domain.shown import plural, shown_key, some
from domain.values import UserUpdateMode


class Group(Entity):
    ENTITY_TYPE = EntityType.GROUP

    # `key` on the events below: the group's id, so that each names the subject of its
    # personal values or the subject it erases (domain.personal); None in events stored
    # before it was added.
    class MembersAdded(Entity.Event):
        user_ids: list[str]
        key: str | None = None

        def apply(self, aggregate: Group) -> None:
            known = set(aggregate.members)
            for user_id in self.user_ids:
                # Erased members (a purged group's) all read alike: each still counts.
                if user_id not in known or user_id == ERASED:
                    known.add(user_id)
                    aggregate.members.append(user_id)

    class MembersRemoved(Entity.Event):
        user_ids: list[str]
        key: str | None = None

        def apply(self, aggregate: Group) -> None:
            gone = set(self.user_ids) - {ERASED}
            erased = self.user_ids.count(ERASED)  # each takes one erased member, whichever
            kept = []
            for user_id in aggregate.members:
                if user_id == ERASED and erased:
                    erased -= 1
                elif user_id not in gone:
                    kept.append(user_id)
            aggregate.members[:] = kept

    class Deleted(Entity.Deleted):
        """Soft delete: the group stays, inactive, with its integration id cleared."""

        changes: FieldChanges
        key: str | None = None

        def apply(self, aggregate: Entity) -> None:
            for field, change in self.changes.items():
                aggregate.fields[field] = change["new"]
            aggregate.changed_at = self.timestamp

    class Purged(Entity.Event):
        """Hard delete: the group is gone from every lookup; its name is free. Its key is
        destroyed with it (issue 14); `clear_values`: values stored in clear by an older
        release that outlive that, which the operator accepted (`accept_clear_history`)."""

        key: str | None = None
        accept_clear_history: bool = False
        clear_values: int = 0

        def apply(self, aggregate: Group) -> None:
            aggregate.is_deleted = True

    class VFolderAdded(Entity.Event):
        vfolder_id: str

        def apply(self, aggregate: Group) -> None:
            aggregate.vfolders = shared(aggregate.vfolders).set(self.vfolder_id, True)

    class KernelStarted(Entity.Event):
        kernel_id: str
        mounts: list[str]

        def apply(self, aggregate: Group) -> None:
            aggregate.kernels = shared(aggregate.kernels).set(self.kernel_id, list(self.mounts))

    class KernelEnded(Entity.Event):
        kernel_id: str

        def apply(self, aggregate: Group) -> None:
            aggregate.kernels = shared(aggregate.kernels).without(self.kernel_id)

    class EndpointCreated(Entity.Event):
        endpoint_id: str

        def apply(self, aggregate: Group) -> None:
            aggregate.endpoints = shared(aggregate.endpoints).set(self.endpoint_id, True)

    class EndpointDestroyed(Entity.Event):
        endpoint_id: str

        def apply(self, aggregate: Group) -> None:
            aggregate.endpoints = shared(aggregate.endpoints).without(self.endpoint_id)

    def __init__(self) -> None:
        super().__init__()
        # A list, not a dict: its snapshot seals each member id (a path reaches list
        # items, never mapping keys); version 2 of the class, snapshots upcast below.
        self.members: list[str] = []
        self.vfolders: Mapping[str, bool] = {}
        self.kernels: Mapping[str, list[str]] = {}  # active kernel -> mounted vfolder ids
        self.endpoints: Mapping[str, bool] = {}

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken when members were a dict of id -> True."""
        state["members"] = list(state.get("members") or ())

    @classmethod
    def id_for(cls, key: str) -> uuid.UUID:
        return uuid.UUID(key)  # a group's id is its own

    @property
    def group_id(self) -> uuid.UUID:
        return self.id

    @property
    def name_key(self) -> tuple[str, str]:
        return self.fields["domain_name"], self.fields["name"]

    def update_members(self, mode: UserUpdateMode, user_ids: list[str]) -> tuple[list[str], list[str]]:
        """Only real changes become events. Returns the members removed and added, which
        the service records on the users' streams."""
        wanted = dict.fromkeys(user_ids, True)
        members = set(self.members)
        if mode is UserUpdateMode.REPLACE:
            removed = [u for u in self.members if u not in wanted]
            added = [u for u in wanted if u not in members]
        elif mode is UserUpdateMode.ADD:
            removed, added = [], [u for u in wanted if u not in members]
        else:
            removed, added = [u for u in wanted if u in members], []
        if removed:
            self.trigger_event(self.MembersRemoved, user_ids=removed, key=self.key)
        if added:
            self.trigger_event(self.MembersAdded, user_ids=added, key=self.key)
        return removed, added

    def delete(self) -> None:
        self.require_live()
        changes = diff_fields(self.fields, {"is_active": False, "integration_id": None})
        if changes:
            self.trigger_event(self.Deleted, changes=changes, key=self.key)

    def purge(self, **erasure: Any) -> None:
        self.check_purgeable()
        self.trigger_event(self.Purged, key=self.key, **erasure)

    def check_purgeable(self, admitted: Mapping[str, Iterable[str]] | None = None) -> None:
        """The checks of REFERENCE.md, in order, on state that conflicts with new workload
        (a purge runs them before it reads the ledger for values stored in clear).
        `admitted`: the group's admitted sessions (id -> mounted vfolder ids), read by the
        caller from the group's usage. Each occupies its slots as a scheduled kernel does,
        so it is weighed where an active kernel is: its mounts in the first check, itself
        in the second (before the endpoints)."""
        self.require_live()
        admitted = admitted or {}
        by_kernels = {m for mounts in self.kernels.values() for m in mounts if m in self.vfolders}
        by_sessions = {m for mounts in admitted.values() for m in mounts if m in self.vfolders}
        if by_kernels or by_sessions:
            holders = "active kernels" + (" or admitted sessions" if by_sessions else "")
            raise PurgeGroupActionVFoldersMountedToActiveKernelsError(
                f"group {self.key} has vfolders mounted to {holders}: {', '.join(sorted(by_kernels | by_sessions))}"
            )
        if self.kernels:
            raise PurgeGroupActionActiveKernelsError(
                f"group {self.key} has {plural(len(self.kernels), 'active kernel')}: {some(self.kernels)}"
            )
        if admitted:
            raise PurgeGroupActionActiveKernelsError(
                f"group {self.key} has {plural(len(admitted), 'admitted session')} still running "
                f"(terminate them first): {some(admitted)}"
            )
        if self.endpoints:
            raise PurgeGroupActionActiveEndpointsError(
                f"group {self.key} has {plural(len(self.endpoints), 'active endpoint')}: {some(self.endpoints)}"
            )

    def require_active(self) -> None:
        self.require_live()
        if not self.fields.get("is_active", True):
            raise GroupNotActive(f"group {self.key} is inactive (soft-deleted)")

    def add_vfolder(self, vfolder_id: str) -> None:
        self.require_active()
        self.trigger_event(self.VFolderAdded, vfolder_id=vfolder_id)

    def start_kernel(self, kernel_id: str, mounts: list[str]) -> None:
        self.require_active()
        self.trigger_event(self.KernelStarted, kernel_id=kernel_id, mounts=mounts)

    def end_kernel(self, kernel_id: str) -> None:
        if kernel_id in self.kernels:
            self.trigger_event(self.KernelEnded, kernel_id=kernel_id)

    def create_endpoint(self, endpoint_id: str) -> None:
        self.require_active()
        self.trigger_event(self.EndpointCreated, endpoint_id=endpoint_id)

    def destroy_endpoint(self, endpoint_id: str) -> None:
        if endpoint_id in self.endpoints:
            self.trigger_event(self.EndpointDestroyed, endpoint_id=endpoint_id)

    def duplicate(self) -> LedgerError:
        return DuplicateGroupName(f"group {self.key} already exists", field="group_id")

    @classmethod
    def missing(cls, key: str) -> LedgerError:
        return group_not_found(key)


# Personal values (issue 14, docs/ERASURE.md), sealed with the group's key: its
# description, integration id, dotfiles (base64 in events), container registry (sealed
# whole) and member user ids. Each event carrying them names the group (`key`); one stored
# before events carried it has no subject (nothing to seal: sealing happens only when an
# event is stored). A purge erases the group's key.
GROUP_FIELDS_PERSONAL = ("description", "integration_id", "dotfiles", "container_registry")


def group_subject(state: Mapping[str, Any]) -> str | None:
    """`group:<uuid>` from the event's `key` (a group's key is its id)."""
    key = state.get("key")
    return None if key is None else f"group:{key}"


_GROUP_FIELDS = personal(*(f"fields.{f}" for f in GROUP_FIELDS_PERSONAL), subject=group_subject)
_GROUP_CHANGES = personal(
    *(f"changes.{f}.{side}" for f in GROUP_FIELDS_PERSONAL for side in ("old", "new")), subject=group_subject
)
_GROUP_MEMBERS = personal("user_ids[*]", subject=group_subject)
declare(Group.Created, _GROUP_FIELDS)
declare(Group.Recreated, _GROUP_FIELDS)
declare(Group.Modified, _GROUP_CHANGES)
declare(Group.Deleted, _GROUP_CHANGES)  # clears the integration id: its old value is personal
declare(Group.MembersAdded, _GROUP_MEMBERS)
declare(Group.MembersRemoved, _GROUP_MEMBERS)
erases(Group.Purged, group_subject)


def group_not_found(group_id: object) -> GroupNotFound:
    return GroupNotFound(
        f"group {shown_key(str(group_id))} not found", entity_type=EntityType.GROUP, entity_id=str(group_id)
    )


class GroupNameIndex(Entity):
    """Who holds a group name in a domain. Saved with the group, so names are unique."""

    ENTITY_TYPE = EntityType.GROUP_NAME

    class Claimed(Entity.Event):
        group_id: str

        def apply(self, aggregate: GroupNameIndex) -> None:
            aggregate.holder = self.group_id

    class Released(Entity.Event):
        group_id: str

        def apply(self, aggregate: GroupNameIndex) -> None:
            aggregate.holder = None

    def __init__(self) -> None:
        super().__init__()
        self.holder: str | None = None

    @staticmethod
    def key_for(domain_name: str, name: str) -> str:
        return f"{domain_name}/{name}"

    @classmethod
    def open(cls, domain_name: str, name: str) -> GroupNameIndex:
        key = cls.key_for(domain_name, name)
        return cls.create(key, {"domain_name": domain_name, "name": name})

    def claim(self, group_id: str) -> None:
        if self.holder not in (None, group_id):
            raise self.taken()
        if self.holder is None:
            self.trigger_event(self.Claimed, group_id=group_id)

    def taken(self) -> DuplicateGroupName:
        domain_name, name = self.fields["domain_name"], self.fields["name"]
        return DuplicateGroupName(f"group name {name!r} is taken in domain {domain_name!r} by {self.holder}")

    def release(self, group_id: str) -> None:
        if self.holder == group_id:
            self.trigger_event(self.Released, group_id=group_id)


def name_index_id(domain_name: str, name: str) -> uuid.UUID:
    return stream_id(GroupNameIndex.ENTITY_TYPE, GroupNameIndex.key_for(domain_name, name))
