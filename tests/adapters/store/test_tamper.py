"""Tamper evidence: edit, remove, reorder or insert stored events behind the ledger's back
(triggers disabled, raw SQL) and `verify` names the first bad event, on both backends."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from typer.testing import CliRunner

import adapters.store.chain
from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from adapters.read_model_check import verify_ledger
from adapters.store.chain import CHAIN_TABLE, head, link, verify
from adapters.store.keys import SNAPSHOT_SUBJECT
from adapters.store.snapshot_check import verify_store
from domain.errors import DamagedEvent, StoreUnavailable
from domain.group import PurgeGroupAction
from domain.idempotency import REQUEST_HASH_SUBJECT
from domain.user import EraseUserAction
from domain.workload import RecordWorkloadBatchAction
from tests.actions import DOMAIN, build_world, run, start_kernel
from tests.adapters.directory import create_user, modify_user
from tests.adapters.groups import create_group, modify_group, purge_group
from tests.adapters.store.raw import raw_postgres, raw_sqlite, restore_sqlite_triggers
from tests.conftest import own_database
from tests.policies import create, modify


def build(ledger: Ledger) -> None:
    """Events 1 (the system policy), 2 (the domain `default`) to 5: policies a and b
    created, then a modified."""
    for name in "ab":
        create(ledger, name)
    modify(ledger, "a", idle_timeout=5)


@contextmanager
def behind_its_back(ledger: Ledger) -> Iterator[Any]:
    """A raw connection with the append-only triggers out of the way."""
    events = ledger.config.events_table
    if ledger.config.kind == "sqlite":
        conn = raw_sqlite(ledger)
        for table in (events, CHAIN_TABLE):
            for op in ("update", "delete"):
                conn.execute(f"DROP TRIGGER {table}_no_{op}")
        yield conn
        conn.commit()
        conn.close()
        restore_sqlite_triggers(ledger)
        return
    with raw_postgres(ledger) as pg:
        for table in (events, CHAIN_TABLE):
            pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        yield pg
        for table in (events, CHAIN_TABLE):
            pg.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        pg.commit()


def position_column(ledger: Ledger) -> str:
    return "rowid" if ledger.config.kind == "sqlite" else "notification_id"


def param(ledger: Ledger) -> str:
    return "?" if ledger.config.kind == "sqlite" else "%s"


def first_bad(ledger: Ledger, expect: tuple[int, str] | None = None) -> tuple[int, str]:
    report = verify(ledger.app.recorder, expect)
    assert report.first_bad is not None, report
    return report.first_bad.position, report.first_bad.kind


def bad_reason(ledger: Ledger) -> str:
    bad = verify(ledger.app.recorder).first_bad
    assert bad is not None
    return bad.reason


def raw(ledger: Ledger) -> Any:
    return raw_sqlite(ledger) if ledger.config.kind == "sqlite" else raw_postgres(ledger)


def copy_event_to(conn: Any, ledger: Ledger, source: int, target: int, version: int) -> None:
    """A new row at `target` (stream and contents of the event at `source`, another version)."""
    pos, p, table = position_column(ledger), param(ledger), ledger.config.events_table
    stream, topic, state = conn.execute(
        f"SELECT originator_id, topic, state FROM {table} WHERE {pos} = {p}", (source,)
    ).fetchone()
    columns = f"{pos}, originator_id, originator_version, topic, state"
    conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({p}, {p}, {p}, {p}, {p})", (target, stream, version, topic, state)
    )


def chain_rows(ledger: Ledger) -> int:
    with raw(ledger) as conn:
        count: int = conn.execute(f"SELECT COUNT(*) FROM {CHAIN_TABLE}").fetchone()[0]
        return count


@pytest.fixture
def built(ledger: Ledger) -> Ledger:
    build(ledger)
    return ledger


def test_an_untouched_ledger_verifies(built: Ledger) -> None:
    report = verify(built.app.recorder)
    assert report.ok and report.checked == 5 and report.head_position == 5
    assert (report.head_position, report.head_hash) == head(built.app.recorder)
    assert verify(built.app) == report  # the application will do as well as its recorder


def test_an_edited_state_is_found(built: Ledger) -> None:
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        (state,) = conn.execute(f"SELECT state FROM {table} WHERE {pos} = 3").fetchone()
        forged = bytes(state).replace(b'"max_concurrent_sessions":30', b'"max_concurrent_sessions":99')
        assert forged != bytes(state)
        conn.execute(f"UPDATE {table} SET state = {p} WHERE {pos} = 3", (forged,))
    assert first_bad(built) == (3, "altered")


def test_an_edited_topic_is_found(built: Ledger) -> None:
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {table} SET topic = 'domain.forged:Event' WHERE {pos} = 4")
    assert first_bad(built) == (4, "altered")


def forged_value(column: str, old: Any) -> Any:
    """Another value of the same type for one linked column of a stored event."""
    if column == "originator_id":  # a UUID on PostgreSQL, its 32 hex digits on SQLite
        forged = uuid.uuid4()
        return forged if isinstance(old, uuid.UUID) else forged.hex if len(str(old)) == 32 else str(forged)
    if column == "originator_version":
        return old + 10
    if column == "topic":
        return "domain.forged:Event"
    return bytes(old) + b" "  # state: still the same JSON, one byte more


@pytest.mark.parametrize("column", ["originator_id", "originator_version", "topic", "state"])
def test_each_linked_column_edited_alone_is_found(built: Ledger, column: str) -> None:
    """One column of event 3 (policy b's only event, so its version can change without a
    clash) and nothing else: every column the link covers must be covered by the hash,
    since the rows' positions still line up with the links'."""
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        (old,) = conn.execute(f"SELECT {column} FROM {table} WHERE {pos} = 3").fetchone()
        new = forged_value(column, old)
        assert new != old
        conn.execute(f"UPDATE {table} SET {column} = {p} WHERE {pos} = 3", (new,))
        stream, version = conn.execute(
            f"SELECT originator_id, originator_version FROM {table} WHERE {pos} = 3"
        ).fetchone()
    report = verify(built.app.recorder)
    assert report.first_bad is not None, f"an edited {column} went unnoticed"
    assert (report.first_bad.position, report.first_bad.kind) == (3, "altered")
    assert (report.first_bad.stream, report.first_bad.version) == (str(uuid.UUID(str(stream))), version)
    assert (report.checked, report.head_position) == (2, 2)  # everything before it still holds


def test_an_event_moved_to_a_free_position_is_found(built: Ledger) -> None:
    """Only the position of event 3 changes: the chain links an event that is no longer there."""
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {table} SET {pos} = 30 WHERE {pos} = 3")
    assert first_bad(built) == (3, "removed")


def test_an_event_moved_with_its_link_is_found(built: Ledger) -> None:
    """The last event and its link moved together to position 9: positions line up again,
    so only the position inside the hash tells."""
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {table} SET {pos} = 9 WHERE {pos} = 5")
        conn.execute(f"UPDATE {CHAIN_TABLE} SET position = 9 WHERE position = 5")
    assert first_bad(built) == (9, "altered")


def truncate_after(ledger: Ledger, position: int) -> None:
    """Deletes the events after `position` and their links: a chain consistent with itself."""
    pos, p, table = position_column(ledger), param(ledger), ledger.config.events_table
    with behind_its_back(ledger) as conn:
        conn.execute(f"DELETE FROM {table} WHERE {pos} > {p}", (position,))
        conn.execute(f"DELETE FROM {CHAIN_TABLE} WHERE position > {p}", (position,))


def test_a_tail_removed_with_its_links_is_caught_by_the_kept_head(built: Ledger) -> None:
    kept = head(built.app.recorder)
    assert kept[0] == 5
    truncate_after(built, 3)
    report = verify(built.app.recorder)
    assert report.ok and (report.checked, report.head_position) == (3, 3)  # consistent with itself...
    caught = verify(built.app.recorder, (kept[0], kept[1]))  # ...but it no longer reaches the kept head
    assert caught.first_bad is not None, "a truncation past the kept head went unnoticed"
    assert (caught.first_bad.position, caught.first_bad.kind) == (5, "removed")  # it said rewritten
    assert "the chain ends at 3, before the auditor's head" in caught.first_bad.reason
    assert verify(built.app.recorder, (3, head_at(built, 3))).ok  # the kept prefix still holds


def test_the_cli_reports_a_tail_removed_with_its_links_against_the_kept_head(ledger_url: str) -> None:
    runner = CliRunner(env={"COLUMNS": "250"})
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        kept = runner.invoke(app, ["--db", ledger_url, "verify", "--head"]).stdout.strip()
        assert kept.startswith("5:")
        truncate_after(ledger, 3)
    plain = runner.invoke(app, ["--db", ledger_url, "verify"])
    assert plain.exit_code == 0 and "checked 3 events" in plain.stdout and "chain intact" in plain.stdout
    caught = runner.invoke(app, ["--db", ledger_url, "verify", "--expect-head", kept])
    assert caught.exit_code == 1, caught.stdout
    assert "TAMPERED: event 5 removed" in caught.stdout and "the chain ends at 3" in caught.stdout
    as_json = runner.invoke(app, ["--db", ledger_url, "--json", "verify", "--expect-head", kept])
    assert as_json.exit_code == 1 and '"kind": "removed"' in as_json.stdout
    # --head walks nothing: with a kept head too it printed the head and exited 0.
    both = runner.invoke(app, ["--db", ledger_url, "verify", "--head", "--expect-head", kept])
    assert both.exit_code == 2 and both.stdout == "", both.stdout
    assert "nothing checks --expect-head" in both.stderr


def test_the_cli_verify_reports_every_event_deleted_and_appends_nothing(ledger_url: str) -> None:
    """Every event deleted behind the ledger's back, the links left: `ledger verify` opened
    the ledger, which appended the system policy again before walking. On SQLite that
    append took position 1 again and conflicted with its link, so verify itself failed
    with `ledger_conflict: ... gave up after 20 conflicting attempts` and never reported;
    on PostgreSQL the walk ran over events verify had just written."""
    runner = CliRunner(env={"COLUMNS": "250"})
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        table = ledger.config.events_table
        with behind_its_back(ledger) as conn:
            conn.execute(f"DELETE FROM {table}")
    result = runner.invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "TAMPERED: event 1 removed" in result.stdout
    with open_ledger(ledger_url, seal_legacy=False) as ledger, raw(ledger) as conn:
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0  # verify appended nothing


def test_a_removed_event_is_found(built: Ledger) -> None:
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"DELETE FROM {table} WHERE {pos} = 2")
    assert first_bad(built) == (2, "removed")


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ((3,), "or the event at 3 was removed with its link"),
        ((3, 4), "or the events at 3 to 4 were removed with their links"),
    ],
)
def test_events_removed_with_their_links_are_named(built: Ledger, removed: tuple[int, ...], named: str) -> None:
    """Events deleted together with their links: the walk meets the next event, whose link
    does not follow from the last that held. It said only that this next event was
    altered, which sent an auditor to an intact event; the positions left with neither
    event nor link are named too."""
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        for position in removed:
            conn.execute(f"DELETE FROM {table} WHERE {pos} = {position}")
            conn.execute(f"DELETE FROM {CHAIN_TABLE} WHERE position = {position}")
    assert first_bad(built) == (removed[-1] + 1, "altered")
    assert named in bad_reason(built)


def test_an_altered_event_after_an_unbroken_position_names_no_removal(built: Ledger) -> None:
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {built.config.events_table} SET topic = 'x:Y' WHERE {position_column(built)} = 4")
    assert first_bad(built) == (4, "altered")
    assert "removed" not in bad_reason(built)


def test_two_events_swapped_are_found(built: Ledger) -> None:
    pos, table = position_column(built), built.config.events_table
    with behind_its_back(built) as conn:
        for source, target in ((2, -1), (3, 2), (-1, 3)):
            conn.execute(f"UPDATE {table} SET {pos} = {target} WHERE {pos} = {source}")
    assert first_bad(built) == (2, "reordered")
    assert "now at 3" in bad_reason(built)


def test_an_event_appended_without_the_ledger_is_found(built: Ledger) -> None:
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        stream, _version, topic, state = conn.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {table} WHERE {pos} = 5"
        ).fetchone()
        columns = f"{pos}, originator_id, originator_version, topic, state"
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES (9, {p}, {p}, {p}, {p})", (stream, 3, topic, state))
    assert first_bad(built) == (9, "inserted")


def test_an_event_slipped_in_the_middle_is_found(built: Ledger) -> None:
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        for position in (5, 4):  # make room at 4
            conn.execute(f"UPDATE {table} SET {pos} = {position + 1} WHERE {pos} = {position}")
        stream, topic, state = conn.execute(
            f"SELECT originator_id, topic, state FROM {table} WHERE {pos} = 6"
        ).fetchone()
        columns = f"{pos}, originator_id, originator_version, topic, state"
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES (4, {p}, 9, {p}, {p})", (stream, topic, state))
    assert first_bad(built) == (4, "reordered")  # what was linked at 4 was pushed along to 5
    assert "now at 5" in bad_reason(built)


def test_an_event_appended_behind_its_back_stays_unsealed(built: Ledger, ledger_url: str) -> None:
    with behind_its_back(built) as conn:
        copy_event_to(conn, built, source=5, target=6, version=3)
    with open_ledger(ledger_url) as reopened:  # as `ledger verify` does
        report = verify(reopened.app)  # reopening must not have linked it
        assert (report.checked, report.head_position) == (5, 5)
        assert report.first_bad is not None and (report.first_bad.position, report.first_bad.kind) == (6, "inserted")
        create(reopened, "later")  # a legitimate append after it links itself, not the forgery
        assert first_bad(reopened) == (6, "inserted")


def test_a_failed_append_leaves_no_link(built: Ledger) -> None:
    recorder = built.app.recorder
    (taken,) = recorder.select_notifications(start=5, limit=1)
    fresh = StoredEvent(uuid.uuid4(), 1, taken.topic, taken.state)
    clash = StoredEvent(taken.originator_id, taken.originator_version, taken.topic, taken.state)
    with pytest.raises(IntegrityError):
        recorder.insert_events([fresh, clash])  # the first inserts, the second conflicts: all rolled back
    assert chain_rows(built) == 5
    create(built, "d")
    report = verify(built.app)
    assert report.ok and report.checked == 6
    # On PostgreSQL the rolled-back append used up notification ids: the chain has a gap.
    assert report.head_position == recorder.max_notification_id()


def test_an_event_slipped_into_a_gap_is_found(postgres_url: str) -> None:
    with open_ledger(postgres_url) as ledger:
        build(ledger)
        (taken,) = ledger.app.recorder.select_notifications(start=5, limit=1)
        with pytest.raises(IntegrityError):  # uses up notification id 6 (sequences do not roll back)
            ledger.app.recorder.insert_events([taken])
        create(ledger, "d")
        assert verify(ledger.app).ok and head(ledger.app)[0] == 7
        with behind_its_back(ledger) as conn:
            copy_event_to(conn, ledger, source=5, target=6, version=3)
        assert first_bad(ledger) == (6, "inserted")


def test_appends_racing_a_verify_are_not_tampering(built: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append between any two of verify's reads (head, events, links, the tail) is
    legitimate: deterministic interleavings, an append after every read."""
    query, appended = adapters.store.chain._query, list[Any]()

    def query_then_append(*args: Any) -> list[tuple[Any, ...]]:
        rows = query(*args)
        appended.append(create(built, f"racer{len(appended)}"))
        return rows

    monkeypatch.setattr(adapters.store.chain, "_query", query_then_append)
    report = verify(built.app)
    monkeypatch.undo()
    assert report.ok and (report.checked, report.head_position) == (5, 5) and len(appended) >= 4
    assert verify(built.app).checked == 5 + len(appended)


def test_an_edited_link_is_found(built: Ledger) -> None:
    p = param(built)
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = {p} WHERE position = 2", (bytes(32),))
    assert first_bad(built) == (2, "altered")


def test_an_edited_link_of_an_intact_event_is_named_as_the_link(built: Ledger) -> None:
    """Only the chain row at 2 edited: the event holds and the next link follows from the
    link it gives. The report said the event's contents differ, which sent an auditor to
    compare an intact event with a backup."""
    p = param(built)
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = {p} WHERE position = 2", (bytes(32),))
    assert first_bad(built) == (2, "altered")
    assert bad_reason(built).startswith("the event holds, but its link in the chain table was altered")


def test_an_event_altered_with_its_own_link_made_again_is_named_beside_the_next(built: Ledger) -> None:
    """Event 3 altered and its own link made again: link 3 holds, link 4 does not follow
    from it. Event 4 is intact, so the report names event 3 as the other explanation."""
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {table} SET topic = 'domain.forged:Event' WHERE {pos} = 3")
        stream, version, topic, state = conn.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {table} WHERE {pos} = 3"
        ).fetchone()
        remade = link(bytes.fromhex(head_at(built, 2)), 3, stream, version, topic, bytes(state))
        conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = {p} WHERE position = 3", (remade,))
    assert first_bad(built) == (4, "altered")
    reason = bad_reason(built)
    assert "or event 3 was altered and its link made again" in reason
    assert "its link in the chain table was altered" not in reason


@pytest.mark.parametrize("forged", ["text", 12345])
def test_a_link_or_state_of_another_type_is_reported_not_crashed_on(tmp_path: Any, forged: Any) -> None:
    """SQLite keeps whatever type a row is given (PostgreSQL's bytea refuses): a link or a
    state that is no blob is an alteration like any other."""
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        build(ledger)
        kept = bytes.fromhex(head_at(ledger, 2))
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = ? WHERE position = 2", (forged,))
            conn.execute(f"UPDATE {ledger.config.events_table} SET state = ? WHERE rowid = 4", (forged,))
        assert first_bad(ledger) == (2, "altered")
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = ? WHERE position = 2", (kept,))
        assert first_bad(ledger) == (4, "altered")


def test_a_state_turned_to_text_of_the_same_bytes_is_altered(tmp_path: Any) -> None:
    """The same bytes stored as TEXT hashed alike, so verify said intact, while every read
    of the event failed (the library decodes blobs only)."""
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {ledger.config.events_table} SET state = CAST(state AS TEXT) WHERE rowid = 4")
        assert first_bad(ledger) == (4, "altered")


@pytest.mark.parametrize("spelling", [str, lambda stream: stream.hex.upper()])
def test_a_stream_id_spelled_otherwise_is_altered(tmp_path: Any, spelling: Any) -> None:
    """The link hashes the stream id's 16 bytes, so the same UUID written with dashes or
    in capitals (SQLite keeps text) verified as intact, while the stream's reads, which
    look it up as the 32 lower-case hex digits the library writes, no longer found the
    event: policy a lost its version 2 and its history failed."""
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            (stream,) = conn.execute(
                f"SELECT originator_id FROM {ledger.config.events_table} WHERE rowid = 5"
            ).fetchone()
            respelled = spelling(uuid.UUID(stream))
            conn.execute(f"UPDATE {ledger.config.events_table} SET originator_id = ? WHERE rowid = 5", (respelled,))
        assert first_bad(ledger) == (5, "altered")


@pytest.mark.parametrize(
    ("column", "forged"),
    [("topic", None), ("originator_id", "not-a-uuid"), ("originator_version", "x"), ("originator_version", -1)],
)
def test_a_linked_column_of_another_type_is_altered_not_crashed_on(tmp_path: Any, column: str, forged: Any) -> None:
    """SQLite keeps whatever a row is given: verify failed with an internal error on such
    a row instead of naming it."""
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {ledger.config.events_table} SET {column} = ? WHERE rowid = 3", (forged,))
        assert first_bad(ledger) == (3, "altered")
        assert not verify_store(ledger.app)["ok"]  # the keys' check reads the same rows


def test_an_append_after_a_last_link_of_another_type_chains_on(tmp_path: Any) -> None:
    """A ledger opened after its last link was set to text appends (linking on from the
    forged bytes) instead of failing; verify still names the forged position."""
    path = tmp_path / "l.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = ? WHERE position = 5", ("text",))
    with open_ledger(f"sqlite:///{path}") as reopened:  # knows no last link: reads the forged one
        create(reopened, "c")
        assert first_bad(reopened) == (5, "altered")
        with raw_sqlite(reopened) as conn:
            (linked,) = conn.execute(f"SELECT count(*) FROM {CHAIN_TABLE} WHERE position > 5").fetchone()
        assert linked >= 1


def test_a_rewrite_of_events_and_chain_is_caught_by_the_kept_head(built: Ledger) -> None:
    kept = head(built.app.recorder)
    assert kept[0] is not None
    pos, p, table = position_column(built), param(built), built.config.events_table
    with behind_its_back(built) as conn:
        conn.execute(f"UPDATE {table} SET topic = 'domain.forged:Event' WHERE {pos} = 3")
        rows = conn.execute(
            f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} ORDER BY {pos}"
        ).fetchall()
        previous = bytes(32)
        for position, stream, version, topic, state in rows:
            previous = link(previous, position, stream, version, topic, bytes(state))
            conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = {p} WHERE position = {p}", (previous, position))
    assert verify(built.app.recorder).ok  # consistent with itself...
    assert first_bad(built, (kept[0], kept[1])) == (5, "rewritten")  # ...but not with the auditor's copy
    # The kept head is at 5, the forged event at 3: the report must not read as "event 5
    # was rewritten", which sent an auditor to the wrong event.
    caught = verify(built.app.recorder, (kept[0], kept[1])).first_bad
    assert caught is not None and "an event at or before it was altered" in caught.reason
    assert verify(built.app.recorder, (1, head_at(built, 1))).ok  # the unchanged prefix still holds


def head_at(ledger: Ledger, position: int) -> str:
    with raw(ledger) as conn:
        statement = f"SELECT hash FROM {CHAIN_TABLE} WHERE position = {param(ledger)}"
        found: Any = conn.execute(statement, (position,)).fetchone()
        return bytes(found[0]).hex()


def test_concurrent_writers_leave_one_unbroken_chain(built: Ledger) -> None:
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for i in range(40):
                create(built, f"{prefix}{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(built.app.recorder)
    assert report.ok and report.checked == 85


def test_two_ledgers_appending_in_turn_leave_one_unbroken_chain(built: Ledger, ledger_url: str) -> None:
    """Each recorder remembers the last link it committed and skips reading the chain when
    its append comes right after it: appends by another recorder in between must make it
    read instead (else its link would chain from a stale one)."""
    with open_ledger(ledger_url) as other:
        for i in range(6):
            create(built, f"turn-a{i}")
            create(built, f"turn-b{i}")  # twice in a row: the second needs no read
            create(other, f"turn-c{i}")
        report = verify(built.app.recorder)
        assert report.ok and report.checked == 5 + 18
        assert built.app.recorder.last_link.before((report.head_position or 0) + 1) is None  # other wrote last


def test_a_ledger_written_before_the_chain_is_sealed_when_opened(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        with raw(ledger) as conn:
            conn.execute(f"DROP TABLE {CHAIN_TABLE}")  # a drop is no row change: no trigger stops it
    with open_ledger(ledger_url) as reopened:
        report = verify(reopened.app.recorder)
        assert report.ok and report.checked == 5
        create(reopened, "after")
        assert verify(reopened.app.recorder).checked == 6


GUARD_OFF = {
    "sqlite": {
        "replaced": [
            "DROP TRIGGER stored_events_no_update",
            "CREATE TRIGGER stored_events_no_update BEFORE UPDATE ON stored_events BEGIN SELECT 1; END",
        ],
        "extra": ["CREATE TRIGGER sneaky AFTER INSERT ON ledger_chain BEGIN SELECT 1; END"],
    },
    "postgresql": {
        "disabled": ["ALTER TABLE ledger_events DISABLE TRIGGER USER"],
        "replaced": [
            "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN COALESCE(NEW, OLD); END $$"
        ],
        "extra": [
            "CREATE FUNCTION sneaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "CREATE TRIGGER sneaky BEFORE INSERT ON ledger_chain FOR EACH ROW EXECUTE FUNCTION sneaky()",
        ],
    },
}


@pytest.mark.parametrize("how", ["replaced", "extra"])
def test_verify_names_an_append_only_guard_left_off(built: Ledger, ledger_url: str, how: str) -> None:
    """Every tampering needs the append-only triggers out of the way; one made a no-op or
    joined by a trigger of someone else's was not reported, and the ledger was append-only
    by convention only from then on."""
    guard_left_off(built, ledger_url, how)


def test_verify_names_an_append_only_trigger_left_disabled(postgres_url: str) -> None:
    """As above, for a trigger left disabled (SQLite cannot disable one)."""
    with open_ledger(postgres_url) as ledger:
        build(ledger)
        guard_left_off(ledger, postgres_url, "disabled")


def guard_left_off(built: Ledger, ledger_url: str, how: str) -> None:
    statements = GUARD_OFF[built.config.kind][how]
    assert verify_store(built.app)["ok"]
    with raw(built) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    report = verify_store(built.app)
    assert not report["ok"] and report["first_bad"] is None, report  # the events are intact
    bad = report["guard"]["bad"]
    said = {"disabled": "is disabled", "replaced": "is not the ledger's", "extra": "is not the ledger's"}[how]
    assert bad and all(said in fault for fault in bad), bad
    if how == "extra":
        assert len(bad) == 1 and "trigger sneaky on ledger_chain" in bad[0]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert f"TAMPERED: append-only guard: {bad[0]}" in result.stdout


def test_verify_names_a_replication_role_that_stops_the_triggers() -> None:
    """`session_replication_role = replica` set for a role (or the whole database) stops
    every trigger in its sessions while pg_trigger still shows them enabled: a way round
    the append-only guard that left nothing for verify to see. In a database of its own:
    every ledger in the run's database would read as tampered while the role is set."""
    role = f"tamper_probe_{uuid.uuid4().hex[:12]}"
    with own_database("ledger_test_replica") as url, open_ledger(url) as ledger:
        build(ledger)
        assert verify_store(ledger.app)["ok"]
        with raw_postgres(ledger) as conn:
            conn.autocommit = True
            conn.execute(f'CREATE ROLE "{role}"')
            try:
                database = conn.execute("SELECT current_database()").fetchone()[0]
                conn.execute(f'ALTER ROLE "{role}" IN DATABASE "{database}" SET session_replication_role = replica')
                report = verify_store(ledger.app)
            finally:
                conn.execute(f'DROP ROLE "{role}"')
    assert not report["ok"] and report["first_bad"] is None, report
    (fault,) = report["guard"]["bad"]
    assert f"session_replication_role is replica for role {role} in this database" in fault


def test_the_chain_table_is_append_only_too(built: Ledger) -> None:
    if built.config.kind == "sqlite":
        with raw_sqlite(built) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(f"DELETE FROM {CHAIN_TABLE}")
    else:
        with raw_postgres(built) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"UPDATE {CHAIN_TABLE} SET hash = ''")
    assert verify(built.app.recorder).ok


def test_the_cli_prints_the_head_and_names_the_tampered_event(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    runner = CliRunner(env={"COLUMNS": "250"})
    with open_ledger(db) as ledger:
        build(ledger)
        kept = runner.invoke(app, ["--db", db, "verify", "--head"]).stdout.strip()
        intact = runner.invoke(app, ["--db", db, "verify", "--expect-head", kept])
        assert intact.exit_code == 0 and "chain intact, through the kept head at 5" in intact.stdout
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {ledger.config.events_table} SET topic = 'x:Y' WHERE rowid = 4")
    tampered = runner.invoke(app, ["--db", db, "verify"])
    assert tampered.exit_code == 1
    assert "TAMPERED: event 4 (stream" in tampered.stdout and "version 1) altered" in tampered.stdout
    as_json = runner.invoke(app, ["--db", db, "--json", "verify", "--expect-head", kept])
    assert as_json.exit_code == 1 and '"kind": "altered"' in as_json.stdout


def test_the_cli_does_not_seal_an_event_appended_behind_its_back(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(db) as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            copy_event_to(conn, ledger, source=5, target=6, version=3)
    runner = CliRunner(env={"COLUMNS": "250"})
    for _ in range(2):  # each run opens the ledger: the second finds it just as the first
        result = runner.invoke(app, ["--db", db, "verify"])
        assert result.exit_code == 1 and "TAMPERED: event 6 (stream" in result.stdout
        assert "version 3) inserted" in result.stdout


def test_the_cli_verify_does_not_seal_a_chain_emptied_behind_its_back(tmp_path: Any, caplog: Any) -> None:
    """Every link deleted (triggers dropped first) looks like a ledger from before the chain:
    `ledger verify` opened the ledger, which sealed the altered events, and said intact."""
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(db) as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"UPDATE {ledger.config.events_table} SET topic = 'x:Y' WHERE rowid = 4")
            conn.execute(f"DELETE FROM {CHAIN_TABLE}")
    runner = CliRunner(env={"COLUMNS": "250"})
    result = runner.invoke(app, ["--db", db, "verify"])
    assert result.exit_code == 1 and "TAMPERED: event 1 (stream" in result.stdout, result.stdout
    assert "inserted" in result.stdout
    # Any other command opens the ledger as before and starts the chain over what it finds,
    # saying so: only a head an auditor kept tells that from a ledger older than the chain.
    with caplog.at_level("WARNING"), open_ledger(db):
        pass
    assert "hash chain started over 5 events stored without links" in caplog.text


def test_verify_compares_each_snapshot_with_its_events(ledger_url: str) -> None:
    """Snapshots are not chained: one altered in the database changed what `show --version`
    read, and the next command could carry the forgery into a chained event, while
    `ledger verify` said intact."""
    runner = CliRunner(env={"COLUMNS": "250"})
    with open_ledger(ledger_url) as ledger:
        create(ledger, "big", total_resource_slots={"cpu": "8"})
        for i in range(104):
            modify(ledger, "big", idle_timeout=i + 1)
        table = ledger.app.snapshots.recorder.events_table_name
        if ledger.config.schema:
            table = f'"{ledger.config.schema}"."{table}"'
        intact = runner.invoke(app, ["--db", ledger_url, "verify"])
        assert intact.exit_code == 0 and "1 snapshot agrees with its events" in intact.stdout, intact.stdout
        if ledger.config.kind == "sqlite":
            with raw_sqlite(ledger) as conn:
                forged = 'CAST(replace(CAST(state AS TEXT), \'"cpu":"8"\', \'"cpu":"9999"\') AS BLOB)'
                conn.execute(f"UPDATE {table} SET state = {forged}")
                conn.commit()
        else:
            with raw_postgres(ledger) as pg:
                pg.execute(
                    f"UPDATE {table} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
                    '\'"cpu":"8"\', \'"cpu":"9999"\'), \'UTF8\')'
                )
    tampered = runner.invoke(app, ["--db", ledger_url, "verify"])
    assert tampered.exit_code == 1, tampered.stdout
    assert "chain intact" in tampered.stdout  # the events are untouched...
    assert "TAMPERED: snapshot of stream" in tampered.stdout and "at version 100" in tampered.stdout
    assert "differs from its events in fields" in tampered.stdout
    as_json = runner.invoke(app, ["--db", ledger_url, "--json", "verify"])
    assert as_json.exit_code == 1 and '"ok": false' in as_json.stdout


@pytest.mark.parametrize(
    "tampering",
    [
        "DELETE FROM {table} WHERE {where}",  # an event before the snapshot removed
        # a Created's bytes in its place: a Modified without `changes`
        "UPDATE {table} SET state = (SELECT state FROM {table} WHERE topic LIKE '%Created' LIMIT 1) WHERE {where}",
    ],
    ids=["removed", "another_events_bytes"],
)
def test_verify_names_events_that_do_not_replay_to_a_snapshot_and_does_not_crash(
    ledger_url: str, tampering: str
) -> None:
    """A snapshotted stream whose events no longer replay (one removed from its middle, or
    one holding another event's bytes) made `ledger verify` end in `internal error:
    OriginatorVersionError: (51, 50)` (or AttributeError) from the snapshots' check, and
    never named the tampered event; an event that did not decode left the snapshots after
    it reported as having no event at their version, which the stream has."""
    runner = CliRunner(env={"COLUMNS": "250"})
    with open_ledger(ledger_url) as ledger:
        create(ledger, "big", total_resource_slots={"cpu": "8"})
        for i in range(104):
            modify(ledger, "big", idle_timeout=i + 1)
        where = "originator_version = 50 AND topic LIKE '%KeyPairResourcePolicy.Modified'"
        with behind_its_back(ledger) as conn:
            conn.execute(tampering.format(table=ledger.config.events_table, where=where))
    result = runner.invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1 and "internal error" not in result.output, result.output
    assert re.search(r"TAMPERED: event \d+ .*(removed|altered)", result.stdout), result.stdout
    assert "its stream has no event at that version" not in result.stdout
    assert "at version 100: not compared: its stream's events do not replay up to it" in result.stdout


def test_a_store_lost_while_the_snapshots_are_checked_is_no_tampering(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read failing in the snapshots' replay (PostgreSQL gone after the chain's walk) was
    taken for altered events: `ok` false, a snapshot "not compared", no event named: a
    tamper alarm for an outage. It is StoreUnavailable, as every other read says."""
    create(ledger, "big", total_resource_slots={"cpu": "8"})
    for i in range(104):
        modify(ledger, "big", idle_timeout=i + 1)

    def lost(*_: Any, **__: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    for reader, method in (
        (ledger.app.events, "get"),  # the snapshots' replay
        (ledger.app.snapshots.recorder, "select_events"),  # the snapshots themselves
        (ledger.app.keys, "key"),  # the subject keys' check
        (adapters.store.chain, "_query"),  # the chain's walk
    ):
        with monkeypatch.context() as patch:
            patch.setattr(reader, method, lost)
            with pytest.raises(StoreUnavailable, match="event store read failed"):
                verify_store(ledger.app)


def test_verify_finds_a_purged_groups_snapshot_agrees_with_its_events(ledger: Ledger) -> None:
    """A purged group's members read erased, all alike: replay folded them into one while
    its snapshot kept each, so `ledger verify` called an untouched snapshot tampered."""
    group = create_group(ledger, "crew").id
    modify_group(ledger, group, mode="add", users=[str(uuid.UUID(int=n)) for n in (1, 2, 3)])
    for i in range(104):
        modify_group(ledger, group, description=f"take {i}")
    purge_group(ledger, group)
    report = verify_ledger(ledger)
    assert report["snapshots"] == {"checked": 1, "bad": []}
    assert report["ok"], report


def test_verify_names_a_subject_key_deleted_or_altered_behind_the_ledgers_back(ledger_url: str) -> None:
    """Key rows are not chained (an erasure deletes them): one deleted in the database made
    every value sealed with it read `[erased]` with no erasing event in the history, one
    altered stopped every command with `the master key does not open this ledger's keys`,
    and `ledger verify` said `chain intact` (exit 0) for both."""
    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        kept, lost = uuid.uuid4(), uuid.uuid4()
        for user in (kept, lost):
            create_user(ledger, user, DOMAIN, email=f"{user.hex[:8]}@example.org")
        run(ledger, "user", "erase_user", EraseUserAction(user_id=world.user, reason="asked"))
        run(ledger, "group", "purge_group", PurgeGroupAction(group_id=world.spare_group))
        intact = verify_store(ledger.app)
        assert intact["ok"] and intact["keys"]["bad"] == [], intact  # erasures are not tampering
        assert intact["keys"]["checked"] >= 3
        keys, p = "ledger_subject_keys", param(ledger)
        with raw(ledger) as conn:
            conn.execute(f"DELETE FROM {keys} WHERE subject = {p}", (f"user:{lost}",))
            (wrapped,) = conn.execute(f"SELECT wrapped FROM {keys} WHERE subject = {p}", (f"user:{kept}",)).fetchone()
            altered = bytes([wrapped[0] ^ 1]) + bytes(wrapped[1:])
            conn.execute(f"UPDATE {keys} SET wrapped = {p} WHERE subject = {p}", (altered, f"group:{world.group}"))
            conn.commit()
        report = verify_store(ledger.app)
    assert not report["ok"] and report["first_bad"] is None  # the events are intact
    bad = {key["subject"]: key["reason"] for key in report["keys"]["bad"]}
    assert set(bad) == {f"user:{lost}", f"group:{world.group}"}, bad
    assert "deleted outside the ledger" in bad[f"user:{lost}"]
    assert "altered outside the ledger" in bad[f"group:{world.group}"]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert f"TAMPERED: key of subject user:{lost}: stored events hold values sealed with its key" in result.stdout


def test_verify_names_an_erased_key_row_put_back_behind_the_ledgers_back(ledger_url: str) -> None:
    """An erasure destroys a key row; a database administrator who kept it (a backup) and
    puts it back undoes the erasure: every value it sealed read in clear again while
    `ledger verify` said intact. A key made after an erasure (a later value of the subject)
    opens nothing sealed before it, so it is not taken for one put back."""
    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        again, restored = uuid.uuid4(), uuid.uuid4()
        for user in (again, restored):
            create_user(ledger, user, DOMAIN, email=f"{user.hex[:8]}@example.org")
        modify_group(ledger, world.spare_group, description="plans")
        keys, p = "ledger_subject_keys", param(ledger)
        subjects = (f"user:{restored}", f"group:{world.spare_group}")
        with raw(ledger) as conn:
            backup = {
                s: bytes(conn.execute(f"SELECT wrapped FROM {keys} WHERE subject = {p}", (s,)).fetchone()[0])
                for s in subjects
            }
        for user in (again, restored):
            run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason="asked"))
        purge_group(ledger, world.spare_group)
        modify_user(ledger, again, email="new@example.org")  # a new key, after the erasure
        intact = verify_store(ledger.app)
        assert intact["ok"], intact
        with raw(ledger) as conn:
            for subject, wrapped in backup.items():
                conn.execute(f"INSERT INTO {keys} (subject, wrapped) VALUES ({p}, {p})", (subject, wrapped))
            conn.commit()
        report = verify_store(ledger.app)
    assert not report["ok"] and report["first_bad"] is None  # the events are intact
    bad = {key["subject"]: key["reason"] for key in report["keys"]["bad"]}
    assert set(bad) == set(subjects), bad
    assert all("the erased key row was put back outside the ledger" in reason for reason in bad.values())
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert f"TAMPERED: key of subject user:{restored}: its key opens a value sealed at position" in result.stdout


def test_a_key_another_process_erased_and_made_again_is_not_taken_for_one_put_back(ledger_url: str) -> None:
    """This process still holds the user's old key in its cache while another erased the
    user and gave it a new key: the check reads the stored key, not the cached one."""
    user = uuid.uuid4()
    with open_ledger(ledger_url) as here, open_ledger(ledger_url) as there:
        create_user(here, user, "default", email="old@example.org")
        assert here.app.keys.key(f"user:{user}") is not None  # cached here
        run(there, "user", "erase_user", EraseUserAction(user_id=user, reason="asked"))
        modify_user(there, user, email="new@example.org")
        report = verify_store(here.app)
    assert report["ok"], report["keys"]


def test_an_append_after_events_were_deleted_is_a_damaged_ledger_not_a_conflict(tmp_path: Any) -> None:
    """The last event deleted on SQLite (its link left): the next append got that rowid
    again, its link's insert hit the link already there, and every command was retried
    20 times as a version conflict and answered `ledger_conflict: ... gave up after 20
    conflicting attempts`, which says to try again."""
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(db) as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"DELETE FROM {ledger.config.events_table} WHERE rowid = 5")
        with pytest.raises(DamagedEvent, match="links position 5 already: stored events were removed"):
            create(ledger, "after")
        assert first_bad(ledger) == (5, "removed")


def test_verify_names_audit_and_history_rows_deleted_or_altered_behind_the_ledgers_back(ledger_url: str) -> None:
    """`ledger audit` reads the audit read model, and `history` takes each event's time and
    actor from the history read model: rows the chain does not cover. One audit row
    deleted in the database hid an action, one history row's actor rewritten put the
    event on someone else, and `ledger verify` said intact."""
    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        run(ledger, "user", "erase_user", EraseUserAction(user_id=world.user, reason="asked"))
        run(ledger, "group", "purge_group", PurgeGroupAction(group_id=world.spare_group))
        intact = verify_ledger(ledger)
        assert intact["ok"] and intact["read_models"]["bad"] == [], intact["read_models"]  # erasures included
        assert intact["read_models"]["checked"] > 0
        audit, history = ledger.projections.audit, ledger.projections.history
        with ledger.read_models.begin() as conn:
            hidden = conn.execute(sa.select(sa.func.max(audit.entries.c.position))).scalar_one()
            conn.execute(sa.delete(audit.entries).where(audit.entries.c.position == hidden))
            blamed = conn.execute(sa.select(sa.func.min(history.entries.c.position))).scalar_one()
            forged = {
                "user_id": str(uuid.uuid4()),
                "access_key": "AKSOMEONEELSE",
                "role": "user",
                "domain_name": DOMAIN,
            }
            conn.execute(sa.update(history.entries).where(history.entries.c.position == blamed).values(actor=forged))
        report = verify_ledger(ledger)
    assert not report["ok"] and report["first_bad"] is None  # the events are intact
    reasons = {(bad["read_model"], bad["reason"]) for bad in report["read_models"]["bad"]}
    assert ("audit", f"table entries: no row position={hidden}, which the events give") in reasons, reasons
    assert ("history", f"table entries: the row position={blamed} differs from its events in actor") in reasons
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert f"TAMPERED: read model audit: table entries: no row position={hidden}" in result.stdout


def test_the_cli_verify_refuses_a_ledger_that_is_not_there(ledger_url: str) -> None:
    """`ledger --db sqlite:///typo.db verify` (or a mistyped schema) made an empty ledger
    there, a key file too, and said `checked 0 events; chain intact`, exit 0: an auditor's
    typo read as a clean bill."""
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1 and result.stdout == "", result.stdout
    assert "error: configuration_invalid: no ledger " in result.stderr and "nothing to verify" in result.stderr
    with open_ledger(ledger_url) as ledger:  # made here, not by verify
        build(ledger)
        create_user(ledger, uuid.uuid4(), "default", email="someone@example.org")  # a subject key to check
    intact = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert intact.exit_code == 0 and "chain intact" in intact.stdout, intact.output
    # What else it checked is said too, not only what failed.
    assert re.search(r"^\d+ subject keys? opens? under the master key$", intact.stdout, re.MULTILINE), intact.stdout
    assert re.search(r"^\d+ audit and history rows? agrees? with their events$", intact.stdout, re.MULTILINE)


def test_the_cli_verify_counts_subject_keys_as_keys_status_does(ledger_url: str) -> None:
    """verify said `4 subject keys open` where `keys status` said `subject keys: 3`: it
    counted the ledger's own keys (the snapshots' tag, the HTTP request hashes) as
    subjects'. It checks them all and names them apart."""
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        for _ in range(2):
            create_user(ledger, uuid.uuid4(), "default", email="someone@example.org")
        ledger.app.keys.ensure((SNAPSHOT_SUBJECT, REQUEST_HASH_SUBJECT))  # as a snapshot and a keyed request make them
    runner = CliRunner(env={"COLUMNS": "250"})
    status = json.loads(runner.invoke(app, ["--db", ledger_url, "--json", "keys", "status"]).stdout)
    verified = runner.invoke(app, ["--db", ledger_url, "verify"])
    assert verified.exit_code == 0, verified.output
    subjects = status["subject_keys"]
    assert subjects >= 2
    assert f"{subjects} subject keys and 2 keys of the ledger's own open under the master key" in verified.stdout
    report = json.loads(runner.invoke(app, ["--db", ledger_url, "--json", "verify"]).stdout)
    assert (report["keys"]["checked"], report["keys"]["own"]) == (subjects + 2, 2)


def test_the_cli_verify_reports_a_ledger_emptied_events_and_links(ledger_url: str) -> None:
    """Every event and every link deleted: verify walked nothing and said `checked 0
    events; chain intact`, exit 0 (before, it even appended the system policy again and
    walked that). A ledger always holds its system policy's event."""
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        with behind_its_back(ledger) as conn:
            conn.execute(f"DELETE FROM {ledger.config.events_table}")
            conn.execute(f"DELETE FROM {CHAIN_TABLE}")
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "TAMPERED: event 1 removed: the ledger holds no event" in result.stdout


def test_verify_reports_a_tail_removed_with_its_links_that_the_read_models_had_applied(built: Ledger) -> None:
    """The last events deleted with their links: the chain is consistent with itself and
    only a kept head caught it, so `ledger verify` alone said intact. The read models
    record how far they applied the events: past the store's last event, they are the
    witness that events were removed."""
    built.runner.catch_up()
    truncate_after(built, 3)
    report = verify_ledger(built)
    assert not report["ok"] and report["first_bad"] is None  # consistent with itself...
    (bad,) = report["read_models"]["bad"]  # ...but not with what the read models applied
    assert "applied the events up to position 5, but the store's last event is at 3" in bad["reason"]
    assert "the events after 3 were removed" in bad["reason"]


def test_verify_names_a_tracking_position_moved_past_the_last_event_as_such_too(built: Ledger) -> None:
    """A read model's tracking row moved forward in the database, no event removed: it
    skips the next events. The report said only that the events after the head were
    removed with their links, which an auditor holding that head found untrue."""
    built.runner.catch_up()
    with raw(built) as conn:
        conn.execute("UPDATE projection_tracking SET position = position + 5 WHERE projection LIKE 'audit%'")
        conn.commit()
    (bad,) = verify_ledger(built)["read_models"]["bad"]
    assert "the events after 5 were removed, with their links" in bad["reason"]
    assert "or its position in projection_tracking was moved past them" in bad["reason"]


def test_verify_names_a_batch_entity_row_deleted_behind_the_ledgers_back(ledger_url: str) -> None:
    """The audit trail's table of a batch's entities has no primary key: verify keyed its
    rows by nothing, kept one of them, and a deleted row (an import's kernel gone from
    `ledger audit --entity-id`) passed as intact unless it was that one."""
    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        kernels = sorted(uuid.uuid4() for _ in range(4))
        batch = RecordWorkloadBatchAction(actions=[start_kernel(world, kernel) for kernel in kernels])
        run(ledger, "workload", "record_workload_batch", batch)
        assert verify_ledger(ledger)["ok"]
        entities = ledger.projections.audit.batch_entities
        with ledger.read_models.begin() as conn:
            rows = conn.execute(sa.select(entities).order_by(entities.c.entity_id)).all()
            assert len(rows) >= 4
            gone = rows[1]
            conn.execute(
                sa.delete(entities).where(entities.c.position == gone.position, entities.c.entity_id == gone.entity_id)
            )
        report = verify_ledger(ledger)
    assert not report["ok"] and report["first_bad"] is None
    reasons = [bad["reason"] for bad in report["read_models"]["bad"]]
    assert reasons == [
        f"table batch_entities: no row position={gone.position}, entity_id={gone.entity_id}, which the events give"
    ], reasons


def test_the_cli_verify_escapes_what_it_names_from_a_tampered_row(ledger_url: str) -> None:
    """A read model's row inserted behind the ledger's back with terminal controls in its
    key: verify printed the key raw in its TAMPERED line, so on a terminal the forged value
    could erase that line (and the one above) and leave only "chain intact" to read."""
    forged = "\r\x1b[2K\x1b[1A\x1b[2Kchain intact"
    with open_ledger(ledger_url) as ledger:
        build(ledger)
        ledger.runner.catch_up()
        domains = ledger.projections.audit.domains
        with ledger.read_models.begin() as conn:
            conn.execute(
                sa.insert(domains).values(domain_name=forged, position=1, started_at=datetime(2026, 1, 1, tzinfo=UTC))
            )
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout, result.stdout
    assert "TAMPERED: read model audit: table domains: a row domain_name=\\x0d\\x1b[2K\\x1b[1A" in result.stdout, (
        result.stdout
    )


def test_an_erasure_by_another_process_during_verify_is_not_tampering(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify builds the audit trail again in a scratch file, then compares it with the
    live one. A user erased by another process in between rewrote the live rows (their
    spec's personal values) but not the scratch ones built before it: `ledger verify` said
    TAMPERED on a clean ledger. A difference with an erasure after the scratch's position
    is checked again, with the erasure on both sides."""
    from projections.runner import ProjectionRunner

    with open_ledger(ledger_url) as ledger, open_ledger(ledger_url) as other:
        build(ledger)
        user = uuid.uuid4()
        create_user(ledger, user, "default", email="someone@example.org", full_name="Some One")
        ledger.runner.catch_up()
        catch_up, erasing = ProjectionRunner.catch_up, list[Any]()

        def then_erase(runner: ProjectionRunner, *args: Any, **kwargs: Any) -> int:
            reached = catch_up(runner, *args, **kwargs)
            if runner is not ledger.runner and runner is not other.runner and not erasing:  # the scratch copy
                erasing.append(user)
                run(other, "user", "erase_user", EraseUserAction(user_id=user, reason="asked"))
            return reached

        monkeypatch.setattr(ProjectionRunner, "catch_up", then_erase)
        report = verify_ledger(ledger)
        monkeypatch.undo()
    assert erasing, "the erasure ran during verify"
    assert report["ok"] and report["read_models"]["bad"] == [], report["read_models"]


def test_erasures_during_every_comparison_leave_the_read_models_unsettled_not_tampered(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Erasures that keep coming (one during each of the comparison's attempts) leave every
    difference possibly theirs: `ledger verify` said TAMPERED on a clean, busy ledger. It
    now says the read models were not checked, and is not ok."""
    from projections.runner import ProjectionRunner

    with open_ledger(ledger_url) as ledger, open_ledger(ledger_url) as other:
        build(ledger)
        users = [uuid.uuid4() for _ in range(4)]
        for user in users:
            create_user(ledger, user, "default", email=f"{user.hex[:8]}@example.org", full_name="Some One")
        ledger.runner.catch_up()
        catch_up, erased = ProjectionRunner.catch_up, list[uuid.UUID]()

        def then_erase(runner: ProjectionRunner, *args: Any, **kwargs: Any) -> int:
            reached = catch_up(runner, *args, **kwargs)
            if runner is not ledger.runner and runner is not other.runner and len(erased) < len(users):
                erased.append(users[len(erased)])  # each scratch copy meets an erasure after it
                run(other, "user", "erase_user", EraseUserAction(user_id=erased[-1], reason="asked"))
            return reached

        monkeypatch.setattr(ProjectionRunner, "catch_up", then_erase)
        report = verify_ledger(ledger)
        monkeypatch.undo()
    assert len(erased) == 3, erased  # one per attempt
    models = report["read_models"]
    assert not report["ok"] and models["bad"] == [], models
    assert models["unsettled"] == (
        "erasures were appended during each of 3 comparisons, so the differences found may be theirs: "
        "run it again when erasures pause"
    )


def test_a_user_created_by_another_process_during_verify_is_not_a_deleted_key(ledger_url: str) -> None:
    """Verify read the subject keys, then walked the events for the subjects they seal
    values with: a user created (with an email) by another process in between had sealed
    values but no key in what was read, and `ledger verify` said its key row was deleted
    outside the ledger, on a clean ledger."""
    with open_ledger(ledger_url) as ledger, open_ledger(ledger_url) as other:
        build(ledger)
        keys = ledger.app.keys
        opening, made = keys.opening, list[uuid.UUID]()

        def then_create() -> Any:
            opened = opening()
            made.append(uuid.uuid4())
            create_user(other, made[-1], "default", email="newcomer@example.org")
            return opened

        keys.opening = then_create
        try:
            report = verify_store(ledger.app)
        finally:
            del keys.opening
        assert made and ledger.app.keys.key(f"user:{made[0]}") is not None  # made during the check
    assert report["ok"] and report["keys"]["bad"] == [], report["keys"]


def test_an_event_appended_and_applied_by_another_process_during_verify_is_not_a_removed_tail(
    ledger_url: str,
) -> None:
    """Verify read the store's last position, then how far the read models had applied the
    events: an event another process appended and applied in between put the read models
    past the head read, and `ledger verify` said the events after it were removed."""
    with open_ledger(ledger_url) as ledger, open_ledger(ledger_url) as other:
        build(ledger)
        ledger.runner.catch_up()
        runner = ledger.runner
        status, raced = runner.status, list[str]()

        def after_an_append() -> Any:
            if not raced:
                raced.append("racer")
                create(other, "racer")
                other.runner.catch_up()  # its queries catch the shared read models up
            return status()

        runner.status = after_an_append  # type: ignore[method-assign]
        try:
            report = verify_ledger(ledger)
        finally:
            del runner.status
    assert raced and report["ok"], report["read_models"]


@pytest.mark.parametrize("target", [0, -1])
def test_an_event_forged_below_the_first_position_is_found(built: Ledger, target: int) -> None:
    # No append gives a position below 1, and the walk read events after position 0: the
    # forgery went unseen while loading policy "a" applied it as its version 3.
    with behind_its_back(built) as conn:
        copy_event_to(conn, built, source=5, target=target, version=3)
    assert built.queries.state_at("keypair_resource_policy", "a", version=3) is not None
    assert first_bad(built) == (target, "inserted")


def test_verify_compares_a_stalled_audit_read_model_up_to_its_stall(ledger_url: str) -> None:
    """A read model stalled on an event (one an older release stored, say) was left out of
    the comparison altogether: a row altered before the stall, served again once the
    stall is skipped, went unnoticed while `verify` said every row agreed (exit 0)."""
    from domain.actions.base import ActionResultMeta, ActionStatus
    from domain.audit import AuditRecord, audit_entry
    from tests.conftest import SUPERADMIN

    with open_ledger(ledger_url) as ledger:
        build_world(ledger)
        now = datetime.now(UTC)
        meta = ActionResultMeta(
            str(uuid.uuid4()), "group", "modify", None, ActionStatus.SUCCESS, "success", now, now, 0.0
        )
        entry = audit_entry(meta, SUPERADMIN, {})
        entry["started_at"] = "yesterday"  # no time: the audit read model stalls on it
        ledger.app.save(AuditRecord.record(entry))
        ledger.runner.catch_up()
        assert any(s.stall is not None for s in ledger.runner.status() if s.name.startswith("audit"))
        audit = ledger.projections.audit
        with ledger.read_models.begin() as conn:
            altered = conn.execute(sa.select(sa.func.min(audit.entries.c.position))).scalar_one()
            conn.execute(sa.update(audit.entries).where(audit.entries.c.position == altered).values(role="user"))
        report = verify_ledger(ledger)
    reasons = {(bad["read_model"], bad["reason"]) for bad in report["read_models"]["bad"]}
    assert ("audit", f"table entries: the row position={altered} differs from its events in role") in reasons, report
    assert not report["ok"]


def test_verify_names_an_audit_row_forged_past_the_last_event(ledger_url: str) -> None:
    """The comparison reads rows up to the position both copies reached, so a row forged
    at a position no event has reached yet was never read: `ledger audit` listed it (an
    action nobody took, by an actor of the forger's choosing) while `verify` said intact."""
    with open_ledger(ledger_url) as ledger:
        build_world(ledger)
        ledger.runner.catch_up()
        audit, history = ledger.projections.audit, ledger.projections.history
        head_now = ledger.app.recorder.max_notification_id() or 0
        forged_at = head_now + 1000
        with ledger.read_models.begin() as conn:
            row = conn.execute(sa.select(audit.entries).order_by(audit.entries.c.position.desc()).limit(1)).one()
            forged = {**row._asdict(), "position": forged_at, "action_id": str(uuid.uuid4()), "role": "user"}
            conn.execute(sa.insert(audit.entries).values(**forged))
            entry = conn.execute(sa.select(history.entries).order_by(history.entries.c.position.desc()).limit(1)).one()
            conn.execute(sa.insert(history.entries).values(**{**entry._asdict(), "position": forged_at}))
        assert any(e.position == forged_at for e in ledger.queries.audit_log())  # served
        report = verify_ledger(ledger)
    reasons = {(bad["read_model"], bad["reason"]) for bad in report["read_models"]["bad"]}
    past = f"(past the store's last event, {head_now})"
    assert ("audit", f"table entries: a row position={forged_at} that no event gives {past}") in reasons, reasons
    assert ("history", f"table entries: a row position={forged_at} that no event gives {past}") in reasons, reasons
    assert not report["ok"]


@pytest.mark.parametrize(
    ("table", "column", "forged"),
    [("audit", "spec", "not json"), ("audit", "started_at", "garbage"), ("history", "actor", "[1")],
)
def test_verify_names_a_read_model_row_that_does_not_read_back(
    tmp_path: Any, table: str, column: str, forged: str
) -> None:
    """SQLite keeps whatever a column is given: a row whose JSON or time no longer decodes
    made `ledger verify` fail with an internal error instead of naming the row."""
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        build_world(ledger)
        ledger.runner.catch_up()
        entries = getattr(ledger.projections, table).entries
        with ledger.read_models.begin() as conn:
            at = conn.execute(sa.select(sa.func.min(entries.c.position))).scalar_one()
        with contextlib.closing(raw_sqlite(ledger)) as conn:
            conn.execute(f"UPDATE {entries.name} SET {column} = ? WHERE position = ?", (forged, at))
            conn.commit()
        report = verify_ledger(ledger)
    reasons = [bad["reason"] for bad in report["read_models"]["bad"] if bad["read_model"] == table]
    assert any(r.startswith(f"table entries: the row position={at} does not read back ({column}:") for r in reasons)
    assert not report["ok"]
