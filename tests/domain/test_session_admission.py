"""The gates' pure functions: host grants united across levels for any permission, the
pending caps' unlimited forms, and the start gate's limits when a level is missing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from domain.effective_policy import EffectivePolicy, PolicySource
from domain.errors import VFolderHostNotAllowed
from domain.hosts import VFolderHostPermission, VFolderHostPermissionMap
from domain.keypair_resource_policy import KeyPairResourcePolicyCreator, KeyPairResourcePolicyData
from domain.session.admission import HostGrant, admission_checks, enqueue_checks, enqueue_refusal, granting
from domain.session.types import Scope
from domain.slots import INFINITY, ResourceSlot

CREATE = VFolderHostPermission.CREATE


def effective(**fields: Any) -> EffectivePolicy:
    creator = KeyPairResourcePolicyCreator(name="p", **fields)
    data = KeyPairResourcePolicyData.from_fields("p", datetime(2026, 1, 1, tzinfo=UTC), creator.fields_json())
    return EffectivePolicy(data, PolicySource.KEYPAIR, 1)


def hosts(raw: Any) -> VFolderHostPermissionMap:
    return VFolderHostPermissionMap.from_user_input(raw)


def test_any_level_grants_a_permission_and_none_denies() -> None:
    mount, create, nothing = (
        HostGrant(Scope.GROUP, g, hosts(raw))
        for g, raw in (("g1", {"nfs": ["mount-in-session"]}), ("g2", {"nfs": ["create-vfolder"]}), ("g3", {}))
    )
    levels = [mount, create, nothing]
    assert granting("host", "nfs", CREATE, levels, "the group") == [{"scope": "group", "scope_id": "g2"}]
    with pytest.raises(VFolderHostNotAllowed) as refused:
        granting("name", "ceph", CREATE, levels, "the group")
    assert (refused.value.host, refused.value.permission) == ("ceph", "create-vfolder")
    assert refused.value.message.startswith("name: on host 'ceph'")
    with pytest.raises(VFolderHostNotAllowed):  # no level at all grants nothing
        granting("x", "nfs", VFolderHostPermission.MOUNT_IN_SESSION, [], "the group")


def test_an_infinite_pending_cap_and_a_request_without_the_slot_pass() -> None:
    policy = effective(max_pending_session_resource_slots={"cpu": "inf", "mem": "1g"})
    big = ResourceSlot.from_user_input({"cpu": "1000000"})
    checks = enqueue_checks(policy, "AK", cluster_size=1, requested=big, pending_count=99, pending_total={})
    assert enqueue_refusal(policy, checks) is None
    # What the gate weighed, as the session's enqueue decision keeps it.
    assert [(c.limit, c.slot, c.requested, c.used, c.allowed) for c in checks] == [
        ("max_containers_per_session", None, 1, 0, policy.policy.max_containers_per_session),
        ("max_pending_session_count", None, 1, 99, INFINITY),
        ("max_pending_session_resource_slots", "cpu", 1000000, 0, INFINITY),
        ("max_pending_session_resource_slots", "mem", 0, 0, 2**30),
    ]


def test_the_enqueue_refusal_is_the_first_failed_check_in_the_gates_order() -> None:
    policy = effective(max_containers_per_session=2, max_pending_session_count=3)
    one_cpu = ResourceSlot.from_user_input({"cpu": "1"})
    checks = enqueue_checks(policy, "AK", cluster_size=3, requested=one_cpu, pending_count=3, pending_total={})
    assert [c.passed for c in checks] == [False, False]
    refusal = enqueue_refusal(policy, checks)
    assert refusal is not None and (refusal.limit, refusal.scope, refusal.scope_id) == (
        "max_containers_per_session",
        "keypair",
        "AK",
    )
    assert refusal.message.endswith("max_containers_per_session of policy 'p' (keypair, version 1): cluster_size 3 > 2")


THREE_G = {"mem": Decimal(3 * 2**30)}


def test_a_pending_memory_refusal_reads_in_the_units_the_policy_was_written_in() -> None:
    """`--max-pending-session-resource-slots mem=12g` and `--slot mem=10g` were refused with
    "mem: pending 3221225472 + requested 10737418240 > 12884901888", where the decision
    tables read 3g, 10g and 12g. A size no unit divides stays in bytes."""
    policy = effective(max_pending_session_resource_slots={"mem": "12g"})
    ten = ResourceSlot.from_user_input({"mem": "10g"})
    checks = enqueue_checks(policy, "AK", cluster_size=1, requested=ten, pending_count=1, pending_total=THREE_G)
    refusal = enqueue_refusal(policy, checks)
    assert refusal is not None and refusal.message.endswith(": mem: pending 3g + requested 10g > 12g")
    odd = ResourceSlot.from_user_input({"mem": str(10 * 2**30 + 1)})
    checks = enqueue_checks(policy, "AK", cluster_size=1, requested=odd, pending_count=1, pending_total=THREE_G)
    refusal = enqueue_refusal(policy, checks)
    assert refusal is not None and refusal.message.endswith(": mem: pending 3g + requested 10737418241 > 12g")


def test_without_a_domain_entity_the_domain_limit_is_unlimited() -> None:
    checks = admission_checks(
        effective(total_resource_slots={"cpu": "8"}, max_concurrent_sessions=0),
        "AK",
        ResourceSlot.from_user_input({"cpu": "2"}),
        keypair_running=5,
        keypair_used={"cpu": Decimal(6)},
        group_id="g",
        group_limits={},
        group_used={"cpu": Decimal(6)},
        domain_name="legacy",
        domain_limits=None,
        domain_used={"cpu": Decimal(6)},
    )
    assert all(check.passed for check in checks)
    assert [(c.scope.value, c.allowed) for c in checks] == [
        ("keypair", INFINITY),  # max_concurrent_sessions 0
        ("keypair", Decimal(8)),
        ("group", INFINITY),
        ("domain", INFINITY),
    ]
