"""A stale cached aggregate never changes what a command decides.

Two ledgers opened on one store stand for two processes: each has its own cache, so
one of them holds copies the other has made stale.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction
from domain.keypair_resource_policy import (
    DeleteKeyPairResourcePolicyAction,
)
from domain.personal import ERASED
from domain.user import CreateUserAction, EraseUserAction, User, UserCreator
from tests.domain.fakes import ensure_user
from tests.policies import create, modify


@pytest.fixture
def pair(ledger_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    with open_ledger(ledger_url) as first, open_ledger(ledger_url) as second:
        yield first, second


def test_a_stale_copy_conflicts_and_the_change_records_the_true_old_value(pair: tuple[Ledger, Ledger]) -> None:
    a, b = pair
    create(a, "p", idle_timeout=100)  # a caches version 1
    modify(b, "p", idle_timeout=200)  # b moves the stream on
    result = modify(a, "p", idle_timeout=300)
    assert result.keypair_resource_policy.idle_timeout == 300
    changes = [e.changes["idle_timeout"] for e in a.queries.history("keypair_resource_policy", "p")[1:]]
    assert changes == [{"old": 100, "new": 200}, {"old": 200, "new": 300}]


def test_a_no_op_on_a_stale_copy_is_checked_against_the_store(pair: tuple[Ledger, Ledger]) -> None:
    a, b = pair
    create(a, "p", idle_timeout=100)
    modify(b, "p", idle_timeout=200)
    # a's copy says 100 already; the store says 200, so this is a real change.
    result = modify(a, "p", idle_timeout=100)
    assert result.keypair_resource_policy.idle_timeout == 100
    assert a.queries.keypair_resource_policy("p").idle_timeout == 100


def test_a_refusal_on_a_stale_copy_is_checked_against_the_store(pair: tuple[Ledger, Ledger]) -> None:
    a, b = pair
    create(a, "p")
    owner = str(uuid.uuid4())
    asyncio.run(
        a.services.keypair.create_keypair(
            CreateKeyPairAction(
                access_key="AK1", user_id=ensure_user(a.app.store, owner, "d"), domain_name="d", resource_policy="p"
            )
        )
    )  # a caches the policy with AK1 assigned
    asyncio.run(b.services.keypair.delete_keypair(DeleteKeyPairAction(access_key="AK1")))
    delete = DeleteKeyPairResourcePolicyAction(name="p")
    asyncio.run(a.services.keypair_resource_policy.delete_keypair_resource_policy(delete))  # no PolicyInUse
    assert a.queries.keypair_resource_policy("p") is None


def test_a_cached_copy_saved_without_an_append_is_checked_first(pair: tuple[Ledger, Ledger]) -> None:
    a, b = pair
    create(a, "old-base")  # a caches old-base with no link
    create(a, "new-base")
    create(a, "team")
    modify(b, "team", fallback_policy="old-base")  # the link lands through b: team v2, old-base v2
    modify(a, "team", idle_timeout=5)  # a's stale team conflicts and is re-read; old-base stays stale
    # Moving the fallback must release old-base's link, which a's stale copy does not show.
    modify(a, "team", fallback_policy="new-base")
    history = [e.event for e in a.queries.history("keypair_resource_policy", "old-base")]
    assert history == ["Created", "FallbackReferenced", "FallbackReleased"]
    delete = DeleteKeyPairResourcePolicyAction(name="old-base")
    asyncio.run(a.services.keypair_resource_policy.delete_keypair_resource_policy(delete))
    assert a.queries.keypair_resource_policy("old-base") is None


def test_a_read_in_flight_during_an_erasure_does_not_put_the_erased_values_back(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ledger.app
    user = uuid.uuid4()
    creator = UserCreator(user_id=user, domain_name="default", email="ada@lab.org", full_name="Ada Lovelace")
    asyncio.run(ledger.services.user.create_user(CreateUserAction(creator=creator)))
    stream = User.id_for(str(user))
    app.cache.clear()
    loaded, erased = threading.Event(), threading.Event()
    real_load = app._load

    def held_load(aggregate_id: uuid.UUID) -> Any:
        aggregate = real_load(aggregate_id)
        if threading.current_thread().name == "reader":
            loaded.set()  # read before the erasure, put after it
            assert erased.wait(10)
        return aggregate

    monkeypatch.setattr(app, "_load", held_load)
    read: list[Any] = []
    reader = threading.Thread(target=lambda: read.append(app.get(stream, User)), name="reader")
    reader.start()
    assert loaded.wait(10)
    asyncio.run(ledger.services.user.erase_user(EraseUserAction(user_id=user, reason="request")))
    erased.set()
    reader.join(10)
    assert read and read[0].fields["email"] == "ada@lab.org"  # the read itself answered as of its time
    kept = app.cache._copies.get(stream)
    assert kept is None or (kept.fields["email"], kept.fields["full_name"]) == (ERASED, ERASED)
    app.cache.attempt.begin(fresh=False)  # what a command's first attempt is handed
    try:
        handed = app.get(stream, User)
    finally:
        app.cache.attempt.begin(fresh=True)
    assert handed is not None and (handed.fields["email"], handed.fields["full_name"]) == (ERASED, ERASED)
