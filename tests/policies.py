"""Short ways for tests to run policy commands through the service."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.bootstrap import Ledger
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)


def create(ledger: Ledger, name: str, **fields: Any) -> Any:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name, **fields))
    return asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(action))


def modify(ledger: Ledger, name: str, **fields: Any) -> Any:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier=fields)
    return asyncio.run(ledger.services.keypair_resource_policy.modify_keypair_resource_policy(action))


def delete(ledger: Ledger, name: str) -> Any:
    action = DeleteKeyPairResourcePolicyAction(name=name)
    return asyncio.run(ledger.services.keypair_resource_policy.delete_keypair_resource_policy(action))
