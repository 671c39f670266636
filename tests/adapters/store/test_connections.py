"""The SQLite ledger's connections: the library's pool with a statement cache, one writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from eventsourcing.persistence import ConnectionPoolClosedError, ConnectionUnavailableError, IntegrityError

from adapters.bootstrap import open_ledger
from adapters.store.connections import CachingConnectionPool, LedgerSQLiteDatastore


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


def test_writes_share_one_connection_and_wait_their_turn(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        datastore = ledger.app.recorder.datastore
        assert isinstance(datastore, LedgerSQLiteDatastore)
        datastore.pool.pool_timeout = 0.2
        with datastore.transaction(commit=True) as first:
            writer = first.sqlite_cursor.connection
            refused: list[BaseException] = []

            def second_writer() -> None:
                try:
                    with datastore.transaction(commit=True):
                        pass
                except BaseException as exc:  # whatever it is, the test looks at it
                    refused.append(exc)

            thread = threading.Thread(target=second_writer)
            thread.start()
            thread.join()
            # The pool's own error for a writer that does not come back in time.
            assert len(refused) == 1 and isinstance(refused[0], ConnectionUnavailableError)
        with datastore.transaction(commit=True) as again:
            assert again.sqlite_cursor.connection is writer


def test_a_failed_write_rolls_back_and_the_writer_goes_on(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        datastore = ledger.app.recorder.datastore
        # The library's error, as its pool's connections raise it.
        with pytest.raises(IntegrityError), datastore.transaction(commit=True) as cursor:
            cursor.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
            cursor.execute("INSERT INTO scratch VALUES (1)")
            cursor.execute("INSERT INTO scratch VALUES (1)")
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'scratch'")
            assert cursor.fetchall() == []  # the whole transaction went
        with datastore.transaction(commit=True) as cursor:
            cursor.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")


def test_a_closed_ledger_refuses_to_write(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    datastore = ledger.app.recorder.datastore
    ledger.close()
    with pytest.raises(ConnectionPoolClosedError), datastore.transaction(commit=True):
        pass
