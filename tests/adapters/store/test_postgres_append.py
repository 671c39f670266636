"""A PostgreSQL ledger's own append (`ChainedPostgresRecorder.insert_in_transaction`): the
library's statements in two round trips, its composite rows written in binary by the
ledger's dumper. What it stores reads back byte for byte, in order; whatever fails inside
it leaves nothing and hands the pool back an idle connection."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

import pytest
from eventsourcing.persistence import DataError, IntegrityError, StoredEvent

from adapters.bootstrap import open_ledger
from adapters.store import chain_postgres
from adapters.store.chain import verify
from adapters.store.chain_postgres import StoredEventDumper

HOSTILE_TOPICS = ("t", "ünïcödé:topic", "with 'quotes' and \"doubles\"", "back\\slash", "{braces,and,commas}", "")


def test_events_read_back_byte_for_byte_in_order(postgres_url: str) -> None:
    events = [
        StoredEvent(uuid.uuid4(), version, topic, state)
        for version, (topic, state) in enumerate(
            zip(
                HOSTILE_TOPICS,
                [b"", b"\x00", b"\\x00", b'{"a": "\\u0000"}', os.urandom(70_000), bytes(range(256))],
                strict=True,
            ),
            start=1,
        )
    ]
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        before = recorder.max_notification_id() or 0
        ids = recorder.insert_events(events)
        assert ids is not None and list(ids) == sorted(ids) and len(ids) == len(events) and ids[0] > before
        stored = recorder.select_notifications(start=ids[0], limit=len(events))
        assert [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in stored] == [
            (i, e.originator_id, e.originator_version, e.topic, e.state) for i, e in zip(ids, events, strict=True)
        ]
        assert verify(ledger.app).ok


def test_nothing_to_append_touches_nothing(postgres_url: str) -> None:
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        before = recorder.max_notification_id()
        assert recorder.insert_events([]) is None
        assert recorder.max_notification_id() == before


def _pool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("psycopg") and r.levelno >= logging.WARNING]


def test_a_conflict_rolls_back_and_returns_an_idle_connection(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The pool rolls back a connection returned mid-transaction, with a warning: the append
    must end its transaction itself."""
    caplog.set_level(logging.INFO)
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        stream = uuid.uuid4()
        recorder.insert_events([StoredEvent(stream, 1, "t", b"{}")])
        count = recorder.max_notification_id()
        for _ in range(3):  # more than one pooled connection goes through it
            with pytest.raises(IntegrityError):
                recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"{}"), StoredEvent(stream, 1, "t", b"{}")])
        assert _pool_warnings(caplog) == []
        recorder.insert_events([StoredEvent(stream, 2, "t", b"{}")])
        assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2]
        assert verify(ledger.app).ok and (recorder.max_notification_id() or 0) > (count or 0)


def test_a_failure_after_the_insert_leaves_no_event(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while linking (after the events have their positions) rolls the events back
    too, and is raised as it was raised."""
    caplog.set_level(logging.INFO)
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder

        def fail(*args: Any) -> None:
            raise RuntimeError("linking failed")

        monkeypatch.setattr(recorder, "link_and_erase", fail)
        lost = uuid.uuid4()
        with pytest.raises(RuntimeError, match="linking failed"):
            recorder.insert_events([StoredEvent(lost, 1, "t", b"{}")])
        monkeypatch.undo()
        assert _pool_warnings(caplog) == []
        assert recorder.select_events(lost) == []
        recorder.insert_events([StoredEvent(lost, 1, "t", b"{}")])
        assert [e.originator_version for e in recorder.select_events(lost)] == [1]
        assert verify(ledger.app).ok


def test_the_rows_go_in_binary_through_the_ledgers_dumper(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dumped: list[Any] = []
    dump = StoredEventDumper.dump
    monkeypatch.setattr(StoredEventDumper, "dump", lambda self, row: dumped.append(row) or dump(self, row))
    with open_ledger(postgres_url) as ledger:
        events = [StoredEvent(uuid.uuid4(), 1, "t", b"{}") for _ in range(3)]
        ledger.app.recorder.insert_events(events)
    assert [row[0] for row in dumped[-3:]] == [e.originator_id for e in events]


@pytest.mark.parametrize(
    ("version", "topic"),
    [(2**63, "t"), (-(2**63) - 1, "t"), (1, "lone \ud800 surrogate")],
    ids=["past bigint", "below bigint", "lone surrogate"],
)
def test_a_value_the_composite_cannot_hold_is_the_librarys_data_error(
    postgres_url: str, version: int, topic: str
) -> None:
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        kept = uuid.uuid4()
        with pytest.raises(DataError, match="cannot be written"):
            recorder.insert_events([StoredEvent(kept, 1, "t", b"{}"), StoredEvent(uuid.uuid4(), version, topic, b"{}")])
        assert recorder.select_events(kept) == []
        assert verify(ledger.app).ok


def test_a_composite_of_other_fields_is_written_as_the_library_writes_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dumper writes the library's composite as this release knows it; should the type
    ever differ, appends go through the library's own text dumping."""
    dumped: list[Any] = []
    dump = StoredEventDumper.dump
    monkeypatch.setattr(StoredEventDumper, "dump", lambda self, row: dumped.append(row) or dump(self, row))
    monkeypatch.setattr(chain_postgres, "_INT8", 23)  # as if this release expected an int4 version
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        stream = uuid.uuid4()
        recorder.insert_events([StoredEvent(stream, 1, "t", b"\x00state")])
        assert [e.state for e in recorder.select_events(stream)] == [b"\x00state"]
        assert verify(ledger.app).ok
    assert dumped == []


def test_every_pooled_connections_first_append_goes_through_the_ledgers_dumper(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor copies its connection's adapters when it is opened: the dumper must be
    registered on a connection before the append's cursor is, or that connection's first
    append is written by the library's dumper instead."""
    dumped: list[Any] = []
    dump = StoredEventDumper.dump
    monkeypatch.setattr(StoredEventDumper, "dump", lambda self, row: dumped.append(row) or dump(self, row))
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        rounds = recorder.datastore.pool.get_stats()["pool_size"] + 2  # the pool hands its connections out in turn
        for _ in range(rounds):
            before = len(dumped)
            recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
            assert len(dumped) - before == 1


def test_a_stream_id_is_written_as_the_composites_column_type_takes_it(postgres_url: str) -> None:
    """The id is encoded as its column's type, not as its Python type: a UUID given as text
    is stored as that UUID (the library's text path parses it), and text that is no UUID is
    refused, never stored as the raw bytes of some other UUID."""
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        stream = uuid.uuid4()
        recorder.insert_events([StoredEvent(str(stream), 1, "t", b"{}")])
        assert [(e.originator_id, e.originator_version) for e in recorder.select_events(stream)] == [(stream, 1)]
        sixteen = "0123456789abcdef"  # sixteen bytes: the length of a binary uuid
        with pytest.raises(DataError, match="cannot be written"):
            recorder.insert_events([StoredEvent(sixteen, 1, "t", b"{}")])
        assert recorder.select_events(uuid.UUID(bytes=sixteen.encode())) == []
        assert verify(ledger.app).ok


def test_an_append_larger_than_the_sockets_buffers_is_sent_whole(postgres_url: str) -> None:
    """psycopg's pipeline flushes its output once after its last command and then waits for
    the results: an append larger than the socket buffers could take in that flush (a
    batch of 10,000 workload facts, the HTTP API's largest, on a loaded host) left its tail
    unsent, and client and server waited for each other forever, the events table locked."""
    with open_ledger(postgres_url) as ledger:
        recorder = ledger.app.recorder
        events = [StoredEvent(uuid.uuid4(), 1, "t", os.urandom(1_000_000)) for _ in range(32)]
        done: list[Any] = []
        append = threading.Thread(target=lambda: done.append(recorder.insert_events(events)), daemon=True)
        append.start()
        append.join(timeout=60)
        hung = append.is_alive()
        while append.is_alive():  # the server waits for the rest of the insert: end it (each retry too)
            with recorder.datastore.get_connection() as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' "
                    "AND wait_event = 'ClientRead' AND datname = current_database() AND query LIKE %s",
                    (f'%INSERT INTO "{recorder.datastore.schema}"%',),
                )
            append.join(timeout=5)
        assert not hung, "the append never completed"
        assert done and done[0] is not None and len(done[0]) == len(events)
        stored = recorder.select_notifications(start=done[0][0], limit=len(events))
        assert [n.state for n in stored] == [e.state for e in events]
        assert verify(ledger.app).ok
