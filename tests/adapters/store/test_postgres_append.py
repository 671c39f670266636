"""A PostgreSQL ledger's own append (`ChainedPostgresRecorder.insert_in_transaction`): the
library's statements in two round trips, the events sent as binary arrays. What it
stores reads back byte for byte, in order; whatever fails inside it leaves nothing and
hands the pool back an idle connection."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from adapters.bootstrap import open_ledger
from adapters.store.chain import verify

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
