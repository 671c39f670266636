"""The SQLite ledger's pooled connections: the library's, with a statement cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from adapters.bootstrap import open_ledger
from adapters.store.connections import CachingConnectionPool


def test_a_sqlite_ledger_pools_caching_connections_in_wal_mode(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        pool = ledger.app.recorder.datastore.pool
        assert type(pool) is CachingConnectionPool
        connection = pool.get_connection(is_writer=False)
        try:
            with connection.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA journal_mode")
                (row,) = cursor.fetchall()
        finally:
            pool.put_connection(connection)
        assert isinstance(row, sqlite3.Row) and row[0] == "wal"  # rows by name, as the library reads them
        assert pool.is_journal_mode_wal


def test_an_in_memory_ledger_keeps_the_library_behaviour() -> None:
    with open_ledger("sqlite:///:memory:") as ledger:
        pool = ledger.app.recorder.datastore.pool
        assert type(pool) is CachingConnectionPool and pool.is_sqlite_memory_mode
        assert not pool.is_journal_mode_wal  # a shared in-memory database has no WAL
