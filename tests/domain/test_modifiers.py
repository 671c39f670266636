"""The four entity modifiers share `domain.modifier.Modifier`: each names the stored
fields it replaces and the slot maps it patches; every other field of the model is one
of those, so no input is accepted and then silently dropped."""

from __future__ import annotations

import pytest

from domain.domains import DomainModifier
from domain.group import GroupModifier
from domain.keypair_resource_policy import KeyPairResourcePolicyModifier
from domain.modifier import Modifier
from domain.user import UserModifier

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
