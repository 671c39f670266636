"""The keypair service. A keypair and its policy's assignment are saved together."""

from __future__ import annotations

from domain.catalog import EntityType
from domain.keypair.actions import (
    CreateKeyPairAction,
    CreateKeyPairActionResult,
    DeleteKeyPairAction,
    DeleteKeyPairActionResult,
    ModifyKeyPairAction,
    ModifyKeyPairActionResult,
)
from domain.keypair.aggregate import KeyPair
from domain.keypair.types import KeyPairData
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy, policy_id
from domain.ports import AggregateStore, UnitOfWork, load_live


def keypair_data(keypair: KeyPair) -> KeyPairData:
    return KeyPairData.from_fields(keypair.key, keypair.fields)


class KeyPairService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    async def create_keypair(self, action: CreateKeyPairAction) -> CreateKeyPairActionResult:
        fields = action.fields_json()

        def create() -> KeyPair:
            work = UnitOfWork(self._store)
            keypair = work.get(KeyPair.id_for(action.access_key), KeyPair)
            policy = load_live(work, KeyPairResourcePolicy, action.resource_policy)  # refused before a duplicate
            if keypair is None:
                keypair = work.add(KeyPair.create(action.access_key, fields))
            else:
                keypair.recreate(fields)
            policy.assign(action.access_key)
            work.commit()
            return keypair

        return CreateKeyPairActionResult(keypair_data(self._store.run(create, EntityType.KEYPAIR, "create")))

    async def modify_keypair(self, action: ModifyKeyPairAction) -> ModifyKeyPairActionResult:
        def modify() -> tuple[KeyPair, bool]:
            work = UnitOfWork(self._store)
            keypair = load_live(work, KeyPair, action.access_key)
            if action.resource_policy.is_nop():
                return keypair, False
            new_name = action.resource_policy.value()
            new_policy = load_live(work, KeyPairResourcePolicy, new_name)
            old_policy = work.get(policy_id(keypair.resource_policy), KeyPairResourcePolicy)
            if not keypair.modify({"resource_policy": new_name}):
                return keypair, False
            new_policy.assign(keypair.access_key)
            if old_policy is not None:
                old_policy.unassign(keypair.access_key)
            work.commit()
            return keypair, True

        keypair, changed = self._store.run(modify, EntityType.KEYPAIR, "modify")
        return ModifyKeyPairActionResult(keypair_data(keypair), changed=changed)

    async def delete_keypair(self, action: DeleteKeyPairAction) -> DeleteKeyPairActionResult:
        def delete() -> KeyPairData:
            work = UnitOfWork(self._store)
            keypair = load_live(work, KeyPair, action.access_key)
            before = keypair_data(keypair)
            policy = work.get(policy_id(keypair.resource_policy), KeyPairResourcePolicy)
            keypair.delete()
            if policy is not None:
                policy.unassign(keypair.access_key)
            work.commit()
            return before

        return DeleteKeyPairActionResult(self._store.run(delete, EntityType.KEYPAIR, "delete"))
