"""Concurrent writers: no update is lost, and checks that guard a write cannot race it."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import threading
import uuid

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import LedgerError, ObjectNotFound, PolicyInUse
from domain.keypair import CreateKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
    policy_id,
)
from tests.domain.fakes import ensure_user
from tests.races import decide_together

ROUNDS = 40
FIELDS = {"max_concurrent_sessions": 1000, "idle_timeout": 5000}


def _create_policy(ledger: Ledger, name: str) -> None:
    creator = KeyPairResourcePolicyCreator(name=name, max_concurrent_sessions=0, idle_timeout=0)
    asyncio.run(
        ledger.services.keypair_resource_policy.create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator=creator)
        )
    )


def _modify_many(ledger: Ledger, name: str, field: str, rounds: int) -> None:
    service = ledger.services.keypair_resource_policy
    for i in range(1, rounds + 1):
        action = ModifyKeyPairResourcePolicyAction(name=name, modifier={field: FIELDS[field] + i})
        asyncio.run(service.modify_keypair_resource_policy(action))


def _modify_in_process(url: str, name: str, field: str, rounds: int) -> None:
    with open_ledger(url) as ledger:
        _modify_many(ledger, name, field, rounds)


def _assert_every_change_landed(ledger: Ledger, name: str, rounds: int) -> None:
    policy = ledger.queries.keypair_resource_policy(name)
    assert policy is not None
    for field, base in FIELDS.items():
        assert getattr(policy, field) == base + rounds
    history = ledger.queries.history("keypair_resource_policy", name)
    assert [entry.event for entry in history] == ["Created"] + ["Modified"] * (2 * rounds)
    for field, base in FIELDS.items():
        # Each command is exactly one event, and each writer's changes appear in its own order.
        news = [e.changes[field]["new"] for e in history if field in e.changes and e.event == "Modified"]
        assert news == [base + i for i in range(1, rounds + 1)]
    assert all(len(e.changes) == 1 for e in history[1:])
    # The store agrees with the read model.
    stored = ledger.app.get(policy_id(name), KeyPairResourcePolicy)
    assert stored is not None
    assert {f: stored.fields[f] for f in FIELDS} == {f: b + rounds for f, b in FIELDS.items()}


def test_two_threads_modify_different_fields_and_nothing_is_lost(ledger: Ledger) -> None:
    _create_policy(ledger, "shared")
    workers = [threading.Thread(target=_modify_many, args=(ledger, "shared", field, ROUNDS)) for field in FIELDS]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    _assert_every_change_landed(ledger, "shared", ROUNDS)


@pytest.mark.slow
def test_two_processes_modify_different_fields_and_nothing_is_lost(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        _create_policy(ledger, "shared")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_modify_in_process, args=(ledger_url, "shared", field, ROUNDS)) for field in FIELDS]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    with open_ledger(ledger_url) as ledger:
        _assert_every_change_landed(ledger, "shared", ROUNDS)


def test_eight_writers_on_one_stream_from_two_ledgers_all_land(ledger_url: str) -> None:
    """A conflict was retried after a pause growing linearly (at most 2 ms times the
    attempt): eight writers of one policy through two ledger instances made a few of 240
    modifies give up after 20 attempts (`ConcurrentModification`) on both backends. The
    pause now doubles per attempt (capped at 250 ms), so colliding writers spread out."""
    with open_ledger(ledger_url, group_commit=False) as one, open_ledger(ledger_url, group_commit=False) as other:
        _create_policy(one, "hot")
        errors: list[BaseException] = []

        def writer(index: int) -> None:
            service = (one, other)[index % 2].services.keypair_resource_policy
            for n in range(30):
                change = ModifyKeyPairResourcePolicyAction(name="hot", modifier={"idle_timeout": index * 1000 + n + 1})
                try:
                    asyncio.run(service.modify_keypair_resource_policy(change))
                except BaseException as exc:  # reported below, not lost in the thread
                    errors.append(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(list(one.app.events.get(policy_id("hot")))) == 1 + 8 * 30
        # Seed 001 asks for eventual consistency too: each modify decided on the one before
        # it (its old value is that one's new), and both ledgers read the last one.
        changes = [entry.changes["idle_timeout"] for entry in one.queries.history("keypair_resource_policy", "hot")]
        assert changes[0] == {"old": None, "new": 0}
        assert all(later["old"] == earlier["new"] for earlier, later in itertools.pairwise(changes))
        for ledger in (one, other):
            assert ledger.queries.keypair_resource_policy("hot").idle_timeout == changes[-1]["new"]  # type: ignore[union-attr]


def test_a_modify_that_loses_many_races_in_a_row_still_lands(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 001: a policy modified concurrently is retried until it lands. Under CPU load
    (two busy processes on this 2-vCPU machine) eight writers of one policy, as in the
    test above, needed up to 24 attempts for one modify, and a few of the 240 gave up after
    20 (`ConcurrentModification`). Here another ledger commits a change of the same policy
    just before each of the first 30 saves of one modify: each of those conflicts for real."""
    monkeypatch.setattr("adapters.store.application._MAX_BACKOFF", 0.001)  # the pauses are not under test
    with open_ledger(ledger_url, group_commit=False) as one, open_ledger(ledger_url, group_commit=False) as other:
        _create_policy(one, "raced")
        store = one.services.keypair_resource_policy._store
        real_save = store.save
        interfered: list[int] = []

        def save_after_another_writer(*aggregates: object) -> None:
            if len(interfered) < 30:
                interfered.append(len(interfered) + 1)
                change = ModifyKeyPairResourcePolicyAction(name="raced", modifier={"idle_timeout": len(interfered)})
                rival = threading.Thread(
                    target=lambda: asyncio.run(
                        other.services.keypair_resource_policy.modify_keypair_resource_policy(change)
                    )
                )
                rival.start()
                rival.join()
            real_save(*aggregates)

        monkeypatch.setattr(store, "save", save_after_another_writer)
        change = ModifyKeyPairResourcePolicyAction(name="raced", modifier={"max_concurrent_sessions": 7})
        result = asyncio.run(one.services.keypair_resource_policy.modify_keypair_resource_policy(change))
        assert len(interfered) == 30
        assert (
            result.keypair_resource_policy.max_concurrent_sessions,
            result.keypair_resource_policy.idle_timeout,
        ) == (
            7,
            30,
        )
        history = one.queries.history("keypair_resource_policy", "raced")
        assert [e.event for e in history] == ["Created"] + ["Modified"] * 31
        assert history[-1].changes == {"max_concurrent_sessions": {"old": 0, "new": 7}}


def test_policy_delete_and_keypair_assignment_never_both_succeed(ledger: Ledger) -> None:
    for round_ in range(6):
        name = f"contested-{round_}"
        _create_policy(ledger, name)
        access_key = f"AKRACE{round_}"
        delete = DeleteKeyPairResourcePolicyAction(name=name)
        assign = CreateKeyPairAction(
            access_key=access_key,
            user_id=ensure_user(ledger.app.store, uuid.uuid4(), "default"),
            domain_name="default",
            resource_policy=name,
        )
        outcomes = decide_together(
            ledger,
            [
                lambda d=delete: asyncio.run(ledger.services.keypair_resource_policy.delete_keypair_resource_policy(d)),
                lambda a=assign: asyncio.run(ledger.services.keypair.create_keypair(a)),
            ],
        )
        deleted, assigned = (outcome is None for outcome in outcomes)
        assert deleted != assigned, f"round {round_}: {outcomes}"
        policy = ledger.queries.keypair_resource_policy(name)
        keypair = ledger.queries.keypair(access_key)
        if deleted:
            assert isinstance(outcomes[1], ObjectNotFound)
            assert policy is None and keypair is None
        else:
            assert isinstance(outcomes[0], PolicyInUse)
            assert policy is not None and keypair is not None and keypair.resource_policy == name


def test_reassigning_a_keypair_races_safely_with_deleting_its_target(ledger: Ledger) -> None:
    _create_policy(ledger, "origin")
    _create_policy(ledger, "target")
    asyncio.run(
        ledger.services.keypair.create_keypair(
            CreateKeyPairAction(
                access_key="AKMOVE",
                user_id=ensure_user(ledger.app.store, uuid.uuid4(), "default"),
                domain_name="default",
                resource_policy="origin",
            )
        )
    )
    outcomes = decide_together(
        ledger,
        [
            lambda: asyncio.run(
                ledger.services.keypair_resource_policy.delete_keypair_resource_policy(
                    DeleteKeyPairResourcePolicyAction(name="target")
                )
            ),
            lambda: asyncio.run(
                ledger.services.keypair.modify_keypair(
                    ModifyKeyPairAction(access_key="AKMOVE", resource_policy="target")
                )
            ),
        ],
    )
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(o is None or isinstance(o, LedgerError) for o in outcomes)
    keypair = ledger.queries.keypair("AKMOVE")
    assert keypair is not None
    assert ledger.queries.keypair_resource_policy(keypair.resource_policy) is not None
