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


# Seed 001, 1.1, verbatim.
DEV_POLICY: dict[str, Any] = {
    "name": "dev-policy",
    "allowed_vfolder_hosts": ["storage1", "storage2"],
    "default_for_unspecified": "LIMITED",
    "idle_timeout": 3600,
    "max_concurrent_sessions": 5,
    "max_containers_per_session": 3,
    "max_pending_session_count": 10,
    "max_pending_session_resource_slots": {"cpu": "10", "memory": "64G"},
    "max_session_lifetime": 86400,
    "total_resource_slots": {"cpu": "50", "memory": "256G", "gpu": "4"},
}
