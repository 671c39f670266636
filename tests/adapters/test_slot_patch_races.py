"""Slot patches on SQLite and PostgreSQL: two patches of different slots that decide on
the same map both survive (the one saved second conflicts, and its retry merges into the
newer map); the audit records each patch as given; a patch that changes nothing stores
nothing and says so."""

from __future__ import annotations

import uuid

import pytest

from adapters.bootstrap import Ledger
from domain.group import CreateGroupAction, ModifyGroupAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, ModifyKeyPairResourcePolicyAction
from tests.actions import run, stream_lengths
from tests.races import decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit

PATCH = "total_resource_slots_patch"
POLICY = ("keypair_resource_policy", "modify_keypair_resource_policy")
GROUP = ("group", "modify_group")
GiB = 2**30


def _patch_policy(ledger: Ledger, name: str, patch: dict[str, str | None]) -> bool:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier={PATCH: patch})
    changed: bool = run(ledger, *POLICY, action).changed
    return changed


def _patch_group(ledger: Ledger, group_id: uuid.UUID, patch: dict[str, str | None]) -> bool:
    action = ModifyGroupAction(group_id=group_id, modifier={PATCH: patch})
    changed: bool = run(ledger, *GROUP, action).changed
    return changed


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_concurrent_policy_patches_of_different_slots_both_survive(ledger: Ledger, order: tuple[int, int]) -> None:
    create = CreateKeyPairResourcePolicyAction(creator={"name": "shared", "total_resource_slots": {"cpu": 4, "gpu": 1}})
    run(ledger, "keypair_resource_policy", "create_keypair_resource_policy", create)
    patches: list[dict[str, str | None]] = [{"cpu": "16"}, {"mem": "64g", "gpu": None}]
    outcomes = decide_together(
        ledger, [lambda p=patch: _patch_policy(ledger, "shared", p) for patch in patches], order=order
    )
    assert outcomes == [None, None]

    policy = ledger.queries.keypair_resource_policy("shared")
    assert policy is not None
    assert policy.total_resource_slots.to_json() == {"cpu": "16", "mem": str(64 * GiB)}
    history = ledger.queries.history("keypair_resource_policy", "shared")
    assert [entry.event for entry in history] == ["Created", "Modified", "Modified"]
    # The one saved second merged into the map the first one left.
    between = [{"cpu": "16", "cuda.device": "1"}, {"cpu": "4", "mem": str(64 * GiB)}][order[0]]
    assert history[1].changes["total_resource_slots"]["new"] == between
    assert history[2].changes["total_resource_slots"]["old"] == between
    # The audit keeps each patch as it was given, not the merged map.
    modifies = ledger.queries.audit_log("keypair_resource_policy", "shared", operation="modify")
    assert sorted((e.status, str(e.spec["modifier"])) for e in modifies) == [
        ("success", str({PATCH: {"cpu": "16"}})),
        ("success", str({PATCH: {"cuda.device": None, "mem": str(64 * GiB)}})),
    ]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_concurrent_group_patches_of_different_slots_both_survive(ledger: Ledger, order: tuple[int, int]) -> None:
    create = CreateGroupAction(input={"name": "team", "domain_name": "default", "total_resource_slots": {"cpu": 4}})
    group_id = run(ledger, "group", "create_group", create).data.id
    patches: list[dict[str, str | None]] = [{"cpu": "8"}, {"mem": "1g"}]
    outcomes = decide_together(
        ledger, [lambda p=patch: _patch_group(ledger, group_id, p) for patch in patches], order=order
    )
    assert outcomes == [None, None]
    group = ledger.queries.group(group_id)
    assert group is not None
    assert group.total_resource_slots.to_json() == {"cpu": "8", "mem": str(GiB)}


def test_a_patch_that_changes_nothing_stores_nothing_and_says_so(ledger: Ledger) -> None:
    create = CreateKeyPairResourcePolicyAction(creator={"name": "calm", "total_resource_slots": {"cpu": 4}})
    run(ledger, "keypair_resource_policy", "create_keypair_resource_policy", create)
    streams = stream_lengths(ledger)
    assert _patch_policy(ledger, "calm", {"cpu": "4.0", "mem": None}) is False
    assert stream_lengths(ledger) == streams
    assert _patch_policy(ledger, "calm", {"cpu": "5"}) is True
    assert stream_lengths(ledger) != streams
