"""Every action names its entity and operation and describes itself as JSON."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.actions import BaseAction
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
)
from domain.workload import CreateEndpointAction, DestroyEndpointAction, RecordWorkloadBatchAction

OWNER = "00000000-0000-0000-0000-000000000001"
ACTIONS = [
    (
        CreateKeyPairResourcePolicyAction(
            creator={"name": "p", "total_resource_slots": {"cpu": "2", "mem": "1g"}, "allowed_vfolder_hosts": ["nfs"]}
        ),
        ("keypair_resource_policy", "create", "p"),
    ),
    (
        ModifyKeyPairResourcePolicyAction(name="p", modifier={"idle_timeout": None, "max_concurrent_sessions": 3}),
        ("keypair_resource_policy", "modify", "p"),
    ),
    (DeleteKeyPairResourcePolicyAction(name="p"), ("keypair_resource_policy", "delete", "p")),
    (
        CreateKeyPairAction(access_key="AK", user_id=OWNER, domain_name="d", resource_policy="p"),
        ("keypair", "create", "AK"),
    ),
    (ModifyKeyPairAction(access_key="AK", resource_policy="q"), ("keypair", "modify", "AK")),
    (DeleteKeyPairAction(access_key="AK"), ("keypair", "delete", "AK")),
]


@pytest.mark.parametrize(("action", "expected"), ACTIONS, ids=lambda v: type(v).__name__)
def test_actions_name_entity_operation_and_id(action: BaseAction, expected: tuple[str, str, str]) -> None:
    assert (action.entity_type(), action.operation_type(), action.entity_id()) == expected


@pytest.mark.parametrize(("action", "expected"), ACTIONS, ids=lambda v: type(v).__name__)
def test_spec_is_json(action: BaseAction, expected: tuple[str, str, str]) -> None:
    assert json.loads(json.dumps(action.spec())) == action.spec()


def test_spec_shows_what_a_modifier_changes_and_nothing_else() -> None:
    action = ModifyKeyPairResourcePolicyAction(name="p", modifier={"idle_timeout": None, "max_concurrent_sessions": 3})
    assert action.spec() == {"name": "p", "modifier": {"idle_timeout": None, "max_concurrent_sessions": 3}}
    create = ACTIONS[0][0]
    assert create.spec()["creator"]["total_resource_slots"] == {"cpu": "2", "mem": "1073741824"}
    assert create.spec()["creator"]["allowed_vfolder_hosts"]["nfs"][0] == "create-vfolder"


def test_a_batch_action_names_each_entity_and_a_scope_action_its_scope() -> None:
    """Seed 004's two other action types: a batch carries `entity_ids()` (its audit id is
    bounded: the first and how many more), a scope action its scope type and id."""
    group, other, endpoint = (uuid.UUID(int=n) for n in (6, 7, 5))
    batch = RecordWorkloadBatchAction(
        actions=[
            CreateEndpointAction(endpoint_id=endpoint, group_id=group, name="e"),
            DestroyEndpointAction(endpoint_id=endpoint),
        ]
    )
    assert list(batch.entity_ids()) == [f"endpoint:{endpoint}", f"endpoint:{endpoint}"]
    assert batch.entity_id() == f"endpoint:{endpoint} (+1 more)"
    assert (batch.entity_type(), batch.operation_type()) == ("workload", "record_batch")

    everything = UsagePerMonthAction(month="202410")
    assert (everything.scope_type(), everything.scope_id(), everything.entity_id()) == ("ledger", "all", "ledger:all")
    some = UsagePerMonthAction(month="202410", group_ids=[str(group), str(other)])
    assert some.entity_id() == f"project:{group},{other}"
    one = UsagePerPeriodAction(start_date="20241001", end_date="20241031", project_id=str(group))
    assert (one.scope_type(), one.scope_id()) == ("project", str(group))
    assert (one.entity_type(), one.operation_type()) == ("group", "usage_per_period")
