"""A keypair resource policy that is some domain's or user's default is in use: the
reference is recorded on the policy's stream with the referrer's change."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from domain.domains import CreateDomainAction, DeleteDomainAction, DomainService, ModifyDomainAction
from domain.errors import PolicyInUse
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyService,
    policy_id,
)
from domain.user import CreateUserAction, DeleteUserAction, ModifyUserAction, UserService
from tests.domain.fakes import InMemoryStore

U1 = uuid.UUID("00000000-0000-0000-0000-0000000000b1")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def delete_policy(store: InMemoryStore, name: str) -> None:
    run(
        KeyPairResourcePolicyService(store).delete_keypair_resource_policy(DeleteKeyPairResourcePolicyAction(name=name))
    )


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    for name in ("gold", "silver"):
        run(
            KeyPairResourcePolicyService(store).create_keypair_resource_policy(
                CreateKeyPairResourcePolicyAction(creator={"name": name})
            )
        )
    return store


def test_a_domain_default_is_in_use_until_released(store: InMemoryStore) -> None:
    domains = DomainService(store)
    run(domains.create_domain(CreateDomainAction(creator={"name": "d", "default_keypair_resource_policy": "gold"})))
    with pytest.raises(PolicyInUse, match="default of: domain:"):
        delete_policy(store, "gold")
    run(
        domains.modify_domain(
            ModifyDomainAction(domain_name="d", modifier={"default_keypair_resource_policy": "silver"})
        )
    )
    delete_policy(store, "gold")
    with pytest.raises(PolicyInUse, match="domain:d"):
        delete_policy(store, "silver")
    run(domains.delete_domain(DeleteDomainAction(domain_name="d")))
    delete_policy(store, "silver")
    assert store.events(policy_id("silver")) == ["Created", "DefaultReferenced", "DefaultReleased", "Deleted"]


def test_a_user_default_is_in_use_until_released(store: InMemoryStore) -> None:
    run(DomainService(store).create_domain(CreateDomainAction(creator={"name": "d"})))
    users = UserService(store)
    run(
        users.create_user(
            CreateUserAction(creator={"user_id": U1, "domain_name": "d", "default_keypair_resource_policy": "gold"})
        )
    )
    with pytest.raises(PolicyInUse, match=f"user:{U1}"):
        delete_policy(store, "gold")
    run(users.modify_user(ModifyUserAction(user_id=U1, modifier={"default_keypair_resource_policy": None})))
    delete_policy(store, "gold")
    run(users.modify_user(ModifyUserAction(user_id=U1, modifier={"default_keypair_resource_policy": "silver"})))
    run(users.delete_user(DeleteUserAction(user_id=U1)))
    delete_policy(store, "silver")
