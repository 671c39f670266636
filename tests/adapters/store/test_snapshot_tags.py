"""Snapshots are tagged with a key only the ledger holds: a read uses a snapshot only as
the ledger wrote it, and replays the events instead of one altered in the database (which
it used to trust until `ledger verify` was run), on both backends."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from adapters.store.keys import KEYS_TABLE, SNAPSHOT_SUBJECT
from tests.adapters.store.raw import raw_postgres, raw_sqlite
from tests.policies import create, modify

POLICY = "keypair_resource_policy"


def _build(ledger: Ledger) -> None:
    """Policy `big` at version 105, with a snapshot at version 100 holding cpu 8."""
    create(ledger, "big", total_resource_slots={"cpu": "8"})
    for i in range(104):
        modify(ledger, "big", idle_timeout=i + 1)


def _behind_its_back(ledger: Ledger, sqlite_statement: str, postgres_statement: str) -> None:
    if ledger.config.kind == "sqlite":
        with raw_sqlite(ledger) as conn:
            conn.execute(sqlite_statement.format(table=_snapshots(ledger)))
        return
    with raw_postgres(ledger) as pg:
        pg.execute(postgres_statement.format(table=_snapshots(ledger)))


def _snapshots(ledger: Ledger) -> str:
    table = ledger.app.snapshots.recorder.events_table_name
    return f'"{ledger.config.schema}"."{table}"' if ledger.config.schema else table


def _forge_cpu(ledger: Ledger, find: str, put: str) -> None:
    _behind_its_back(
        ledger,
        f"UPDATE {{table}} SET state = CAST(replace(CAST(state AS TEXT), '{find}', '{put}') AS BLOB)",
        f"UPDATE {{table}} SET state = convert_to(replace(convert_from(state, 'UTF8'), '{find}', '{put}'), 'UTF8')",
    )


def _verify(url: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["--db", url, "--json", "verify"])
    return dict(json.loads(result.stdout))


def test_a_snapshot_altered_in_the_database_is_not_read(ledger_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with open_ledger(ledger_url) as ledger:
        _build(ledger)
        _forge_cpu(ledger, '"cpu":"8"', '"cpu":"9999"')
    with caplog.at_level(logging.WARNING), open_ledger(ledger_url) as ledger:
        # The next command decides on the events' state, not the forged one...
        modified = modify(ledger, "big", idle_timeout=999)
        assert modified.keypair_resource_policy.total_resource_slots == {"cpu": Decimal(8)}
        # ...and time travel to the snapshot's own version reads the events' state too.
        at_100 = ledger.queries.state_at(POLICY, "big", version=100)
        assert at_100 is not None and at_100.fields["total_resource_slots"] == {"cpu": "8"}
    assert "at version 100: its tag does not match what it holds: its events are replayed" in caplog.text
    report = _verify(ledger_url)
    assert report["ok"] is False
    (bad,) = report["snapshots"]["bad"]
    assert bad["version"] == 100
    assert bad["reason"].startswith("its tag does not match what it holds; it differs from its events in fields")


def test_a_snapshot_whose_tag_was_taken_off_is_not_read(ledger_url: str) -> None:
    """Stripping the tag (to pass an altered snapshot as one from before tags) does not
    make a read use it; `verify` still compares it with its events."""
    with open_ledger(ledger_url) as ledger:
        _build(ledger)
        strip = "SUBSTR(state, 1, LENGTH(state) - 75) || X'7D'"
        _behind_its_back(
            ledger,
            f'UPDATE {{table}} SET state = CAST(replace(CAST({strip} AS TEXT), \'"cpu":"8"\', \'"cpu":"7"\') AS BLOB)',
            "UPDATE {table} SET state = convert_to(replace(convert_from("
            "substring(state from 1 for length(state) - 75) || '\\x7d'::bytea, 'UTF8'), "
            '\'"cpu":"8"\', \'"cpu":"7"\'), \'UTF8\')',
        )
    with open_ledger(ledger_url) as ledger:
        assert modify(ledger, "big", idle_timeout=999).keypair_resource_policy.total_resource_slots == {
            "cpu": Decimal(8)
        }
    (bad,) = _verify(ledger_url)["snapshots"]["bad"]
    assert bad["reason"] == "it differs from its events in fields"  # no tag: nothing to say of one


def test_an_intact_snapshot_is_read(ledger_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with open_ledger(ledger_url) as ledger:
        keys_before = ledger.app.keys.count()
        _build(ledger)
        assert ledger.app.keys.count() == keys_before  # the ledger's own key is not a subject's
    with caplog.at_level(logging.DEBUG, logger="adapters.store.application"), open_ledger(ledger_url) as ledger:
        at_100 = ledger.queries.state_at(POLICY, "big", version=100)
        assert at_100 is not None and at_100.fields["idle_timeout"] == 99
        assert modify(ledger, "big", idle_timeout=999).keypair_resource_policy.total_resource_slots == {
            "cpu": Decimal(8)
        }
    assert "its events are replayed" not in caplog.text
    assert _verify(ledger_url)["snapshots"] == {"checked": 1, "bad": []}


def test_verify_names_tagged_snapshots_whose_key_was_deleted(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        _build(ledger)
        key_table = f'"{ledger.config.schema}"."{KEYS_TABLE}"' if ledger.config.schema else KEYS_TABLE
        _behind_its_back(
            ledger,
            f"DELETE FROM {key_table} WHERE subject = '{SNAPSHOT_SUBJECT}'",
            f"DELETE FROM {key_table} WHERE subject = '{SNAPSHOT_SUBJECT}'",
        )
    (bad,) = _verify(ledger_url)["snapshots"]["bad"]
    assert bad["reason"] == "it is tagged, and the ledger's snapshot key is gone (deleted outside the ledger)"
    with open_ledger(ledger_url) as ledger:  # reads replay the events: still the right answer
        assert modify(ledger, "big", idle_timeout=999).keypair_resource_policy.idle_timeout == 999


def test_a_groups_endpoints_are_listed_past_an_untagged_snapshot(ledger_url: str) -> None:
    """The endpoint list read the group through the library's repository, which raised on
    a snapshot without a tag (every group snapshot of a ledger written before tags)."""
    import asyncio

    from domain.group import CreateGroupAction, ModifyGroupAction

    with open_ledger(ledger_url) as ledger:
        group = ledger.services.group
        created = asyncio.run(group.create_group(CreateGroupAction(input={"name": "g", "domain_name": "default"})))
        for i in range(100):
            asyncio.run(
                group.modify_group(ModifyGroupAction(group_id=created.data.id, modifier={"description": f"{i}"}))
            )
        _behind_its_back(
            ledger,
            "UPDATE {table} SET state = CAST(SUBSTR(state, 1, LENGTH(state) - 75) || X'7D' AS BLOB)",
            "UPDATE {table} SET state = substring(state from 1 for length(state) - 75) || '\\x7d'::bytea",
        )
    with open_ledger(ledger_url) as ledger:
        assert ledger.queries.endpoints(created.data.id) == []
    assert _verify(ledger_url)["snapshots"]["bad"] == []  # untagged and equal to its events


def test_verify_reads_a_snapshot_of_an_older_class_version_as_a_load_does() -> None:
    """A Session snapshot from before `kernels_started` (class version 1) was reported as
    differing from its events in kernels_started, and a Group one from before members were
    a list in class_version and members: `ledger verify` cried tampering on an old ledger."""
    import uuid

    from adapters.store.snapshot_check import _differs
    from domain.group.aggregate import Group
    from domain.session.aggregate import Session

    session = Session.create(str(uuid.uuid4()), {"status": "RUNNING", "cluster_size": 1})
    session.kernels_started = 1
    old = Session.Snapshot.take(session)
    for key in ("kernels_started", "class_version"):
        old.state.pop(key)
    assert _differs(session, old) is None
    group = Group.create(str(uuid.uuid4()), {"name": "g", "domain_name": "d"})
    group.members = ["u1"]
    old = Group.Snapshot.take(group)
    old.state.pop("class_version")
    old.state["members"] = {"u1": True}
    assert _differs(group, old) is None
    old.state["members"] = {"u2": True}  # what it held is still compared
    assert _differs(group, old) == "it differs from its events in members"


@pytest.mark.parametrize(
    "assignment",
    ["originator_version = 'x'", "originator_id = 'not-a-uuid'", "originator_id = upper(originator_id)"],
)
def test_verify_names_a_snapshot_whose_stream_or_version_is_not_as_written(tmp_path: Any, assignment: str) -> None:
    """SQLite keeps any text: a version that is no number, or a stream id that is no UUID,
    made `ledger verify` fail with an internal error; a stream id in capitals was passed
    over in silence (no read finds it, so nothing compared it)."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(url) as ledger:
        _build(ledger)
        _behind_its_back(ledger, f"UPDATE {{table}} SET {assignment}", "")
    report = _verify(url)
    assert not report["ok"]
    (bad,) = report["snapshots"]["bad"]
    assert "not as the ledger writes them" in bad["reason"], bad
