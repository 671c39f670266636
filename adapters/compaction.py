"""Rewriting the tables where an erased value can outlive its row (docs/ERASURE.md).

An erasure deletes the subject's key row and the read-model rows holding its values. On
PostgreSQL a deleted or updated row's old version stays in the table's file: a plain
VACUUM frees its space for reuse but does not overwrite it, so the bytes stay readable in
the file until a `VACUUM FULL` rewrites the table. For the key table that matters most:
the old version of an erased key, wrapped under a master key that still opens it, would
open every value the erasure sealed away. So the ledger rewrites the key table right after
every erasure and key rotation (small: one row per subject), and `ledger compact` rewrites
the read-model tables too (each locked while it is rewritten: an operator's step, run when
reads can wait). SQLite deletes with `secure_delete` on; there compaction is emptying the
WAL into the file (`wal_checkpoint(TRUNCATE)`), where old page images stay until then.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.http.idempotency import responses
from adapters.store import StoreConfig
from adapters.store.keys import KEYS_TABLE
from domain.errors import StoreUnavailable
from projections.registry import shared_projections

# How long a rewrite waits for the table's lock (readers and writers of it finish first);
# past it the table is reported busy and left for the next compaction.
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class Compacted:
    """One table rewritten (or the SQLite WAL emptied), or why not (`skipped`)."""

    table: str
    seconds: float
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "seconds": round(self.seconds, 3), "skipped": self.skipped}


def _read_model_pattern() -> re.Pattern[str]:
    """Read-model tables are named `{projection}_v{version}_...` (every zone's usage too)."""
    names = sorted({projection.name for projection in shared_projections().all()})
    return re.compile(rf"^(?:{'|'.join(map(re.escape, names))})_v[0-9]+_")


def personal_tables(existing: Iterable[str]) -> list[str]:
    """Of the tables of a ledger's schema, those a deleted row of which may have held a
    personal value in clear: the key table first, the cached HTTP responses, every read
    model's. Not the events, chain or snapshots: append-only, and they hold sealed values."""
    existing = set(existing)
    pattern = _read_model_pattern()
    read_models = sorted(name for name in existing if pattern.match(name))
    return [name for name in (KEYS_TABLE, str(responses.name)) if name in existing] + read_models


def compact(config: StoreConfig, only: Sequence[str] | None = None) -> list[Compacted]:
    """Rewrites `only` those tables (default: `personal_tables`) of a PostgreSQL ledger with
    `VACUUM FULL`, one by one; a SQLite ledger's WAL is emptied instead. A table this role
    does not own, or whose lock is not granted within LOCK_TIMEOUT, is reported skipped.
    A server that cannot be reached is StoreUnavailable."""
    path = config.sqlite_path
    if config.kind != "postgresql":
        if path is None:
            return []  # in memory: no file
        return [_checkpoint(str(path))]
    import psycopg
    from psycopg import sql

    schema = config.schema or "public"
    try:
        with config.reach_postgres() as conn:
            owned = dict(
                conn.execute(
                    "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                    (schema,),
                ).fetchall()
            )
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            done = []
            for table in personal_tables(owned) if only is None else [t for t in only if t in owned]:
                began = time.perf_counter()
                if not owned[table]:
                    # PostgreSQL would only warn and leave the table as it is.
                    done.append(Compacted(table, 0.0, "not rewritten: this role does not own it"))
                    continue
                try:
                    conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(schema, table)))
                except psycopg.errors.LockNotAvailable:
                    busy = f"busy: not locked within {LOCK_TIMEOUT}"
                    done.append(Compacted(table, time.perf_counter() - began, busy))
                    continue
                done.append(Compacted(table, time.perf_counter() - began))
            return done
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"compacting the ledger's tables failed: {exc}") from exc


def _checkpoint(path: str) -> Compacted:
    began = time.perf_counter()
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"emptying the WAL of {path} failed: {exc}") from exc
    skipped = "busy: another process is reading; the next checkpoint empties it" if busy else None
    return Compacted("wal", time.perf_counter() - began, skipped)
