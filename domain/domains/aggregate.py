"""The domain aggregate.

Events: Created, Recreated, Modified, Deleted (from `Entity`), UserAdded, UserRemoved,
GroupAdded and GroupRemoved.

A domain's stream id is derived from its name, so the stream is its own name index (a
second create conflicts in the store; a deleted name can be taken again and the stream
continues). The users (and, once groups are wired, the groups) of a domain are recorded
on its stream, in the same append as the user's own event, so deleting a domain conflicts
in the store with a new user in it: "domain not empty" cannot race.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DomainNotActive, DomainNotEmpty, DuplicateDomainName, LedgerError, PolicyNotAllowedInDomain
from domain.sharedmap import shared
from domain.shown import plural, shown, some


class Domain(Entity):
    ENTITY_TYPE = EntityType.DOMAIN

    class UserAdded(Entity.Event):
        user_id: str

        def apply(self, aggregate: Domain) -> None:
            aggregate.users = shared(aggregate.users).set(self.user_id, True)

    class UserRemoved(Entity.Event):
        user_id: str

        def apply(self, aggregate: Domain) -> None:
            aggregate.users = shared(aggregate.users).without(self.user_id)

    class GroupAdded(Entity.Event):
        group_id: str

        def apply(self, aggregate: Domain) -> None:
            aggregate.groups = shared(aggregate.groups).set(self.group_id, True)

    class GroupRemoved(Entity.Event):
        group_id: str

        def apply(self, aggregate: Domain) -> None:
            aggregate.groups = shared(aggregate.groups).without(self.group_id)

    def __init__(self) -> None:
        super().__init__()
        self.users: Mapping[str, bool] = {}
        self.groups: Mapping[str, bool] = {}

    @property
    def name(self) -> str:
        return self.key

    @property
    def is_active(self) -> bool:
        return bool(self.fields.get("is_active", True))

    @property
    def default_policy(self) -> str | None:
        policy: str | None = self.fields.get("default_keypair_resource_policy")
        return policy

    def require_active(self) -> None:
        self.require_live()
        if not self.is_active:
            raise DomainNotActive(f"domain {self.key!r} is inactive: it takes no new users")

    def add_user(self, user_id: str) -> None:
        self.require_active()
        if user_id not in self.users:
            self.trigger_event(self.UserAdded, user_id=user_id)

    def remove_user(self, user_id: str) -> None:
        # No liveness check: a user must always be able to leave.
        if user_id in self.users:
            self.trigger_event(self.UserRemoved, user_id=user_id)

    def add_group(self, group_id: str) -> None:
        self.require_live()
        if group_id not in self.groups:
            self.trigger_event(self.GroupAdded, group_id=group_id)

    def remove_group(self, group_id: str) -> None:
        if group_id in self.groups:
            self.trigger_event(self.GroupRemoved, group_id=group_id)

    def require_allows_policy(self, policy: str, field: str) -> None:
        """What an admin assigns must be on the list a superadmin set (None: any)."""
        allowed: list[str] | None = self.fields.get("allowed_keypair_resource_policies")
        if allowed is not None and policy not in allowed:
            more = f" and {len(allowed) - 3} more" if len(allowed) > 3 else ""
            listed = ", ".join(shown(a) for a in allowed[:3]) + more
            raise PolicyNotAllowedInDomain(
                f"keypair resource policy {shown(policy)} is not allowed in domain {self.key!r}"
                f" (allowed: {listed or 'none'})",
                field=field,
            )

    def check_deletable(self) -> None:
        if self.users:
            raise DomainNotEmpty(f"domain {self.key!r} still has {plural(len(self.users), 'user')}: {some(self.users)}")
        if self.groups:
            raise DomainNotEmpty(
                f"domain {self.key!r} still has {plural(len(self.groups), 'group')}: {some(self.groups)}"
            )

    def duplicate(self) -> LedgerError:
        return DuplicateDomainName(f"domain {self.key!r} already exists")
