"""Once a command's append has committed, the command has succeeded: what follows it (the
snapshot write, an erasure's listeners) may fail, but is never taken for a failed append,
which would be answered as an error or, for an IntegrityError, run the command again."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from adapters.bootstrap import Ledger
from adapters.store import LedgerApplication
from domain.errors import StoreUnavailable
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from domain.personal import ERASED
from domain.user import CreateUserAction, EraseUserAction, User, UserCreator
from tests.actions import run

POLICY = "after-commit"
EMAIL = "erase.me@example.org"
FULL_NAME = "Erase Me-Soon"


def _create(ledger: Ledger) -> Any:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=POLICY, idle_timeout=7))
    return run(ledger, "keypair_resource_policy", "create_keypair_resource_policy", action)


def _modify(ledger: Ledger, idle_timeout: int) -> Any:
    action = ModifyKeyPairResourcePolicyAction(name=POLICY, modifier={"idle_timeout": idle_timeout})
    return run(ledger, "keypair_resource_policy", "modify_keypair_resource_policy", action)


def _failing_snapshot_writes(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, error: PersistenceError) -> list[int]:
    """The policy's snapshots are due every 3 events; the next snapshot write fails once."""
    monkeypatch.setitem(LedgerApplication.snapshotting_intervals, KeyPairResourcePolicy, 3)
    snapshots = ledger.app.snapshots
    assert snapshots is not None
    real_put = snapshots.put
    calls: list[int] = []

    def put(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real_put(*args, **kwargs)

    monkeypatch.setattr(snapshots, "put", put)
    return calls


def _stored(ledger: Ledger, stream: uuid.UUID) -> int:
    return len(ledger.app.recorder.select_events(stream))


def _audited(ledger: Ledger, entity_type: str, entity_id: str) -> list[str]:
    return [e.status for e in ledger.queries.audit_log(entity_type, entity_id)]


def test_a_snapshot_write_failing_after_the_commit_leaves_the_command_a_success(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _failing_snapshot_writes(ledger, monkeypatch, OperationalError("database is locked"))
    _create(ledger)
    _modify(ledger, 2)
    with caplog.at_level(logging.WARNING, logger="adapters.store.application"):
        result = _modify(ledger, 3)  # the third event: its snapshot write fails
    assert result.keypair_resource_policy.idle_timeout == 3
    assert calls == [1]
    assert any("snapshot not written" in r.getMessage() for r in caplog.records)
    stream = KeyPairResourcePolicy.id_for(POLICY)
    assert _stored(ledger, stream) == 3
    assert _audited(ledger, "keypair_resource_policy", POLICY) == ["success"] * 3
    assert ledger.queries.keypair_resource_policy(POLICY).idle_timeout == 3  # type: ignore[union-attr]
    for timeout in (4, 5, 6):  # the next interval crossed takes the snapshot
        _modify(ledger, timeout)
    assert calls == [1, 1]
    assert ledger.app.snapshots is not None
    assert [s.originator_version for s in ledger.app.snapshots.get(stream)] == [6]


def test_an_integrity_error_after_the_commit_does_not_run_the_command_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing_snapshot_writes(ledger, monkeypatch, IntegrityError("snapshot write failed"))
    _create(ledger)
    delete = DeleteKeyPairResourcePolicyAction(name=POLICY)
    run(ledger, "keypair_resource_policy", "delete_keypair_resource_policy", delete)
    # The third event re-creates it; run again, the command would refuse its own creation.
    result = _create(ledger)
    assert result.keypair_resource_policy.idle_timeout == 7
    assert calls == [1]
    stream = KeyPairResourcePolicy.id_for(POLICY)
    assert _stored(ledger, stream) == 3
    assert [e.event for e in ledger.queries.history("keypair_resource_policy", POLICY)][-1] == "Recreated"
    assert _audited(ledger, "keypair_resource_policy", POLICY) == ["success"] * 3


def test_an_erasure_listener_failing_after_the_commit_is_logged_and_run_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = ledger.app
    user = uuid.uuid4()
    creator = UserCreator(user_id=user, domain_name="default", email=EMAIL, full_name=FULL_NAME)
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    stream = User.id_for(str(user))
    assert app.cache._copies.get(stream) is not None  # the erasure must drop this copy
    heard: list[list[str]] = []
    broken = [True]

    def listener(subjects: list[str]) -> None:
        heard.append(subjects)
        if broken[0]:
            raise OperationalError("the read model database is locked")

    # First, so the listeners after it show they still run.
    monkeypatch.setattr(app, "erasure_listeners", [listener, *app.erasure_listeners])
    with caplog.at_level(logging.ERROR, logger="adapters.store.application"):
        run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason="asked to be forgotten"))
    subject = f"user:{user}"
    assert heard == [[subject]]
    assert any(r.levelno == logging.ERROR and subject in r.getMessage() for r in caplog.records)
    assert _stored(ledger, stream) == 2
    assert _audited(ledger, "user", str(user)) == ["success", "success"]
    # No copy this process holds serves the erased values: not the cache, not the read models.
    assert EMAIL not in repr([vars(copy) for copy in app.cache._copies.values()])
    with ledger.read_models.engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("users")]
        rows = [tuple(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
    assert rows and EMAIL not in repr(rows)
    erased = app.get(stream, User)
    assert erased is not None and (erased.fields["email"], erased.fields["full_name"]) == (ERASED, ERASED)
    # Until it passes, a reader of what it drops is refused, and every save runs it again.
    with pytest.raises(StoreUnavailable):
        app.finish_erasures()
    assert heard == [[subject]] * 2
    broken[0] = False
    _create(ledger)
    assert heard == [[subject]] * 3
    app.finish_erasures()  # nothing left to run
    assert heard == [[subject]] * 3
