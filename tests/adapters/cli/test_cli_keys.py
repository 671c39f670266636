"""`ledger keys status|rotate`: where the master key comes from, and rotating it without
rewriting an event: the new key opens every subject key, the old one is refused."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from adapters.store.keys import MASTER_KEY_VARIABLE, MasterKey
from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction, policy_id
from tests.adapters.cli.helpers import error_line, ledger, ok
from tests.conftest import SUPERADMIN

USER = "11111111-2222-4333-8444-555555555555"
OWN_KEY: dict[str, str | None] = {MASTER_KEY_VARIABLE: None}  # the ledger's own key file


def test_rotating_a_sqlite_ledger_s_own_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    # A snapshot: the ledger's own snapshot key is made, counted nowhere. The hundred
    # modifies run in this process, on the ledger's own key file as the CLI opens it
    # (a CLI run each took 11 s).
    monkeypatch.delenv(MASTER_KEY_VARIABLE)
    with open_ledger(db) as opened:
        modify = opened.processors.keypair_resource_policy.modify_keypair_resource_policy
        for timeout in range(1, 101):
            change = ModifyKeyPairResourcePolicyAction(name="default", modifier={"idle_timeout": timeout})
            asyncio.run(modify.wait_for_complete(change, SUPERADMIN))
        assert opened.app.snapshots is not None and any(opened.app.snapshots.get(policy_id("default")))
    status = json.loads(ok(db, "--json", "keys", "status", env=OWN_KEY).stdout)
    assert status == {"master_key": f"the key file {tmp_path}/ledger.db.key", "subject_keys": 1}
    old = (tmp_path / "ledger.db.key").read_text()
    rotated = ok(db, "keys", "rotate", env=OWN_KEY)
    assert "rotated 1 subject key;" in rotated.stdout
    key_file = tmp_path / "ledger.db.key"
    assert key_file.read_text() != old and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = json.loads(ok(db, "--json", "user", "show", USER, env=OWN_KEY).stdout)
    assert shown["email"] == "ada@example.org"
    refused = ledger(db, "user", "show", USER, env={MASTER_KEY_VARIABLE: old.strip()})
    assert refused.exit_code == 1 and "does not open this ledger's keys" in refused.stderr
    assert old.strip() not in refused.stderr


def test_a_key_from_the_variable_rotates_into_a_new_file(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    given = {MASTER_KEY_VARIABLE: MasterKey.generate().encoded()}
    ok(db, "user", "create", USER, "--full-name", "Ada", env=given)
    needs_file = ledger(db, "keys", "rotate", env=given)
    assert needs_file.exit_code == 1 and "--new-key-file" in needs_file.stderr
    new_file = tmp_path / "next.key"
    ok(db, "keys", "rotate", "--new-key-file", str(new_file), env=given)
    again = ledger(db, "keys", "rotate", "--new-key-file", str(new_file), env={MASTER_KEY_VARIABLE: f"file:{new_file}"})
    assert again.exit_code == 1 and "exists" in again.stderr
    shown = json.loads(ok(db, "--json", "user", "show", USER, env={MASTER_KEY_VARIABLE: f"file:{new_file}"}).stdout)
    assert shown["full_name"] == "Ada"
    assert ledger(db, "user", "show", USER, env=given).exit_code == 1


def test_a_new_key_file_that_names_no_file_is_refused_by_its_option(tmp_path: Path) -> None:
    """`--new-key-file ''` (an unset shell variable) reached the store as the path '.' and
    was refused as "the key file '.' exists: name a new file", naming no option."""
    db = f"sqlite:///{tmp_path}/ledger.db"
    given = {MASTER_KEY_VARIABLE: MasterKey.generate().encoded()}
    ok(db, "user", "create", USER, "--full-name", "Ada", env=given)
    for value in ("", str(tmp_path)):
        line = error_line(ledger(db, "keys", "rotate", "--new-key-file", value, env=given), 1)
        assert line.startswith("error: ledger_invalid_parameters: --new-key-file: must name a new file, got "), line
    # '' read as the path '.', "the directory '.'"; the others named no option.
    said = {
        "": "an empty path",
        str(tmp_path / "ledger.db"): f"{str(tmp_path / 'ledger.db')!r}, which exists",
        str(tmp_path / "nope" / "k"): f"a path whose folder {str(tmp_path / 'nope')!r} does not exist",
    }
    for value, got in said.items():
        line = error_line(ledger(db, "keys", "rotate", "--new-key-file", value, env=given), 1)
        assert line == f"error: ledger_invalid_parameters: --new-key-file: must name a new file, got {got}", line
    assert json.loads(ok(db, "--json", "user", "show", USER, env=given).stdout)["full_name"] == "Ada"  # unrotated


def test_a_ledger_s_own_key_file_rotated_into_a_new_file_is_said_stale(tmp_path: Path, monkeypatch: Any) -> None:
    """Rotating a ledger that opens with its own key file into --new-key-file left the old
    file beside the database unmentioned, holding the retired key, and advised
    `file:next.key`, a path that holds only from the directory the rotation ran in."""
    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    monkeypatch.chdir(tmp_path)
    rotated = ok(db, "keys", "rotate", "--new-key-file", "next.key", env=OWN_KEY).stdout
    new_file = tmp_path / "next.key"
    assert f"set {MASTER_KEY_VARIABLE}=file:{new_file} before the next start" in rotated
    assert f"the old key file {tmp_path}/ledger.db.key opens this ledger no more" in rotated
    shown = json.loads(ok(db, "--json", "user", "show", USER, env={MASTER_KEY_VARIABLE: f"file:{new_file}"}).stdout)
    assert shown["email"] == "ada@example.org"
    again = json.loads(
        ok(
            db, "--json", "keys", "rotate", "--new-key-file", "third.key", env={MASTER_KEY_VARIABLE: f"file:{new_file}"}
        ).stdout
    )
    assert "stale_key_file" not in again  # the key came from the variable: no file of the ledger's went stale
    assert again["master_key"].startswith(f"{tmp_path}/third.key: ")


def test_a_rotation_killed_after_its_commit_is_finished_by_the_next_open(tmp_path: Path, monkeypatch: Any) -> None:
    """Killed between its commit and moving the new key file into place, a rotation left
    the old key file and `ledger.db.key.new`: every command was refused (the old key no
    longer opens the keys) and nothing named the new file."""
    from adapters.bootstrap import open_ledger
    from adapters.store.keys import write_key_file

    monkeypatch.delenv(MASTER_KEY_VARIABLE, raising=False)  # in this process too: the ledger's own key file
    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    new, pending, key_file = MasterKey.generate(), tmp_path / "ledger.db.key.new", tmp_path / "ledger.db.key"
    with open_ledger(db) as opened:  # what `keys rotate` does, up to its commit
        write_key_file(pending, new)
        opened.app.keys.rotate(new)
    shown = ok(db, "--json", "user", "show", USER, env=OWN_KEY)
    assert json.loads(shown.stdout)["email"] == "ada@example.org"
    assert "finished a key rotation that was interrupted" in shown.stderr
    assert not pending.exists() and key_file.read_text().strip() == new.encoded()


def test_a_rotation_killed_before_its_commit_leaves_a_key_the_next_rotation_replaces(tmp_path: Path) -> None:
    from adapters.store.keys import write_key_file

    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    write_key_file(tmp_path / "ledger.db.key.new", MasterKey.generate())  # never committed
    assert json.loads(ok(db, "--json", "user", "show", USER, env=OWN_KEY).stdout)["email"] == "ada@example.org"
    assert "rotated 1 subject key;" in ok(db, "keys", "rotate", env=OWN_KEY).stdout  # it said: exists
    assert json.loads(ok(db, "--json", "user", "show", USER, env=OWN_KEY).stdout)["email"] == "ada@example.org"


def test_a_key_file_that_does_not_open_the_keys_is_named_not_the_variable(tmp_path: Path) -> None:
    """With the ledger's own key file no longer its key (rotated into --new-key-file), every
    command said `LEDGER_MASTER_KEY: the master key does not open ...`, a variable not set."""
    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    ok(db, "keys", "rotate", "--new-key-file", str(tmp_path / "new.key"), env=OWN_KEY)
    line = error_line(ledger(db, "user", "show", USER, env=OWN_KEY), 1)
    assert line.startswith(
        f"error: configuration_invalid: {MASTER_KEY_VARIABLE} is not set and the key file "
        f"'{tmp_path}/ledger.db.key' does not open this ledger's keys"
    ), line
    shown = json.loads(
        ok(db, "--json", "user", "show", USER, env={MASTER_KEY_VARIABLE: f"file:{tmp_path}/new.key"}).stdout
    )
    assert shown["email"] == "ada@example.org"


def test_a_rotation_committed_before_the_key_table_s_compaction_failed_is_said_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite of the key table after a rotation is housekeeping: its failure (a server
    out of connections, a SQLite file locked) left the rotation committed, yet the command
    failed, and a SQLite ledger's own key file was never replaced by the new key."""
    from adapters import compaction
    from domain.errors import StoreUnavailable

    def failed(*_args: Any, **_kwargs: Any) -> list[compaction.Compacted]:
        raise StoreUnavailable("cannot reach PostgreSQL: too many clients already")

    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "user", "create", USER, "--email", "ada@example.org", env=OWN_KEY)
    old = (tmp_path / "ledger.db.key").read_text()
    monkeypatch.setattr(compaction, "compact", failed)
    rotated = ok(db, "keys", "rotate", env=OWN_KEY)
    assert "rotated 1 subject key;" in rotated.stdout
    assert "until `ledger compact`: wal not rewritten: cannot reach PostgreSQL" in rotated.stdout
    assert (tmp_path / "ledger.db.key").read_text() != old
    monkeypatch.undo()
    assert json.loads(ok(db, "--json", "user", "show", USER, env=OWN_KEY).stdout)["email"] == "ada@example.org"
