"""The keypair aggregate: an access key bound to a user, a domain and a policy.

Events: Created, Recreated, Modified, Deleted (from `Entity`). The policy a keypair
names is always live: every change here is saved together with the matching
KeyPairAssigned / KeyPairUnassigned event on the policy's stream.
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
    def resource_policy(self) -> str:
        policy: str = self.fields["resource_policy"]
        return policy

    def duplicate(self) -> LedgerError:
        return DuplicateAccessKey(f"keypair {self.key!r} already exists")
