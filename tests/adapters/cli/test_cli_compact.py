"""`ledger compact`: the tables where erased values can outlive their rows, rewritten
(adapters/compaction.py); on PostgreSQL an erasure says so."""

from __future__ import annotations

import uuid
from pathlib import Path

from adapters.store.keys import KEYS_TABLE
from tests.adapters.cli.helpers import as_json, ok, refused

EMAIL = "compaction.subject@example.org"
ERASING = "asked to be forgotten"


def test_ledger_compact_at_the_terminal(db: str, tmp_path: Path) -> None:
    human = ok(db, "compact").stdout
    assert "wal" in human and "emptied into the database file" in human and "compacted 1 of 1" in human
    (answer,) = as_json(db, "compact")
    assert answer["table"] == "wal" and answer["skipped"] is None
    assert "nothing to compact" in refused(f"sqlite:///{tmp_path}/missing.db", "compact")
    memory = ok("sqlite:///:memory:", "compact").stdout
    assert memory == "nothing to compact: this ledger keeps no file (it lives in memory)\n"
    assert as_json("sqlite:///:memory:", "compact") == []


def test_ledger_compact_on_postgresql_and_the_erasure_s_advice(postgres_url: str) -> None:
    user = str(uuid.uuid4())
    ok(postgres_url, "user", "create", user, "--email", EMAIL)
    said = ok(postgres_url, "user", "erase", user, "--reason", ERASING).stdout
    assert said.splitlines()[1] == (
        "the read models' old row versions keep the erased values on disk until `ledger compact`"
    )
    answer = as_json(postgres_url, "compact")
    assert answer[0] == {"table": KEYS_TABLE, "seconds": answer[0]["seconds"], "skipped": None}
    assert all(item["skipped"] is None for item in answer) and len(answer) > 10
    assert "compacted" in ok(postgres_url, "compact").stdout
