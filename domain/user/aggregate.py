"""The user aggregate.

Events: Created, Recreated, Modified, Deleted (from `Entity`), KeyPairAdded and
KeyPairRemoved.

A user's stream id is derived from its UUID under the user kind (not the UUID itself),
so a user id can never name another kind's stream. Each user is also recorded on its
domain's stream in the same append (`Domain.UserAdded`), so a domain with users cannot
be deleted. Once keypairs are wired, each keypair is recorded here the same way, so a
user who still owns keypairs cannot be deleted.
"""

from __future__ import annotations

import uuid

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateUser, LedgerError, UserInUse
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

    def __init__(self) -> None:
        super().__init__()
        self.keypairs: dict[str, bool] = {}

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

    def check_deletable(self) -> None:
        if self.keypairs:
            raise UserInUse(
                f"user {self.key} still owns {plural(len(self.keypairs), 'keypair')}: {some(self.keypairs)}"
            )

    def duplicate(self) -> LedgerError:
        return DuplicateUser(f"user {self.key} already exists")
