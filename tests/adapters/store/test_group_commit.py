"""Group commit (issue 15): concurrent commands of one process share transactions; each
is acknowledged only once its own events are committed; a conflict inside a batch fails
nobody else and is retried on fresh state; a killed process loses only what it had not
acknowledged. Unit checks on a fake append, then the real store on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import verify
from adapters.store.config import ServerUnreachable
from adapters.store.group_commit import GroupCommit
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from tests.killing import run_until_killed

ADMIN = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")


def event(stream: uuid.UUID, version: int = 1) -> StoredEvent:
    return StoredEvent(stream, version, "topic", b"{}")


class Held:
    """Wraps an append so that its first call waits until `queued()` reaches `count`
    (callers are queued behind it), making the next batch's membership deterministic."""

    def __init__(self, append: Callable[..., Any], queued: Callable[[], int], count: int) -> None:
        self.append, self.queued, self.count = append, queued, count
        self.calls: list[int] = []
        self.first = True
        self.entered = threading.Event()  # the first call is holding

    def __call__(self, events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> Any:
        if self.first:
            self.first = False
            self.entered.set()
            deadline = time.monotonic() + 30
            while self.queued() < self.count:
                assert time.monotonic() < deadline, "the callers never queued"
                time.sleep(0.001)
        self.calls.append(len(events))
        return self.append(events, kwargs)


def _threads(targets: list[Callable[[], Any]], first: threading.Event | None = None) -> list[Any]:
    """Runs each target in a thread; with `first`, the others start once it is set (the
    first target is then the one holding the first append)."""
    outcomes: list[Any] = [None] * len(targets)

    def run(index: int) -> None:
        try:
            outcomes[index] = targets[index]()
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(targets))]
    for index, thread in enumerate(threads):
        thread.start()
        if index == 0 and first is not None:
            assert first.wait(timeout=30), "the first target never reached the append"
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


# The batching itself, on a fake append


def test_queued_requests_share_one_append_and_get_their_own_ids() -> None:
    stored: list[list[StoredEvent]] = []

    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        first = sum(len(batch) for batch in stored) + 1
        stored.append(list(events))
        return list(range(first, first + len(events)))

    committer = GroupCommit(append)
    held = Held(append, lambda: len(committer._queue), 5)
    committer._insert = held
    streams = [uuid.uuid4() for _ in range(6)]
    outcomes = _threads(
        [lambda s=s, n=n: committer.insert([event(s, v) for v in range(1, n + 2)], {}) for n, s in enumerate(streams)],
        first=held.entered,
    )
    # The first caller led alone (held until five more queued); the five then went in one append.
    assert held.calls == [1, 2 + 3 + 4 + 5 + 6]
    assert sum(held.calls) == sum(range(1, 7))
    every = sorted(i for ids in outcomes for i in ids)
    assert every == list(range(1, 22))  # each caller got exactly its own positions
    for n, ids in enumerate(outcomes):
        assert len(ids) == n + 1 and ids == list(range(ids[0], ids[0] + n + 1))
    assert committer.batches == 2 and committer.requests == 6


def test_a_request_appending_a_version_taken_in_its_batch_is_refused_alone() -> None:
    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        return list(range(1, len(events) + 1))

    committer = GroupCommit(append)
    held = Held(append, lambda: len(committer._queue), 3)
    committer._insert = held
    twin = uuid.uuid4()
    outcomes = _threads(
        [
            lambda: committer.insert([event(uuid.uuid4())], {}),  # leads alone while the others queue
            lambda: committer.insert([event(twin)], {}),
            lambda: committer.insert([event(twin)], {}),
            lambda: committer.insert([event(uuid.uuid4())], {}),
        ],
        first=held.entered,
    )
    refused = [o for o in outcomes if isinstance(o, IntegrityError)]
    assert len(refused) == 1
    assert sum(isinstance(o, list) for o in outcomes) == 3


def test_a_failed_merged_append_is_retried_request_by_request() -> None:
    bad = uuid.uuid4()
    calls: list[int] = []

    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        calls.append(len(events))
        if any(e.originator_id == bad for e in events):
            raise IntegrityError("stale")
        return list(range(1, len(events) + 1))

    committer = GroupCommit(append)
    held = Held(append, lambda: len(committer._queue), 3)
    committer._insert = held
    outcomes = _threads(
        [lambda: committer.insert([event(uuid.uuid4())], {})]
        + [lambda s=s: committer.insert([event(s)], {}) for s in (uuid.uuid4(), bad, uuid.uuid4())],
        first=held.entered,
    )
    assert sum(isinstance(o, IntegrityError) for o in outcomes) == 1
    assert sum(isinstance(o, list) for o in outcomes) == 3
    assert calls[1] == 3 and calls[2:] == [1, 1, 1]  # merged, failed, then each alone


def _sqlite_busy() -> OperationalError:
    """The library's error for a SQLite file another process kept locked past the busy timeout."""
    cause = sqlite3.OperationalError("database is locked")
    cause.sqlite_errorcode = sqlite3.SQLITE_BUSY
    error = OperationalError(cause)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "store_error",
    [lambda: ServerUnreachable("the PostgreSQL server does not answer: connection refused"), _sqlite_busy],
    ids=["server gone", "file locked"],
)
def test_a_store_that_fails_everyone_fails_the_whole_batch_at_once(store_error: Callable[[], Exception]) -> None:
    """Each request of a failed batch was appended alone again: with the server gone each
    waited out the connection pool (about 5 s), so the last of sixteen waited 80 s; with a
    SQLite file locked by another process, each waited out the 30 s busy timeout."""
    calls: list[int] = []
    lost = False

    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        calls.append(len(events))
        if lost:
            raise store_error()
        return list(range(1, len(events) + 1))

    committer = GroupCommit(append)
    held = Held(append, lambda: len(committer._queue), 4)
    committer._insert = held
    twin = uuid.uuid4()

    def first() -> Any:
        nonlocal lost
        lost = True  # the server goes while the first append holds the others queued
        return committer.insert([event(uuid.uuid4())], {})

    outcomes = _threads(
        [first]
        + [lambda s=s: committer.insert([event(s)], {}) for s in (uuid.uuid4(), twin, twin)]
        + [lambda: committer.insert([event(uuid.uuid4())], {"tracking": "not mergeable"})],
        first=held.entered,
    )
    assert calls == [1, 2]  # the first alone, then the merged two; nobody alone after
    refused = [o for o in outcomes if isinstance(o, IntegrityError)]
    assert len(refused) == 1  # the twin's refusal stands
    kind = type(store_error())
    assert sum(type(o) is kind for o in outcomes) == 4


def test_erasures_of_a_batch_are_merged_and_other_keywords_go_alone() -> None:
    """Each request's erased subjects reach the one merged append (its keys destroyed in
    that transaction); a request with keywords a batch cannot combine appends alone."""
    seen: list[dict[str, Any]] = []

    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        seen.append(dict(kwargs))
        return list(range(1, len(events) + 1))

    committer = GroupCommit(append)
    held = Held(append, lambda: len(committer._queue), 4)
    committer._insert = held
    keys = object()
    tracked = object()
    _threads(
        [
            lambda: committer.insert([event(uuid.uuid4())], {"tracking": None}),
            lambda: committer.insert([event(uuid.uuid4())], {"tracking": None, "erase": ["group:a"], "keys": keys}),
            lambda: committer.insert([event(uuid.uuid4())], {"tracking": None, "erase": ["user:b"], "keys": keys}),
            lambda: committer.insert([event(uuid.uuid4())], {"tracking": None}),
            lambda: committer.insert([event(uuid.uuid4())], {"tracking": tracked}),
        ],
        first=held.entered,
    )
    merged = [kwargs for kwargs in seen if kwargs.get("erase")]
    assert len(merged) == 1 and sorted(merged[0]["erase"]) == ["group:a", "user:b"] and merged[0]["keys"] is keys
    assert held.calls[1:] in ([3, 1], [1, 3])  # the three mergeable together, the tracked one alone
    assert {"tracking": tracked} in seen


def test_a_leader_that_fails_unexpectedly_releases_every_waiter() -> None:
    def append(events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> list[int]:
        raise RuntimeError("disk on fire")

    committer = GroupCommit(append)
    outcomes = _threads([lambda: committer.insert([event(uuid.uuid4())], {}) for _ in range(5)])
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError):  # the next caller leads again: nobody is left waiting
        committer.insert([event(uuid.uuid4())], {})


# The real store, both backends


def _create(ledger: Ledger, name: str) -> Any:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
    processor = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    return asyncio.run(processor.wait_for_complete(action, ADMIN))


def _modify(ledger: Ledger, name: str, **fields: Any) -> Any:
    action = ModifyKeyPairResourcePolicyAction(name=name, modifier=fields)
    processor = ledger.processors.keypair_resource_policy.modify_keypair_resource_policy
    return asyncio.run(processor.wait_for_complete(action, ADMIN))


def _hold(ledger: Ledger, count: int) -> tuple[GroupCommit, Held]:
    committer = ledger.app.recorder.group_commit  # type: ignore[attr-defined]
    assert isinstance(committer, GroupCommit)
    held = Held(committer._insert, lambda: len(committer._queue), count)
    committer._insert = held
    return committer, held


def test_concurrent_commands_are_each_stored_once_in_shared_transactions(ledger_url: str) -> None:
    with open_ledger(ledger_url, group_commit=True) as ledger:
        committer, held = _hold(ledger, 8)
        before = committer.requests
        names = [[f"t{t}-{i}" for i in range(10)] for t in range(16)]
        outcomes = _threads([lambda mine=mine: [_create(ledger, n) for n in mine] for mine in names])
        assert not [o for o in outcomes if isinstance(o, BaseException)]
        assert committer.requests - before == 160 and len(held.calls) < 160  # transactions were shared
        ledger.runner.catch_up()
        stored = {p.name for p in ledger.queries.keypair_resource_policies()}
        assert {n for mine in names for n in mine} <= stored
        successes = ledger.queries.audit_log(entity_type="keypair_resource_policy", status="success")
        assert sorted(e.entity_id for e in successes) == sorted(n for mine in names for n in mine)
        assert verify(ledger.app).ok


def test_a_conflict_in_a_batch_commits_the_others_and_retries_alone(ledger_url: str) -> None:
    with open_ledger(ledger_url, group_commit=True) as ledger:
        _create(ledger, "shared")
        _create(ledger, "other")
        _modify(ledger, "shared", idle_timeout=1)  # cached: both modifiers decide on this version
        _committer, held = _hold(ledger, 3)
        outcomes = _threads(
            [
                lambda: _create(ledger, "leader"),  # leads alone while the three queue
                lambda: _modify(ledger, "shared", max_concurrent_sessions=7),
                lambda: _modify(ledger, "shared", max_session_lifetime=70),
                lambda: _modify(ledger, "other", idle_timeout=9),
            ],
            first=held.entered,
        )
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        assert held.calls[1] == 4  # the second batch: two appends merged (2 events each), the twin held back
        shared = ledger.queries.keypair_resource_policy("shared")
        assert shared is not None
        ledger.runner.catch_up()
        shared = ledger.queries.keypair_resource_policy("shared")
        assert shared is not None and shared.max_concurrent_sessions == 7 and shared.max_session_lifetime == 70
        other = ledger.queries.keypair_resource_policy("other")
        assert other is not None and other.idle_timeout == 9
        assert verify(ledger.app).ok


WRITERS = textwrap.dedent(
    """
    import asyncio, sys, threading
    from adapters.bootstrap import open_ledger
    from domain.actions import ActionTriggerMeta
    from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
    root = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
    ledger = open_ledger(sys.argv[1], group_commit=True)
    create = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    out = threading.Lock()

    def writer(t):
        for i in range(100000):
            name = f"{sys.argv[2]}{t}-{i}"
            action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
            asyncio.run(create.wait_for_complete(action, root))
            with out:
                print(name, flush=True)  # acknowledged: its events are committed

    for t in range(8):
        threading.Thread(target=writer, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


@pytest.mark.slow
def test_a_killed_group_commit_loses_only_unacknowledged_commands(ledger_url: str) -> None:
    acknowledged: list[str] = []
    for round_ in range(2):
        acknowledged += run_until_killed(WRITERS, [ledger_url, f"k{round_}-"], 40 + 25 * round_)
    with open_ledger(ledger_url) as ledger:
        ledger.runner.catch_up()
        stored = [p.name for p in ledger.queries.keypair_resource_policies()]
        assert len(stored) == len(set(stored))
        missing = set(acknowledged) - set(stored)
        assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
        successes = ledger.queries.audit_log(entity_type="keypair_resource_policy", status="success")
        created = [e.entity_id for e in successes]
        assert len(created) == len(set(created)) and set(created) == set(stored) - {"default"}
        assert verify(ledger.app).ok
