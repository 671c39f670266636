"""Every action names its entity and operation and describes itself as JSON."""

from __future__ import annotations

import json

import pytest

from domain.actions import BaseAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
)

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
