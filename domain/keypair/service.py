"""The keypair service. A keypair, its policy's assignment (if it names one) and its
owner's keypair list are saved together.

A keypair names a live domain and is owned by a live user of that domain (a typo is a
not-found error naming the field, never a new domain or user). Recording the keypair on
its owner's stream makes "delete a user who still owns keypairs" conflict in the store
with a new keypair. An admin (the acting role) assigns only policies the keypair's
domain allows; no policy at all (None) is always allowed: the precedence then decides.
"""

from __future__ import annotations

from typing import Any

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.domains.service import check_admin_may_assign, require_domain
from domain.errors import ObjectNotFound
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
from domain.user.aggregate import User
from domain.user.service import require_user_of

POLICY = "resource_policy"


def keypair_data(keypair: KeyPair) -> KeyPairData:
    return KeyPairData.from_fields(keypair.key, keypair.fields)


def _assigned(work: UnitOfWork, name: str | None) -> KeyPairResourcePolicy | None:
    """The policy a keypair named before this change, if its stream holds one."""
    return work.get(policy_id(name), KeyPairResourcePolicy) if name is not None else None


class KeyPairService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    @takes_action
    async def create_keypair(self, action: CreateKeyPairAction) -> CreateKeyPairActionResult:
        # Imported here: the session and workload packages and the precedence import
        # keypairs (a cycle at import time).
        from domain.effective_policy import deleted_keypair_state
        from domain.session.purge import retire_keypair_sessions
        from domain.workload.storage import retire_keypair_vfolders

        fields = action.fields_json()
        key, name = action.access_key, action.resource_policy

        def create() -> KeyPair:
            work = UnitOfWork(self._store)
            # The references are checked before a duplicate, as the policy always was.
            policy = load_live(work, KeyPairResourcePolicy, name, field="resource_policy") if name is not None else None
            domain = require_domain(work, action.domain_name, "domain_name")
            owner = require_user_of(work, str(action.user_id), action.domain_name, "user_id")
            check_admin_may_assign(domain, name, POLICY)
            earlier = work.get(KeyPair.id_for(key), KeyPair)  # a deleted incarnation, if any
            # Read before the creation replaces it.
            last_state = None if earlier is None else deleted_keypair_state(earlier)
            keypair = work.create(KeyPair, key, fields)
            if last_state is not None:
                # A new incarnation: what the deleted keypair still holds (sessions running
                # on, vfolders) is not the new one's to count (usage is keyed by access key).
                retire_keypair_sessions(work, key, last_state)
                retire_keypair_vfolders(work, key)
            if policy is not None:
                policy.assign(key)
            owner.add_keypair(key)
            work.commit()
            return keypair

        return CreateKeyPairActionResult(keypair_data(self._store.run(create, EntityType.KEYPAIR, "create")))

    @takes_action
    async def modify_keypair(self, action: ModifyKeyPairAction) -> ModifyKeyPairActionResult:
        def modify() -> tuple[KeyPair, bool]:
            work = UnitOfWork(self._store)
            keypair = load_live(work, KeyPair, action.access_key)
            if action.resource_policy.is_nop():
                return keypair, False
            new_name = action.resource_policy.value()
            new_policy = (
                load_live(work, KeyPairResourcePolicy, new_name, field="resource_policy")
                if new_name is not None
                else None
            )
            old_policy = _assigned(work, keypair.resource_policy)
            if not keypair.modify({POLICY: new_name}):
                return keypair, False
            if new_name is not None:
                check_admin_may_assign(
                    require_domain(work, keypair.fields["domain_name"], "domain_name"), new_name, POLICY
                )
            if new_policy is not None:
                new_policy.assign(keypair.access_key)
            if old_policy is not None:
                old_policy.unassign(keypair.access_key)
            work.commit()
            return keypair, True

        keypair, changed = self._store.run(modify, EntityType.KEYPAIR, "modify")
        return ModifyKeyPairActionResult(keypair_data(keypair), changed=changed)

    @takes_action
    async def delete_keypair(self, action: DeleteKeyPairAction) -> DeleteKeyPairActionResult:
        # Imported here: the session package and the precedence import keypairs (a cycle
        # at import time).
        from domain.effective_policy import resolve_for_keypair
        from domain.session.purge import close_keypair_sessions

        def delete() -> DeleteKeyPairActionResult:
            work = UnitOfWork(self._store)
            keypair = load_live(work, KeyPair, action.access_key)
            before = keypair_data(keypair)
            policy = _assigned(work, keypair.resource_policy)
            # Its admitted sessions run on under the policy in force now, recorded with the
            # delete: once nothing live names that policy it may be deleted, as may the
            # keypair's user, and neither may move them under another (README). A store
            # without the system policy (none to fall to) records none: a delete is never
            # refused for what it would record.
            try:
                under: dict[str, Any] | None = resolve_for_keypair(work, keypair).ref_json()
            except ObjectNotFound:
                under = None
            keypair.delete_under(under)
            cancelled = close_keypair_sessions(work, keypair.access_key)  # its pending sessions are cancelled
            if policy is not None:
                policy.unassign(keypair.access_key)
            owner = work.get(User.id_for(str(keypair.fields["user_id"])), User)
            if owner is not None:
                owner.remove_keypair(keypair.access_key)
            work.commit()
            return DeleteKeyPairActionResult(before, tuple(cancelled))

        return self._store.run(delete, EntityType.KEYPAIR, "delete")
