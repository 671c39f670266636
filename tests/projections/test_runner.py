"""The projection runner applies each event exactly once, with its position, atomically."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import OperationalError

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import StoreUnavailable
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from projections.runner import ProjectionRunner


def _create(ledger: Ledger, name: str) -> None:
    asyncio.run(
        ledger.services.keypair_resource_policy.create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
        )
    )


def _positions(ledger: Ledger) -> dict[str, int]:
    with ledger.read_models.connect() as conn:
        return {r.projection: r.position for r in conn.execute(sa.select(ProjectionRunner.tracking))}


def _history_rows(ledger: Ledger) -> int:
    entries = ledger.queries._history.entries
    with ledger.read_models.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()


def test_a_failing_handler_stalls_its_projection_alone_and_keeps_what_came_before(ledger_url: str) -> None:
    """The batch is rolled back and applied again with each projection in a savepoint:
    the failing one stops before its event, the others (history here) go past it."""
    with open_ledger(ledger_url) as ledger:
        ledger.runner.catch_up()
        rows_before = _history_rows(ledger)
        _create(ledger, "one")
        _create(ledger, "two")
        _create(ledger, "three")
        policies = ledger.queries._policies
        real = policies.handlers[KeyPairResourcePolicy.Created]

        def fail_on_second(conn, event, position):
            if event.key == "two":
                raise RuntimeError("projection crashed mid-batch")
            real(conn, event, position)

        policies.handlers[KeyPairResourcePolicy.Created] = fail_on_second
        ledger.runner.catch_up()
        head = ledger.app.recorder.max_notification_id()
        two = head - 1
        assert _positions(ledger) == {
            **{p.versioned_name: head for p in ledger.projections.all()},
            policies.versioned_name: two - 1,
        }
        assert _history_rows(ledger) == rows_before + 3  # not rolled back with the policies
        with ledger.read_models.connect() as conn:
            keys = set(conn.execute(sa.select(policies.rows.c.key)).scalars())
        assert keys == {"default", "one"}
        assert ledger.runner.stalled[policies.versioned_name].cause == "RuntimeError: projection crashed mid-batch"
        policies.handlers[KeyPairResourcePolicy.Created] = real
    # Code that reads the event (a new process) tries it again, once, and goes on.
    with open_ledger(ledger_url) as fixed:
        assert [p.name for p in fixed.queries.keypair_resource_policies()] == ["default", "one", "three", "two"]
        assert set(_positions(fixed).values()) == {head}
        assert fixed.runner.stalled == {}


def test_two_runners_on_one_read_model_apply_each_event_once(ledger_url: str) -> None:
    with open_ledger(ledger_url) as writer, open_ledger(ledger_url) as other:
        for i in range(30):
            _create(writer, f"p{i}")
            asyncio.run(
                writer.services.keypair_resource_policy.modify_keypair_resource_policy(
                    ModifyKeyPairResourcePolicyAction(name=f"p{i}", modifier={"idle_timeout": i})
                )
            )
        errors: list[BaseException] = []

        def catch_up(ledger: Ledger) -> None:
            try:
                ledger.runner.catch_up()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=catch_up, args=(ledger,)) for ledger in (writer, other, writer, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        head = writer.app.recorder.max_notification_id()
        assert _history_rows(writer) == head
        assert set(_positions(other).values()) == {head}
        assert len(other.queries.keypair_resource_policies()) == 31


def test_read_model_errors_are_domain_errors(memory_ledger: Ledger) -> None:
    with pytest.raises(StoreUnavailable), memory_ledger.read_models.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table"))


def test_a_read_model_error_says_the_drivers_words_not_the_statement_and_its_values(memory_ledger: Ledger) -> None:
    # It was SQLAlchemy's whole text, one line on the CLI and an HTTP 503's detail:
    # "(sqlite3.OperationalError) database is locked [SQL: UPDATE projection_tracking ...]
    # [parameters: (8, 'keypair_resource_policies_v1', 5)] (Background on this error at:
    # https://sqlalche.me/e/20/e3q8)": the statement, the values bound to it (a projected
    # row's: a user's email), a link to SQLAlchemy's documentation.
    statement = sa.text("SELECT * FROM no_such_table WHERE email = :email")
    with pytest.raises(StoreUnavailable) as failed, memory_ledger.read_models.connect() as conn:
        conn.execute(statement, {"email": "ada@example.org"})
    assert failed.value.message == "read model database error: no such table: no_such_table"


def test_an_event_store_lost_after_opening_is_store_unavailable_to_queries_and_status(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reproduced with PostgreSQL behind a proxy killed after the ledger opened: a query's
    # catch-up let the library's own error out ("OperationalError: couldn't get a
    # connection after 5.00 sec"), no LedgerError: on the CLI an `internal error` line.
    def lost(*args: object, **kwargs: object) -> int:
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(ledger.app.recorder, "max_notification_id", lost)
    with pytest.raises(StoreUnavailable, match="event store read failed: couldn't get a connection"):
        ledger.queries.keypair_resource_policies()
    with pytest.raises(StoreUnavailable, match="event store read failed: couldn't get a connection"):
        ledger.runner.status()


def test_opening_a_set_up_ledger_does_not_wait_for_a_batch_in_flight(ledger_url: str) -> None:
    """A follower's batch holds row locks on read-model tables until it commits; another
    process opening the ledger meanwhile must not queue DDL behind it (on PostgreSQL even
    `CREATE INDEX IF NOT EXISTS` takes a lock on the table, and could deadlock)."""
    with open_ledger(ledger_url) as first:
        rows, tracking = first.projections.history.entries, ProjectionRunner.tracking
        opened = threading.Event()

        def open_second() -> None:
            with open_ledger(ledger_url, build_pending=False):
                opened.set()

        with first.read_models.begin() as batch:
            # As a batch does: the tracking rows moved, the tables written.
            batch.execute(sa.update(tracking).values(position=tracking.c.position))
            if ledger_url.startswith("postgresql"):  # (SQLite: the update took the one write lock)
                batch.execute(sa.text(f'LOCK TABLE "{rows.name}" IN ROW EXCLUSIVE MODE'))
            opener = threading.Thread(target=open_second)
            opener.start()
            assert opened.wait(10), "opening the ledger waited for the batch to commit"
        opener.join()
