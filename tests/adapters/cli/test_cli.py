"""The `ledger` command line, end to end on a SQLite file per test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app
from tests.adapters.cli.helpers import ACTOR, ROOT, as_json, given_users, ledger, ok, refused

OWNER = "11111111-2222-4333-8444-555555555555"
OWNER_D1 = "11111111-2222-4333-8444-5555555555d1"  # a user of domain d1


# Policies


def test_policy_create_prints_the_policy_as_a_table(db: str) -> None:
    out = ok(
        db,
        "policy",
        "create",
        "gpu",
        "--total-resource-slots",
        "cpu=8,mem=16g,gpu=2",
        "--allowed-vfolder-hosts",
        "local,nfs",
        "--max-concurrent-sessions",
        "4",
    ).stdout
    assert "created keypair resource policy 'gpu'" in out
    assert "cpu=8, cuda.device=2, mem=16g" in out
    assert "local, nfs" in out
    assert "max_concurrent_sessions" in out and "│ 4 " in out


def test_policy_create_json_takes_json_options(db: str) -> None:
    created = as_json(
        db,
        "policy",
        "create",
        "gpu",
        "--total-resource-slots",
        '{"cpu": "4", "memory": "8G"}',
        "--max-pending-session-resource-slots",
        '{"cpu": 1}',
        "--allowed-vfolder-hosts",
        '{"nfs": ["mount-in-session"]}',
        "--default-for-unspecified",
        "unlimited",
        "--idle-timeout",
        "600",
    )
    assert isinstance(created, dict)
    assert created["name"] == "gpu"
    assert created["total_resource_slots"] == {"cpu": "4", "mem": "8589934592"}
    assert created["max_pending_session_resource_slots"] == {"cpu": "1"}
    assert created["allowed_vfolder_hosts"] == {"nfs": ["mount-in-session"]}
    assert created["default_for_unspecified"] == "UNLIMITED"
    assert created["idle_timeout"] == 600
    assert created["max_concurrent_sessions"] == 30  # the creator's default


def test_policy_show_and_list_in_both_modes(db: str) -> None:
    ok(db, "policy", "create", "small", "--max-concurrent-sessions", "2", "--allowed-vfolder-hosts", "nfs")
    shown = as_json(db, "policy", "show", "small")
    assert isinstance(shown, dict) and shown["max_concurrent_sessions"] == 2
    listed = as_json(db, "policy", "list")
    assert isinstance(listed, list)
    assert [p["name"] for p in listed] == ["default", "small"]
    table = ok(db, "policy", "show", "small").stdout
    assert "keypair resource policy 'small'" in table and "nfs" in table
    rows = ok(db, "policy", "list").stdout
    assert "default" in rows and "small" in rows


def test_policy_modify_changes_only_the_given_fields(db: str) -> None:
    ok(db, "policy", "create", "p", "--max-concurrent-sessions", "3", "--idle-timeout", "100")
    out = ok(db, "policy", "modify", "p", "--max-concurrent-sessions", "9").stdout
    assert "modified keypair resource policy 'p'" in out
    shown = as_json(db, "policy", "show", "p")
    assert isinstance(shown, dict)
    assert (shown["max_concurrent_sessions"], shown["idle_timeout"]) == (9, 100)


def test_policy_modify_unset_nullifies_fields(db: str) -> None:
    ok(db, "policy", "create", "p", "--idle-timeout", "100", "--max-pending-session-count", "4")
    modified = as_json(db, "policy", "modify", "p", "--unset", "idle_timeout", "--unset", "max-pending-session-count")
    assert isinstance(modified, dict)
    assert modified["idle_timeout"] is None
    assert modified["max_pending_session_count"] is None
    assert modified["max_session_lifetime"] == 0  # untouched


def test_unset_of_a_non_nullable_field_is_a_usage_error(db: str) -> None:
    ok(db, "policy", "create", "p")
    result = ledger(db, "policy", "modify", "p", "--unset", "max_concurrent_sessions")
    assert result.exit_code == 2
    assert "cannot be unset" in result.stderr


def test_modify_without_changes_says_unchanged(db: str) -> None:
    ok(db, "policy", "create", "p")
    assert ok(db, "policy", "modify", "p").stdout.startswith("keypair resource policy 'p' unchanged\n")


def test_policy_delete_then_show_is_not_found(db: str) -> None:
    ok(db, "policy", "create", "p", "--max-concurrent-sessions", "6")
    deleted = as_json(db, "policy", "delete", "p")
    assert isinstance(deleted, dict) and deleted["max_concurrent_sessions"] == 6  # as it was before
    ok(db, "policy", "create", "q")
    assert ok(db, "policy", "delete", "q").stdout.strip() == "deleted keypair resource policy 'q'"
    result = ledger(db, "policy", "show", "p")
    assert result.exit_code == 1
    assert result.stderr == "error: keypair_resource_policy_not_found: keypair resource policy 'p' not found\n"


def test_history_records_actor_and_changes(db: str) -> None:
    actor = ["--user-id", ACTOR, "--access-key", "AKADMIN", "--role", "superadmin", "--request-id", "req-42"]
    ok(db, *actor, "policy", "create", "p", "--max-concurrent-sessions", "3")
    ok(db, *actor, "policy", "modify", "p", "--max-concurrent-sessions", "7")
    ok(db, "policy", "delete", "p")
    entries = as_json(db, "policy", "history", "p")
    assert isinstance(entries, list)
    assert [(e["version"], e["event"]) for e in entries] == [(1, "Created"), (2, "Modified"), (3, "Deleted")]
    modified = entries[1]
    assert modified["changes"] == {"max_concurrent_sessions": {"old": 3, "new": 7}}
    assert modified["actor"] == {
        "user_id": ACTOR,
        "access_key": "AKADMIN",
        "role": "superadmin",
        "domain_name": "default",
    }
    assert modified["request_id"] == "req-42"
    assert entries[2]["actor"]["access_key"] is None and entries[2]["request_id"] is None
    table = ok(db, "policy", "history", "p").stdout
    assert "max_concurrent_sessions: 3 -> 7" in table
    assert "req-42" in table and "AKADMIN" in table and ACTOR in table
    assert "null -> null" not in table  # unset fields of a creation are not shown as changes


def test_history_in_40_columns_keeps_the_changes_and_names_what_it_leaves_out(db: str) -> None:
    """At 40 columns rich dropped the changes and the actor without a word."""
    ok(db, "--request-id", "req-42", "policy", "create", "p", "--max-concurrent-sessions", "3")
    ok(db, "policy", "modify", "p", "--max-concurrent-sessions", "7")
    ok(db, "policy", "delete", "p")
    ok(db, "policy", "create", "p")  # a Recreated row: the longest event name here
    table = ledger(db, "policy", "history", "p", columns=40).stdout
    assert max(map(len, table.splitlines())) <= 40, table
    said = " ".join(line.strip() for line in table.splitlines())
    assert "max_concurrent_sessions:3->7" in re.sub(r"\s+", "", table)  # folded, whole
    assert "Recreated" in table and "Left out to fit 40 columns: actor / request id" in said
    wide = ledger(db, "policy", "history", "p", columns=80).stdout
    assert "Left out" not in wide and "req-42" in wide


def test_history_of_an_unknown_policy_is_an_error(db: str) -> None:
    result = ledger(db, "policy", "history", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: keypair_resource_policy_not_found: ")


# Errors


def test_policy_in_use_is_one_line_and_exit_1(db: str) -> None:
    ok(db, "policy", "create", "p")
    given_users(db, OWNER)
    ok(db, "keypair", "create", "AK1", "--owner", OWNER, "--resource-policy", "p")
    result = ledger(db, "policy", "delete", "p")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: keypair_resource_policy_delete_in_use: keypair resource policy 'p' is used by 1 keypair: AK1\n"
    )
    assert "Traceback" not in result.output


def test_system_policy_cannot_be_deleted(db: str) -> None:
    result = ledger(db, "policy", "delete", "default")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: keypair_resource_policy_delete_system_policy: ")


def test_duplicate_policy_name_is_a_domain_error(db: str) -> None:
    ok(db, "policy", "create", "p")
    result = ledger(db, "policy", "create", "p")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: keypair_resource_policy_create_duplicate_name: keypair resource policy 'p' already exists\n"
    )
    # With --json, the error names what to change as the command took it: the NAME argument.
    error = json.loads(ledger(db, "--json", "policy", "create", "p").stderr)["error"]
    assert (error["field"], error["status"]) == ("NAME", 409)


@pytest.mark.parametrize(
    "args",
    [
        ["--total-resource-slots", "{not json"],
        ["--total-resource-slots", "cpu"],
        ["--allowed-vfolder-hosts", "[1,"],
        ["--max-concurrent-sessions", "many"],
        ["--default-for-unspecified", "SOMETIMES"],
    ],
)
def test_malformed_options_are_usage_errors(db: str, args: list[str]) -> None:
    result = ledger(db, "policy", "create", "p", *args)
    assert result.exit_code == 2
    assert args[0] in result.stderr
    assert as_json(db, "policy", "list") == [as_json(db, "policy", "show", "default")]  # nothing was created


def test_values_the_domain_refuses_are_invalid_parameters(db: str) -> None:
    negative = ledger(db, "policy", "create", "p", "--max-concurrent-sessions", "-1")
    assert negative.exit_code == 1
    assert negative.stderr == (
        "error: ledger_invalid_parameters: --max-concurrent-sessions: must be at least 0, got -1\n"
    )
    unknown = ledger(db, "policy", "create", "p", "--total-resource-slots", "warp=1")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: ledger_invalid_parameters: --total-resource-slots: warp: unknown slot")


def test_an_unsupported_database_url_is_one_line_naming_where_it_was_written() -> None:
    """A refused URL named `url` (or `schema`), where the user had typed --db or set
    LEDGER_DATABASE_URL."""
    result = ledger("mysql://nowhere/db", "policy", "list")
    assert result.exit_code == 1
    expected = "error: ledger_invalid_parameters: --db: unsupported database URL scheme 'mysql'"
    assert result.stderr.startswith(expected)
    assert result.stderr.count("\n") == 1
    path = ledger("//admin:secret@h/db", "policy", "list")  # a path, or a URL without its scheme
    assert path.stderr == (
        "error: ledger_invalid_parameters: --db: is not a URL: a file is sqlite:///PATH, a server "
        "postgresql://user@host/DB\n"
    )
    schema = ledger("postgresql://h/db?schema=bad-name", "policy", "list")
    assert schema.stderr.startswith("error: ledger_invalid_parameters: --db: 'bad-name' is not a schema name")
    environment = {"COLUMNS": "300", "LEDGER_DATABASE_URL": "mysql://nowhere/db"}
    from_variable = CliRunner(env=environment).invoke(app, ["policy", "list"])
    assert from_variable.exit_code == 1
    assert from_variable.stderr.startswith(
        "error: ledger_invalid_parameters: LEDGER_DATABASE_URL: unsupported database URL scheme 'mysql'"
    )


def test_unknown_role_is_a_usage_error(db: str) -> None:
    result = ledger(db, "--role", "root", "policy", "list")
    assert result.exit_code == 2
    assert "--role" in result.stderr


def test_deprecated_fields_warn_once_on_stderr(db: str) -> None:
    result = ok(db, "--json", "policy", "create", "p", "--max-vfolder-size", "3")
    assert json.loads(result.stdout)["max_vfolder_size"] == 3
    assert result.stderr.count("warning: max_vfolder_size: deprecated") == 1
    enforced = ok(db, "--json", "policy", "create", "q", "--max-vfolder-count", "3")  # applied to owned vfolders
    assert json.loads(enforced.stdout)["max_vfolder_count"] == 3 and "deprecated" not in enforced.stderr


def test_a_refused_command_with_a_deprecated_field_does_not_warn_it_was_stored(db: str) -> None:
    ok(db, "policy", "create", "p")
    again = refused(db, "policy", "create", "p", "--max-vfolder-size", "3")  # one line: the refusal
    assert again.startswith("error: keypair_resource_policy_create_duplicate_name:")
    result = ledger(db, "--json", "policy", "modify", "nope", "--max-quota-scope-size", "3")
    assert result.exit_code == 1 and json.loads(result.stderr)["error"]["code"] == "keypair_resource_policy_not_found"


# Keypairs


def test_keypair_lifecycle(db: str) -> None:
    ok(db, "policy", "create", "p")
    given_users(db, OWNER_D1, domain="d1")
    given_users(db, OWNER)
    created = as_json(
        db, "keypair", "create", "AK1", "--owner", OWNER_D1, "--domain-name", "d1", "--resource-policy", "p"
    )
    assert created == {"access_key": "AK1", "user_id": OWNER_D1, "domain_name": "d1", "resource_policy": "p"}
    ok(db, "keypair", "create", "AK2", "--owner", OWNER, "--resource-policy", "default")
    assert as_json(db, "keypair", "show", "AK2") == {
        "access_key": "AK2",
        "user_id": OWNER,
        "domain_name": "default",  # the actor's --domain
        "resource_policy": "default",
    }
    assert [k["access_key"] for k in as_json(db, "keypair", "list")] == ["AK1", "AK2"]
    only_p = as_json(db, "keypair", "list", "--resource-policy", "p")
    assert [k["access_key"] for k in only_p] == ["AK1"]
    out = ok(db, "keypair", "modify", "AK1", "--resource-policy", "default").stdout
    assert "modified keypair 'AK1'" in out and "default" in out
    assert as_json(db, "keypair", "list", "--resource-policy", "p") == []
    ok(db, "policy", "delete", "p")  # no longer in use
    assert ok(db, "keypair", "delete", "AK1").stdout.strip() == "deleted keypair 'AK1'"
    missing = ledger(db, "keypair", "show", "AK1")
    assert missing.exit_code == 1
    assert missing.stderr == "error: keypair_not_found: keypair 'AK1' not found\n"


def test_keypair_tables_and_history(db: str) -> None:
    given_users(db, OWNER)
    ok(db, "keypair", "create", "AK1", "--owner", OWNER, "--resource-policy", "default")
    shown = ok(db, "keypair", "show", "AK1").stdout
    assert "AK1" in shown and OWNER in shown and "default" in shown
    listed = ok(db, "keypair", "list").stdout
    assert "AK1" in listed and "policy" in listed
    assert OWNER in listed  # a UUID is never folded across lines
    entries = as_json(db, "keypair", "history", "AK1")
    assert [e["event"] for e in entries] == ["Created"]


def test_a_keypair_without_a_policy_and_back(db: str) -> None:
    """A keypair's policy is optional: without one the precedence decides."""
    given_users(db, OWNER)
    created = as_json(db, "keypair", "create", "AK1", "--owner", OWNER)
    assert created["resource_policy"] is None
    assert "│ -" in ok(db, "keypair", "show", "AK1").stdout
    assert as_json(db, "keypair", "modify", "AK1", "--resource-policy", "default")["changed"] is True
    assert ok(db, "keypair", "modify", "AK1", "--resource-policy", "default").stdout.startswith(
        "keypair 'AK1' unchanged"
    )
    unassigned = as_json(db, "keypair", "modify", "AK1", "--unassign")
    assert (unassigned["changed"], unassigned["resource_policy"]) == (True, None)
    neither = ledger(db, "keypair", "modify", "AK1")
    assert neither.exit_code == 2 and "give either --resource-policy NAME or --unassign" in neither.stderr
    both = ledger(db, "keypair", "modify", "AK1", "--resource-policy", "default", "--unassign")
    assert both.exit_code == 2


def test_help_tells_the_owner_from_the_actor(db: str) -> None:
    root = " ".join(ok(db, "--help").stdout.split())  # the help wraps its paragraphs anywhere
    assert "keypair create --owner UUID" in root and "--user-id" in root
    assert "the root --user-id is the actor" in " ".join(ok(db, "keypair", "create", "--help").stdout.split())


def test_keypair_owner_must_be_a_uuid(db: str) -> None:
    result = ledger(db, "keypair", "create", "AK1", "--owner", "bob", "--resource-policy", "default")
    assert result.exit_code == 1
    assert result.stderr == "error: ledger_invalid_parameters: --owner: 'bob' is not a UUID\n"


def test_keypair_needs_an_existing_policy(db: str) -> None:
    result = ledger(db, "keypair", "create", "AK1", "--owner", OWNER, "--resource-policy", "ghost")
    assert result.exit_code == 1
    assert "ghost" in result.stderr and result.stderr.count("\n") == 1


# The demo


def test_demo_runs_twice_on_the_same_ledger(db: str) -> None:
    first = ok(db, "demo").stdout
    lines = first.splitlines()
    assert lines[0].startswith("created policy 'dev-policy'")
    assert lines[1] == "modified policy 'dev-policy': max_concurrent_sessions 5 -> 10"
    # A keypair's owner is a user of its domain: the first run creates it, later runs reuse it.
    assert lines[2] == "created user 00000000-0000-4000-8000-00000000de40 in domain 'default' to own the keypair"
    assert lines[3] == "created keypair 'AKDEMO' using policy 'dev-policy'"
    assert lines[4].startswith("deleting policy 'dev-policy' was refused: keypair_resource_policy_delete_in_use")
    assert lines[4].endswith("is used by 1 keypair: AKDEMO")
    assert lines[5:7] == ["deleted keypair 'AKDEMO'", "deleted policy 'dev-policy'"]
    assert "max_concurrent_sessions: 5 -> 10" in first
    assert "cpu=50, cuda.device=4, mem=256g" in first
    second = ok(db, "demo").stdout
    assert second.startswith("re-created policy 'dev-policy'")
    assert "created user" not in second
    events = [e["event"] for e in as_json(db, "policy", "history", "dev-policy")]
    life = ["Modified", "KeyPairAssigned", "KeyPairUnassigned", "Deleted"]
    assert events == ["Created", *life, "Recreated", *life]
    assert ledger(db, "policy", "show", "dev-policy").exit_code == 1  # gone again after each run
    assert as_json(db, "keypair", "list") == []


def test_demo_json_and_seed_values(db: str) -> None:
    report = as_json(db, "demo")
    assert isinstance(report, dict)
    assert len(report["steps"]) == 7  # the owner's creation among them, on a fresh ledger
    created = report["history"][0]
    assert created["event"] == "Created"
    new = {f: c["new"] for f, c in created["changes"].items()}
    assert new["total_resource_slots"] == {"cpu": "50", "cuda.device": "4", "mem": "274877906944"}
    assert new["max_pending_session_resource_slots"] == {"cpu": "10", "mem": "68719476736"}
    assert sorted(new["allowed_vfolder_hosts"]) == ["storage1", "storage2"]
    assert (new["idle_timeout"], new["max_session_lifetime"], new["max_containers_per_session"]) == (3600, 86400, 3)
    assert (new["max_concurrent_sessions"], new["max_pending_session_count"]) == (5, 10)
    assert new["default_for_unspecified"] == "LIMITED"
    assert report["audit"] == {"success": 3, "error": 1}  # the delete refused while a keypair used it
    assert report["verify"]["ok"] and report["verify"]["checked"] == report["verify"]["head_position"]


def test_demo_cleans_up_what_an_interrupted_run_left(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.cli.demo import Demo

    def interrupted(self: Demo) -> None:
        raise KeyboardInterrupt  # Ctrl-C before the tear-down: the keypair and the policy stay

    with monkeypatch.context() as patched:
        patched.setattr(Demo, "tear_down", interrupted)
        assert ledger(db, "demo").exit_code != 0
    assert as_json(db, "policy", "show", "dev-policy")["max_concurrent_sessions"] == 10
    out = ok(db, "demo").stdout
    assert out.splitlines()[:3] == [
        "cleaned up keypair 'AKDEMO' left by an earlier run",
        "cleaned up policy 'dev-policy' left by an earlier run",
        "re-created policy 'dev-policy' with seed 001's values (max_concurrent_sessions=5)",
    ]


def test_demo_leaves_an_operators_own_policy_and_keypair_of_its_names_alone(db: str) -> None:
    """The demo deleted any live 'dev-policy' (seed 001's name, one an operator may well
    have) as left by an earlier run, or failed halfway when a keypair used it."""
    ok(db, "policy", "create", "dev-policy", "--idle-timeout", "600")
    refused = ledger(db, "demo")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: demo_name_taken: policy 'dev-policy' (with other values) exists")
    assert "--db" in refused.stderr
    assert as_json(db, "policy", "show", "dev-policy")["idle_timeout"] == 600
    ok(db, "policy", "delete", "dev-policy")
    given_users(db, OWNER)
    ok(db, "keypair", "create", "AKDEMO", "--owner", OWNER)
    refused = ledger(db, "demo")
    assert refused.exit_code == 1 and f"keypair 'AKDEMO' (owned by {OWNER})" in refused.stderr
    assert [k["access_key"] for k in as_json(db, "keypair", "list")] == ["AKDEMO"]
    assert ledger(db, "policy", "show", "dev-policy").exit_code == 1  # nothing created either


# The console script


@pytest.mark.slow
def test_console_script_in_a_subprocess(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "LEDGER_DATABASE_URL"}
    env = {**base, "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}", "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

    def run(*args: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "adapters.cli", *args]
        return subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)

    created = run("--json", "policy", "create", "sub", "--max-concurrent-sessions", "2")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["max_concurrent_sessions"] == 2
    assert (tmp_path / "env.db").exists()  # LEDGER_DATABASE_URL chose the file
    refused = run("policy", "delete", "default")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: keypair_resource_policy_delete_system_policy: ")
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    usage = run("policy", "create", "x", "--total-resource-slots", "{")
    assert usage.returncode == 2
    assert "--total-resource-slots" in usage.stderr and "invalid JSON" in usage.stderr
    assert usage.stdout == ""
    # The README's first command: no URL anywhere means ./ledger.db in the working directory.
    demo = run("demo", environ={k: v for k, v in env.items() if k != "LEDGER_DATABASE_URL"})
    assert demo.returncode == 0, demo.stderr
    assert "deleted policy 'dev-policy'" in demo.stdout and "KeyPairUnassigned" in demo.stdout
    assert (tmp_path / "ledger.db").exists()


def test_fallback_policy_links_and_circular_reference_is_one_line(db: str) -> None:
    ok(db, "policy", "create", "base")
    created = as_json(db, "policy", "create", "team", "--fallback-policy", "base")
    assert created["fallback_policy"] == "base"
    result = ledger(db, "policy", "modify", "base", "--fallback-policy", "team")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: keypair_resource_policy_circular_reference: ")
    assert as_json(db, "policy", "modify", "team", "--unset", "fallback_policy")["fallback_policy"] is None
