"""Erased values leave the files of a PostgreSQL ledger (adapters/compaction.py).

PostgreSQL keeps a deleted row's old version in the table's file, and a plain VACUUM does
not overwrite it: the erased key's old version, wrapped under a master key that still opens
it, would open every value the erasure sealed. These tests read the relations' raw pages
(pageinspect's `get_raw_page`, through the buffer cache: what the files hold or will hold),
dead tuples included."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters import bootstrap, compaction
from adapters.bootstrap import Ledger, open_ledger
from adapters.compaction import personal_tables
from adapters.store import parse_url
from adapters.store.keys import KEYS_TABLE
from domain.user import CreateUserAction, EraseUserAction
from projections.projection import build_storage_name
from tests.actions import run
from tests.adapters.cli.helpers import ok
from tests.conftest import PG_DATABASE, PG_SERVER
from tests.projections.commands import run as commands_run
from tests.projections.stalls import stalled_ledger

EMAIL = "compaction.subject@example.org"
FULL_NAME = "Compaction Subject-Fullname"
ERASING = "asked to be forgotten"


def _schema(url: str) -> str:
    return url.rpartition("schema=")[2]


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True)
    with conn.transaction():
        # Test processes run at once: one creates the extension, the others wait for it.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledger-tests:pageinspect'))")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    return conn


def pages_holding(schema: str, needles: Iterable[bytes]) -> dict[str, int]:
    """Of every relation of `schema` (tables, their TOAST tables, indexes), the pages whose
    raw bytes hold one of `needles`, counted per relation (those with none left out)."""
    needles = list(needles)
    found: dict[str, int] = {}
    with _connect() as conn:
        relations = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i') "
            "UNION SELECT t.reltoastrelid::regclass::text FROM pg_class t JOIN pg_namespace n "
            "ON n.oid = t.relnamespace WHERE n.nspname = %s AND t.reltoastrelid <> 0",
            (schema, schema),
        ).fetchall()
        assert len(relations) > 10, relations
        for (relation,) in relations:
            blocks = conn.execute("SELECT pg_relation_size(%s::regclass) / 8192", (relation,)).fetchone()
            assert blocks is not None
            for block in range(int(str(blocks[0]))):
                page = conn.execute("SELECT get_raw_page(%s, %s)", (relation, block)).fetchone()
                assert page is not None
                if any(needle in bytes(page[0]) for needle in needles):  # type: ignore[arg-type]
                    found[relation] = found.get(relation, 0) + 1
    return found


def _read_time(schema: str, table: str) -> float:
    """Seconds another session's read of `table` takes (it queues behind a lock's waiter)."""
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as other:
        asked = time.monotonic()
        other.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
        return time.monotonic() - asked


def _take_snapshot(conn: psycopg.Connection[Any]) -> None:
    """Begins a REPEATABLE READ transaction on `conn` and takes its snapshot now, holding
    no lock on any table."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    conn.execute("SELECT 1").fetchone()


@contextmanager
def _held_snapshot() -> Iterator[psycopg.Connection[Any]]:
    """A session whose snapshot, taken on entry, is held until the block ends."""
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as conn:
        _take_snapshot(conn)
        try:
            yield conn
        finally:
            conn.rollback()


def _wrapped_key(schema: str, subject: str) -> bytes:
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as conn:
        row = conn.execute(f'SELECT wrapped FROM "{schema}"."{KEYS_TABLE}" WHERE subject = %s', (subject,)).fetchone()
    assert row is not None
    return bytes(row[0])  # type: ignore[arg-type]


def _user_with_personal_values(ledger: Ledger, email: str = "kept@example.org") -> uuid.UUID:
    user = uuid.uuid4()
    creator = {"user_id": str(user), "domain_name": "default", "email": email, "full_name": FULL_NAME}
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    ledger.runner.catch_up()  # the users and audit read models hold the values in clear
    return user


def test_an_erasure_leaves_no_old_version_of_the_erased_key_in_the_key_table(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's old row version is what a plain VACUUM leaves: the erasure rewrites the table."""
    # The test processes share one database: another's snapshot (the test holding one
    # across an erasure) may outlast the erasure's usual wait, and the rewrite keep the key.
    monkeypatch.setattr(bootstrap, "ERASURE_COMPACTION_WAIT", compaction.WAIT)
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        # Another key before it keeps the page from being truncated; the erased key is the
        # page's last row, whose space a plain VACUUM frees without overwriting.
        other = _user_with_personal_values(ledger)
        user = _user_with_personal_values(ledger)
        wrapped = _wrapped_key(schema, f"user:{user}")
        assert pages_holding(schema, [wrapped]) == {f"{schema}.{KEYS_TABLE}": 1}
        run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
        assert pages_holding(schema, [wrapped]) == {}
        assert ledger.app.keys.key(f"user:{other}") is not None  # the others' keys stay


def test_ledger_compact_leaves_no_erased_value_in_any_page_of_the_schema(postgres_url: str) -> None:
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        _user_with_personal_values(ledger)  # the erased rows are not the only ones of their pages
        user = _user_with_personal_values(ledger, EMAIL)
        run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
        # The rows are gone; their old versions are not (a plain VACUUM may or may not
        # overwrite them, as the page's layout falls: the key table's test shows one it does not).
        assert pages_holding(schema, [EMAIL.encode()]) != {}
        done = ledger.compact()
    names = [item.table for item in done]
    assert names[0] == KEYS_TABLE and "users_v2_rows" in names and any(n.startswith("audit_v") for n in names)
    assert all(item.skipped is None for item in done), done
    assert not any(name.startswith(("ledger_events", "ledger_chain", "ledger_snapshots")) for name in names)
    assert pages_holding(schema, [EMAIL.encode()]) == {}


def test_a_table_whose_lock_is_held_is_reported_busy_and_the_others_compacted(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "LOCK_WAIT", 0.2)
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        held = threading.Event()
        release = threading.Event()

        def reader() -> None:
            with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as conn:
                conn.execute(f'LOCK TABLE "{schema}"."users_v2_rows" IN ACCESS SHARE MODE')
                held.set()
                release.wait(30)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            assert held.wait(30)
            done = {item.table: item for item in ledger.compact()}
        finally:
            release.set()
            thread.join()
    assert done["users_v2_rows"].skipped == "busy: not locked within 0.2 s"
    assert done[KEYS_TABLE].skipped is None and done["groups_v2_rows"].skipped is None


def test_a_sqlite_ledger_s_compaction_empties_its_wal_and_an_in_memory_one_has_none(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        _user_with_personal_values(ledger)
        assert (tmp_path / "ledger.db-wal").stat().st_size > 0
        (done,) = ledger.compact()
        assert (done.table, done.skipped) == ("wal", None)
        assert (tmp_path / "ledger.db-wal").stat().st_size == 0
    with open_ledger("sqlite:///:memory:") as ledger:
        assert ledger.compact() == []


def test_a_rotation_leaves_no_key_wrapped_under_the_old_master_key(postgres_url: str, tmp_path: Path) -> None:
    """A rotation for a leaked master key: every key's old version, wrapped under that key,
    would stay in the table's file beside the new one."""
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        users = [_user_with_personal_values(ledger) for _ in range(3)]
    old = [_wrapped_key(schema, f"user:{user}") for user in users]
    new_file = tmp_path / "next.key"
    print(ok(postgres_url, "keys", "rotate", "--new-key-file", str(new_file)).stdout)
    assert all(_wrapped_key(schema, f"user:{user}") not in old for user in users)
    assert pages_holding(schema, old) == {}


def test_a_role_that_owns_no_table_is_told_whose_they_are(postgres_url: str) -> None:
    """PostgreSQL's VACUUM FULL only warns and skips a table the role does not own: said, not
    taken for a rewrite."""
    schema = _schema(postgres_url)
    open_ledger(postgres_url).close()
    role = f"ledger_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    try:
        as_role = postgres_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        assert as_role != postgres_url
        done = compaction.compact(parse_url(as_role))
        owner = "postgres"  # the tests' server role, which made the tables
        assert done and all(item.skipped == f"not rewritten: owned by {owner}, not this role" for item in done)
    finally:
        with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_transaction_that_still_sees_the_erased_rows_is_named_and_a_later_run_removes_them(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL keeps, through VACUUM FULL, the row versions an open snapshot may still
    read: such a table is reported with the session to wait for, never called compacted."""
    monkeypatch.setattr(compaction, "WAIT", 0.3)
    # Its erasure waits for the reader too: briefly, since every other test process's
    # erasures wait for the reader meanwhile.
    monkeypatch.setattr(bootstrap, "ERASURE_COMPACTION_WAIT", 0.3)
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        user = _user_with_personal_values(ledger, EMAIL)
        with _held_snapshot() as reader:  # taken before the erasure
            pid = reader.info.backend_pid
            run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
            done = {item.table: item for item in ledger.compact()}
            kept = done["users_v2_rows"].skipped
            assert kept is not None and f"(pid {pid}, a client backend since " in kept, kept
            assert "run again once it ends" in kept
            assert pages_holding(schema, [EMAIL.encode()]) != {}
        monkeypatch.undo()  # the usual wait: another test's transaction may be open meanwhile
        assert all(item.skipped is None for item in ledger.compact())
    assert pages_holding(schema, [EMAIL.encode()]) == {}


def test_a_table_dropped_while_the_run_is_under_way_is_reported_not_a_driver_error(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may drop a read model's tables meanwhile (a new version activated,
    a forced rebuild swapped in): the run goes on, and no psycopg error reaches the caller."""
    schema = _schema(postgres_url)
    waited = compaction._Rewriter._older_transactions

    def dropped_first(rewriter: compaction._Rewriter) -> list[str]:
        with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{schema}"."users_v2_rows"')
        return waited(rewriter)

    with open_ledger(postgres_url) as ledger:
        _user_with_personal_values(ledger)
        monkeypatch.setattr(compaction._Rewriter, "_older_transactions", dropped_first)
        done = {item.table: item for item in compaction.compact(parse_url(postgres_url))}
    assert done["users_v2_rows"].skipped == "dropped meanwhile: no file left to rewrite; run again"
    assert done[KEYS_TABLE].skipped is None and done["groups_v2_rows"].skipped is None


def test_a_forced_rebuild_s_tables_are_rewritten_too() -> None:
    """A forced rebuild under way keeps its own generation of a read model's tables
    (`users_v2r1_rows`), which the erasure catches up like the active ones: a build stalled
    past an erasure holds its deleted rows' old versions there."""
    build = build_storage_name("users_v2", 1) + "_rows"
    active = ["users_v2_rows", "audit_v7_entries", build, build_storage_name("audit_v7", 12) + "_entries"]
    # The stalls too (a cause written before an erasure named its values); never the events.
    assert personal_tables([*active, "projection_stalls", "ledger_events"]) == ["projection_stalls", *sorted(active)]


def test_an_erasure_while_another_session_holds_the_key_table_stalls_no_one_for_long(postgres_url: str) -> None:
    """A session holding the key table (pg_dump holds every table for its whole run) keeps
    the erasure's rewrite waiting for its lock, and while it waits, every other session's
    use of the key table queues behind it: the erasure's wait is short, the rewrite left
    to `ledger compact`."""
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        user = _user_with_personal_values(ledger)
        with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as dump:
            dump.execute(f'SELECT count(*) FROM "{schema}"."{KEYS_TABLE}"').fetchone()  # its lock held till the end
            erasing = threading.Thread(
                target=run, args=(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
            )
            began = time.monotonic()
            erasing.start()
            time.sleep(0.2)
            waited = _read_time(schema, KEYS_TABLE)
            erasing.join()
            took = time.monotonic() - began
    assert waited < 3 and took < 5, (waited, took)


def test_rows_updated_after_the_run_began_are_not_taken_for_kept_erased_rows(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live ledger updates rows meanwhile, and a snapshot taken after the run began keeps
    their old versions, which VERBOSE counts as kept: a role that sees every session knows
    nothing older holds erased rows, so it neither retries nor reports them."""
    schema = _schema(postgres_url)  # the usual wait: another test's snapshot may be open meanwhile
    opened = compaction._Rewriter.__init__
    with open_ledger(postgres_url) as ledger, psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as newer:
        user = _user_with_personal_values(ledger, EMAIL)
        _user_with_personal_values(ledger)
        run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))

        def then_a_newer_snapshot_and_an_update(self: compaction._Rewriter, *args: object) -> None:
            opened(self, *args)  # type: ignore[arg-type]
            _take_snapshot(newer)
            with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as writer:
                writer.execute(f'UPDATE "{schema}".users_v2_rows SET keypair_count = keypair_count')

        monkeypatch.setattr(compaction._Rewriter, "__init__", then_a_newer_snapshot_and_an_update)
        done = {item.table: item.skipped for item in ledger.compact()}
        newer.rollback()
    assert done["users_v2_rows"] is None and not any(done.values()), done
    assert pages_holding(schema, [EMAIL.encode()]) == {}


def test_a_role_that_cannot_see_every_session_retries_on_verbose_s_count_and_reports_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pg_read_all_stats, another role's old snapshot is invisible: VERBOSE's count
    of the dead rows it kept is what says the table is not empty."""
    opened = compaction._Rewriter.__init__

    def blind(self: compaction._Rewriter, *args: object) -> None:
        opened(self, *args)  # type: ignore[arg-type]
        self.sees_all = False

    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        user = _user_with_personal_values(ledger, EMAIL)
        with _held_snapshot():
            run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
            monkeypatch.setattr(compaction, "WAIT", 0.3)
            monkeypatch.setattr(compaction._Rewriter, "__init__", blind)
            monkeypatch.setattr(compaction._Rewriter, "_older_transactions", lambda self: [])
            kept = {item.table: item.skipped for item in ledger.compact()}["users_v2_rows"]
    assert kept is not None and kept.endswith(
        "old row versions kept: a transaction open before it began; run again once it ends"
    )
    assert int(kept.split()[0]) >= 1
    assert pages_holding(schema, [EMAIL.encode()]) != {}


def test_a_read_model_stalled_before_an_erasure_is_reported_not_called_compacted(tmp_path: Path) -> None:
    """Its live rows still hold what the erasure erased: no rewrite removes them."""
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        bad = stalled_ledger(ledger)
        (only,) = ledger.compact()  # stalled, but no erasure after its stall: nothing to say
        assert (only.table, only.skipped) == ("wal", None)
        commands_run(ledger, ("group_purge", 0))
        behind, wal = ledger.compact()
    assert behind.table == "usage_v6_utc (read model)" and wal.skipped is None
    assert behind.skipped is not None and behind.skipped.startswith(f"stalled at position {bad}: ")
    assert "before an erasure: its rows still hold the values it erased;" in behind.skipped
    assert "`ledger projections skip usage_utc --position" in behind.skipped and behind.skipped.endswith("run again")


def test_an_erasure_s_wait_for_older_transactions_holds_up_no_other_command_of_its_process(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a transaction older than the erasure is open (a pg_dump, a report), the
    erasure's rewrite of the key table waits for it: that wait is the erasure's caller's.
    Every other command of the process, committed meanwhile, went on to wait for it too
    (measured: 2.1 s per erasure for each create of a `ledger serve` worker)."""
    monkeypatch.setattr(bootstrap, "ERASURE_COMPACTION_WAIT", 3.0)
    rewriting = threading.Event()
    rewrite = bootstrap.compact

    def signalled(*args: Any, **kwargs: Any) -> Any:
        rewriting.set()
        return rewrite(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "compact", signalled)
    with open_ledger(postgres_url) as ledger:
        user = _user_with_personal_values(ledger)
        with _held_snapshot():  # older than the erasure: its rewrite waits
            erasing = threading.Thread(
                target=run, args=(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=ERASING))
            )
            erasing.start()
            assert rewriting.wait(10)
            began = time.monotonic()
            _user_with_personal_values(ledger, "another@example.org")
            took = time.monotonic() - began
        erasing.join()
    assert took < 1.5, took


def test_a_rewrite_waiting_for_its_lock_holds_up_other_sessions_only_briefly(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a rewrite waits for its table's lock, every other session's use of the table
    queues behind it. A session holding the table (pg_dump holds every table for its whole
    run) made each read of it wait the whole lock wait (measured: users listed in 20 s
    while `ledger compact` ran beside a pg_dump); the wait is now asked for in short turns."""
    monkeypatch.setattr(compaction, "LOCK_WAIT", 3.0)
    schema = _schema(postgres_url)
    with open_ledger(postgres_url) as ledger:
        _user_with_personal_values(ledger)
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as dump:
        dump.execute(f'LOCK TABLE "{schema}"."users_v2_rows" IN ACCESS SHARE MODE')
        done: list[compaction.Compacted] = []
        rewriting = threading.Thread(
            target=lambda: done.extend(compaction.compact(parse_url(postgres_url), ["users_v2_rows"], wait=0))
        )
        rewriting.start()
        time.sleep(0.5)
        waited = _read_time(schema, "users_v2_rows")
        rewriting.join()
    assert waited < 1.0, waited
    assert [item.skipped for item in done] == ["busy: not locked within 3 s"]
