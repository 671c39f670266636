"""Direct connections to a ledger's database, around the event store, for the tests that
check what the database itself refuses."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from adapters.bootstrap import Ledger
from adapters.store.triggers import install_append_only_triggers


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


def cut_event_state(ledger: Ledger, position: int, keep: int = 20) -> None:
    """Cuts the stored state of the event at `position` to its first `keep` bytes, behind
    the ledger's back: an event that no longer decodes."""
    _rewrite_event(ledger, position, ("state = substr(state, 1, ?)", "state = substring(state from 1 for %s)"), keep)


def replace_event_state(ledger: Ledger, position: int, state: bytes) -> None:
    """Gives the event at `position` other stored bytes (another event's), behind the
    ledger's back: bytes that decode, but not into an event of its topic."""
    _rewrite_event(ledger, position, ("state = ?", "state = %s"), state)


def move_event_version(ledger: Ledger, position: int, version: int) -> None:
    """Gives the event at `position` another version of its stream, behind the ledger's
    back: the history index still names it at its old version, which the stream no
    longer has."""
    _rewrite_event(ledger, position, ("originator_version = ?", "originator_version = %s"), version)


def _rewrite_event(ledger: Ledger, position: int, assignment: tuple[str, str], value: Any) -> None:
    """Sets one column of the event at `position` (the SQLite, then the PostgreSQL spelling
    of `assignment`), the append-only trigger out of the way."""
    table = ledger.config.events_table
    if ledger.config.kind == "sqlite":
        with contextlib.closing(raw_sqlite(ledger)) as conn:
            conn.execute(f"DROP TRIGGER {table}_no_update")
            conn.execute(f"UPDATE {table} SET {assignment[0]} WHERE rowid = ?", (value, position))
            conn.commit()
        restore_sqlite_triggers(ledger)
        return
    with raw_postgres(ledger) as pg:
        pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        pg.execute(f"UPDATE {table} SET {assignment[1]} WHERE notification_id = %s", (value, position))
        pg.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def restore_sqlite_triggers(ledger: Ledger) -> None:
    """The append-only triggers made again after a tampering (as PostgreSQL's are enabled
    again): `verify` names a trigger left missing, which is not what these tests check."""
    install_append_only_triggers(ledger.app.recorder, ledger.config)
