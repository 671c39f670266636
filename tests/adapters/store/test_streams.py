"""`existing_streams` on SQLite and PostgreSQL: which of many stream ids hold events, in
one query per chunk (the bulk import asks it for the sessions of a batch's kernels)."""

from __future__ import annotations

import uuid

import pytest

from adapters.bootstrap import Ledger
from adapters.store import streams
from adapters.store.streams import existing_streams
from domain.keypair_resource_policy import KeyPairResourcePolicy


def test_existing_streams_names_only_streams_with_events(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [KeyPairResourcePolicy.create(f"p{i}", {}) for i in range(5)]
    ledger.app.save(*stored)
    absent = [uuid.uuid4() for _ in range(7)]
    asked = [p.id for p in stored] + absent
    assert existing_streams(ledger.app.recorder, asked) == {p.id for p in stored}
    assert existing_streams(ledger.app.recorder, absent) == set()
    assert existing_streams(ledger.app.recorder, []) == set()
    monkeypatch.setattr(streams, "CHUNK", 2)
    assert existing_streams(ledger.app.recorder, asked) == {p.id for p in stored}
    assert ledger.app.store.existing(asked) == {p.id for p in stored}  # type: ignore[attr-defined]


def test_stream_versions_gives_each_streams_last_version(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [KeyPairResourcePolicy.create(f"v{i}", {}) for i in range(4)]
    ledger.app.save(*stored)
    stored[1].modify({"idle_timeout": 1})
    stored[1].modify({"idle_timeout": 2})
    ledger.app.save(stored[1])
    absent = uuid.uuid4()
    expected = {p.id: p.version for p in stored}
    assert expected[stored[1].id] == stored[0].version + 2  # two more events on the second
    assert streams.stream_versions(ledger.app.recorder, [*expected, absent]) == expected
    monkeypatch.setattr(streams, "CHUNK", 3)
    assert streams.stream_versions(ledger.app.recorder, [*expected, absent]) == expected
