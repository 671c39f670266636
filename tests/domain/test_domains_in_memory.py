"""Domains on the in-memory store: what create, modify and delete decide and record, the
policies a domain may name, and hostile input refused with the field named."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from domain.catalog import EntityType
from domain.domains import (
    CreateDomainAction,
    DeleteDomainAction,
    Domain,
    DomainCreator,
    DomainData,
    DomainModifier,
    DomainService,
    ModifyDomainAction,
)
from domain.domains.service import domain_data
from domain.domains.types import MAX_ALLOWED_POLICIES
from domain.errors import DomainNotEmpty, DuplicateDomainName, ObjectNotFound
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyService,
)
from domain.shown import shown
from domain.values import OptionalState, TriState
from tests.domain.fakes import InMemoryStore
from tests.domain.inputs import HUGE, NEG_HUGE, refused


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def create_policy(store: InMemoryStore, name: str) -> None:
    run(
        KeyPairResourcePolicyService(store).create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator={"name": name})
        )
    )


def create(store: InMemoryStore, name: str = "d", **fields: Any) -> DomainData:
    return run(DomainService(store).create_domain(CreateDomainAction(creator={"name": name, **fields}))).domain


def modify(store: InMemoryStore, name: str = "d", **fields: Any) -> Any:
    return run(DomainService(store).modify_domain(ModifyDomainAction(domain_name=name, modifier=fields)))


def delete(store: InMemoryStore, name: str = "d") -> DomainData:
    return run(DomainService(store).delete_domain(DeleteDomainAction(domain_name=name))).domain


def stored(store: InMemoryStore, name: str = "d") -> DomainData:
    """The domain as read back from its stream (every value must replay)."""
    domain = store.get(Domain.id_for(name), Domain)
    assert domain is not None
    return domain_data(domain)


# Create, modify, delete


def test_create_with_defaults_and_read_it_back(store: InMemoryStore) -> None:
    data = create(store)
    assert (data.name, data.description, data.is_active) == ("d", None, True)
    assert (data.total_resource_slots, data.allowed_vfolder_hosts) == ({}, {})
    assert (data.default_keypair_resource_policy, data.allowed_keypair_resource_policies) == (None, None)
    assert data.allows_policy("anything")
    assert stored(store) == data
    assert store.events(Domain.id_for("d")) == ["Created"]
    assert json.loads(json.dumps(data.to_json()))["name"] == "d"


def test_every_field_is_kept_and_replays(store: InMemoryStore) -> None:
    create_policy(store, "gold")
    create_policy(store, "silver")
    data = create(
        store,
        "연구소 · lab",
        description="line one\n\tline two ✓",
        is_active="false",
        total_resource_slots={"cpu": "inf", "mem": "64g", "cuda.shares": "1.2345"},
        allowed_vfolder_hosts={"local": None, "nfs": ["upload-file"]},
        default_keypair_resource_policy="gold",
        allowed_keypair_resource_policies=("silver", "gold", "gold"),
    )
    assert data.total_resource_slots["mem"] == Decimal(64 * 1024**3)
    assert data.total_resource_slots["cpu"].is_infinite()
    assert data.allowed_keypair_resource_policies == ("gold", "silver")  # sorted, deduplicated
    assert data.allows_policy("gold") and not data.allows_policy("bronze")
    assert stored(store, "연구소 · lab") == data
    assert json.loads(json.dumps(data.to_json())) == data.to_json()


def test_a_live_name_is_a_duplicate_and_a_deleted_one_is_taken_again(store: InMemoryStore) -> None:
    create(store)
    with pytest.raises(DuplicateDomainName) as duplicate:
        create(store)
    assert duplicate.value.code == "domain_create_duplicate_name"
    before = delete(store)
    assert before.name == "d"
    again = create(store, description="second life")
    assert again.description == "second life"
    assert store.events(Domain.id_for("d")) == ["Created", "Deleted", "Recreated"]


def test_modify_records_only_real_changes_and_says_so(store: InMemoryStore) -> None:
    create(store, description="x")
    result = modify(store, description="x", is_active=True)
    assert result.changed is False
    assert store.events(Domain.id_for("d")) == ["Created"]
    result = modify(store, description=None, total_resource_slots={"cpu": 4})
    assert result.changed is True
    assert (result.domain.description, result.domain.total_resource_slots) == (None, {"cpu": Decimal(4)})
    assert stored(store) == result.domain
    assert store.events(Domain.id_for("d")) == ["Created", "Modified"]


def test_missing_and_deleted_domains_are_not_found(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound, match="domain 'nowhere' not found") as missing:
        modify(store, "nowhere", description="x")
    assert (missing.value.entity_type, missing.value.entity_id) == ("domain", "nowhere")
    create(store)
    delete(store)
    with pytest.raises(ObjectNotFound):
        delete(store)
    with pytest.raises(ObjectNotFound):
        modify(store, is_active=False)


def test_a_domain_holding_users_or_groups_is_not_deleted(store: InMemoryStore) -> None:
    create(store)
    work_domain = store.get(Domain.id_for("d"), Domain)
    assert work_domain is not None
    work_domain.add_user("u1")
    work_domain.add_group("g1")
    store.save(work_domain)
    with pytest.raises(DomainNotEmpty, match="1 user") as refusal:
        delete(store)
    assert refusal.value.code == "domain_delete_not_empty"
    domain = store.get(Domain.id_for("d"), Domain)
    assert domain is not None
    domain.remove_user("u1")
    store.save(domain)
    with pytest.raises(DomainNotEmpty, match="1 group"):
        delete(store)
    domain = store.get(Domain.id_for("d"), Domain)
    assert domain is not None
    domain.remove_group("g1")
    domain.remove_group("never-added")  # leaving twice records nothing
    store.save(domain)
    delete(store)
    assert store.events(Domain.id_for("d")) == [
        "Created",
        "UserAdded",
        "GroupAdded",
        "UserRemoved",
        "GroupRemoved",
        "Deleted",
    ]


# The policies a domain names


def test_the_default_policy_must_be_live(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound, match="default_keypair_resource_policy: keypair resource policy 'gold'"):
        create(store, default_keypair_resource_policy="gold")
    assert store.events(Domain.id_for("d")) == []  # nothing stored by the refusal
    create_policy(store, "gold")
    create(store, default_keypair_resource_policy="gold")
    with pytest.raises(ObjectNotFound, match="'silver' not found") as missing:
        modify(store, default_keypair_resource_policy="silver")
    assert (missing.value.entity_type, missing.value.entity_id) == ("keypair_resource_policy", "silver")
    assert modify(store, default_keypair_resource_policy=None).domain.default_keypair_resource_policy is None


def test_allowed_policies_must_be_live_when_added(store: InMemoryStore) -> None:
    create_policy(store, "gold")
    with pytest.raises(ObjectNotFound, match=r"allowed_keypair_resource_policies: .*'typo'"):
        create(store, allowed_keypair_resource_policies=["gold", "typo"])
    create(store, allowed_keypair_resource_policies=["gold"])
    create_policy(store, "silver")
    run(
        KeyPairResourcePolicyService(store).delete_keypair_resource_policy(
            DeleteKeyPairResourcePolicyAction(name="gold")
        )
    )
    # A listed policy deleted since stays listed: only names new to the list are checked.
    result = modify(store, allowed_keypair_resource_policies=["gold", "silver"])
    assert result.domain.allowed_keypair_resource_policies == ("gold", "silver")
    assert modify(store, allowed_keypair_resource_policies=[]).domain.allowed_keypair_resource_policies == ()
    nobody = stored(store)
    assert not nobody.allows_policy("silver")
    assert modify(store, allowed_keypair_resource_policies=None).domain.allows_policy("anything")


# Actions


def test_actions_name_the_domain_they_target() -> None:
    actions = [
        (CreateDomainAction(creator={"name": "d"}), "create"),
        (ModifyDomainAction(domain_name="d", modifier={"is_active": False}), "modify"),
        (DeleteDomainAction(domain_name="d"), "delete"),
    ]
    for action, operation in actions:
        assert (action.entity_type(), action.operation_type(), action.entity_id()) == ("domain", operation, "d")
        assert action.target_domains() == {"d"}
        assert json.loads(json.dumps(action.spec())) == action.spec()
    assert actions[1][0].spec() == {"domain_name": "d", "modifier": {"is_active": False}}
    assert EntityType.DOMAIN == "domain"


def test_the_modifier_leaves_everything_alone_by_default() -> None:
    modifier = DomainModifier()
    assert modifier.fields_json() == {}
    assert DomainModifier(description=TriState.nullify()).fields_json() == {"description": None}
    assert DomainModifier(is_active=OptionalState.update("true")).is_active == OptionalState.update(True)
    assert DomainModifier(allowed_keypair_resource_policies=["b", "a"]).fields_json() == {
        "allowed_keypair_resource_policies": ["a", "b"]
    }


# Hostile input: a clear InvalidAPIParameters naming the field, never a stored value that cannot be read


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("name", ""),
        ("name", " d"),
        ("name", "x" * 10**6),
        ("name", "a\x1b[31mred"),
        ("name", "a\u202eb"),
        ("name", 5),
        ("name", None),
        ("description", "d" * 513),
        ("description", "bell\x07"),
        ("description", ["list"]),
        ("is_active", "maybe"),
        ("is_active", 2),
        ("total_resource_slots", {"cpu": float("nan")}),
        ("total_resource_slots", {"cpu": "nan"}),
        ("total_resource_slots", {"cpu": "-inf"}),
        ("total_resource_slots", {"cpu": -1}),
        ("total_resource_slots", {"cpu": HUGE.values[0]}),
        ("total_resource_slots", {"cpu": NEG_HUGE.values[0]}),
        ("total_resource_slots", {"no-such-slot": 1}),
        ("total_resource_slots", "cpu=1"),
        ("total_resource_slots", None),
        ("allowed_vfolder_hosts", 42),
        ("allowed_vfolder_hosts", {"local": ["fly"]}),
        ("default_keypair_resource_policy", ""),
        ("default_keypair_resource_policy", 3.5),
        ("default_keypair_resource_policy", "p\x00"),
        ("allowed_keypair_resource_policies", "gold"),
        ("allowed_keypair_resource_policies", {"gold": 1}),
        ("allowed_keypair_resource_policies", [1]),
        ("allowed_keypair_resource_policies", ["ok", "bad\nname"]),
        ("allowed_keypair_resource_policies", ["p"] * (MAX_ALLOWED_POLICIES + 1)),
        ("allowed_keypair_resource_policies", ["x" * 10**6]),
    ],
    ids=lambda v: shown(v, 30),
)
def test_hostile_creator_input_is_refused_naming_the_field(field: str, raw: Any) -> None:
    fields = {"name": "d", field: raw}
    refused(DomainCreator, field=field, **fields)
    refused(CreateDomainAction, field=field, creator=fields)
    if field != "name":
        refused(DomainModifier, field=field, **{field: raw})


@pytest.mark.parametrize("field", ["is_active", "total_resource_slots", "allowed_vfolder_hosts"])
def test_fields_that_cannot_be_null_refuse_null_in_the_modifier(field: str) -> None:
    refused(DomainModifier, field=field, **{field: None})


def test_unknown_fields_and_renames_are_refused() -> None:
    refused(DomainModifier, field="name", name="other")
    huge_key = refused(DomainCreator, name="d", **{"x" * 10**5: 1})  # named, cut short
    assert huge_key.field is not None and huge_key.field.startswith("xxx") and len(huge_key.field) <= 120
    refused(ModifyDomainAction, field="domain_name", domain_name="\x00")
    refused(DeleteDomainAction, field="domain_name", domain_name=uuid.uuid4())
    refused(DeleteDomainAction, field="domain_name")


def test_a_slot_patch_changes_only_the_slots_it_names(store: InMemoryStore) -> None:
    create(store, total_resource_slots={"cpu": 4, "mem": "1g"})
    result = modify(store, total_resource_slots_patch={"cpu": "8", "cuda.device": 2})
    assert result.changed
    assert result.domain.total_resource_slots == {"cpu": 8, "mem": 1024**3, "cuda.device": 2}
    result = modify(store, total_resource_slots_patch={"mem": None})
    assert result.domain.total_resource_slots == {"cpu": 8, "cuda.device": 2}
    assert stored(store) == result.domain
    assert modify(store, total_resource_slots_patch={"cpu": 8}).changed is False
    spec = ModifyDomainAction(domain_name="d", modifier={"total_resource_slots_patch": {"mem": None}}).spec()
    assert spec == {"domain_name": "d", "modifier": {"total_resource_slots_patch": {"mem": None}}}
    refused(DomainModifier, field="total_resource_slots_patch", total_resource_slots={}, total_resource_slots_patch={})
    refused(DomainModifier, field="total_resource_slots_patch", total_resource_slots_patch={"cpu": "nan"})
    refused(DomainModifier, field="total_resource_slots_patch", total_resource_slots_patch=["cpu"])
