"""The four entity modifiers share `domain.modifier.Modifier`: each names the stored
fields it replaces and the slot maps it patches; every other field of the model is one
of those, so no input is accepted and then silently dropped."""

from __future__ import annotations

import asyncio
import copy
import pickle

import pytest

from adapters.bootstrap import Ledger
from domain.domains import DomainModifier
from domain.group import GroupModifier
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicyModifier,
    ModifyKeyPairResourcePolicyAction,
)
from domain.modifier import Modifier
from domain.user import UserModifier
from tests.conftest import SUPERADMIN

MODIFIERS: list[type[Modifier]] = [KeyPairResourcePolicyModifier, DomainModifier, GroupModifier, UserModifier]


@pytest.mark.parametrize("modifier", MODIFIERS, ids=lambda m: m.__name__)
def test_every_field_is_replaced_or_patches_a_replaceable_map(modifier: type[Modifier]) -> None:
    assert set(modifier.model_fields) == set(modifier.FIELDS) | set(modifier.SLOT_PATCHES)
    assert set(modifier.SLOT_PATCHES.values()) <= set(modifier.FIELDS)
    assert not set(modifier.FIELDS) & set(modifier.SLOT_PATCHES)


@pytest.mark.parametrize("modifier", MODIFIERS, ids=lambda m: m.__name__)
def test_nothing_given_replaces_nothing(modifier: type[Modifier]) -> None:
    assert modifier().fields_json() == {}
    assert modifier().wanted_fields({"total_resource_slots": {"cpu": "1"}}) == {}


COPIES = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    "model_copy": lambda value: value.model_copy(deep=True),
}


@pytest.mark.parametrize("modifier", MODIFIERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("how", COPIES)
def test_a_copy_leaves_alone_what_the_original_leaves_alone(modifier: type[Modifier], how: str) -> None:
    """A deep copy of a modifier (a test's `action.model_copy(deep=True)`, the pickle a
    worker process receives) held a new `_Nop` in every field left alone: not `is NOP`,
    so it read as a value to set, and the service raised ValueError("a nop state has no
    value") from every such field."""
    original = modifier()
    twin = COPIES[how](original)
    assert all(getattr(twin, field).is_nop() for field in modifier.model_fields)
    assert twin == original and twin.fields_json() == {}


@pytest.mark.parametrize("how", COPIES)
def test_a_copied_modify_action_changes_only_what_it_names(memory_ledger: Ledger, how: str) -> None:
    create = CreateKeyPairResourcePolicyAction(creator={"name": "copied"})
    asyncio.run(
        memory_ledger.processors.keypair_resource_policy.create_keypair_resource_policy.wait_for_complete(
            create, SUPERADMIN
        )
    )
    modify = COPIES[how](ModifyKeyPairResourcePolicyAction(name="copied", modifier={"idle_timeout": 5}))
    processor = memory_ledger.processors.keypair_resource_policy.modify_keypair_resource_policy
    policy = asyncio.run(processor.wait_for_complete(modify, SUPERADMIN)).keypair_resource_policy
    assert (policy.idle_timeout, policy.max_concurrent_sessions) == (5, 30)
    (entry,) = memory_ledger.queries.audit_log(operation="modify", entity_id="copied")
    assert entry.status == "success"
