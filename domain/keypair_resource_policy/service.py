"""The keypair resource policy service: load, let the aggregate decide, save."""

from __future__ import annotations

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.errors import CircularPolicyReference, InvalidAPIParameters
from domain.keypair_resource_policy.actions import (
    CreateKeyPairResourcePolicyAction,
    CreateKeyPairResourcePolicyActionResult,
    DeleteKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyActionResult,
    ModifyKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyActionResult,
)
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy, policy_id
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from domain.ports import AggregateStore, UnitOfWork, VersionConflict, load_live

POLICY = EntityType.KEYPAIR_RESOURCE_POLICY


def policy_data(policy: KeyPairResourcePolicy) -> KeyPairResourcePolicyData:
    assert policy.created_at is not None
    return KeyPairResourcePolicyData.from_fields(policy.name, policy.created_at, policy.fields)


def relink_fallback(
    work: UnitOfWork, policy: KeyPairResourcePolicy | None, name: str, old: str | None, new: str | None
) -> None:
    """Moves `name`'s fallback link from `old` to `new` on the policies pointed at, so
    that the link and the policies it joins are saved in one append."""
    if new is not None and new != old:
        if new == name:
            raise CircularPolicyReference(f"{name!r} cannot fall back to itself")
        target = load_live(work, KeyPairResourcePolicy, new, field="fallback_policy")
        target.become_fallback_of(name)  # refuses a link back to `name` first
        if policy is not None and policy.fallback_of:
            used_by = ", ".join(sorted(policy.fallback_of))
            raise InvalidAPIParameters(
                f"{name!r} is the fallback of {used_by}; fallbacks do not chain", field="fallback_policy"
            )
    if old is not None and old != new:
        previous = work.get(policy_id(old), KeyPairResourcePolicy)
        if previous is not None:
            previous.stop_being_fallback_of(name)


class KeyPairResourcePolicyService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    @takes_action
    async def create_keypair_resource_policy(
        self, action: CreateKeyPairResourcePolicyAction
    ) -> CreateKeyPairResourcePolicyActionResult:
        name, fields = action.creator.name, action.creator.fields_json()

        def create() -> KeyPairResourcePolicy:
            if fields["fallback_policy"] is None:
                try:
                    # A new name needs no read: its stream's first event claims the name.
                    work = UnitOfWork(self._store)
                    policy = work.add(KeyPairResourcePolicy.create(name, fields))
                    work.commit()
                    return policy
                except VersionConflict:
                    pass  # the stream exists: decide below on what it holds
            work = UnitOfWork(self._store)
            existing = work.get(policy_id(name), KeyPairResourcePolicy)
            if existing is None:
                policy = work.add(KeyPairResourcePolicy.create(name, fields))
            else:
                existing.recreate(fields)  # refuses a live name
                policy = existing
            relink_fallback(work, existing, name, None, fields["fallback_policy"])
            work.commit()
            return policy

        policy = self._store.run(create, POLICY, "create")
        return CreateKeyPairResourcePolicyActionResult(policy_data(policy))

    @takes_action
    async def modify_keypair_resource_policy(
        self, action: ModifyKeyPairResourcePolicyAction
    ) -> ModifyKeyPairResourcePolicyActionResult:
        modifier = action.modifier

        def modify() -> tuple[KeyPairResourcePolicy, bool]:
            work = UnitOfWork(self._store)
            policy = load_live(work, KeyPairResourcePolicy, action.name)
            old_fallback = policy.fallback
            # Patches merge into the map just loaded: a conflict retries on the newer one.
            if not policy.modify(modifier.wanted_fields(policy.fields)):
                return policy, False
            relink_fallback(work, policy, action.name, old_fallback, policy.fallback)
            work.commit()
            return policy, True

        policy, changed = self._store.run(modify, POLICY, "modify")
        return ModifyKeyPairResourcePolicyActionResult(policy_data(policy), changed=changed)

    @takes_action
    async def delete_keypair_resource_policy(
        self, action: DeleteKeyPairResourcePolicyAction
    ) -> DeleteKeyPairResourcePolicyActionResult:
        def delete() -> KeyPairResourcePolicyData:
            work = UnitOfWork(self._store)
            policy = load_live(work, KeyPairResourcePolicy, action.name)
            before = policy_data(policy)
            policy.delete()
            relink_fallback(work, policy, action.name, policy.fallback, None)
            work.commit()
            return before

        before = self._store.run(delete, POLICY, "delete")
        return DeleteKeyPairResourcePolicyActionResult(before)
