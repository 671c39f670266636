"""Seed 001, common errors: policies referring to each other are detected and refused."""

from __future__ import annotations

import pytest

from adapters.bootstrap import Ledger
from domain.errors import CircularPolicyReference, InvalidAPIParameters, ObjectNotFound, PolicyInUse
from tests.policies import create, delete, modify
from tests.races import decide_together


def test_a_policy_may_fall_back_to_another(ledger: Ledger) -> None:
    create(ledger, "base", total_resource_slots={"cpu": "4"})
    result = create(ledger, "team", fallback_policy="base")
    assert result.keypair_resource_policy.fallback_policy == "base"
    assert ledger.queries.keypair_resource_policy("team").fallback_policy == "base"
    assert [e.event for e in ledger.queries.history("keypair_resource_policy", "base")] == [
        "Created",
        "FallbackReferenced",
    ]


def test_two_policies_referring_to_each_other_are_refused(ledger: Ledger) -> None:
    create(ledger, "a")
    create(ledger, "b", fallback_policy="a")
    head = ledger.app.recorder.max_notification_id()
    with pytest.raises(CircularPolicyReference, match="'a' -> 'b' -> 'a'"):
        modify(ledger, "a", fallback_policy="b")
    assert ledger.app.recorder.max_notification_id() == head
    assert ledger.queries.keypair_resource_policy("a").fallback_policy is None


def test_a_policy_cannot_fall_back_to_itself(ledger: Ledger) -> None:
    with pytest.raises(CircularPolicyReference):
        create(ledger, "selfish", fallback_policy="selfish")
    assert ledger.queries.keypair_resource_policy("selfish") is None
    create(ledger, "selfish")
    with pytest.raises(CircularPolicyReference):
        modify(ledger, "selfish", fallback_policy="selfish")


def test_fallbacks_do_not_chain(ledger: Ledger) -> None:
    create(ledger, "root")
    create(ledger, "middle", fallback_policy="root")
    with pytest.raises(InvalidAPIParameters) as raised:
        create(ledger, "leaf", fallback_policy="middle")
    assert raised.value.field == "fallback_policy"
    create(ledger, "other")
    with pytest.raises(InvalidAPIParameters) as raised:
        modify(ledger, "root", fallback_policy="other")  # root is itself a fallback
    assert raised.value.field == "fallback_policy"


def test_fallback_must_exist(ledger: Ledger) -> None:
    with pytest.raises(ObjectNotFound):
        create(ledger, "orphan", fallback_policy="missing")
    assert ledger.queries.keypair_resource_policy("orphan") is None


def test_a_fallback_in_use_cannot_be_deleted_until_released(ledger: Ledger) -> None:
    create(ledger, "base")
    create(ledger, "user-of-base", fallback_policy="base")
    with pytest.raises(PolicyInUse, match="fallback of: user-of-base"):
        delete(ledger, "base")
    modify(ledger, "user-of-base", fallback_policy=None)
    delete(ledger, "base")
    assert ledger.queries.keypair_resource_policy("base") is None


def test_deleting_the_referrer_releases_its_fallback(ledger: Ledger) -> None:
    create(ledger, "base")
    create(ledger, "temp", fallback_policy="base")
    delete(ledger, "temp")
    delete(ledger, "base")
    events = [e.event for e in ledger.queries.history("keypair_resource_policy", "base")]
    assert events == ["Created", "FallbackReferenced", "FallbackReleased", "Deleted"]


def test_moving_a_fallback_releases_the_old_one(ledger: Ledger) -> None:
    create(ledger, "first")
    create(ledger, "second")
    create(ledger, "mover", fallback_policy="first")
    modify(ledger, "mover", fallback_policy="second")
    delete(ledger, "first")
    with pytest.raises(PolicyInUse):
        delete(ledger, "second")


def test_concurrent_opposite_links_never_both_land(ledger: Ledger) -> None:
    create(ledger, "left")
    create(ledger, "right")
    outcomes = decide_together(
        ledger,
        [
            lambda: modify(ledger, "left", fallback_policy="right"),
            lambda: modify(ledger, "right", fallback_policy="left"),
        ],
    )
    assert sum(outcome is None for outcome in outcomes) == 1
    assert any(isinstance(outcome, CircularPolicyReference) for outcome in outcomes)
    fallbacks = {n: ledger.queries.keypair_resource_policy(n).fallback_policy for n in ("left", "right")}
    assert sorted(v for v in fallbacks.values() if v) in (["left"], ["right"])
