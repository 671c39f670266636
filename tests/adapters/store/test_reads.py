"""A SQLite ledger's stream reads outside the library's pool (`adapters/store/reads.py`):
on the writing connection between appends, else on the reading thread's own; the same
answers as the library's `select_events`, fresh across connections, and nothing left open
or readable once the ledger is closed."""

from __future__ import annotations

import contextlib
import gc
import itertools
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import ConnectionPoolClosedError
from eventsourcing.sqlite import SQLiteAggregateRecorder

from adapters.bootstrap import Ledger, open_ledger
from domain.keypair_resource_policy import KeyPairResourcePolicy
from tests.policies import create, modify


@pytest.fixture
def sqlite_ledger(tmp_path: Any) -> Any:
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        create(ledger, "p")
        for sessions in range(2, 12):
            modify(ledger, "p", max_concurrent_sessions=sessions)
        yield ledger


def library_select(ledger: Ledger, stream: Any, **bounds: Any) -> list[Any]:
    return list(SQLiteAggregateRecorder.select_events(ledger.app.recorder, stream, **bounds))


def direct_connections(ledger: Ledger) -> int:
    return len(ledger.app.recorder._direct_reads._all)


@contextlib.contextmanager
def writer_busy(ledger: Ledger) -> Iterator[None]:
    """As while an append is under way: reads go to the reading thread's own connection."""
    with ledger.app.recorder.datastore.idle_writer() as writer:
        assert writer is not None
        yield


def refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("read through the library's pool")


@pytest.mark.parametrize("writing", [False, True], ids=["between appends", "while appending"])
def test_every_bound_and_order_reads_what_the_library_reads(sqlite_ledger: Ledger, writing: bool) -> None:
    stream = KeyPairResourcePolicy.id_for("p")
    recorder = sqlite_ledger.app.recorder
    cases = list(itertools.product((None, 0, 3, 11), (None, 1, 5, 20), (False, True), (None, 1, 4)))
    expected = [library_select(sqlite_ledger, stream, gt=g, lte=le, desc=d, limit=li) for g, le, d, li in cases]
    unknown, by_text = uuid.uuid4(), library_select(sqlite_ledger, str(stream.hex))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQLiteAggregateRecorder, "select_events", refused)  # the library's pool answers none
        with writer_busy(sqlite_ledger) if writing else contextlib.nullcontext():
            for (gt, lte, desc, limit), answer in zip(cases, expected, strict=True):
                assert list(recorder.select_events(stream, gt=gt, lte=lte, desc=desc, limit=limit)) == answer
            assert len(recorder.select_events(stream)) == 11
            assert recorder.select_events(unknown) == []
            assert recorder.select_events(str(stream.hex)) == by_text
    # The thread's own connection only while an append holds the writing one.
    assert direct_connections(sqlite_ledger) == (1 if writing else 0)


def test_a_read_sees_what_another_connection_just_committed(sqlite_ledger: Ledger, tmp_path: Any) -> None:
    stream = KeyPairResourcePolicy.id_for("p")
    recorder = sqlite_ledger.app.recorder
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as other:
        for sessions in (40, 41, 42):
            modify(other, "p", max_concurrent_sessions=sessions)
            (last,) = recorder.select_events(stream, desc=True, limit=1)
            assert last.originator_version == sessions - 40 + 12


def test_each_thread_reads_on_its_own_connection_closed_when_the_thread_ends(sqlite_ledger: Ledger) -> None:
    stream = KeyPairResourcePolicy.id_for("p")
    found: list[int] = []

    def read() -> None:
        found.append(len(sqlite_ledger.app.recorder.select_events(stream)))

    with writer_busy(sqlite_ledger):
        sqlite_ledger.app.recorder.select_events(stream)
        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert found == [11] * 4
    gc.collect()
    assert direct_connections(sqlite_ledger) == 1  # the main thread's; the four went with their threads


def test_a_broken_connection_falls_back_to_the_library_then_reconnects(sqlite_ledger: Ledger) -> None:
    stream = KeyPairResourcePolicy.id_for("p")
    recorder = sqlite_ledger.app.recorder
    with writer_busy(sqlite_ledger):
        recorder.select_events(stream)
        recorder._direct_reads._local.held.conn.close()  # behind its back
        assert len(recorder.select_events(stream)) == 11  # answered by the library's pool
        assert len(recorder.select_events(stream)) == 11  # and directly again, on a new connection
    assert direct_connections(sqlite_ledger) == 1


def test_a_closed_ledger_reads_nothing_and_keeps_no_connection(tmp_path: Any) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    create(ledger, "p")
    stream = KeyPairResourcePolicy.id_for("p")
    with writer_busy(ledger):
        assert len(ledger.app.recorder.select_events(stream)) == 1
    assert len(ledger.app.recorder.select_events(stream)) == 1  # and on the writing connection
    conn = ledger.app.recorder._direct_reads._local.held.conn
    ledger.close()
    assert direct_connections(ledger) == 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")
    with pytest.raises(ConnectionPoolClosedError):  # as the library's own read says
        ledger.app.recorder.select_events(stream)


def test_an_in_memory_ledger_reads_through_the_library(memory_ledger: Ledger) -> None:
    create(memory_ledger, "p")
    assert len(memory_ledger.app.recorder.select_events(KeyPairResourcePolicy.id_for("p"))) == 1
    assert direct_connections(memory_ledger) == 0
