"""Direct connections to a ledger's database, around the event store, for the tests that
check what the database itself refuses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def as_older_release(app: Any) -> Iterator[None]:
    """What the ledger's application saves inside is stored as a release before sealing
    stored it: personal values in clear. Cached aggregates are dropped on the way out."""
    keys = app.mapper.keys
    app.mapper.keys = None
    try:
        yield
    finally:
        app.mapper.keys = keys
        app.cache.clear()
