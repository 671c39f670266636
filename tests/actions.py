"""A small world with one entity of every kind, and one valid action per processor method.

Used by the permission walk and the audit tests: every action the processors know is
built here, so a new processor method without a sample fails `test_every_processor_has_a_sample`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta, BaseAction
from domain.domains import CreateDomainAction, DeleteDomainAction, ModifyDomainAction
from domain.group import (
    CreateGroupAction,
    DeleteGroupAction,
    ModifyGroupAction,
    PurgeGroupAction,
    UsagePerMonthAction,
    UsagePerPeriodAction,
)
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
)
from domain.projection_ops import SkipProjectionEventAction
from domain.session import (
    CancelSessionAction,
    EnqueueSessionAction,
    ReportSessionActivityAction,
    ScheduleSessionAction,
    TerminateSessionAction,
)
from domain.token import IssueTokenAction, RevokeTokenAction
from domain.user import CreateUserAction, DeleteUserAction, EraseUserAction, ModifyUserAction
from domain.workload import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    Kernel,
    RecordWorkloadBatchAction,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
)

DOMAIN = "alpha"
T0 = datetime(2024, 10, 1, tzinfo=UTC)


def meta(role: str, domain: str = DOMAIN) -> ActionTriggerMeta:
    return ActionTriggerMeta(
        user_id=uuid.UUID(int=42), access_key=f"AK{role.upper()}", role=role, domain_name=domain, request_id="r-1"
    )


ROOT = meta("superadmin", "default")
WORLD_USER = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
SPARE_USER = uuid.UUID("00000000-0000-0000-0000-0000000005fa")


def run(ledger: Ledger, service: str, method: str, action: BaseAction, who: ActionTriggerMeta = ROOT) -> Any:
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, who))


@dataclass(frozen=True)
class World:
    """Ids of what `build_world` created: all in domain `alpha` (but the spare domain)."""

    group: uuid.UUID
    vfolder: uuid.UUID
    kernel: uuid.UUID
    endpoint: uuid.UUID
    spare_group: uuid.UUID  # no workload: it can be purged or moved to another domain
    access_key: str = "AKWORLD"
    policy: str = "world-policy"
    spare_policy: str = "spare-policy"  # no keypair: it can be deleted
    user: uuid.UUID = WORLD_USER  # owns the world's keypair
    spare_user: uuid.UUID = SPARE_USER  # owns nothing: it can be deleted
    spare_domain: str = "spare-domain"  # empty: it can be deleted
    pending_session: uuid.UUID = field(default_factory=uuid.uuid4)  # AKWORLD's, in the world group
    running_session: uuid.UUID = field(default_factory=uuid.uuid4)  # admitted
    tokens: list[uuid.UUID] = field(default_factory=list, compare=False)  # issued to `user`, live
    # Makes a read model stall (what a skip is for): returns its name and position.
    stall: Callable[[], tuple[str, int]] = field(default=lambda: ("", 0), compare=False, repr=False)


def build_world(ledger: Ledger) -> World:
    world = World(*(uuid.uuid4() for _ in range(5)), stall=lambda: stall_usage(ledger, world))
    for domain in (DOMAIN, world.spare_domain):
        run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": domain}))
    for user in (world.user, world.spare_user):
        run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": user, "domain_name": DOMAIN}))
    for name in (world.policy, world.spare_policy):
        create_policy = CreateKeyPairResourcePolicyAction(creator={"name": name})
        run(ledger, "keypair_resource_policy", "create_keypair_resource_policy", create_policy)
    keypair = CreateKeyPairAction(
        access_key=world.access_key, user_id=world.user, domain_name=DOMAIN, resource_policy=world.policy
    )
    run(ledger, "keypair", "create_keypair", keypair)
    group = CreateGroupAction(input={"name": "world", "domain_name": DOMAIN}, group_id=world.group)
    run(ledger, "group", "create_group", group)
    spare = CreateGroupAction(input={"name": "spare", "domain_name": DOMAIN}, group_id=world.spare_group)
    run(ledger, "group", "create_group", spare)
    vfolder = CreateVFolderAction(vfolder_id=world.vfolder, name="data", host="local", group_id=world.group)
    run(ledger, "workload", "create_vfolder", vfolder)
    run(ledger, "workload", "start_kernel", start_kernel(world, world.kernel))
    endpoint = CreateEndpointAction(endpoint_id=world.endpoint, group_id=world.group, name="serve")
    run(ledger, "workload", "create_endpoint", endpoint)
    # Sessions through the service, not the processors: no audit record or metric of their own.
    for sid in (world.pending_session, world.running_session):
        asyncio.run(ledger.services.session.enqueue_session(enqueue_session(world, sid)))
    asyncio.run(ledger.services.session.schedule_session(ScheduleSessionAction(session_id=world.running_session)))
    issued = asyncio.run(ledger.services.token.issue_token(issue_token(world)))
    world.tokens.append(issued.data.token_id)
    return world


def issue_token(world: World) -> IssueTokenAction:
    return IssueTokenAction(user_id=world.user, role="user", domain_name=DOMAIN, access_key=world.access_key)


def enqueue_session(world: World, session_id: uuid.UUID) -> EnqueueSessionAction:
    return EnqueueSessionAction(
        session_id=session_id, access_key=world.access_key, group_id=world.group, requested_slots={}
    )


def start_kernel(world: World, kernel: uuid.UUID) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="s",
        group_id=world.group,
        domain_name=DOMAIN,
        user_id=uuid.UUID(int=7),
        access_key=world.access_key,
        occupied_slots={"cpu": "1"},
        started_at=T0,
    )


def stall_usage(ledger: Ledger, world: World) -> tuple[str, int]:
    """Stores a kernel start whose time is no time, as an older release that did not check
    it would have (the event saved raw), and lets the usage read model stall on it."""
    fields = start_kernel(world, uuid.uuid4()).kernel_fields()
    fields["started_at"] = "yesterday"
    ledger.app.save(Kernel.create(str(uuid.uuid4()), fields))
    ledger.runner.catch_up()
    (stalled,) = (s for s in ledger.runner.status() if s.stall is not None)
    assert stalled.stall is not None
    return stalled.name, stalled.stall.position


def skip_stalled(world: World) -> SkipProjectionEventAction:
    name, position = world.stall()
    return SkipProjectionEventAction(projection=name, position=position, reason="a start time that is no time")


# (service, method) -> an action on the world that succeeds.
SAMPLES: dict[tuple[str, str], Callable[[World], BaseAction]] = {
    ("keypair_resource_policy", "create_keypair_resource_policy"): lambda w: CreateKeyPairResourcePolicyAction(
        creator={"name": "new-policy"}
    ),
    ("keypair_resource_policy", "modify_keypair_resource_policy"): lambda w: ModifyKeyPairResourcePolicyAction(
        name=w.policy, modifier={"idle_timeout": 60}
    ),
    ("keypair_resource_policy", "delete_keypair_resource_policy"): lambda w: DeleteKeyPairResourcePolicyAction(
        name=w.spare_policy
    ),
    ("keypair", "create_keypair"): lambda w: CreateKeyPairAction(
        access_key="AKNEW", user_id=w.user, domain_name=DOMAIN, resource_policy=w.policy
    ),
    ("keypair", "modify_keypair"): lambda w: ModifyKeyPairAction(access_key=w.access_key, resource_policy="default"),
    ("keypair", "delete_keypair"): lambda w: DeleteKeyPairAction(access_key=w.access_key),
    ("group", "create_group"): lambda w: CreateGroupAction(input={"name": "new", "domain_name": DOMAIN}),
    ("group", "modify_group"): lambda w: ModifyGroupAction(group_id=w.group, modifier={"description": "d"}),
    ("group", "delete_group"): lambda w: DeleteGroupAction(group_id=w.group),
    ("group", "purge_group"): lambda w: PurgeGroupAction(group_id=w.spare_group),
    ("group", "usage_per_month"): lambda w: UsagePerMonthAction(month="202410"),
    ("group", "usage_per_period"): lambda w: UsagePerPeriodAction(start_date="20241001", end_date="20241031"),
    ("workload", "create_vfolder"): lambda w: CreateVFolderAction(
        vfolder_id=uuid.uuid4(), name="more", host="local", group_id=w.group
    ),
    ("workload", "start_kernel"): lambda w: start_kernel(w, uuid.uuid4()),
    ("workload", "report_kernel_stats"): lambda w: ReportKernelStatsAction(
        kernel_id=w.kernel, reported_at=T0, cpu_used="1.5"
    ),
    ("workload", "terminate_kernel"): lambda w: TerminateKernelAction(kernel_id=w.kernel, terminated_at=T0),
    ("workload", "create_endpoint"): lambda w: CreateEndpointAction(
        endpoint_id=uuid.uuid4(), group_id=w.group, name="another"
    ),
    ("workload", "destroy_endpoint"): lambda w: DestroyEndpointAction(endpoint_id=w.endpoint),
    ("workload", "record_workload_batch"): lambda w: RecordWorkloadBatchAction(
        actions=[TerminateKernelAction(kernel_id=w.kernel, terminated_at=T0)]
    ),
    ("projection", "skip_projection_event"): skip_stalled,
    ("domain", "create_domain"): lambda w: CreateDomainAction(creator={"name": "new-domain"}),
    ("domain", "modify_domain"): lambda w: ModifyDomainAction(domain_name=DOMAIN, modifier={"description": "d"}),
    ("domain", "delete_domain"): lambda w: DeleteDomainAction(domain_name=w.spare_domain),
    ("user", "create_user"): lambda w: CreateUserAction(creator={"user_id": uuid.uuid4(), "domain_name": DOMAIN}),
    ("user", "modify_user"): lambda w: ModifyUserAction(user_id=w.user, modifier={"full_name": "Ada"}),
    ("user", "delete_user"): lambda w: DeleteUserAction(user_id=w.spare_user),
    ("user", "erase_user"): lambda w: EraseUserAction(user_id=w.spare_user, reason="asked to be forgotten"),
    ("token", "issue_token"): issue_token,
    ("token", "revoke_token"): lambda w: RevokeTokenAction(token_id=w.tokens[0]),
    ("session", "enqueue_session"): lambda w: enqueue_session(w, uuid.uuid4()),
    ("session", "schedule_session"): lambda w: ScheduleSessionAction(session_id=w.pending_session),
    ("session", "cancel_session"): lambda w: CancelSessionAction(session_id=w.pending_session),
    ("session", "terminate_session"): lambda w: TerminateSessionAction(session_id=w.running_session, reason="s"),
    ("session", "report_session_activity"): lambda w: ReportSessionActivityAction(
        session_id=w.running_session, at=datetime.now(UTC)
    ),
}

# (service, method) -> an action on the world that the service refuses, and the error's code.
UNKNOWN = uuid.UUID(int=404)
FAILURES: dict[tuple[str, str], tuple[Callable[[World], BaseAction], str]] = {
    ("keypair_resource_policy", "create_keypair_resource_policy"): (
        lambda w: CreateKeyPairResourcePolicyAction(creator={"name": w.policy}),
        "keypair_resource_policy_create_duplicate_name",
    ),
    ("keypair_resource_policy", "modify_keypair_resource_policy"): (
        lambda w: ModifyKeyPairResourcePolicyAction(name="absent", modifier={"idle_timeout": 1}),
        "keypair_resource_policy_not_found",
    ),
    ("keypair_resource_policy", "delete_keypair_resource_policy"): (
        lambda w: DeleteKeyPairResourcePolicyAction(name="default"),
        "keypair_resource_policy_delete_system_policy",
    ),
    ("keypair", "create_keypair"): (
        lambda w: CreateKeyPairAction(
            access_key=w.access_key, user_id=w.user, domain_name=DOMAIN, resource_policy=w.policy
        ),
        "keypair_create_duplicate_access_key",
    ),
    ("keypair", "modify_keypair"): (
        lambda w: ModifyKeyPairAction(access_key="AKABSENT", resource_policy="default"),
        "keypair_not_found",
    ),
    ("keypair", "delete_keypair"): (lambda w: DeleteKeyPairAction(access_key="AKABSENT"), "keypair_not_found"),
    ("group", "create_group"): (
        lambda w: CreateGroupAction(input={"name": "world", "domain_name": DOMAIN}),
        "group_create_duplicate_name",
    ),
    ("group", "modify_group"): (
        lambda w: ModifyGroupAction(group_id=UNKNOWN, modifier={"description": "d"}),
        "group_not_found",
    ),
    ("group", "delete_group"): (lambda w: DeleteGroupAction(group_id=UNKNOWN), "group_not_found"),
    ("group", "purge_group"): (lambda w: PurgeGroupAction(group_id=w.group), "group_purge_active_kernels"),
    # A month is checked when the action is made; the service checks it again for a caller
    # that builds the action around its validation (pydantic's model_construct).
    ("group", "usage_per_month"): (
        lambda w: UsagePerMonthAction.model_construct(month="202413", group_ids=None),
        "ledger_invalid_parameters",
    ),
    ("group", "usage_per_period"): (
        lambda w: UsagePerPeriodAction(start_date="20241031", end_date="20241001"),
        "ledger_invalid_parameters",
    ),
    ("workload", "create_vfolder"): (
        lambda w: CreateVFolderAction(vfolder_id=uuid.uuid4(), name="x", host="local", group_id=UNKNOWN),
        "group_not_found",
    ),
    ("workload", "start_kernel"): (
        lambda w: start_kernel(World(UNKNOWN, *(uuid.uuid4() for _ in range(4))), uuid.uuid4()),
        "group_not_found",
    ),
    ("workload", "report_kernel_stats"): (
        lambda w: ReportKernelStatsAction(kernel_id=UNKNOWN, reported_at=T0),
        "kernel_not_found",
    ),
    ("workload", "terminate_kernel"): (
        lambda w: TerminateKernelAction(kernel_id=UNKNOWN, terminated_at=T0),
        "kernel_not_found",
    ),
    ("workload", "create_endpoint"): (
        lambda w: CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=UNKNOWN, name="e"),
        "group_not_found",
    ),
    ("workload", "destroy_endpoint"): (
        lambda w: DestroyEndpointAction(endpoint_id=UNKNOWN),
        "endpoint_not_found",
    ),
    ("workload", "record_workload_batch"): (
        lambda w: RecordWorkloadBatchAction(actions=[TerminateKernelAction(kernel_id=UNKNOWN, terminated_at=T0)]),
        "kernel_not_found",
    ),
    ("projection", "skip_projection_event"): (
        lambda w: SkipProjectionEventAction(projection="keypairs", position=1, reason="not stalled"),
        "ledger_skip_not_stalled",
    ),
    ("domain", "create_domain"): (
        lambda w: CreateDomainAction(creator={"name": DOMAIN}),
        "domain_create_duplicate_name",
    ),
    ("domain", "modify_domain"): (
        lambda w: ModifyDomainAction(domain_name="absent", modifier={"description": "d"}),
        "domain_not_found",
    ),
    ("domain", "delete_domain"): (lambda w: DeleteDomainAction(domain_name=DOMAIN), "domain_delete_not_empty"),
    ("user", "create_user"): (
        lambda w: CreateUserAction(creator={"user_id": w.user, "domain_name": DOMAIN}),
        "user_create_duplicate_id",
    ),
    ("user", "modify_user"): (
        lambda w: ModifyUserAction(user_id=UNKNOWN, modifier={"full_name": "Ada"}),
        "user_not_found",
    ),
    ("user", "delete_user"): (lambda w: DeleteUserAction(user_id=w.user), "user_delete_in_use"),
    ("user", "erase_user"): (lambda w: EraseUserAction(user_id=UNKNOWN, reason="r"), "user_not_found"),
    ("token", "issue_token"): (
        lambda w: IssueTokenAction(user_id=UNKNOWN, role="user", domain_name=DOMAIN),
        "user_not_found",
    ),
    ("token", "revoke_token"): (lambda w: RevokeTokenAction(token_id=UNKNOWN), "token_not_found"),
    ("session", "enqueue_session"): (lambda w: enqueue_session(w, w.running_session), "session_enqueue_duplicate_id"),
    ("session", "schedule_session"): (lambda w: ScheduleSessionAction(session_id=UNKNOWN), "session_not_found"),
    ("session", "cancel_session"): (lambda w: CancelSessionAction(session_id=UNKNOWN), "session_not_found"),
    ("session", "terminate_session"): (
        lambda w: TerminateSessionAction(session_id=UNKNOWN, reason="s"),
        "session_not_found",
    ),
    ("session", "report_session_activity"): (
        lambda w: ReportSessionActivityAction(session_id=UNKNOWN, at=T0),
        "session_not_found",
    ),
}


def processor_methods(ledger: Ledger) -> set[tuple[str, str]]:
    services: tuple[str, ...] = ("keypair_resource_policy", "keypair", "group", "workload", "projection", "domain")
    services += ("user", "session", "token")
    return {(s, m) for s in services for m in getattr(ledger.processors, s).all()}


def stream_lengths(ledger: Ledger) -> dict[str, int]:
    """Events per stream, audit records aside (what a refused or failed action must not change)."""
    counts: dict[str, int] = {}
    for n in ledger.app.recorder.select_notifications(start=1, limit=1_000_000):
        if "AuditRecord" not in n.topic:
            counts[str(n.originator_id)] = counts.get(str(n.originator_id), 0) + 1
    return counts


def record_trail(ledger: Ledger, count: int) -> None:
    """`count` audit records of varied outcomes saved directly, as the audit monitor would:
    successes, errors, denied and running ones; several entity types, operations, domains
    (none among them), error codes and durations; start times that tie and that run
    backwards against the order they are stored in."""
    from domain.audit import AuditRecord

    records = []
    for n in range(count):
        status = ("success", "error", "denied", "success", "running")[n % 5]
        started = T0 + timedelta(seconds=(n * 7) % 13 + n // 13 * 13)
        records.append(
            AuditRecord.record(
                {
                    "action_id": str(uuid.UUID(int=7 * 10**12 + n)),
                    "entity_type": ("group", "keypair", "kernel")[n % 3],
                    "operation": ("modify", "create", "purge", "record_batch")[n % 4],
                    "entity_id": str(uuid.UUID(int=n % 11)),
                    "status": status,
                    "description": "success" if status == "success" else f"failed {n}: \u202eé",
                    "started_at": started.isoformat(),
                    "ended_at": (started + timedelta(milliseconds=n % 900)).isoformat(),
                    "duration": (n % 900) / 1000 + n * 1e-7,
                    "error_code": None if status == "success" else f"code_{n % 6}",
                    "request_id": f"req-{n}",
                    "triggered_by": str(uuid.UUID(int=n % 5)),
                    "access_key": f"AK{n % 5}",
                    "role": ("admin", "user", "superadmin")[n % 3],
                    "domain_name": (None, "default", "alpha", "d\x1bq")[n % 4],
                    "domains": [("default", "alpha", "beta")[n % 3]],
                    "spec": {"group_id": str(uuid.UUID(int=n)), "modifier": {"description": f"d{n}"}},
                }
            )
        )
    ledger.app.save(*records)
