"""The keypair resource policy service: load, let the aggregate decide, save."""

from __future__ import annotations

from domain.base import AggregateStore, VersionConflict, entity_not_found
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

    async def create_keypair_resource_policy(
        self, action: CreateKeyPairResourcePolicyAction
    ) -> CreateKeyPairResourcePolicyActionResult:
        name, fields = action.creator.name, action.creator.fields_json()

        def create() -> KeyPairResourcePolicy:
            try:
                # A new name needs no read: its stream's first event claims the name.
                policy = KeyPairResourcePolicy.create(name, fields)
                self._store.save(policy)
            except VersionConflict:
                # The stream exists: take the name again if it was deleted, else refuse.
                policy = load_policy(self._store, name)
                policy.recreate(fields)
                self._store.save(policy)
            return policy

        policy = self._store.run(create, ENTITY_TYPE, "create")
        return CreateKeyPairResourcePolicyActionResult(policy_data(policy))

    async def modify_keypair_resource_policy(
        self, action: ModifyKeyPairResourcePolicyAction
    ) -> ModifyKeyPairResourcePolicyActionResult:
        wanted = action.modifier.fields_json()

        def modify() -> KeyPairResourcePolicy:
            policy = load_live_policy(self._store, action.name)
            if policy.modify(wanted):
                self._store.save(policy)
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
            self._store.save(policy)
            return before

        before = self._store.run(delete, ENTITY_TYPE, "delete")
        return DeleteKeyPairResourcePolicyActionResult(before)
