"""The keypair resource policy service: load, let the aggregate decide, save."""

from __future__ import annotations

from domain.base import AggregateStore, VersionConflict, entity_not_found
from domain.errors import CircularPolicyReference, InvalidAPIParameters
from domain.keypair_resource_policy.actions import (
    CreateKeyPairResourcePolicyAction,
    CreateKeyPairResourcePolicyActionResult,
    DeleteKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyActionResult,
    ModifyKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyActionResult,
)
from domain.keypair_resource_policy.aggregate import ENTITY_TYPE, KeyPairResourcePolicy, policy_id
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData


def policy_data(policy: KeyPairResourcePolicy) -> KeyPairResourcePolicyData:
    assert policy.created_at is not None
    return KeyPairResourcePolicyData.from_fields(policy.name, policy.created_at, policy.fields)


def load_policy(store: AggregateStore, name: str) -> KeyPairResourcePolicy:
    policy = store.get(policy_id(name), KeyPairResourcePolicy)
    if policy is None:
        raise entity_not_found(ENTITY_TYPE, name)
    return policy


def load_live_policy(store: AggregateStore, name: str) -> KeyPairResourcePolicy:
    policy = load_policy(store, name)
    policy.require_live()
    return policy


class KeyPairResourcePolicyService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    def _relink(
        self, policy: KeyPairResourcePolicy | None, name: str, old: str | None, new: str | None
    ) -> list[KeyPairResourcePolicy]:
        """Policies to save with `name`'s fallback moving from `old` to `new`."""
        touched = []
        if new is not None and new != old:
            if new == name:
                raise CircularPolicyReference(f"{name!r} cannot fall back to itself")
            target = load_live_policy(self._store, new)
            target.become_fallback_of(name)  # refuses a link back to `name` first
            if policy is not None and policy.fallback_of:
                used_by = ", ".join(sorted(policy.fallback_of))
                raise InvalidAPIParameters(
                    f"{name!r} is the fallback of {used_by}; fallbacks do not chain", field="fallback_policy"
                )
            touched.append(target)
        if old is not None and old != new:
            previous = self._store.get(policy_id(old), KeyPairResourcePolicy)
            if previous is not None:
                previous.stop_being_fallback_of(name)
                touched.append(previous)
        return touched

    async def create_keypair_resource_policy(
        self, action: CreateKeyPairResourcePolicyAction
    ) -> CreateKeyPairResourcePolicyActionResult:
        name, fields = action.creator.name, action.creator.fields_json()

        def create() -> KeyPairResourcePolicy:
            if fields["fallback_policy"] is None:
                try:
                    # A new name needs no read: its stream's first event claims the name.
                    policy = KeyPairResourcePolicy.create(name, fields)
                    self._store.save(policy)
                    return policy
                except VersionConflict:
                    pass  # the stream exists: decide below on what it holds
            existing = self._store.get(policy_id(name), KeyPairResourcePolicy)
            if existing is None:
                policy = KeyPairResourcePolicy.create(name, fields)
            else:
                existing.recreate(fields)  # refuses a live name
                policy = existing
            self._store.save(policy, *self._relink(existing, name, None, fields["fallback_policy"]))
            return policy

        policy = self._store.run(create, ENTITY_TYPE, "create")
        return CreateKeyPairResourcePolicyActionResult(policy_data(policy))

    async def modify_keypair_resource_policy(
        self, action: ModifyKeyPairResourcePolicyAction
    ) -> ModifyKeyPairResourcePolicyActionResult:
        wanted = action.modifier.fields_json()

        def modify() -> KeyPairResourcePolicy:
            policy = load_live_policy(self._store, action.name)
            old_fallback = policy.fallback
            changes = policy.modify(wanted)
            if changes:
                relinked = self._relink(policy, action.name, old_fallback, policy.fallback)
                self._store.save(policy, *relinked)
            return policy

        policy = self._store.run(modify, ENTITY_TYPE, "modify")
        return ModifyKeyPairResourcePolicyActionResult(policy_data(policy))

    async def delete_keypair_resource_policy(
        self, action: DeleteKeyPairResourcePolicyAction
    ) -> DeleteKeyPairResourcePolicyActionResult:
        def delete() -> KeyPairResourcePolicyData:
            policy = load_live_policy(self._store, action.name)
            before = policy_data(policy)
            policy.delete()
            self._store.save(policy, *self._relink(policy, action.name, policy.fallback, None))
            return before

        before = self._store.run(delete, ENTITY_TYPE, "delete")
        return DeleteKeyPairResourcePolicyActionResult(before)
