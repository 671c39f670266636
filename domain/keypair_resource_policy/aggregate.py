"""The keypair resource policy aggregate.

Events: Created, Recreated, Modified, Deleted (from `Entity`), KeyPairAssigned,
KeyPairUnassigned, FallbackReferenced, FallbackReleased, DefaultReferenced and
DefaultReleased.

A policy's stream id is derived from its name, so the stream is its own name index:
creating version 1 twice conflicts in the store, deleting releases the name, and a
policy created again continues the same stream, so every incarnation stays in one
history. Keypair assignments and fallback links are recorded on the policy they point
at, so deleting a policy conflicts in the store with a new use of it: "policy in use"
cannot race, and neither can two policies linking to each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import (
    CircularPolicyReference,
    DuplicatePolicyName,
    InvalidAPIParameters,
    LedgerError,
    PolicyInUse,
    SystemPolicyNotDeletable,
)
from domain.sharedmap import shared
from domain.shown import plural, some

SYSTEM_POLICY = "default"


class KeyPairResourcePolicy(Entity):
    ENTITY_TYPE = EntityType.KEYPAIR_RESOURCE_POLICY

    class KeyPairAssigned(Entity.Event):
        """A keypair now uses this policy."""

        access_key: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.keypairs = shared(aggregate.keypairs).set(self.access_key, True)

    class KeyPairUnassigned(Entity.Event):
        """A keypair no longer uses this policy."""

        access_key: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.keypairs = shared(aggregate.keypairs).without(self.access_key)

    class FallbackReferenced(Entity.Event):
        """Another policy now falls back to this one."""

        by: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.fallback_of = shared(aggregate.fallback_of).set(self.by, True)

    class FallbackReleased(Entity.Event):
        """Another policy no longer falls back to this one."""

        by: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.fallback_of = shared(aggregate.fallback_of).without(self.by)

    class DefaultReferenced(Entity.Event):
        """A domain or a user now names this policy as its default (`by`: `domain:NAME`
        or `user:UUID`)."""

        by: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.default_of = shared(aggregate.default_of).set(self.by, True)

    class DefaultReleased(Entity.Event):
        """A domain or a user no longer names this policy as its default."""

        by: str

        def apply(self, aggregate: KeyPairResourcePolicy) -> None:
            aggregate.default_of = shared(aggregate.default_of).without(self.by)

    # Version 2 added `default_of`; a snapshot taken by version 1 is upcast on load.
    class_version = 2

    def __init__(self) -> None:
        super().__init__()
        self.keypairs: Mapping[str, bool] = {}
        self.fallback_of: Mapping[str, bool] = {}
        self.default_of: Mapping[str, bool] = {}

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version-1 snapshot predates default references: none were recorded then."""
        state["default_of"] = {}

    @property
    def fallback(self) -> str | None:
        fallback: str | None = self.fields.get("fallback_policy")
        return fallback

    @property
    def name(self) -> str:
        return self.key

    def assign(self, access_key: str) -> None:
        self.require_live()
        if access_key not in self.keypairs:
            self.trigger_event(self.KeyPairAssigned, access_key=access_key)

    def unassign(self, access_key: str) -> None:
        # No liveness check: a keypair must always be able to let go of its policy.
        if access_key in self.keypairs:
            self.trigger_event(self.KeyPairUnassigned, access_key=access_key)

    def become_fallback_of(self, name: str) -> None:
        """Both policies are written in one save, so two opposite links race into a conflict."""
        self.require_live()
        if self.fallback == name:
            raise CircularPolicyReference(
                f"{name!r} -> {self.key!r} -> {name!r}: policies would fall back to each other"
            )
        if self.fallback is not None:
            raise InvalidAPIParameters(
                f"{self.key!r} itself falls back to {self.fallback!r}; fallbacks do not chain", field="fallback_policy"
            )
        if name not in self.fallback_of:
            self.trigger_event(self.FallbackReferenced, by=name)

    def stop_being_fallback_of(self, name: str) -> None:
        if name in self.fallback_of:
            self.trigger_event(self.FallbackReleased, by=name)

    def become_default_of(self, by: str) -> None:
        """Saved with the domain's or user's change, so a delete of this policy and a new
        default naming it conflict in the store."""
        self.require_live()
        if by not in self.default_of:
            self.trigger_event(self.DefaultReferenced, by=by)

    def stop_being_default_of(self, by: str) -> None:
        # No liveness check: a domain or user must always be able to let go of its default.
        if by in self.default_of:
            self.trigger_event(self.DefaultReleased, by=by)

    def check_deletable(self) -> None:
        if self.key == SYSTEM_POLICY:
            raise SystemPolicyNotDeletable(f"the system policy {SYSTEM_POLICY!r} cannot be deleted")
        if self.keypairs:
            raise PolicyInUse(
                f"keypair resource policy {self.key!r} is used by {plural(len(self.keypairs), 'keypair')}: "
                f"{some(self.keypairs)}"
            )
        if self.fallback_of:
            raise PolicyInUse(f"keypair resource policy {self.key!r} is the fallback of: {some(self.fallback_of)}")
        if self.default_of:
            raise PolicyInUse(f"keypair resource policy {self.key!r} is the default of: {some(self.default_of)}")

    def duplicate(self) -> LedgerError:
        return DuplicatePolicyName(f"keypair resource policy {self.key!r} already exists")


def policy_id(name: str) -> uuid.UUID:
    return KeyPairResourcePolicy.id_for(name)
