"""Service and aggregate decisions on the in-memory store: the purge checks' order, the
fallback refusals, and what `load_live` refuses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import (
    CircularPolicyReference,
    GroupNotFound,
    InvalidAPIParameters,
    ObjectNotFound,
    PolicyInUse,
    PurgeGroupActionActiveEndpointsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
)
from domain.group import CreateGroupAction, GroupService, ModifyGroupAction, PurgeGroupAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, KeyPairService, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyService,
    ModifyKeyPairResourcePolicyAction,
    policy_id,
)
from domain.ports import UnitOfWork, load_live
from domain.workload import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    StartKernelAction,
    TerminateKernelAction,
    WorkloadService,
)
from tests.domain.fakes import InMemoryStore, NoUsage, ensure_domain, ensure_user

T0 = datetime(2024, 10, 1, tzinfo=UTC)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    ensure_domain(store, "d")
    return store


# Policies and their fallbacks


def create_policy(store: InMemoryStore, name: str, **fields: Any) -> None:
    action = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
    run(KeyPairResourcePolicyService(store).create_keypair_resource_policy(action))


def set_fallback(store: InMemoryStore, name: str, fallback: str | None) -> None:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier={"fallback_policy": fallback})
    run(KeyPairResourcePolicyService(store).modify_keypair_resource_policy(action))


def test_a_policy_cannot_fall_back_to_itself_or_to_its_own_referrer(store: InMemoryStore) -> None:
    create_policy(store, "a")
    create_policy(store, "b", fallback_policy="a")
    with pytest.raises(CircularPolicyReference):
        set_fallback(store, "a", "a")
    with pytest.raises(CircularPolicyReference):
        set_fallback(store, "a", "b")
    assert store.events(policy_id("a")) == ["Created", "FallbackReferenced"]  # nothing stored by the refusals


def test_fallbacks_do_not_chain_either_way(store: InMemoryStore) -> None:
    create_policy(store, "base")
    create_policy(store, "mid", fallback_policy="base")
    create_policy(store, "other")
    with pytest.raises(InvalidAPIParameters) as through_mid:
        set_fallback(store, "other", "mid")  # mid itself falls back
    with pytest.raises(InvalidAPIParameters) as onto_base:
        set_fallback(store, "base", "other")  # base is someone's fallback
    assert through_mid.value.field == onto_base.value.field == "fallback_policy"


def test_a_fallback_must_be_live_and_is_in_use_while_referenced(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound):
        create_policy(store, "a", fallback_policy="absent")
    create_policy(store, "base")
    create_policy(store, "a", fallback_policy="base")
    service = KeyPairResourcePolicyService(store)
    with pytest.raises(PolicyInUse):
        run(service.delete_keypair_resource_policy(DeleteKeyPairResourcePolicyAction(name="base")))
    set_fallback(store, "a", None)
    run(service.delete_keypair_resource_policy(DeleteKeyPairResourcePolicyAction(name="base")))
    assert store.events(policy_id("base"))[-2:] == ["FallbackReleased", "Deleted"]


def test_the_fake_store_conflicts_on_a_stale_save_and_run_retries(store: InMemoryStore) -> None:
    create_policy(store, "p")
    stale = store.get(policy_id("p"), KeyPairResourcePolicy)
    create_policy(store, "q", fallback_policy="p")  # p's stream moves on
    attempts: list[KeyPairResourcePolicy] = []

    def assign() -> None:
        policy = stale if not attempts else store.get(policy_id("p"), KeyPairResourcePolicy)
        assert policy is not None
        attempts.append(policy)
        policy.assign("AK1")
        store.save(policy)

    store.run(assign, "keypair_resource_policy", "assign")
    assert len(attempts) == 2
    assert store.events(policy_id("p")) == ["Created", "FallbackReferenced", "KeyPairAssigned"]


# load_live


def test_load_live_refuses_missing_deleted_and_other_kinds(store: InMemoryStore) -> None:
    create_policy(store, "p")
    keypairs = KeyPairService(store)
    owner = ensure_user(store, uuid.uuid4(), "d")
    create = CreateKeyPairAction(access_key="AK1", user_id=owner, domain_name="d", resource_policy="p")
    run(keypairs.create_keypair(create))
    run(keypairs.delete_keypair(DeleteKeyPairAction(access_key="AK1")))
    with pytest.raises(ObjectNotFound, match="keypair 'AK1' not found"):
        run(keypairs.modify_keypair(ModifyKeyPairAction(access_key="AK1", resource_policy="p")))
    with pytest.raises(ObjectNotFound, match="keypair resource policy 'absent' not found"):
        load_live(UnitOfWork(store), KeyPairResourcePolicy, "absent")
    group = create_group(store)
    kernel = start_kernel(store, group)
    with pytest.raises(GroupNotFound):  # a kernel's stream is not a group
        run(groups(store).modify_group(ModifyGroupAction(group_id=kernel, modifier={"description": "x"})))


# Purge checks, in REFERENCE.md's order


def groups(store: InMemoryStore) -> GroupService:
    return GroupService(store, NoUsage())


def create_group(store: InMemoryStore) -> uuid.UUID:
    result = run(groups(store).create_group(CreateGroupAction(input={"name": "g", "domain_name": "d"})))
    group_id: uuid.UUID = result.data.id
    return group_id


def start_kernel(store: InMemoryStore, group: uuid.UUID, mounts: list[uuid.UUID] | None = None) -> uuid.UUID:
    kernel = uuid.uuid4()
    action = StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="s",
        group_id=group,
        domain_name="d",
        user_id=uuid.uuid4(),
        access_key="AK",
        occupied_slots={"cpu": "1"},
        started_at=T0,
        mounts=mounts or [],
    )
    run(WorkloadService(store).start_kernel(action))
    return kernel


def purge(store: InMemoryStore, group: uuid.UUID) -> None:
    run(groups(store).purge_group(PurgeGroupAction(group_id=group)))


def test_purge_checks_mounted_vfolders_then_kernels_then_endpoints(store: InMemoryStore) -> None:
    workload = WorkloadService(store)
    group = create_group(store)
    vfolder = uuid.uuid4()
    run(workload.create_vfolder(CreateVFolderAction(vfolder_id=vfolder, name="v", host="h", group_id=group)))
    endpoint = uuid.uuid4()
    run(workload.create_endpoint(CreateEndpointAction(endpoint_id=endpoint, group_id=group, name="e")))
    plain = start_kernel(store, group)
    mounting = start_kernel(store, group, [vfolder])

    with pytest.raises(PurgeGroupActionVFoldersMountedToActiveKernelsError):
        purge(store, group)
    run(workload.terminate_kernel(TerminateKernelAction(kernel_id=mounting, terminated_at=T0)))
    with pytest.raises(PurgeGroupActionActiveKernelsError):
        purge(store, group)
    run(workload.terminate_kernel(TerminateKernelAction(kernel_id=plain, terminated_at=T0)))
    with pytest.raises(PurgeGroupActionActiveEndpointsError):
        purge(store, group)
    run(workload.destroy_endpoint(DestroyEndpointAction(endpoint_id=endpoint)))
    purge(store, group)

    assert store.events(group)[-1] == "Purged"
    with pytest.raises(GroupNotFound):
        start_kernel(store, group)


class CountingHistory(InMemoryStore):
    """A store that can count clear history, and counts how often it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def clear_history(self, aggregate_id: uuid.UUID, key: str, subject: str) -> tuple[int, int]:
        self.asked += 1
        return 0, 0


def test_a_refused_purge_does_not_read_the_ledger_for_clear_history() -> None:
    """The count reads every event that may name the group (all its kernels'): a purge the
    checks refuse anyway must not pay for it."""
    store = CountingHistory()
    ensure_domain(store, "d")
    group = create_group(store)
    kernel = start_kernel(store, group)
    with pytest.raises(PurgeGroupActionActiveKernelsError):
        purge(store, group)
    assert store.asked == 0
    run(WorkloadService(store).terminate_kernel(TerminateKernelAction(kernel_id=kernel, terminated_at=T0)))
    purge(store, group)
    assert store.asked == 1 and store.events(group)[-1] == "Purged"
