"""Domains and users made through their processors, as a superadmin, for the read-side tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from adapters.bootstrap import Ledger
from domain.domains import CreateDomainAction, DeleteDomainAction, DomainData, ModifyDomainAction
from domain.keypair import CreateKeyPairAction
from domain.user import CreateUserAction, DeleteUserAction, ModifyUserAction, UserData
from tests.conftest import SUPERADMIN


def create_domain(ledger: Ledger, name: str, **fields: Any) -> DomainData:
    action = CreateDomainAction(creator={"name": name, **fields})
    data: DomainData = asyncio.run(ledger.processors.domain.create_domain.wait_for_complete(action, SUPERADMIN)).domain
    return data


def modify_domain(ledger: Ledger, name: str, **modifier: Any) -> DomainData:
    action = ModifyDomainAction(domain_name=name, modifier=modifier)
    data: DomainData = asyncio.run(ledger.processors.domain.modify_domain.wait_for_complete(action, SUPERADMIN)).domain
    return data


def delete_domain(ledger: Ledger, name: str) -> None:
    asyncio.run(
        ledger.processors.domain.delete_domain.wait_for_complete(DeleteDomainAction(domain_name=name), SUPERADMIN)
    )


def create_user(ledger: Ledger, user_id: uuid.UUID, domain_name: str, **fields: Any) -> UserData:
    action = CreateUserAction(creator={"user_id": user_id, "domain_name": domain_name, **fields})
    data: UserData = asyncio.run(ledger.processors.user.create_user.wait_for_complete(action, SUPERADMIN)).user
    return data


def modify_user(ledger: Ledger, user_id: uuid.UUID, **modifier: Any) -> UserData:
    action = ModifyUserAction(user_id=user_id, modifier=modifier)
    data: UserData = asyncio.run(ledger.processors.user.modify_user.wait_for_complete(action, SUPERADMIN)).user
    return data


def delete_user(ledger: Ledger, user_id: uuid.UUID) -> None:
    asyncio.run(ledger.processors.user.delete_user.wait_for_complete(DeleteUserAction(user_id=user_id), SUPERADMIN))


def create_keypair(ledger: Ledger, access_key: str, owner: uuid.UUID, domain_name: str, policy: str) -> None:
    action = CreateKeyPairAction(access_key=access_key, user_id=owner, domain_name=domain_name, resource_policy=policy)
    asyncio.run(ledger.processors.keypair.create_keypair.wait_for_complete(action, SUPERADMIN))
