"""The user aggregate.

Events: Created, Recreated, Modified, Deleted (from `Entity`), KeyPairAdded,
KeyPairRemoved, GroupJoined, GroupLeft and Erased.

A user's stream id is derived from its UUID under the user kind (not the UUID itself),
so a user id can never name another kind's stream. Each user is also recorded on its
domain's stream in the same append (`Domain.UserAdded`), so a domain with users cannot
be deleted. Once keypairs are wired, each keypair is recorded here the same way, so a
user who still owns keypairs cannot be deleted. Group memberships are recorded here too,
in the same append as the group's MembersAdded / MembersRemoved, so adding a member and
deleting that user conflict in the store; a user's delete leaves every group it is in
(as Backend.AI drops the association rows), and a group's purge releases its members.

An erasure (issue 14, docs/ERASURE.md) destroys the key sealing the user's personal
values: the user stays (its keypairs, groups and kernels keep their history), its email
and full name read `[erased]`. It may still be modified afterwards: a new email is
sealed under a new key of the same subject, which a later erasure destroys in turn. A
deleted user may be erased too (its history still holds its values).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateUser, LedgerError, UserInUse
from domain.personal import declare, erased_fields, erases, personal
from domain.shown import plural, some


class User(Entity):
    ENTITY_TYPE = EntityType.USER

    class KeyPairAdded(Entity.Event):
        access_key: str

        def apply(self, aggregate: User) -> None:
            aggregate.keypairs[self.access_key] = True

    class KeyPairRemoved(Entity.Event):
        access_key: str

        def apply(self, aggregate: User) -> None:
            aggregate.keypairs.pop(self.access_key, None)

    class GroupJoined(Entity.Event):
        group_id: str

        def apply(self, aggregate: User) -> None:
            aggregate.groups[self.group_id] = True

    class GroupLeft(Entity.Event):
        group_id: str

        def apply(self, aggregate: User) -> None:
            aggregate.groups.pop(self.group_id, None)

    class Erased(Entity.Event):
        """The user's personal values were erased (their key destroyed in this event's
        own append). `reason` and `requested_by` say why and who asked, for good: the
        reason is kept in clear, so it must not hold personal values itself.
        `accept_clear_history`: the operator accepted that `clear_values` values stored
        in clear before sealing existed stay readable in the user's stream."""

        key: str
        reason: str
        requested_by: str | None
        accept_clear_history: bool
        clear_values: int

        def apply(self, aggregate: User) -> None:
            # What a replay reads once the key is gone, so the saved copy agrees with it.
            aggregate.fields = erased_fields(aggregate.fields, USER_FIELDS_PERSONAL)
            aggregate.changed_at = self.timestamp

    # Version 2 added `groups`; a snapshot taken by version 1 is upcast on load.
    class_version = 2

    def __init__(self) -> None:
        super().__init__()
        self.keypairs: dict[str, bool] = {}
        self.groups: dict[str, bool] = {}  # the groups this user is a member of

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version-1 snapshot predates memberships on the user: none were recorded then."""
        state["groups"] = {}

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.key)

    @property
    def domain_name(self) -> str:
        name: str = self.fields["domain_name"]
        return name

    @property
    def default_policy(self) -> str | None:
        policy: str | None = self.fields.get("default_keypair_resource_policy")
        return policy

    def add_keypair(self, access_key: str) -> None:
        self.require_live()
        if access_key not in self.keypairs:
            self.trigger_event(self.KeyPairAdded, access_key=access_key)

    def remove_keypair(self, access_key: str) -> None:
        # No liveness check: a keypair must always be able to let go of its owner.
        if access_key in self.keypairs:
            self.trigger_event(self.KeyPairRemoved, access_key=access_key)

    def join_group(self, group_id: str) -> None:
        self.require_live()
        if group_id not in self.groups:
            self.trigger_event(self.GroupJoined, group_id=group_id)

    def leave_group(self, group_id: str) -> None:
        # No liveness check: a group must always be able to let go of its members.
        if group_id in self.groups:
            self.trigger_event(self.GroupLeft, group_id=group_id)

    def erase(self, reason: str, requested_by: str | None, accept_clear_history: bool, clear_values: int) -> None:
        """Erase the user's personal values (live or deleted: the history holds them either
        way). The caller has checked the stream for values stored in clear."""
        self.trigger_event(
            self.Erased,
            key=self.key,
            reason=reason,
            requested_by=requested_by,
            accept_clear_history=accept_clear_history,
            clear_values=clear_values,
        )

    def check_deletable(self) -> None:
        if self.keypairs:
            raise UserInUse(
                f"user {self.key} still owns {plural(len(self.keypairs), 'keypair')}: {some(self.keypairs)}"
            )

    def duplicate(self) -> LedgerError:
        return DuplicateUser(f"user {self.key} already exists")


# Personal values (issue 14, docs/ERASURE.md): a user's email and full name, sealed with
# the user's own key. Every event that can carry them names the user (`key`); a Recreated
# or Modified stored before events carried it has no subject (nothing to seal: sealing
# happens only when an event is stored).
USER_FIELDS_PERSONAL = ("email", "full_name")


def user_subject(state: Mapping[str, Any]) -> str | None:
    """`user:<uuid>` from the event's `key` (the user's UUID)."""
    key = state.get("key")
    return None if key is None else f"user:{key}"


declare(User.Created, personal(*(f"fields.{f}" for f in USER_FIELDS_PERSONAL), subject=user_subject))
declare(User.Recreated, personal(*(f"fields.{f}" for f in USER_FIELDS_PERSONAL), subject=user_subject))
declare(
    User.Modified,
    personal(*(f"changes.{f}.{side}" for f in USER_FIELDS_PERSONAL for side in ("old", "new")), subject=user_subject),
)
erases(User.Erased, user_subject)
