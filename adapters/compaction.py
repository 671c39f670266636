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
from adapters.json_times import utc_z_default
from adapters.store import StoreConfig
from adapters.store.keys import KEYS_TABLE
from domain.errors import StoreUnavailable
from projections.registry import shared_projections
from projections.tracking import Tracking

# Seconds a rewrite waits for older transactions to end, and then for the table's lock;
# past either, the table is reported and left for the next compaction.
WAIT = 10.0
LOCK_WAIT = 10.0
# While a rewrite waits for its lock every other use of the table queues behind it: the
# lock is asked for in turns this long, a little apart, until LOCK_WAIT has passed.
LOCK_TURN = 0.2
DROPPED = "dropped meanwhile: no file left to rewrite; run again"
_KEPT = re.compile(r"([0-9]+) dead row versions cannot be removed yet")


@dataclass(frozen=True)
class Compacted:
    """One table rewritten (or the SQLite WAL emptied), or why not (`skipped`)."""

    table: str
    seconds: float
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "seconds": round(self.seconds, 3), "skipped": self.skipped}


def _read_model_pattern() -> re.Pattern[str]:
    """Read-model tables are named `{projection}_v{version}_...` (every zone's usage too),
    a forced rebuild's `{projection}_v{version}r{generation}_...` (`build_storage_name`):
    the erasure catches a build up too, so its tables hold deleted rows' old versions."""
    names = sorted({projection.name for projection in shared_projections().all()})
    return re.compile(rf"^(?:{'|'.join(map(re.escape, names))})_v[0-9]+(?:r[0-9]+)?_")


def personal_tables(existing: Iterable[str]) -> list[str]:
    """Of the tables of a ledger's schema, those a deleted row of which may have held a
    personal value in clear: the key table first, the cached HTTP responses, the stalls (a
    cause may have named one until an erasure replaced it), every read model's. Not the
    events, chain or snapshots: append-only, and they hold sealed values."""
    existing = set(existing)
    pattern = _read_model_pattern()
    read_models = sorted(name for name in existing if pattern.match(name))
    fixed = (KEYS_TABLE, str(responses.name), str(Tracking.stalls.name))
    return [name for name in fixed if name in existing] + read_models


def compact(
    config: StoreConfig, only: Sequence[str] | None = None, wait: float | None = None, lock_wait: float | None = None
) -> list[Compacted]:
    """Rewrites `only` those tables (default: `personal_tables`) of a PostgreSQL ledger with
    `VACUUM FULL`, one by one; a SQLite ledger's WAL is emptied instead. Reported skipped:
    a table this role does not own, one whose lock is not granted within `lock_wait` seconds
    (default LOCK_WAIT, asked for in turns of LOCK_TURN: while a rewrite waits for its
    lock, every other use of the table queues behind it), and
    one rewritten while a transaction that may still see its old rows was open (PostgreSQL
    keeps those: run again once it ends), waited for up to `wait` seconds (default WAIT). A
    server that cannot be reached is StoreUnavailable."""
    path = config.sqlite_path
    if config.kind != "postgresql":
        if path is None:
            return []  # in memory: no file
        return [_checkpoint(str(path))]
    import psycopg

    try:
        with config.reach_postgres() as conn:
            rewriter = _Rewriter(
                conn,
                config.schema or "public",
                WAIT if wait is None else wait,
                LOCK_WAIT if lock_wait is None else lock_wait,
            )
            return rewriter.run(only)
    except psycopg.Error as exc:  # the server lost, or a statement it refused: never the driver's own error
        raise StoreUnavailable(f"compacting the ledger's tables failed: {exc}") from exc


class _Rewriter:
    """VACUUM FULL of a schema's tables on one autocommit connection."""

    def __init__(self, conn: Any, schema: str, wait: float, lock_wait: float) -> None:
        from psycopg import sql

        self.conn = conn
        self.schema = schema
        # Each table's owner, or None when this role may rewrite it: it owns the table or
        # the database (PostgreSQL lets a database's owner vacuum its tables), or is a member.
        self.owner = {
            name: None if mine else str(role)
            for name, mine, role in conn.execute(
                "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE'), "
                "pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_database d ON d.datname = current_database() WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchall()
        }
        self.lock_wait = lock_wait
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{_millis(min(lock_wait, LOCK_TURN))}ms")))
        # A large table's rewrite takes its time: a timeout set on the role is not for it.
        conn.execute("SET statement_timeout = 0")
        # VERBOSE says how many dead row versions a rewrite had to keep (English messages
        # only). Read only when this role cannot see every session (see `_older`).
        self.kept = 0
        conn.add_notice_handler(self._notice)
        # Sessions whose transaction began before this point may see rows deleted before
        # it: PostgreSQL keeps such row versions through a rewrite, so it waits them out,
        # once for the whole run (a long transaction holds every table back alike).
        # `boundary`: every transaction id below it had ended by then.
        self.began, self.boundary, self.sees_all = conn.execute(
            "SELECT clock_timestamp(), xid(pg_snapshot_xmax(pg_current_snapshot()))::text, "
            "pg_has_role('pg_read_all_stats', 'USAGE')"
        ).fetchone()
        self.deadline = time.monotonic() + wait

    def _notice(self, diagnostic: Any) -> None:
        found = _KEPT.search(diagnostic.message_detail or "")
        if found:
            self.kept += int(found.group(1))

    def run(self, only: Sequence[str] | None) -> list[Compacted]:
        tables = personal_tables(self.owner) if only is None else [t for t in only if t in self.owner]
        return [self._rewrite(table) for table in tables]

    def _older_transactions(self) -> list[str]:
        """What may still see rows deleted before `began`, waited for until the run's
        deadline; what is still there, described. In this database: a session holding a
        snapshot or a transaction id since before then; in any other, one holding a
        transaction id (a snapshot taken here now would not see past it); a transaction
        prepared before then; a replication slot whose xmin is older (a standby's feedback).
        Autovacuum's own vacuums hold back nothing (PostgreSQL leaves them out). Another
        role's sessions are visible only to a role with pg_read_all_stats (`sees_all`)."""
        while True:
            sessions = self.conn.execute(
                "SELECT pid, backend_type, xact_start FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND xact_start < %s AND backend_type <> 'autovacuum worker' AND (backend_xid IS NOT NULL "
                "OR (backend_xmin IS NOT NULL AND datname = current_database())) ORDER BY xact_start",
                (self.began,),
            ).fetchall()
            prepared = self.conn.execute(
                "SELECT gid, prepared FROM pg_prepared_xacts WHERE prepared < %s ORDER BY prepared", (self.began,)
            ).fetchall()
            slots = self.conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE xmin IS NOT NULL AND age(xmin) >= age(%s::xid)",
                (self.boundary,),
            ).fetchall()
            if not (sessions or prepared or slots) or time.monotonic() > self.deadline:
                return (
                    [f"pid {pid}, a {kind} since {utc_z_default(start)}" for pid, kind, start in sessions]
                    + [f"the prepared transaction {gid!r} since {utc_z_default(at)}" for gid, at in prepared]
                    + [f"the replication slot {name!r}" for (name,) in slots]
                )
            time.sleep(0.05)

    def _rewrite(self, table: str) -> Compacted:
        import psycopg
        from psycopg import sql

        began = time.perf_counter()
        owner = self.owner[table]
        if owner is not None:  # PostgreSQL would only warn and leave the table as it is
            return Compacted(table, 0.0, f"not rewritten: owned by {owner}, not this role")
        older = self._older_transactions()
        statement = sql.SQL("VACUUM (FULL, VERBOSE) {}").format(sql.Identifier(self.schema, table))
        while True:
            self.kept = 0
            try:
                self._vacuum(statement)
            except psycopg.errors.LockNotAvailable:
                return Compacted(table, time.perf_counter() - began, f"busy: not locked within {self.lock_wait:g} s")
            except psycopg.errors.InsufficientPrivilege as exc:  # refused otherwise than by ownership
                return Compacted(table, time.perf_counter() - began, f"not rewritten: {exc.diag.message_primary}")
            except psycopg.errors.UndefinedTable:
                # Dropped by another process since the run listed it (a version activated,
                # a forced rebuild swapped in): its file went with it.
                return Compacted(table, time.perf_counter() - began, DROPPED)
            if self.sees_all:
                # Nothing older was left (or it is named below): what VERBOSE counts as
                # kept is newer rows' old versions (a live ledger's updates), not erased ones.
                self.kept = 0
            if not self.kept or time.monotonic() > self.deadline:
                break
            # A transaction this role cannot see kept some: again once it may have ended.
            time.sleep(0.1)
            older = self._older_transactions()
        spent = time.perf_counter() - began
        if self.kept or older:
            who = f" ({', '.join(older[:3])}{' ...' if len(older) > 3 else ''})" if older else ""
            kept = f"{self.kept} old row versions kept" if self.kept else "old row versions may be kept"
            return Compacted(table, spent, f"{kept}: a transaction open before it began{who}; run again once it ends")
        return Compacted(table, spent)

    def _vacuum(self, statement: Any) -> None:
        """Runs the rewrite, its lock asked for in turns of LOCK_TURN (`lock_timeout`) until
        `lock_wait` has passed: a session holding the table (pg_dump holds every table
        for its whole run) held every other use of it up for the whole wait otherwise."""
        import psycopg

        until = time.monotonic() + self.lock_wait
        while True:
            try:
                self.conn.execute(statement)
                return
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() + 0.05 >= until:
                    raise
            time.sleep(0.05)  # the sessions queued behind the turn go first


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _checkpoint(path: str) -> Compacted:
    began = time.perf_counter()
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"emptying the WAL of {path} failed: {exc}") from exc
    skipped = "busy: another process is reading; the next checkpoint empties it" if busy else None
    return Compacted("wal", time.perf_counter() - began, skipped)
