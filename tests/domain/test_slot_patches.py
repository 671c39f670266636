"""Slot patches (`total_resource_slots_patch` and the pending map's patch) and the exact
`changed` of modify results, decided by the services on the in-memory store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from domain.errors import InvalidAPIParameters
from domain.group import CreateGroupAction, Group, GroupModifier, GroupService, ModifyGroupAction
from domain.keypair import CreateKeyPairAction, KeyPairService, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyModifier,
    KeyPairResourcePolicyService,
    ModifyKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyActionResult,
    policy_id,
)
from domain.ports import UnitOfWork, load_live
from domain.slot_patch import SlotPatch, parse_slot_patch
from domain.slots import KNOWN_SLOTS
from tests.domain.fakes import InMemoryStore, NoUsage, ensure_domain, ensure_user

PATCH = "total_resource_slots_patch"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    ensure_domain(store, "default")
    return store


def create_policy(store: InMemoryStore, name: str = "p", **fields: Any) -> None:
    action = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
    run(KeyPairResourcePolicyService(store).create_keypair_resource_policy(action))


def modify_policy(store: InMemoryStore, name: str = "p", **modifier: Any) -> ModifyKeyPairResourcePolicyActionResult:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier=modifier)
    result: ModifyKeyPairResourcePolicyActionResult = run(
        KeyPairResourcePolicyService(store).modify_keypair_resource_policy(action)
    )
    return result


def slots_of(result: ModifyKeyPairResourcePolicyActionResult) -> dict[str, str]:
    slots: dict[str, str] = result.keypair_resource_policy.total_resource_slots.to_json()
    return slots


# The patch itself


def test_a_patch_resolves_aliases_parses_quantities_and_shows_itself_as_given() -> None:
    patch = parse_slot_patch({"memory": "16g", "gpu": None, "cpu": "inf"}, PATCH)
    assert patch.to_json() == {"cpu": "Infinity", "cuda.device": None, "mem": str(16 * 2**30)}
    assert parse_slot_patch(patch, PATCH) == patch  # a built patch is checked again and kept
    assert parse_slot_patch({}, PATCH).to_json() == {}


def test_a_patch_built_directly_with_plain_values_is_read_as_input() -> None:
    """`SlotPatch({"cpu": 8, "memory": "1g"})` was checked through its JSON form, which its
    int could not be written as: an AttributeError, not a patch or a refusal."""
    patch = KeyPairResourcePolicyModifier(**{PATCH: SlotPatch({"cpu": 8, "memory": "1g", "gpu": None})})
    assert patch.total_resource_slots_patch.value().to_json() == {"cpu": "8", "cuda.device": None, "mem": str(2**30)}
    with pytest.raises(InvalidAPIParameters) as refused:
        KeyPairResourcePolicyModifier(**{PATCH: SlotPatch({"cpu": -1})})
    assert refused.value.field == f"{PATCH}.cpu"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"cpu": "-1"}, f"{PATCH}.cpu"),
        ({"cpu": "nan"}, f"{PATCH}.cpu"),
        ({"mem": "1.5"}, f"{PATCH}.mem"),
        ({"bogus": "1"}, f"{PATCH}.bogus"),
        ({"bogus": None}, f"{PATCH}.bogus"),
        ({"memory": "1g", "mem": None}, f"{PATCH}.mem"),
        ({"gpu": None, "cuda.device": "1"}, f"{PATCH}.gpu"),
        (["cpu"], PATCH),
        ("cpu=1", PATCH),
    ],
)
def test_a_bad_patch_is_refused_naming_the_slot(raw: Any, field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as refused:
        KeyPairResourcePolicyModifier(**{PATCH: raw})
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("model", "fields", "patch"),
    [
        (KeyPairResourcePolicyModifier, {"total_resource_slots": {"cpu": 1}}, {PATCH: {"mem": "1g"}}),
        (
            KeyPairResourcePolicyModifier,
            {"max_pending_session_resource_slots": None},
            {"max_pending_session_resource_slots_patch": {"cpu": 1}},
        ),
        (GroupModifier, {"total_resource_slots": {"cpu": 1}}, {PATCH: {"mem": "1g"}}),
    ],
)
def test_a_map_is_replaced_or_patched_never_both(model: Any, fields: dict[str, Any], patch: dict[str, Any]) -> None:
    with pytest.raises(InvalidAPIParameters) as refused:
        model(**fields, **patch)
    (patch_field,) = patch
    (replaced,) = fields
    assert refused.value.field == patch_field
    assert replaced in refused.value.reason and patch_field in refused.value.reason


def test_fields_json_leaves_patches_out_and_wanted_fields_merges_them() -> None:
    modifier = KeyPairResourcePolicyModifier(idle_timeout=5, **{PATCH: {"cpu": "2", "mem": None}})
    assert modifier.fields_json() == {"idle_timeout": 5}
    current = {"total_resource_slots": {"cpu": "1", "mem": "1024", "cuda.device": "1"}}
    assert modifier.wanted_fields(current) == {
        "idle_timeout": 5,
        "total_resource_slots": {"cpu": "2", "cuda.device": "1"},
    }


def test_the_action_spec_the_audit_records_holds_the_patch_as_given() -> None:
    action = ModifyKeyPairResourcePolicyAction(name="p", modifier={PATCH: {"cpu": "16", "gpu": None}})
    assert action.spec()["modifier"] == {PATCH: {"cpu": "16", "cuda.device": None}}
    group = ModifyGroupAction(group_id=uuid.uuid4(), modifier={PATCH: {"mem": "1k"}})
    assert group.spec()["modifier"] == {PATCH: {"mem": "1024"}}


# Policies


def test_a_patch_changes_the_slots_it_names_and_keeps_the_others(store: InMemoryStore) -> None:
    create_policy(store, total_resource_slots={"cpu": "4", "mem": "8g", "gpu": "1"})
    result = modify_policy(store, **{PATCH: {"cpu": "16", "gpu": None, "cuda.shares": "0.5"}})
    assert result.changed is True
    assert slots_of(result) == {"cpu": "16", "cuda.shares": "0.5", "mem": str(8 * 2**30)}
    assert store.events(policy_id("p")) == ["Created", "Modified"]


def test_a_patch_that_changes_nothing_stores_nothing(store: InMemoryStore) -> None:
    create_policy(store, total_resource_slots={"cpu": "4", "mem": "8g"})
    for patch in ({"cpu": "4.000"}, {"memory": "8192m"}, {"gpu": None}, {}):
        result = modify_policy(store, **{PATCH: patch})
        assert result.changed is False, patch
        assert slots_of(result) == {"cpu": "4", "mem": str(8 * 2**30)}
    assert modify_policy(store).changed is False  # no field at all
    assert modify_policy(store, max_concurrent_sessions=30).changed is False  # the default, already held
    assert store.events(policy_id("p")) == ["Created"]
    assert modify_policy(store, max_concurrent_sessions=31).changed is True
    assert store.events(policy_id("p")) == ["Created", "Modified"]


@pytest.fixture
def fpga_slot(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEDGER_EXTRA_SLOTS", "fpga")
    KNOWN_SLOTS.reload()
    yield
    monkeypatch.undo()  # the environment as it was, then the slots read from it again
    KNOWN_SLOTS.reload()


def test_a_patch_whose_merged_map_is_invalid_is_refused_naming_the_slot(
    store: InMemoryStore, fpga_slot: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_policy(store, total_resource_slots={"cpu": "4", "fpga": "2"})
    monkeypatch.delenv("LEDGER_EXTRA_SLOTS")  # the stored map now names a slot no longer known
    KNOWN_SLOTS.reload()
    with pytest.raises(InvalidAPIParameters) as refused:
        modify_policy(store, **{PATCH: {"cpu": "8"}})
    assert refused.value.field == "total_resource_slots.fpga"
    assert "patched map" in refused.value.reason
    # As a replacement naming it would be:
    with pytest.raises(InvalidAPIParameters) as replaced:
        modify_policy(store, total_resource_slots={"cpu": "8", "fpga": "2"})
    assert replaced.value.field == "total_resource_slots.fpga"
    assert store.events(policy_id("p")) == ["Created"]


def test_the_pending_map_is_patched_too_and_null_counts_as_empty(store: InMemoryStore) -> None:
    create_policy(store)  # max_pending_session_resource_slots is null
    patch = "max_pending_session_resource_slots_patch"
    result = modify_policy(store, **{patch: {"cpu": "2"}})
    assert result.changed is True
    assert result.keypair_resource_policy.max_pending_session_resource_slots == {"cpu": 2}
    result = modify_policy(store, **{patch: {"mem": "1g", "cpu": None}})
    assert result.keypair_resource_policy.max_pending_session_resource_slots == {"mem": 2**30}
    assert result.keypair_resource_policy.total_resource_slots == {}  # the other map untouched


def test_a_patch_retried_after_a_conflict_merges_into_the_newer_map(store: InMemoryStore) -> None:
    create_policy(store, total_resource_slots={"cpu": "4", "mem": "8g"})
    real_save = store.save
    interloped = []

    def save_after_another_writer(*aggregates: Any) -> None:
        if not interloped:  # another writer patches mem between this command's load and save
            interloped.append(True)
            work = UnitOfWork(store)
            policy = load_live(work, KeyPairResourcePolicy, "p")
            policy.modify(KeyPairResourcePolicyModifier(**{PATCH: {"mem": "32g"}}).wanted_fields(policy.fields))
            work.commit()
        real_save(*aggregates)

    store.save = save_after_another_writer  # type: ignore[method-assign]
    result = modify_policy(store, **{PATCH: {"cpu": "16"}})
    assert interloped and result.changed is True
    assert slots_of(result) == {"cpu": "16", "mem": str(32 * 2**30)}
    assert store.events(policy_id("p")) == ["Created", "Modified", "Modified"]


# Groups and keypairs


def test_a_group_patch_merges_and_changed_is_exact(store: InMemoryStore) -> None:
    service = GroupService(store, NoUsage())
    creator = {"name": "g", "domain_name": "default", "total_resource_slots": {"cpu": "4", "mem": "1g"}}
    group_id = run(service.create_group(CreateGroupAction(input=creator))).data.id

    def modify(**fields: Any) -> Any:
        return run(service.modify_group(ModifyGroupAction(group_id=group_id, **fields)))

    result = modify(modifier={PATCH: {"cpu": "8", "gpu": "1"}})
    assert result.changed is True
    assert result.data.total_resource_slots.to_json() == {"cpu": "8", "cuda.device": "1", "mem": str(2**30)}
    assert modify(modifier={PATCH: {"cpu": "8"}, "name": "g"}).changed is False
    assert modify().changed is False
    members = {"user_update_mode": "add", "user_uuids": [str(ensure_user(store, uuid.UUID(int=1), "default"))]}
    assert modify(**members).changed is True  # a membership change is an event too
    assert modify(**members).changed is False
    assert store.events(Group.id_for(str(group_id))) == ["Created", "Modified", "MembersAdded"]


def test_a_keypair_modify_says_whether_it_changed(store: InMemoryStore) -> None:
    create_policy(store, "other")
    keypairs = KeyPairService(store)
    create = CreateKeyPairAction(
        access_key="AKX",
        user_id=ensure_user(store, uuid.uuid4(), "default"),
        domain_name="default",
        resource_policy="other",
    )
    create_policy(store, "default")
    run(keypairs.create_keypair(create))
    assert run(keypairs.modify_keypair(ModifyKeyPairAction(access_key="AKX"))).changed is False
    same = ModifyKeyPairAction(access_key="AKX", resource_policy="other")
    assert run(keypairs.modify_keypair(same)).changed is False
    moved = ModifyKeyPairAction(access_key="AKX", resource_policy="default")
    assert run(keypairs.modify_keypair(moved)).changed is True


def test_slot_patch_compares_as_a_mapping() -> None:
    assert SlotPatch({"cpu": None}) == {"cpu": None}
