"""A small ledger on the in-memory store for the effective-policy and session tests:
policies, a domain, users, keypairs, groups and vfolders, and the session service's
commands as one-line calls (shared by several test modules, so not a test module)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from domain.domains import CreateDomainAction, DomainService, ModifyDomainAction
from domain.effective_policy import EffectivePolicy, resolve_effective_policy
from domain.group import CreateGroupAction, GroupService, ModifyGroupAction
from domain.keypair import KeyPair
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyService,
    ModifyKeyPairResourcePolicyAction,
)
from domain.ports import UnitOfWork
from domain.session import (
    CancelSessionAction,
    EnqueueSessionAction,
    ReportSessionActivityAction,
    ScheduleSessionAction,
    ScheduleSessionActionResult,
    Scope,
    SessionData,
    SessionService,
    TerminateSessionAction,
)
from domain.user import CreateUserAction, ModifyUserAction, UserService
from domain.workload import CreateVFolderAction, WorkloadService
from tests.domain.fakes import InMemoryStore, NoUsage


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class World:
    """Holds the store; every helper goes through a service (keypairs excepted: they are
    written as aggregates, so a keypair may name no policy, or one deleted later)."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()
        self.sessions = SessionService(self.store)
        self.policy("default")

    # Policies, domains, users, keypairs, groups, vfolders

    def policy(self, name: str, **fields: Any) -> None:
        action = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
        run(KeyPairResourcePolicyService(self.store).create_keypair_resource_policy(action))

    def modify_policy(self, name: str, **fields: Any) -> None:
        action = ModifyKeyPairResourcePolicyAction(name=name, modifier=fields)
        run(KeyPairResourcePolicyService(self.store).modify_keypair_resource_policy(action))

    def delete_policy(self, name: str) -> None:
        action = DeleteKeyPairResourcePolicyAction(name=name)
        run(KeyPairResourcePolicyService(self.store).delete_keypair_resource_policy(action))

    def domain(self, name: str = "d", **fields: Any) -> None:
        run(DomainService(self.store).create_domain(CreateDomainAction(creator={"name": name, **fields})))

    def modify_domain(self, name: str = "d", **fields: Any) -> None:
        run(DomainService(self.store).modify_domain(ModifyDomainAction(domain_name=name, modifier=fields)))

    def user(self, domain: str = "d", default: str | None = None) -> uuid.UUID:
        user_id = uuid.uuid4()
        creator = {"user_id": user_id, "domain_name": domain, "default_keypair_resource_policy": default}
        run(UserService(self.store).create_user(CreateUserAction(creator=creator)))
        return user_id

    def modify_user(self, user_id: uuid.UUID, **fields: Any) -> None:
        run(UserService(self.store).modify_user(ModifyUserAction(user_id=user_id, modifier=fields)))

    def keypair(
        self, access_key: str, user_id: uuid.UUID | None = None, domain: str = "d", policy: str | None = None
    ) -> str:
        fields = {"user_id": str(user_id or uuid.uuid4()), "domain_name": domain, "resource_policy": policy}
        self.store.save(KeyPair.create(access_key, fields))
        return access_key

    def group(self, domain: str = "d", name: str | None = None, **fields: Any) -> uuid.UUID:
        creator = {"name": name or f"g{uuid.uuid4().hex[:8]}", "domain_name": domain, **fields}
        result = run(GroupService(self.store, NoUsage()).create_group(CreateGroupAction(input=creator)))
        group_id: uuid.UUID = result.data.id
        return group_id

    def modify_group(self, group_id: uuid.UUID, **fields: Any) -> None:
        run(GroupService(self.store, NoUsage()).modify_group(ModifyGroupAction(group_id=group_id, modifier=fields)))

    def vfolder(self, group_id: uuid.UUID, host: str) -> uuid.UUID:
        vfolder_id = uuid.uuid4()
        action = CreateVFolderAction(vfolder_id=vfolder_id, name=f"v{vfolder_id.hex[:6]}", host=host, group_id=group_id)
        run(WorkloadService(self.store).create_vfolder(action))
        return vfolder_id

    def effective(self, access_key: str) -> EffectivePolicy:
        return resolve_effective_policy(UnitOfWork(self.store), access_key)

    # Sessions

    def enqueue(self, access_key: str, group_id: uuid.UUID, slots: dict[str, Any], **fields: Any) -> uuid.UUID:
        session_id: uuid.UUID = fields.pop("session_id", None) or uuid.uuid4()
        action = EnqueueSessionAction(
            session_id=session_id, access_key=access_key, group_id=group_id, requested_slots=slots, **fields
        )
        run(self.sessions.enqueue_session(action))
        return session_id

    def schedule(self, session_id: uuid.UUID) -> ScheduleSessionActionResult:
        result: ScheduleSessionActionResult = run(
            self.sessions.schedule_session(ScheduleSessionAction(session_id=session_id))
        )
        return result

    def cancel(self, session_id: uuid.UUID) -> bool:
        changed: bool = run(self.sessions.cancel_session(CancelSessionAction(session_id=session_id))).changed
        return changed

    def terminate(self, session_id: uuid.UUID, reason: str = "user_requested") -> bool:
        action = TerminateSessionAction(session_id=session_id, reason=reason)
        changed: bool = run(self.sessions.terminate_session(action)).changed
        return changed

    def activity(self, session_id: uuid.UUID, at: Any) -> bool:
        action = ReportSessionActivityAction(session_id=session_id, at=at)
        changed: bool = run(self.sessions.report_session_activity(action)).changed
        return changed

    def session(self, session_id: uuid.UUID) -> SessionData:
        return self.sessions.session(session_id)

    def running(self, scope: Scope, scope_id: str) -> set[str]:
        return set(self.sessions.usage(scope, scope_id).running)

    def pending(self, scope: Scope, scope_id: str) -> set[str]:
        return set(self.sessions.usage(scope, scope_id).pending)
