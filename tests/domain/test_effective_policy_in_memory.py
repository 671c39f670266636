"""The effective policy of a keypair (seed 001's precedence) on the in-memory store: the
whole table of levels present or absent, deleted and unknown policies skipped and said,
the version decided on, whole policies (never merged field by field), fallbacks."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from domain.effective_policy import PolicySource, SkippedLevel
from domain.errors import ObjectNotFound
from domain.keypair_resource_policy import KeyPairResourcePolicy, policy_id
from domain.slots import INFINITY
from tests.domain.session_world import World


@pytest.fixture
def world() -> World:
    world = World()
    for name in ("kp-policy", "user-policy", "domain-policy"):
        world.policy(name)
    return world


# The precedence table: each of keypair, user default and domain default present or absent.
TABLE = list(itertools.product([True, False], repeat=3))


@pytest.mark.parametrize(("on_keypair", "on_user", "on_domain"), TABLE)
def test_precedence_table(world: World, on_keypair: bool, on_user: bool, on_domain: bool) -> None:
    world.domain("d", default_keypair_resource_policy="domain-policy" if on_domain else None)
    user_id = world.user("d", default="user-policy" if on_user else None)
    world.keypair("AK", user_id, "d", policy="kp-policy" if on_keypair else None)
    expected = (
        ("kp-policy", PolicySource.KEYPAIR)
        if on_keypair
        else ("user-policy", PolicySource.USER)
        if on_user
        else ("domain-policy", PolicySource.DOMAIN)
        if on_domain
        else ("default", PolicySource.SYSTEM)
    )
    effective = world.effective("AK")
    assert (effective.name, effective.source) == expected
    assert effective.policy.name == expected[0]
    assert effective.skipped == ()


def test_an_absent_user_or_domain_is_an_absent_level(world: World) -> None:
    # A keypair whose owner and domain were never declared (a ledger from before them).
    world.keypair("AK", domain="nowhere")
    effective = world.effective("AK")
    assert (effective.name, effective.source) == ("default", PolicySource.SYSTEM)
    world.domain("nowhere", default_keypair_resource_policy="domain-policy")
    assert world.effective("AK").source is PolicySource.DOMAIN


def force_delete(world: World, name: str) -> None:
    """Deletes a policy whatever names it: a reference recorded before "in use" was
    checked (an old ledger), the case the skip exists for."""
    policy = world.store.get(policy_id(name), KeyPairResourcePolicy)
    assert policy is not None
    policy.trigger_event(policy.Deleted)
    world.store.save(policy)


def test_a_deleted_policy_is_skipped_and_the_skip_is_said(world: World) -> None:
    world.domain("d", default_keypair_resource_policy="domain-policy")
    user_id = world.user("d", default="user-policy")
    world.keypair("AK", user_id, "d", policy="kp-policy")
    force_delete(world, "kp-policy")
    effective = world.effective("AK")
    assert (effective.name, effective.source) == ("user-policy", PolicySource.USER)
    assert effective.skipped == (SkippedLevel(PolicySource.KEYPAIR, "kp-policy", "deleted"),)
    force_delete(world, "user-policy")
    effective = world.effective("AK")
    assert (effective.name, effective.source) == ("domain-policy", PolicySource.DOMAIN)
    assert [s.name for s in effective.skipped] == ["kp-policy", "user-policy"]
    assert effective.ref_json()["skipped"][1] == {"source": "user", "name": "user-policy", "reason": "deleted"}


def test_a_policy_never_created_is_skipped_as_unknown(world: World) -> None:
    world.keypair("AK", policy="typo")
    effective = world.effective("AK")
    assert effective.source is PolicySource.SYSTEM
    assert effective.skipped == (SkippedLevel(PolicySource.KEYPAIR, "typo", "unknown"),)


def test_the_version_is_the_policy_streams_length_and_moves_with_edits(world: World) -> None:
    world.keypair("AK", policy="kp-policy")
    assert world.effective("AK").version == 1 == len(world.store.events(policy_id("kp-policy")))
    world.modify_policy("kp-policy", max_concurrent_sessions=3)
    effective = world.effective("AK")
    assert effective.version == 2 and effective.policy.max_concurrent_sessions == 3
    assert effective.ref_json() == {"name": "kp-policy", "source": "keypair", "version": 2}


def test_a_whole_policy_is_resolved_never_merged_field_by_field(world: World) -> None:
    world.policy("sparse", total_resource_slots={"cpu": "2"})  # no mem, idle_timeout default
    world.modify_policy("user-policy", total_resource_slots={"cpu": "64", "mem": "64g"}, idle_timeout=5)
    world.domain("d")
    user_id = world.user("d", default="user-policy")
    world.keypair("AK", user_id, "d", policy="sparse")
    effective = world.effective("AK")
    assert effective.name == "sparse"
    assert effective.slot_limit("mem") == 0  # LIMITED and unlisted: nothing from the user's policy
    assert effective.policy.idle_timeout == 1800


def test_slot_limits_limited_unlimited_and_the_fallback(world: World) -> None:
    world.policy("base", total_resource_slots={"cuda.device": "2"})
    world.policy("limited", total_resource_slots={"cpu": "4"})
    world.policy("open", total_resource_slots={"cpu": "4"}, default_for_unspecified="UNLIMITED")
    world.policy("leaning", total_resource_slots={"cpu": "4"}, fallback_policy="base")
    for name in ("limited", "open", "leaning"):
        world.keypair(name, policy=name)
    assert world.effective("limited").slot_limit("cpu") == Decimal(4)
    assert world.effective("limited").slot_limit("mem") == 0
    assert world.effective("open").slot_limit("mem") == INFINITY
    leaning = world.effective("leaning")
    assert (leaning.slot_limit("cuda.device"), leaning.slot_limit("mem")) == (Decimal(2), 0)
    assert leaning.ref_json()["fallback"] == {"name": "base", "version": 2}  # Created, FallbackReferenced


def test_an_unknown_keypair_is_not_found(world: World) -> None:
    with pytest.raises(ObjectNotFound) as missing:
        world.effective("NOPE")
    assert missing.value.code == "keypair_not_found"


def test_no_system_policy_is_a_not_found_naming_it(world: World) -> None:
    world.keypair("AK")
    world.store.streams.pop(policy_id("default"))
    with pytest.raises(ObjectNotFound) as missing:
        world.effective("AK")
    assert (missing.value.entity_type, missing.value.entity_id) == ("keypair_resource_policy", "default")


def test_edits_of_user_and_domain_defaults_apply_at_the_next_resolution(world: World) -> None:
    world.domain("d")
    user_id = world.user("d")
    world.keypair("AK", user_id, "d")
    assert world.effective("AK").source is PolicySource.SYSTEM
    world.modify_domain("d", default_keypair_resource_policy="domain-policy")
    assert world.effective("AK").source is PolicySource.DOMAIN
    world.modify_user(user_id, default_keypair_resource_policy="user-policy")
    assert world.effective("AK").source is PolicySource.USER
    world.modify_user(user_id, default_keypair_resource_policy=None)
    assert world.effective("AK").name == "domain-policy"


def test_the_policy_fields_read_through_as_policy_data_with_a_source(world: World) -> None:
    """The contract: "policy data with `.source`": `ep.max_session_lifetime` once raised
    AttributeError (only `ep.policy.max_session_lifetime` answered)."""
    import copy
    import pickle

    world.keypair("AK", policy="kp-policy")
    effective = world.effective("AK")
    assert effective.source is PolicySource.KEYPAIR
    assert effective.max_session_lifetime == effective.policy.max_session_lifetime
    assert effective.total_resource_slots == effective.policy.total_resource_slots
    assert effective.name == "kp-policy" and effective.version == effective.version
    with pytest.raises(AttributeError):
        effective.no_such_field  # noqa: B018
    for twin in (copy.deepcopy(effective), pickle.loads(pickle.dumps(effective))):
        assert twin == effective and twin.idle_timeout == effective.policy.idle_timeout
