"""`policy create` and `policy modify` declare their shared options once: the same help on
both, and every number's help says its unit (seconds, a count, bytes)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup, TyperOption

from adapters.cli import app
from domain.shown import NO_LIMIT_AT_NULL, NO_LIMIT_AT_ZERO
from tests.adapters.cli.helpers import as_json, ok, stdout_of

UNITS = ("seconds", "a count", "bytes")


def options(command: str) -> dict[str, TyperOption]:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    policy = root.commands["policy"]
    assert isinstance(policy, TyperGroup)
    return {p.name: p for p in policy.commands[command].params if isinstance(p, TyperOption) and p.name}


def test_every_numeric_option_says_its_unit() -> None:
    for command in ("create", "modify"):
        numeric = {name: o for name, o in options(command).items() if o.metavar == "N"}
        assert len(numeric) == 9, sorted(numeric)
        for name, option in numeric.items():
            assert any(unit in (option.help or "").lower() for unit in UNITS), (command, name, option.help)


def test_create_and_modify_share_their_field_options() -> None:
    create, modify = options("create"), options("modify")
    replaced = {"total_resource_slots", "max_pending_session_resource_slots"}  # modify replaces the whole map
    shared = set(create) - replaced
    assert shared <= set(modify)
    for name in shared:
        assert (create[name].help, create[name].metavar) == (modify[name].help, modify[name].metavar), name


def test_the_limits_a_table_calls_no_limit_are_those_the_help_says_0_lifts(tmp_path: Path) -> None:
    """`policy show` says "no limit" beside a 0 or null an operator would read as "none
    allowed"; the help of the same options says what 0 means: the two must agree."""
    for field in NO_LIMIT_AT_ZERO | NO_LIMIT_AT_NULL:
        assert "no limit" in (options("create")[field].help or ""), field
    db = f"sqlite:///{tmp_path}/ledger.db"
    ok(db, "policy", "create", "open", "--max-concurrent-sessions", "0", "--idle-timeout", "0")
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in stdout_of(db, "policy", "show", "open").splitlines()
        if line.count("│") == 3
    }
    assert rows["max_concurrent_sessions"] == "0 (no limit)" and rows["idle_timeout"] == "0 (no limit)"
    assert rows["max_session_lifetime"] == "0 (no limit)" and rows["max_pending_session_count"] == "null (no limit)"
    assert rows["max_pending_session_resource_slots"] == "null (no limit)"
    ok(db, "policy", "modify", "open", "--max-pending-session-resource-slots", "cpu=0,mem=4g")
    shown = stdout_of(db, "policy", "show", "open")
    assert "cpu=0 (no limit), mem=4g" in shown and "mem=4g (no limit)" not in shown
    assert rows["max_vfolder_size"] == "null" and rows["max_concurrent_sftp_sessions"] == "1"  # not limits 0 lifts
    assert as_json(db, "policy", "show", "open")["max_concurrent_sessions"] == 0  # the value itself, unchanged
