"""The keypair aggregate: an access key bound to a user, a domain and, optionally, a policy.

Events: Created, Recreated, Modified, Deleted (from `Entity`). The policy a keypair
names, if any, is always live: every change here is saved together with the matching
KeyPairAssigned / KeyPairUnassigned event on the policy's stream, and with
KeyPairAdded / KeyPairRemoved on its owner's (`User`) stream.

The delete records the keypair's effective policy then (`deleted_under`): its admitted
sessions run on under it (`domain.effective_policy.resolve_for_deleted`), whatever
becomes of the levels that named it once nothing live names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DuplicateAccessKey, LedgerError


class KeyPair(Entity):
    ENTITY_TYPE = EntityType.KEYPAIR

    class Deleted(Entity.Deleted):
        """`under`: the reference (`EffectivePolicy.ref_json`) of the keypair's effective
        policy at its delete; None in deletes recorded before it was kept."""

        under: dict[str, Any] | None = None

        def apply(self, aggregate: Entity) -> None:
            assert isinstance(aggregate, KeyPair)
            aggregate.is_deleted = True
            aggregate.deleted_under = self.under

    # Version 2 added `deleted_under`: a version 1 snapshot's delete recorded no policy.
    class_version = 2

    def __init__(self) -> None:
        super().__init__()
        self.deleted_under: Mapping[str, Any] | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["deleted_under"] = None

    def delete_under(self, under: Mapping[str, Any] | None) -> None:
        """Deletes the keypair, recording the policy its admitted sessions run on under."""
        self.require_live()
        self.check_deletable()
        self.trigger_event(self.Deleted, under=None if under is None else dict(under))

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
