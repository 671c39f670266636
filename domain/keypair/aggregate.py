"""The keypair aggregate: an access key bound to a user, a domain and, optionally, a policy.

Events: Created, Recreated, Modified, Deleted (from `Entity`). The policy a keypair
names, if any, is always live: every change here is saved together with the matching
KeyPairAssigned / KeyPairUnassigned event on the policy's stream, and with
KeyPairAdded / KeyPairRemoved on its owner's (`User`) stream.
"""

from __future__ import annotations

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateAccessKey, LedgerError


class KeyPair(Entity):
    ENTITY_TYPE = EntityType.KEYPAIR

    @property
    def access_key(self) -> str:
        return self.key

    @property
    def resource_policy(self) -> str | None:
        """The policy assigned to this keypair (None: none, the precedence decides)."""
        policy: str | None = self.fields.get("resource_policy")
        return policy

    def duplicate(self) -> LedgerError:
        return DuplicateAccessKey(f"keypair {self.key!r} already exists")
