"""The database itself refuses to rewrite history."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import CHAIN_TABLE
from adapters.store.triggers import postgres_is_set_up
from tests.adapters.store.raw import raw_postgres, raw_sqlite

STATEMENTS = {
    "update": "UPDATE {table} SET topic = 'forged'",
    "delete": "DELETE FROM {table}",
}


@pytest.mark.parametrize("operation", sorted(STATEMENTS))
def test_raw_update_and_delete_of_events_fail(ledger: Ledger, operation: str) -> None:
    table = ledger.config.events_table
    statement = STATEMENTS[operation].format(table=table)
    count = f"SELECT COUNT(*), MIN(topic) FROM {table}"
    if ledger.config.kind == "sqlite":
        with raw_sqlite(ledger) as conn:
            before = conn.execute(count).fetchone()
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
            assert conn.execute(count).fetchone() == before
    else:
        with raw_postgres(ledger) as conn:
            before = conn.execute(count).fetchone()
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
            assert conn.execute(count).fetchone() == before
    assert before[0] >= 1  # the system policy's creation is there to protect


def test_truncate_fails_on_postgresql(postgres_url: str) -> None:
    with open_ledger(postgres_url) as ledger, raw_postgres(ledger) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"TRUNCATE {ledger.config.events_table}")
        conn.rollback()
        assert conn.execute(f"SELECT COUNT(*) FROM {ledger.config.events_table}").fetchone()[0] >= 1


def test_opening_restores_a_missing_trigger(postgres_url: str) -> None:
    """Opening skips the DDL only when every table, type, function and trigger is there:
    one missing piece, and the next open installs it again."""
    with open_ledger(postgres_url) as ledger, raw_postgres(ledger) as conn:
        assert postgres_is_set_up(ledger.config)
        conn.execute(f"DROP TRIGGER {CHAIN_TABLE}_no_truncate ON {CHAIN_TABLE}")
        conn.commit()
        assert not postgres_is_set_up(ledger.config)
    with open_ledger(postgres_url) as ledger, raw_postgres(ledger) as conn:
        assert postgres_is_set_up(ledger.config)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"TRUNCATE {CHAIN_TABLE}")
