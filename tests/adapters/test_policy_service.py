"""Seed 001, sections 1 to 3: the keypair resource policy service on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError as StoreIntegrityError

from adapters.bootstrap import Ledger
from domain.errors import (
    DuplicatePolicyName,
    InvalidAPIParameters,
    ObjectNotFound,
    PolicyInUse,
    SystemPolicyNotDeletable,
)
from domain.hosts import ALL_VFOLDER_PERMISSIONS, VFolderHostPermissionMap
from domain.keypair.actions import CreateKeyPairAction, DeleteKeyPairAction
from domain.keypair_resource_policy.actions import (
    CreateKeyPairResourcePolicyAction,
    CreateKeyPairResourcePolicyActionResult,
    DeleteKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyActionResult,
    ModifyKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyActionResult,
)
from domain.keypair_resource_policy.types import (
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
)
from domain.values import DefaultForUnspecified, ResourceSlot
from tests.actions import stream_lengths
from tests.adapters import directory
from tests.conftest import SUPERADMIN
from tests.domain.fakes import ensure_user
from tests.policies import DEV_POLICY

GiB = 1024**3
ENTITY = "keypair_resource_policy"

RAW_INTEGRITY_ERRORS = (
    StoreIntegrityError,
    sqlalchemy.exc.IntegrityError,
    sqlite3.IntegrityError,
    psycopg.IntegrityError,
)


def create(ledger: Ledger, **fields: Any) -> KeyPairResourcePolicyData:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(**fields))
    return asyncio.run(
        ledger.services.keypair_resource_policy.create_keypair_resource_policy(action)
    ).keypair_resource_policy


def modify(ledger: Ledger, name: str, **fields: Any) -> KeyPairResourcePolicyData:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier=KeyPairResourcePolicyModifier(**fields))
    return asyncio.run(
        ledger.services.keypair_resource_policy.modify_keypair_resource_policy(action)
    ).keypair_resource_policy


def delete(ledger: Ledger, name: str) -> KeyPairResourcePolicyData:
    action = DeleteKeyPairResourcePolicyAction(name=name)
    return asyncio.run(
        ledger.services.keypair_resource_policy.delete_keypair_resource_policy(action)
    ).keypair_resource_policy


OWNER = uuid.UUID("0000000a-0000-4000-8000-00000000000a")


def create_keypair(ledger: Ledger, access_key: str, policy: str) -> None:
    action = CreateKeyPairAction(
        access_key=access_key,
        user_id=ensure_user(ledger.app.store, OWNER, "default"),
        domain_name="default",
        resource_policy=policy,
    )
    asyncio.run(ledger.services.keypair.create_keypair(action))


def state(ledger: Ledger) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was (the audit trail records it)."""
    return stream_lengths(ledger), ledger.queries.keypair_resource_policies()


def events(ledger: Ledger, name: str) -> list[tuple[str, int]]:
    return [(e.event, e.version) for e in ledger.queries.history(ENTITY, name)]


# Seed 000: its three operation scenarios, as written


def test_seed_000_example_policy_is_created_modified_and_deleted(ledger: Ledger) -> None:
    service = ledger.services.keypair_resource_policy
    creator = KeyPairResourcePolicyCreator(
        name="example-policy",
        max_concurrent_sessions=5,
        max_containers_per_session=2,
        total_resource_slots={"cpu": 8, "mem": "16g"},
        idle_timeout=3600,
        max_session_lifetime=86400,
        max_concurrent_sftp_sessions=3,
        allowed_vfolder_hosts={"local": None},
    )
    created = asyncio.run(service.create_keypair_resource_policy(CreateKeyPairResourcePolicyAction(creator=creator)))
    assert isinstance(created, CreateKeyPairResourcePolicyActionResult)
    assert created.entity_id() == "example-policy"
    policy = created.keypair_resource_policy
    assert (policy.name, policy.max_concurrent_sessions, policy.max_containers_per_session) == ("example-policy", 5, 2)
    assert policy.total_resource_slots == {"cpu": Decimal(8), "mem": Decimal(16 * GiB)}
    assert (policy.idle_timeout, policy.max_session_lifetime, policy.max_concurrent_sftp_sessions) == (3600, 86400, 3)
    assert policy.allowed_vfolder_hosts == {"local": ALL_VFOLDER_PERMISSIONS}  # None: every permission
    assert ledger.queries.keypair_resource_policy("example-policy") == policy  # the seed's get_by_name

    modifier_instance = KeyPairResourcePolicyModifier(max_concurrent_sessions=7, total_resource_slots={"cpu": 16})
    modify_action = ModifyKeyPairResourcePolicyAction(name="example-policy", modifier=modifier_instance)
    modified = asyncio.run(service.modify_keypair_resource_policy(modify_action))
    assert isinstance(modified, ModifyKeyPairResourcePolicyActionResult)
    assert modified.entity_id() == "example-policy"
    expected = dataclasses.replace(policy, max_concurrent_sessions=7, total_resource_slots={"cpu": Decimal(16)})
    assert modified.keypair_resource_policy == expected
    assert ledger.queries.keypair_resource_policy("example-policy") == expected

    delete_action = DeleteKeyPairResourcePolicyAction(name="example-policy")
    deleted = asyncio.run(service.delete_keypair_resource_policy(delete_action))
    assert isinstance(deleted, DeleteKeyPairResourcePolicyActionResult)
    assert deleted.entity_id() == "example-policy"
    assert deleted.keypair_resource_policy == expected  # the deleted policy's data
    assert ledger.queries.keypair_resource_policy("example-policy") is None
    assert events(ledger, "example-policy") == [("Created", 1), ("Modified", 2), ("Deleted", 3)]


# 1. Create


def test_1_1_dev_policy_is_created_with_every_value_kept(ledger: Ledger) -> None:
    started = datetime.now(UTC)
    result = create(ledger, **DEV_POLICY)
    stored = ledger.queries.keypair_resource_policy("dev-policy")
    assert stored == result
    for policy in (result, stored):
        assert policy is not None
        assert policy.name == "dev-policy"
        assert policy.allowed_vfolder_hosts == {
            "storage1": ALL_VFOLDER_PERMISSIONS,
            "storage2": ALL_VFOLDER_PERMISSIONS,
        }
        assert policy.default_for_unspecified is DefaultForUnspecified.LIMITED
        assert policy.idle_timeout == 3600
        assert policy.max_concurrent_sessions == 5
        assert policy.max_containers_per_session == 3
        assert policy.max_pending_session_count == 10
        assert policy.max_pending_session_resource_slots == {"cpu": Decimal(10), "mem": Decimal(64 * GiB)}
        assert policy.max_session_lifetime == 86400
        assert policy.total_resource_slots == {"cpu": Decimal(50), "mem": Decimal(256 * GiB), "cuda.device": Decimal(4)}
        # Not given: defaults.
        assert policy.max_concurrent_sftp_sessions == 1
        assert policy.max_vfolder_count is None
        assert policy.max_vfolder_size is None
        assert policy.max_quota_scope_size is None
        assert policy.created_at.tzinfo is not None
        assert started - timedelta(seconds=5) <= policy.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert stored.to_json()["total_resource_slots"] == {"cpu": "50", "cuda.device": "4", "mem": "274877906944"}
    assert stored.to_json()["max_pending_session_resource_slots"] == {"cpu": "10", "mem": "68719476736"}
    assert [p.name for p in ledger.queries.keypair_resource_policies()] == ["default", "dev-policy"]
    (entry,) = ledger.queries.history(ENTITY, "dev-policy")
    assert (entry.event, entry.version) == ("Created", 1)
    assert entry.changes["max_concurrent_sessions"] == {"old": None, "new": 5}
    assert entry.changes["allowed_vfolder_hosts"]["new"] == {
        "storage1": sorted(p.value for p in ALL_VFOLDER_PERMISSIONS),
        "storage2": sorted(p.value for p in ALL_VFOLDER_PERMISSIONS),
    }


def test_1_1_slots_read_back_by_the_alias_given(ledger: Ledger) -> None:
    """The seed names "memory" and "gpu", documented aliases kept under `mem` and
    `cuda.device`: read back by the names given, they answer the stored values (a KeyError
    before), while unknown names still raise and iteration shows the canonical names."""
    result = create(ledger, **DEV_POLICY)
    stored = ledger.queries.keypair_resource_policy("dev-policy")
    assert stored is not None
    for policy in (result, stored):
        slots = policy.total_resource_slots
        assert slots["memory"] == slots["mem"] == Decimal(256 * GiB)
        assert slots["gpu"] == slots.get("gpu") == Decimal(4)
        assert "memory" in slots and "cuda.shares" not in slots
        assert policy.max_pending_session_resource_slots is not None
        assert policy.max_pending_session_resource_slots["memory"] == Decimal(64 * GiB)
        assert sorted(slots) == ["cpu", "cuda.device", "mem"]
        with pytest.raises(KeyError):
            slots["cuda.shares"]


def test_1_1_default_for_unspecified_reads_back_equal_to_the_text_given(ledger: Ledger) -> None:
    """The seed gives `"default_for_unspecified": "LIMITED"` and wants every value kept: the
    result and the query read back an enum equal to that text, as Backend.AI's string enum
    does (a plain enum compared unequal to "LIMITED", though it was stored)."""
    result = create(ledger, **DEV_POLICY)
    stored = ledger.queries.keypair_resource_policy("dev-policy")
    assert stored is not None
    assert result.default_for_unspecified == stored.default_for_unspecified == "LIMITED"
    assert modify(ledger, "dev-policy", default_for_unspecified="unlimited").default_for_unspecified == "UNLIMITED"


def test_1_1_host_permissions_read_back_equal_to_their_text(ledger: Ledger) -> None:
    """Permissions are given as text ("mount-in-session") and REFERENCE names them so: read
    back, each equals its text, as Backend.AI's string enum does (a plain enum was stored,
    yet `"mount-in-session" in hosts["storage1"]` was False)."""
    every = {
        "create-vfolder",
        "modify-vfolder",
        "delete-vfolder",
        "mount-in-session",
        "upload-file",
        "download-file",
        "invite-others",
        "set-user-specific-permission",
    }
    result = create(ledger, **DEV_POLICY)
    stored = ledger.queries.keypair_resource_policy("dev-policy")
    assert stored is not None
    for policy in (result, stored):
        assert "mount-in-session" in policy.allowed_vfolder_hosts["storage1"]
        assert policy.allowed_vfolder_hosts == {"storage1": every, "storage2": every}
    changed = modify(ledger, "dev-policy", allowed_vfolder_hosts={"local": ["upload-file"]})
    assert changed.allowed_vfolder_hosts == {"local": {"upload-file"}}


def test_1_2_minimal_policy_takes_system_defaults(ledger: Ledger) -> None:
    result = create(ledger, name="minimal-policy")
    stored = ledger.queries.keypair_resource_policy("minimal-policy")
    assert stored == result
    assert stored is not None
    assert stored.name == "minimal-policy"
    assert stored.default_for_unspecified is DefaultForUnspecified.LIMITED
    assert stored.total_resource_slots == {}
    assert stored.max_session_lifetime == 0
    assert stored.max_concurrent_sessions == 30
    assert stored.max_pending_session_count is None
    assert stored.max_pending_session_resource_slots is None
    assert stored.max_concurrent_sftp_sessions == 1
    assert stored.max_containers_per_session == 1
    assert stored.idle_timeout == 1800
    assert stored.allowed_vfolder_hosts == {}
    assert stored.max_vfolder_count is None
    assert stored.max_vfolder_size is None
    assert stored.max_quota_scope_size is None


def test_the_system_policy_exists_in_a_fresh_ledger(ledger: Ledger) -> None:
    default = ledger.queries.keypair_resource_policy("default")
    assert default is not None
    assert default.fields_json() == KeyPairResourcePolicyCreator(name="default").fields_json()
    assert events(ledger, "default") == [("Created", 1)]


def test_1_3_duplicate_name_is_a_domain_error_and_nothing_is_stored(ledger: Ledger) -> None:
    original = create(ledger, name="existing-policy", max_concurrent_sessions=5)
    before = state(ledger)
    with pytest.raises(DuplicatePolicyName, match="existing-policy") as info:
        create(ledger, name="existing-policy", max_concurrent_sessions=7)
    assert not isinstance(info.value, RAW_INTEGRITY_ERRORS)
    assert info.value.code == "keypair_resource_policy_create_duplicate_name"
    assert info.value.status == 409
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("existing-policy") == original
    assert events(ledger, "existing-policy") == [("Created", 1)]


def test_duplicate_of_the_system_policy_is_refused(ledger: Ledger) -> None:
    before = state(ledger)
    with pytest.raises(DuplicatePolicyName):
        create(ledger, name="default", max_concurrent_sessions=1)
    assert state(ledger) == before


def test_integrity_error_is_never_seen_when_a_create_loses_a_race(ledger: Ledger) -> None:
    """Creating a taken name conflicts in the store (the stream exists). Here the create
    then reads the policy as it was before another writer re-created it, so its own
    re-create conflicts too; the retry sees the live policy: a duplicate, not IntegrityError."""
    create(ledger, name="raced", max_concurrent_sessions=5)
    delete(ledger, "raced")
    create(ledger, name="raced", max_concurrent_sessions=6)  # the other writer, already committed
    before = state(ledger)
    store = ledger.services.keypair_resource_policy._store
    real_get = store.get
    calls: list[uuid.UUID] = []

    def stale_then_real_get(aggregate_id: uuid.UUID, cls: type) -> Any:
        calls.append(aggregate_id)
        if len(calls) == 1:  # as read just before the other writer's Recreated landed
            stale = ledger.app.repository.get(aggregate_id, version=2)
            assert stale.is_deleted
            return stale
        return real_get(aggregate_id, cls)

    store.get = stale_then_real_get
    try:
        with pytest.raises(DuplicatePolicyName) as info:
            create(ledger, name="raced", max_concurrent_sessions=7)
    finally:
        store.get = real_get
    assert len(calls) == 2  # the stale attempt conflicted and was retried
    assert not isinstance(info.value, RAW_INTEGRITY_ERRORS)
    assert info.value.__cause__ is None
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("raced").max_concurrent_sessions == 6  # type: ignore[union-attr]
    assert events(ledger, "raced") == [("Created", 1), ("Deleted", 2), ("Recreated", 3)]


def test_1_4_unknown_slot_name_is_refused(ledger: Ledger) -> None:
    before = state(ledger)
    with pytest.raises(InvalidAPIParameters, match="unknown slot 'invalid'") as info:
        create(ledger, name="invalid-slots", total_resource_slots={"invalid": "format"})
    assert info.value.field == "total_resource_slots.invalid"
    assert "cpu" in info.value.reason
    assert "mem" in info.value.reason
    assert "memory" in info.value.reason
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("invalid-slots") is None
    assert ledger.queries.history(ENTITY, "invalid-slots") == []


def test_slot_and_host_maps_built_directly_are_read_as_input(ledger: Ledger) -> None:
    """`domain.values.ResourceSlot` and the host map are public: built directly with plain
    values, they were taken unparsed. `ResourceSlot({"cpu": 4})` passed the check and the
    create then failed with "AttributeError: 'int' object has no attribute 'is_infinite'"
    (its audit record failed the same way); `ResourceSlot({"cpu": "4"})` was refused as
    "not in canonical form"; a host map with a control character in a host was stored, one
    with a permission as text failed with an AttributeError. Each is read as the same dict
    would be: parsed, aliases resolved, or refused naming the field."""
    processor = ledger.processors.keypair_resource_policy.create_keypair_resource_policy

    def created(name: str, **fields: Any) -> KeyPairResourcePolicyData:
        action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name, **fields))
        return asyncio.run(processor.wait_for_complete(action, SUPERADMIN)).keypair_resource_policy

    slots = ResourceSlot({"cpu": 4, "memory": "8g", "gpu": 1.5})
    assert created("direct", total_resource_slots=slots).total_resource_slots.to_json() == {
        "cpu": "4",
        "cuda.device": "1.5",
        "mem": str(8 * GiB),
    }
    hosts = VFolderHostPermissionMap({"local": ["mount-in-session"]})
    assert created("hosts", allowed_vfolder_hosts=hosts).allowed_vfolder_hosts.to_json() == {
        "local": ["mount-in-session"]
    }
    assert [entry.status for entry in ledger.queries.audit_log(ENTITY)] == ["success", "success"]
    before = state(ledger)
    with pytest.raises(InvalidAPIParameters) as info:
        KeyPairResourcePolicyCreator(name="bad", allowed_vfolder_hosts=VFolderHostPermissionMap({"a\x1bb": []}))
    assert info.value.field == "allowed_vfolder_hosts"
    with pytest.raises(InvalidAPIParameters) as info:
        KeyPairResourcePolicyCreator(name="bad", total_resource_slots=ResourceSlot({"cpu": -1}))
    assert info.value.field == "total_resource_slots.cpu"
    assert state(ledger) == before


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"max_concurrent_sessions": -1}, "max_concurrent_sessions"),
        ({"idle_timeout": -3600}, "idle_timeout"),
        ({"max_concurrent_sessions": -1, "idle_timeout": -3600}, "max_concurrent_sessions"),
    ],
)
def test_1_5_negative_values_are_refused(ledger: Ledger, fields: dict[str, int], bad_field: str) -> None:
    before = state(ledger)
    with pytest.raises(InvalidAPIParameters, match="at least 0") as info:
        create(ledger, name="negative-policy", **fields)
    assert info.value.field == bad_field
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("negative-policy") is None


# 2. Modify


def test_2_1_partial_update_changes_only_that_field(ledger: Ledger) -> None:
    before = create(ledger, **DEV_POLICY)
    after = modify(ledger, "dev-policy", max_concurrent_sessions=10)
    assert after == dataclasses.replace(before, max_concurrent_sessions=10)
    assert ledger.queries.keypair_resource_policy("dev-policy") == after
    last = ledger.queries.history(ENTITY, "dev-policy")[-1]
    assert (last.event, last.version) == ("Modified", 2)
    assert last.changes == {"max_concurrent_sessions": {"old": 5, "new": 10}}


def test_2_2_resource_slots_are_replaced_as_a_whole(ledger: Ledger) -> None:
    before = create(
        ledger, name="prod-policy", total_resource_slots={"cpu": "64", "memory": "256G", "cuda.shares": "1.5"}
    )
    after = modify(ledger, "prod-policy", total_resource_slots={"cpu": "100", "memory": "512G", "gpu": "8"})
    expected = {"cpu": Decimal(100), "mem": Decimal(512 * GiB), "cuda.device": Decimal(8)}
    assert after.total_resource_slots == expected
    assert "cuda.shares" not in after.total_resource_slots  # replaced, not merged
    assert after == dataclasses.replace(before, total_resource_slots=after.total_resource_slots)
    stored = ledger.queries.keypair_resource_policy("prod-policy")
    assert stored is not None
    assert stored.total_resource_slots == expected
    assert ledger.queries.history(ENTITY, "prod-policy")[-1].changes == {
        "total_resource_slots": {
            "old": {"cpu": "64", "cuda.shares": "1.5", "mem": str(256 * GiB)},
            "new": {"cpu": "100", "cuda.device": "8", "mem": str(512 * GiB)},
        }
    }


def test_2_3_null_resets_session_lifetime_and_idle_timeout(ledger: Ledger) -> None:
    before = create(ledger, **DEV_POLICY)
    after = modify(ledger, "dev-policy", max_session_lifetime=None, idle_timeout=None)
    assert after.max_session_lifetime is None
    assert after.idle_timeout is None
    assert after == dataclasses.replace(before, max_session_lifetime=None, idle_timeout=None)
    assert ledger.queries.keypair_resource_policy("dev-policy") == after
    assert ledger.queries.history(ENTITY, "dev-policy")[-1].changes == {
        "max_session_lifetime": {"old": 86400, "new": None},
        "idle_timeout": {"old": 3600, "new": None},
    }


def test_pending_fields_can_be_nullified_too(ledger: Ledger) -> None:
    create(ledger, **DEV_POLICY)
    after = modify(ledger, "dev-policy", max_pending_session_count=None, max_pending_session_resource_slots=None)
    assert after.max_pending_session_count is None
    assert after.max_pending_session_resource_slots is None
    assert ledger.queries.keypair_resource_policy("dev-policy") == after


@pytest.mark.parametrize("name", ["non-existent-policy"])
def test_2_4_modifying_an_unknown_policy_is_object_not_found(ledger: Ledger, name: str) -> None:
    before = state(ledger)
    with pytest.raises(ObjectNotFound, match=name) as info:
        modify(ledger, name, max_concurrent_sessions=10)
    assert (info.value.entity_type, info.value.entity_id) == (ENTITY, name)
    assert state(ledger) == before
    assert ledger.queries.history(ENTITY, name) == []


def test_modifying_a_deleted_policy_is_object_not_found(ledger: Ledger) -> None:
    create(ledger, name="gone")
    delete(ledger, "gone")
    before = state(ledger)
    with pytest.raises(ObjectNotFound):
        modify(ledger, "gone", max_concurrent_sessions=10)
    assert state(ledger) == before


def test_2_5_deprecated_field_is_stored_with_a_warning(ledger: Ledger) -> None:
    before = create(ledger, **DEV_POLICY)
    with pytest.warns(DeprecationWarning, match="max_vfolder_size"):
        modifier = KeyPairResourcePolicyModifier(max_vfolder_size=1000000)
        action = ModifyKeyPairResourcePolicyAction(name="dev-policy", modifier=modifier)
    after = asyncio.run(ledger.services.keypair_resource_policy.modify_keypair_resource_policy(action))
    assert after.keypair_resource_policy.max_vfolder_size == 1000000
    assert after.keypair_resource_policy == dataclasses.replace(before, max_vfolder_size=1000000)
    stored = ledger.queries.keypair_resource_policy("dev-policy")
    assert stored is not None
    assert stored.max_vfolder_size == 1000000
    assert ledger.queries.history(ENTITY, "dev-policy")[-1].changes == {
        "max_vfolder_size": {"old": None, "new": 1000000}
    }


def test_a_modify_that_changes_nothing_stores_no_event(ledger: Ledger) -> None:
    before = create(ledger, **DEV_POLICY)
    stored_before = state(ledger)
    # The same values, written differently: aliases, other units, other letter case.
    same = modify(
        ledger,
        "dev-policy",
        max_concurrent_sessions=5,
        default_for_unspecified="limited",
        total_resource_slots={"cpu": "50.000", "mem": str(256 * GiB), "cuda.device": 4},
        max_pending_session_resource_slots={"memory": "65536MiB", "cpu": 10},
        allowed_vfolder_hosts={"storage2": None, "storage1": [p.value for p in ALL_VFOLDER_PERMISSIONS]},
        idle_timeout="3600",
    )
    assert same == before
    assert modify(ledger, "dev-policy") == before
    assert state(ledger) == stored_before
    assert events(ledger, "dev-policy") == [("Created", 1)]


# 3. Delete


def test_3_1_delete_returns_the_policy_as_it_was(ledger: Ledger) -> None:
    create(ledger, name="unused-policy", max_concurrent_sessions=3, total_resource_slots={"cpu": 2})
    before = modify(ledger, "unused-policy", idle_timeout=60)
    deleted = delete(ledger, "unused-policy")
    assert deleted == before
    assert deleted.idle_timeout == 60
    assert deleted.max_concurrent_sessions == 3
    assert ledger.queries.keypair_resource_policy("unused-policy") is None
    assert [p.name for p in ledger.queries.keypair_resource_policies()] == ["default"]
    assert events(ledger, "unused-policy") == [("Created", 1), ("Modified", 2), ("Deleted", 3)]


def test_3_2_a_policy_used_by_a_keypair_is_not_deleted(ledger: Ledger) -> None:
    create(ledger, name="active-policy")
    create_keypair(ledger, "AKACTIVE1", "active-policy")
    before = state(ledger)
    with pytest.raises(PolicyInUse, match="AKACTIVE1") as info:
        delete(ledger, "active-policy")
    assert info.value.status == 409
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("active-policy") is not None
    # Once the keypair is gone, the policy can go.
    asyncio.run(ledger.services.keypair.delete_keypair(DeleteKeyPairAction(access_key="AKACTIVE1")))
    assert delete(ledger, "active-policy").name == "active-policy"
    assert ledger.queries.keypair_resource_policy("active-policy") is None


def test_3_2_a_policy_that_is_a_users_or_domains_default_is_not_deleted(ledger: Ledger) -> None:
    """Seed 001's precedence makes a user's and a domain's default policy apply to keypairs
    as an assigned one does: either default is "in use" too, on both backends."""
    create(ledger, name="active-policy")
    directory.create_domain(ledger, "in-use", default_keypair_resource_policy="active-policy")
    user = uuid.UUID("0000000c-0000-4000-8000-00000000000c")
    directory.create_user(ledger, user, "in-use", default_keypair_resource_policy="active-policy")
    for holder in ("domain:in-use", f"user:{user}"):
        before = state(ledger)
        with pytest.raises(PolicyInUse, match=holder):
            delete(ledger, "active-policy")
        assert state(ledger) == before
        if holder.startswith("domain"):
            directory.modify_domain(ledger, "in-use", default_keypair_resource_policy=None)
    directory.modify_user(ledger, user, default_keypair_resource_policy=None)
    assert delete(ledger, "active-policy").name == "active-policy"


def test_a_keypair_cannot_use_a_missing_policy(ledger: Ledger) -> None:
    ensure_user(ledger.app.store, OWNER, "default")  # the owner exists: only the policy is missing
    before = state(ledger)
    with pytest.raises(ObjectNotFound, match="no-such-policy"):
        create_keypair(ledger, "AKNOPOLICY", "no-such-policy")
    assert state(ledger) == before
    assert ledger.queries.keypair("AKNOPOLICY") is None


def test_3_3_the_system_policy_is_not_deletable(ledger: Ledger) -> None:
    before = state(ledger)
    with pytest.raises(SystemPolicyNotDeletable, match="default") as info:
        delete(ledger, "default")
    assert info.value.status == 403
    assert state(ledger) == before
    assert ledger.queries.keypair_resource_policy("default") is not None


def test_3_4_deleting_an_unknown_policy_is_object_not_found(ledger: Ledger) -> None:
    before = state(ledger)
    with pytest.raises(ObjectNotFound, match="non-existent-policy") as info:
        delete(ledger, "non-existent-policy")
    assert (info.value.entity_type, info.value.entity_id) == (ENTITY, "non-existent-policy")
    assert state(ledger) == before


def test_deleting_twice_is_object_not_found(ledger: Ledger) -> None:
    create(ledger, name="once")
    delete(ledger, "once")
    before = state(ledger)
    with pytest.raises(ObjectNotFound):
        delete(ledger, "once")
    assert state(ledger) == before


# Streams and history


def test_recreate_after_delete_continues_the_same_stream(ledger: Ledger) -> None:
    first = create(ledger, name="phoenix", max_concurrent_sessions=2, idle_timeout=100)
    modify(ledger, "phoenix", max_concurrent_sessions=3)
    delete(ledger, "phoenix")
    again = create(ledger, name="phoenix", max_concurrent_sessions=9)
    # The new incarnation has its own values, not the old ones.
    assert again.max_concurrent_sessions == 9
    assert again.idle_timeout == 1800
    assert again.created_at > first.created_at
    assert ledger.queries.keypair_resource_policy("phoenix") == again
    history = ledger.queries.history(ENTITY, "phoenix")
    assert [(e.event, e.version) for e in history] == [
        ("Created", 1),
        ("Modified", 2),
        ("Deleted", 3),
        ("Recreated", 4),
    ]
    assert [e.position for e in history] == sorted(e.position for e in history)
    assert history[-1].changes["max_concurrent_sessions"] == {"old": None, "new": 9}
    # And it stays one stream: more changes continue the numbering.
    modify(ledger, "phoenix", max_concurrent_sessions=10)
    assert events(ledger, "phoenix")[-1] == ("Modified", 5)


def test_keypair_assignments_are_in_the_policy_history(ledger: Ledger) -> None:
    create(ledger, name="shared")
    create_keypair(ledger, "AKONE", "shared")
    asyncio.run(ledger.services.keypair.delete_keypair(DeleteKeyPairAction(access_key="AKONE")))
    history = ledger.queries.history(ENTITY, "shared")
    assert [(e.event, e.version) for e in history] == [("Created", 1), ("KeyPairAssigned", 2), ("KeyPairUnassigned", 3)]
    assert history[1].details == {"access_key": "AKONE"}


def test_processors_stamp_the_actor_and_request_id_on_history(ledger: Ledger) -> None:
    processors = ledger.processors.keypair_resource_policy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(
            processors.create_keypair_resource_policy.wait_for_complete(
                CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="audited")), SUPERADMIN
            )
        )
    result = asyncio.run(
        processors.modify_keypair_resource_policy.wait_for_complete(
            ModifyKeyPairResourcePolicyAction(name="audited", modifier={"max_concurrent_sessions": 4}), SUPERADMIN
        )
    )
    assert result.keypair_resource_policy.max_concurrent_sessions == 4
    deleted = asyncio.run(
        processors.delete_keypair_resource_policy.wait_for_complete(
            DeleteKeyPairResourcePolicyAction(name="audited"), SUPERADMIN
        )
    )
    assert deleted.keypair_resource_policy == result.keypair_resource_policy
    history = ledger.queries.history(ENTITY, "audited")
    assert [e.event for e in history] == ["Created", "Modified", "Deleted"]
    for entry in history:
        assert entry.actor == {
            "user_id": str(uuid.UUID(int=1)),
            "access_key": "AKSUPERADMIN",
            "role": "superadmin",
            "domain_name": "default",
        }
        assert entry.request_id == "req-test"
        assert entry.action_id is not None
        uuid.UUID(entry.action_id)
        assert entry.occurred_at.tzinfo is not None
        assert entry.to_json()["occurred_at"].endswith("+00:00")
    assert len({e.action_id for e in history}) == 3  # one action each


def test_direct_service_calls_are_stamped_as_system(ledger: Ledger) -> None:
    create(ledger, name="by-system")
    (entry,) = ledger.queries.history(ENTITY, "by-system")
    assert entry.actor == {"user_id": None, "access_key": None, "role": "system", "domain_name": None}
    assert entry.request_id is None
    assert entry.action_id


def test_processors_raise_the_same_domain_errors(ledger: Ledger) -> None:
    processors = ledger.processors.keypair_resource_policy
    before = state(ledger)
    with pytest.raises(DuplicatePolicyName) as info:
        asyncio.run(
            processors.create_keypair_resource_policy.wait_for_complete(
                CreateKeyPairResourcePolicyAction(creator={"name": "default"}), SUPERADMIN
            )
        )
    assert not isinstance(info.value, RAW_INTEGRITY_ERRORS)
    with pytest.raises(SystemPolicyNotDeletable):
        asyncio.run(
            processors.delete_keypair_resource_policy.wait_for_complete(
                DeleteKeyPairResourcePolicyAction(name="default"), SUPERADMIN
            )
        )
    with pytest.raises(ObjectNotFound):
        asyncio.run(
            processors.modify_keypair_resource_policy.wait_for_complete(
                ModifyKeyPairResourcePolicyAction(name="non-existent-policy", modifier={}), SUPERADMIN
            )
        )
    assert state(ledger) == before
