"""Direct connections to a ledger's database, around the event store, for the tests that
check what the database itself refuses."""

from __future__ import annotations

import sqlite3

import psycopg

from adapters.bootstrap import Ledger


def raw_sqlite(ledger: Ledger) -> sqlite3.Connection:
    return sqlite3.connect(ledger.config.env["SQLITE_DBNAME"])


def raw_postgres(ledger: Ledger) -> psycopg.Connection:
    env = ledger.config.env
    return psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        options=f"-csearch_path={ledger.config.schema}",
    )
