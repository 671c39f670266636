"""The keypair service. A keypair and its policy's assignment are saved together."""

from __future__ import annotations

from domain.base import AggregateStore, entity_not_found
from domain.keypair.actions import (
    CreateKeyPairAction,
    CreateKeyPairActionResult,
    DeleteKeyPairAction,
    DeleteKeyPairActionResult,
    KeyPairData,
    ModifyKeyPairAction,
    ModifyKeyPairActionResult,
)
from domain.keypair.aggregate import ENTITY_TYPE, KeyPair
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy, policy_id
from domain.keypair_resource_policy.service import load_live_policy


def keypair_data(keypair: KeyPair) -> KeyPairData:
    return KeyPairData.from_fields(keypair.key, keypair.fields)


class KeyPairService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    def _load_live(self, access_key: str) -> KeyPair:
        keypair = self._store.get(KeyPair.id_for(access_key), KeyPair)
        if keypair is None or keypair.is_deleted:
            raise entity_not_found(ENTITY_TYPE, access_key)
        return keypair

    async def create_keypair(self, action: CreateKeyPairAction) -> CreateKeyPairActionResult:
        fields = action.fields_json()

        def create() -> KeyPair:
            policy = load_live_policy(self._store, action.resource_policy)
            keypair = self._store.get(KeyPair.id_for(action.access_key), KeyPair)
            if keypair is None:
                keypair = KeyPair.create(action.access_key, fields)
            else:
                keypair.recreate(fields)
            policy.assign(action.access_key)
            self._store.save(keypair, policy)
            return keypair

        return CreateKeyPairActionResult(keypair_data(self._store.run(create, ENTITY_TYPE, "create")))

    async def modify_keypair(self, action: ModifyKeyPairAction) -> ModifyKeyPairActionResult:
        def modify() -> KeyPair:
            keypair = self._load_live(action.access_key)
            if action.resource_policy.is_nop():
                return keypair
            new_name = action.resource_policy.value()
            new_policy = load_live_policy(self._store, new_name)
            old_policy = self._store.get(policy_id(keypair.resource_policy), KeyPairResourcePolicy)
            if not keypair.modify({"resource_policy": new_name}):
                return keypair
            new_policy.assign(keypair.access_key)
            if old_policy is not None:
                old_policy.unassign(keypair.access_key)
            self._store.save(keypair, new_policy, old_policy)
            return keypair

        return ModifyKeyPairActionResult(keypair_data(self._store.run(modify, ENTITY_TYPE, "modify")))

    async def delete_keypair(self, action: DeleteKeyPairAction) -> DeleteKeyPairActionResult:
        def delete() -> KeyPairData:
            keypair = self._load_live(action.access_key)
            before = keypair_data(keypair)
            policy = self._store.get(policy_id(keypair.resource_policy), KeyPairResourcePolicy)
            keypair.delete()
            if policy is not None:
                policy.unassign(keypair.access_key)
            self._store.save(keypair, policy)
            return before

        return DeleteKeyPairActionResult(self._store.run(delete, ENTITY_TYPE, "delete"))
