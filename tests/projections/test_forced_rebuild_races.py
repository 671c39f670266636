"""Forced rebuilds run by operators on a live ledger: two at once, and beside writers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
from projections.projection import Projection
from tests.projections.readmodels import clean_rebuild, dump

META = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")


def create(ledger: Ledger, count: int) -> None:
    import asyncio

    create = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    for _ in range(count):
        creator = KeyPairResourcePolicyCreator(name=f"r-{uuid.uuid4().hex[:10]}")
        asyncio.run(create.wait_for_complete(CreateKeyPairResourcePolicyAction(creator=creator), META))


def history(ledger: Ledger) -> list[Projection]:
    return [p for p in ledger.runner.projections if p.stable_name == "history"]


@contextmanager
def _two_history_builds(url: str) -> Iterator[tuple[Ledger, Ledger, Ledger, list[Projection], list[Projection]]]:
    """A writer with 12 policies, one ledger forcing a rebuild of history and a second
    that builds the same build: (writer, first, second, first's build, second's build)."""
    writer = open_ledger(url, build_pending=False)
    first = open_ledger(url, build_pending=False)
    second = open_ledger(url, build_pending=False)
    try:
        create(writer, 12)
        build_first = first.runner.force(history(first))
        second.runner.refresh()
        build_second = second.runner.builds([p.versioned_name for p in history(second)])
        yield writer, first, second, build_first, build_second
    finally:
        for ledger in (writer, first, second):
            ledger.close()


def test_a_swap_in_while_another_rebuild_has_a_batch_open_keeps_rows_and_position_together(ledger_url: str) -> None:
    """Two `rebuild --force history` at once: the one that swapped the build in read the
    build's position before the other's open batch committed, then renamed the tables
    once it had: the read model held rows past its position, and the next catch-up
    stalled on applying them again (reads 503 until another forced rebuild)."""
    with _two_history_builds(ledger_url) as (writer, first, second, build_first, build_second):
        in_batch = threading.Event()
        applied = build_second[0].apply_batch

        def slow_batch(conn: Any, events: Any) -> None:  # applied, then a slow commit
            applied(conn, events)
            in_batch.set()
            time.sleep(1)

        build_second[0].apply_batch = slow_batch  # type: ignore[method-assign]
        swap = first.runner._swap_in

        def swap_while_the_other_batch_is_open(build: Projection) -> None:
            create(writer, 5)  # events the open batch will hold
            other = threading.Thread(target=lambda: second.runner.catch_up(only=build_second))
            other.start()
            assert in_batch.wait(10)
            swap(build)
            other.join()

        first.runner._swap_in = swap_while_the_other_batch_is_open  # type: ignore[method-assign]
        first.runner.catch_up(only=build_first)
        first.runner._swap_in = swap  # type: ignore[method-assign]
        create(writer, 1)
        later = open_ledger(ledger_url, build_pending=False)
        try:
            later.runner.catch_up()
            (status,) = [s for s in later.runner.status() if s.name == "history"]
            assert status.to_json()["stalled"] is None
            assert later.queries.history("keypair_resource_policy", "default")
            key = history(later)[0].versioned_name
            with later.runner.read_models.connect() as conn:
                tracked = conn.execute(
                    sa.text("SELECT position FROM projection_tracking WHERE projection = :p"), {"p": key}
                ).scalar_one()
            assert tracked == later.app.recorder.max_notification_id()
            assert dump(later.runner.read_models, history(later)) == {
                name: rows for name, rows in clean_rebuild(later).items() if name.startswith("history")
            }
        finally:
            later.close()


def test_forcing_a_rebuild_beside_a_writer_waits_its_turn(tmp_path: Any) -> None:
    """On SQLite, `force` read the rebuild's generation and then wrote the next in a
    transaction begun deferred: a commit by any other writer in between made the write
    fail at once with "database is locked" (half the forced rebuilds on a live ledger)."""
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    try:
        first = ledger.runner.force(history(ledger))  # the first force inserts its row; later ones update it
        ledger.runner.catch_up(only=first)  # built and swapped in
        engine = ledger.runner.read_models.engine
        other = sa.create_engine(engine.url)
        with other.begin() as conn:
            conn.execute(sa.text("CREATE TABLE busy (n INTEGER)"))
        done: list[bool] = []

        def another_writer_commits() -> None:
            with other.begin() as conn:
                conn.execute(sa.text("INSERT INTO busy VALUES (1)"))
            done.append(True)

        writers: list[threading.Thread] = []

        def between_read_and_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "projection_rebuilds" in statement and not writers:
                writers.append(threading.Thread(target=another_writer_commits))
                writers[0].start()
                writers[0].join(0.5)  # commits now unless this transaction holds the write lock

        sa.event.listen(engine, "after_cursor_execute", between_read_and_write)
        try:
            again = ledger.runner.force(history(ledger))
        finally:
            sa.event.remove(engine, "after_cursor_execute", between_read_and_write)
            for writer in writers:
                writer.join()
            other.dispose()
        assert writers and done == [True]  # the other writer waited its turn, then committed
        ledger.runner.catch_up(only=again)
        assert ledger.queries.history("keypair_resource_policy", "default")
    finally:
        ledger.close()


def policies(ledger: Ledger) -> list[Projection]:
    return [p for p in ledger.runner.projections if p.stable_name == "keypair_resource_policies"]


def test_a_build_swapped_in_behind_the_active_version_takes_no_rows_away_from_readers(ledger_url: str) -> None:
    """A forced rebuild swapped its build in once it reached the head it started from,
    though commands stored meanwhile had been applied to the active version: its rows went
    back to that head, and another process whose read models were already at the head
    (nothing new to apply) answered without the policies it had just listed."""
    writer = open_ledger(ledger_url, build_pending=False)
    reader = open_ledger(ledger_url, build_pending=False)
    rebuilder = open_ledger(ledger_url, build_pending=False)
    try:
        create(writer, 3)
        builds = rebuilder.runner.force(policies(rebuilder))
        swap = rebuilder.runner._swap_in

        def swap_once_the_active_version_is_ahead(build: Projection) -> Any:
            if not tries:
                create(writer, 2)  # stored after the head the rebuild catches up to
                reader.queries.keypair_resource_policies()  # the active version applies them
            tries.append(build)
            return swap(build)

        tries: list[Projection] = []

        rebuilder.runner._swap_in = swap_once_the_active_version_is_ahead  # type: ignore[method-assign]
        expected = {p.name for p in writer.queries.keypair_resource_policies()}
        rebuilder.runner.catch_up(only=builds)
        rebuilder.runner._swap_in = swap  # type: ignore[method-assign]
        listed = {p.name for p in reader.queries.keypair_resource_policies()}
        assert len(listed) == len(expected) + 2
        assert listed == {p.name for p in writer.queries.keypair_resource_policies()}
        assert len(tries) == 2 and rebuilder.runner.builds() == []  # swapped in once caught up further
        assert dump(reader.runner.read_models, policies(reader)) == {
            name: rows for name, rows in clean_rebuild(reader).items() if name.startswith("keypair_resource_policies")
        }
    finally:
        for ledger in (writer, reader, rebuilder):
            ledger.close()


def test_forced_rebuilds_started_at_once_both_build(ledger_url: str) -> None:
    """Two `rebuild --force` started together: on PostgreSQL both created the build's
    tables, and the second failed with `ledger_unavailable: ... duplicate key value
    violates unique constraint "pg_type_typname_nsp_index"`."""
    ledgers = [open_ledger(ledger_url, build_pending=False) for _ in range(3)]
    try:
        create(ledgers[0], 3)
        together = threading.Barrier(len(ledgers))
        errors: list[BaseException] = []

        def rebuild(ledger: Ledger) -> None:
            together.wait()
            try:
                ledger.runner.catch_up(ledger.runner.force(ledger.runner.projections))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=rebuild, args=(ledger,)) for ledger in ledgers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        later = ledgers[0]
        later.runner.refresh()
        assert later.runner.builds() == []
        later.runner.catch_up()
        assert dump(later.read_models, later.projections.all()) == clean_rebuild(later)
    finally:
        for ledger in ledgers:
            ledger.close()


def test_a_rebuild_another_process_finishes_midway_is_done_not_an_error(ledger_url: str) -> None:
    """Three `rebuild --force` started together failed now and then with `the rebuild of
    users_v2 was finished or discarded by another process`: one found the build swapped
    in by another after it had chosen it, when it read the build's position to apply a
    batch. A build finished elsewhere leaves this catch-up nothing to do."""
    one, other = (open_ledger(ledger_url, build_pending=False) for _ in range(2))
    try:
        create(one, 3)
        mine = one.runner.force(policies(one))
        theirs = other.runner.force(policies(other))
        assert [b.storage_name for b in mine] == [b.storage_name for b in theirs]  # the same build
        next_batch = one.runner._next_batch
        finished: list[bool] = []

        def finished_elsewhere_first(*args: Any) -> bool:
            if not finished:
                other.runner.catch_up(theirs)  # builds it and swaps it in
                one.runner._read_state()  # as a batch that found its claim stale reads it again
                finished.append(other.runner.builds() == [])
            return next_batch(*args)

        one.runner._next_batch = finished_elsewhere_first  # type: ignore[method-assign]
        one.runner.catch_up(mine)
        assert finished == [True] and one.runner.builds() == []
        one.runner.catch_up()
        assert dump(one.read_models, policies(one)) == {
            name: rows for name, rows in clean_rebuild(one).items() if name.startswith("keypair_resource_policies")
        }
    finally:
        one.close()
        other.close()


def test_a_swap_in_while_a_batch_into_the_build_holds_a_later_table_is_no_deadlock(postgres_url: str) -> None:
    """An erasure catches a forced rebuild up (`Ledger._erase_copies`) while the rebuild
    swaps it in. The swap renamed the build's tables one by one, while the batch's handlers
    wrote them in their own order: each held a table the other waited for (measured: `rebuild
    --force audit` failed on PostgreSQL's deadlock detected beside a `ledger serve` erasing)."""
    with _two_history_builds(postgres_url) as (writer, first, second, build_first, build_second):
        in_batch = threading.Event()
        applied = build_second[0].apply_batch
        last = f"{build_second[0].storage_name}_streams"  # renamed after `_entries`

        def streams_first(conn: Any, events: Any) -> None:  # a handler writing the later table first
            conn.exec_driver_sql(f'LOCK TABLE "{last}" IN ROW EXCLUSIVE MODE')
            in_batch.set()
            time.sleep(1.5)  # the swap renames the first table meanwhile, then waits for this one
            applied(conn, events)

        build_second[0].apply_batch = streams_first  # type: ignore[method-assign]
        swap = first.runner._swap_in
        failures: list[BaseException] = []

        def swap_while_the_batch_is_open(build: Projection) -> bool:
            create(writer, 5)  # events the open batch will hold

            def batch() -> None:
                try:
                    second.runner.catch_up(only=build_second)
                except BaseException as exc:
                    failures.append(exc)

            other = threading.Thread(target=batch)
            other.start()
            assert in_batch.wait(10)
            try:
                return swap(build)
            finally:
                other.join()

        first.runner._swap_in = swap_while_the_batch_is_open  # type: ignore[method-assign]
        first.runner.catch_up(only=build_first)
        assert failures == []
        first.runner.refresh()
        assert first.runner.builds() == []
