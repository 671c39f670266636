"""Every action names its entity and operation and describes itself as JSON."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.actions import BaseAction
from domain.group import (
    CreateGroupAction,
    DeleteGroupAction,
    GroupAction,
    ModifyGroupAction,
    PurgeGroupAction,
    UsagePerMonthAction,
    UsagePerPeriodAction,
)
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeypairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
)
from domain.workload import CreateEndpointAction, DestroyEndpointAction, RecordWorkloadBatchAction

OWNER = "00000000-0000-0000-0000-000000000001"
GROUP = "12345678-1234-1234-1234-123456789012"  # seed 003's group id
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
    # Seed 003's actions: the group's id is the entity id of each, a create's included.
    (
        CreateGroupAction(input={"name": "development-team", "domain_name": "default"}, group_id=GROUP),
        ("group", "create", GROUP),
    ),
    (ModifyGroupAction(group_id=GROUP, modifier={"description": "d"}), ("group", "modify", GROUP)),
    (DeleteGroupAction(group_id=GROUP), ("group", "delete", GROUP)),
    (PurgeGroupAction(group_id=GROUP), ("group", "purge", GROUP)),
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


def test_the_seeds_actions_share_their_services_base_class() -> None:
    """Seed 000: "All actions inherit from `KeypairResourcePolicyAction`" (and seed 003's
    create, modify, delete and purge from one group base), each naming its entity type
    through it. The usage reports are scope actions (the test above)."""
    for action, _expected in ACTIONS:
        if action.entity_type() == "keypair_resource_policy":
            assert isinstance(action, KeypairResourcePolicyAction)
        if action.entity_type() == "group":
            assert isinstance(action, GroupAction)
    assert KeypairResourcePolicyAction.entity_type() == "keypair_resource_policy"
    assert GroupAction.entity_type() == "group"
    assert UsagePerMonthAction.operation_type() == "usage_per_month"


def test_a_group_created_without_an_id_names_the_id_the_ledger_drew() -> None:
    """A create that names no group id has one drawn when it is made: its entity id (the
    audit trail's and the metrics') is that id, the same each time it is asked."""
    action = CreateGroupAction(input={"name": "development-team", "domain_name": "default"})
    drawn = action.entity_id()
    assert drawn is not None and str(uuid.UUID(drawn)) == drawn == str(action.group_id)
    assert action.entity_id() == drawn and action.spec()["group_id"] == drawn
