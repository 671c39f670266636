"""A ledger world for the session tests through the processors (not a test module: several
test modules share it): a policy, a domain, its user, a keypair and a group, made by the
processors as a superadmin; the platform (role service) drives the sessions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta, BaseAction
from domain.domains import CreateDomainAction, ModifyDomainAction
from domain.group import CreateGroupAction, ModifyGroupAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    ModifyKeyPairResourcePolicyAction,
)
from domain.session import (
    CancelSessionAction,
    EnqueueSessionAction,
    ReportSessionActivityAction,
    ScheduleSessionAction,
    TerminateSessionAction,
)
from domain.user import CreateUserAction, DeleteUserAction
from domain.workload import StartKernelAction

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ROOT = ActionTriggerMeta(
    user_id=uuid.UUID(int=1), access_key="AKROOT", role="superadmin", domain_name="default", request_id="r-s"
)
PLATFORM = ActionTriggerMeta(
    user_id=uuid.UUID(int=2), access_key="AKSVC", role="service", domain_name="d", request_id="r-p"
)


def run(ledger: Ledger, service: str, method: str, action: BaseAction, who: ActionTriggerMeta = ROOT) -> Any:
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, who))


class SessionWorld:
    """Domain `d`, its user, keypair `AK` on policy `p` (the limits given; cpu 100 unless
    `total_resource_slots` is), group `g`."""

    def __init__(self, ledger: Ledger, **limits: Any) -> None:
        self.ledger = ledger
        self.policy("p", **{"total_resource_slots": {"cpu": "100"}, **limits})
        run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": "d"}))
        self.user_id = self.user()
        self.keypair("AK", "p")
        self.group_id = self.group("g")

    def policy(self, name: str, **fields: Any) -> None:
        action = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
        run(self.ledger, "keypair_resource_policy", "create_keypair_resource_policy", action)

    def modify_policy(self, name: str, **fields: Any) -> None:
        action = ModifyKeyPairResourcePolicyAction(name=name, modifier=fields)
        run(self.ledger, "keypair_resource_policy", "modify_keypair_resource_policy", action)

    def version(self, name: str = "p") -> int:
        """The policy's version now (references recorded on it count too)."""
        policy = self.ledger.app.get(KeyPairResourcePolicy.id_for(name), KeyPairResourcePolicy)
        assert policy is not None
        return policy.version

    def modify_domain(self, **fields: Any) -> None:
        run(self.ledger, "domain", "modify_domain", ModifyDomainAction(domain_name="d", modifier=fields))

    def modify_group(self, **fields: Any) -> None:
        run(self.ledger, "group", "modify_group", ModifyGroupAction(group_id=self.group_id, modifier=fields))

    def user(self) -> uuid.UUID:
        user_id = uuid.uuid4()
        run(self.ledger, "user", "create_user", CreateUserAction(creator={"user_id": user_id, "domain_name": "d"}))
        return user_id

    def keypair(self, access_key: str, policy: str | None = None) -> None:
        action = CreateKeyPairAction(
            access_key=access_key, user_id=self.user_id, domain_name="d", resource_policy=policy
        )
        run(self.ledger, "keypair", "create_keypair", action)

    def group(self, name: str, **fields: Any) -> uuid.UUID:
        action = CreateGroupAction(input={"name": name, "domain_name": "d", **fields})
        group_id: uuid.UUID = run(self.ledger, "group", "create_group", action).data.id
        return group_id

    # The platform's session commands

    def enqueue(
        self,
        cpu: str = "1",
        access_key: str = "AK",
        group_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        **more: Any,
    ) -> uuid.UUID:
        sid = session_id or uuid.uuid4()
        action = EnqueueSessionAction(
            session_id=sid,
            access_key=access_key,
            group_id=group_id or self.group_id,
            requested_slots={"cpu": cpu, **more.pop("slots", {})},
            **more,
        )
        run(self.ledger, "session", "enqueue_session", action, PLATFORM)
        return sid

    def schedule(self, sid: uuid.UUID) -> Any:
        return run(self.ledger, "session", "schedule_session", ScheduleSessionAction(session_id=sid), PLATFORM)

    def cancel(self, sid: uuid.UUID) -> Any:
        return run(self.ledger, "session", "cancel_session", CancelSessionAction(session_id=sid), PLATFORM)

    def terminate(self, sid: uuid.UUID, reason: str = "done") -> Any:
        action = TerminateSessionAction(session_id=sid, reason=reason)
        return run(self.ledger, "session", "terminate_session", action, PLATFORM)

    def activity(self, sid: uuid.UUID, at: Any) -> Any:
        action = ReportSessionActivityAction(session_id=sid, at=at)
        return run(self.ledger, "session", "report_session_activity", action, PLATFORM)

    # The platform's kernel facts

    def kernel_start(
        self, session_id: uuid.UUID, kernel_id: uuid.UUID | None = None, started_at: datetime = T0
    ) -> StartKernelAction:
        """A kernel of session `session_id` started by the world's user and keypair."""
        return StartKernelAction(
            kernel_id=kernel_id or uuid.uuid4(),
            session_id=session_id,
            session_name="s",
            group_id=self.group_id,
            domain_name="d",
            user_id=self.user_id,
            access_key="AK",
            occupied_slots={"cpu": "1"},
            started_at=started_at,
        )


def deleted_policy_world(ledger: Ledger, level: str) -> tuple[SessionWorld, uuid.UUID, uuid.UUID]:
    """Keypair AKZ's session admitted under policy `pz` (idle and lifetime 60 s), which
    the keypair got at `level` (assigned to it, its user's default or its domain's), and
    a live keypair AKL's session under the domain's default (`pp`, 1800 s, at the end).
    Then AKZ is deleted and nothing live names `pz` any more: its user deleted too, the domain's
    default moved to `pp`, and `pz` deleted."""
    world = SessionWorld(ledger)
    minute, half_hour = {"idle_timeout": 60, "max_session_lifetime": 60}, {"idle_timeout": 1800}
    world.policy("pz", total_resource_slots={"cpu": "100"}, **minute)
    world.policy("pp", total_resource_slots={"cpu": "100"}, max_session_lifetime=0, **half_hour)
    world.modify_domain(default_keypair_resource_policy="pz" if level == "domain" else "pp")
    owner = uuid.uuid4()
    creator = {
        "user_id": owner,
        "domain_name": "d",
        "default_keypair_resource_policy": "pz" if level == "user" else None,
    }
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    keypair = CreateKeyPairAction(
        access_key="AKZ", user_id=owner, domain_name="d", resource_policy="pz" if level == "keypair" else None
    )
    run(ledger, "keypair", "create_keypair", keypair)
    world.keypair("AKL")  # no policy of its own, a user with no default: the domain's
    deleted, live = world.enqueue(access_key="AKZ"), world.enqueue(access_key="AKL")
    assert world.schedule(deleted).admitted and world.schedule(live).admitted
    assert ledger.queries.session(deleted).session.policy_name == "pz"  # type: ignore[union-attr]
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AKZ"))
    run(ledger, "user", "delete_user", DeleteUserAction(user_id=owner))
    if level == "domain":
        world.modify_domain(default_keypair_resource_policy="pp")
    delete = DeleteKeyPairResourcePolicyAction(name="pz")
    run(ledger, "keypair_resource_policy", "delete_keypair_resource_policy", delete)
    return world, deleted, live
