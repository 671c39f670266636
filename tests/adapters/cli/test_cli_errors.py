"""Errors as the CLI user sees them: naming the option typed, and as JSON with --json."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from adapters.cli import app
from tests.adapters.cli.helpers import GROUP, error_line, ledger, ok, refused, usage_error

ROOT_MODULE = importlib.import_module("adapters.cli.app")
INVALID = "error: ledger_invalid_parameters:"
OWNER = "00000000-0000-0000-0000-00000000b0b0"


# A domain field is shown as the option (or argument) that sets it


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (
            ("keypair", "create", "AK1", "--owner", "bob", "--resource-policy", "default"),
            "--owner: 'bob' is not a UUID",
        ),  # field user_id
        (("policy", "create", "p", "--max-concurrent-sessions", "-1"), "--max-concurrent-sessions: must be at least 0"),
        # `.` and `..` were made, then no URL could name them: refused as the HTTP API refuses them.
        (("policy", "create", ".."), "NAME: must not be '..'"),
        (("domain", "create", "."), "NAME: must not be '.'"),
        (("policy", "create", "p", "--total-resource-slots", "warp=1"), "--total-resource-slots: warp: unknown slot"),
        (("usage", "period", "20241001", "2024x"), "END_DATE: "),  # an argument: its name
        (("usage", "month", "202413"), "MONTH: "),
        (("usage", "month", "202410", "--group", "nope"), "--group: 'nope' is not a UUID"),  # field group_ids
        # Three UUID options were typed as such and refused in pydantic's words, exit 2
        # ("Input should be a valid UUID, invalid character: found `o` at 1").
        (("keypair", "list", "--owner", "bob"), "--owner: 'bob' is not a UUID"),
        (("--user-id", "bob", "policy", "list"), "--user-id: 'bob' is not a UUID"),
        (("token", "revoke", "bob"), "TOKEN_ID: 'bob' is not a UUID"),
        (
            ("token", "issue", "--user-id", "bob", "--role", "user", "--domain", "default"),
            "--user-id: 'bob' is not a UUID",
        ),
        (("--domain", "a\x01", "policy", "list"), "--domain: must not contain"),  # it named domain_name
        # A kept head at position 0 was walked and reported as a rewritten chain (exit 1);
        # a non-ASCII digit was read as a position; the error named `expect-head`.
        (("verify", "--expect-head", f"0:{'a' * 64}"), "--expect-head: must be at least 1"),
        (("verify", "--expect-head", f"\u0663:{'a' * 64}"), "--expect-head: expected an integer"),
        (("verify", "--expect-head", f"3:{'a' * 62} a"), "--expect-head: expected POSITION:SHA256HEX"),
    ],
)
def test_an_invalid_value_names_the_option_typed(db: str, args: tuple[str, ...], shown: str) -> None:
    assert refused(db, *args).startswith(f"{INVALID} {shown}")


def test_of_two_options_setting_one_field_the_one_given_is_named(db: str) -> None:
    ok(db, "policy", "create", "p")
    assert refused(db, "policy", "modify", "p", "--slot", "warp=1").startswith(f"{INVALID} --slot: warp: unknown slot")
    replaced = refused(db, "policy", "modify", "p", "--total-resource-slots", "warp=1")
    assert replaced.startswith(f"{INVALID} --total-resource-slots: warp: unknown slot")


def test_every_refused_option_is_named_on_the_one_line(db: str) -> None:
    args = ("policy", "create", "p", "--max-concurrent-sessions", "-1", "--idle-timeout", "-5")
    line = refused(db, *args)
    first = "--max-concurrent-sessions: must be at least 0, got -1"
    assert line == f"{INVALID} {first}; also --idle-timeout: must be at least 0, got -5"
    error = json_error(ledger(db, "--json", *args), 1)
    assert error["field"] == "--max-concurrent-sessions"
    assert error["errors"] == [
        {"field": "--max-concurrent-sessions", "reason": "must be at least 0, got -1"},
        {"field": "--idle-timeout", "reason": "must be at least 0, got -5"},
    ]


def test_an_option_of_another_name_via_the_alias_table(db: str) -> None:
    args = ["--session-id", OWNER, "--session-name", "s", "--group-id", GROUP, "--owner", "bob"]
    line = refused(
        db,
        "workload",
        "kernel-start",
        OWNER,
        *args,
        "--kernel-access-key",
        "AK",
        "--slots",
        "cpu=1",
        "--started-at",
        "2024-10-01T00:00Z",
    )
    assert line.startswith(f"{INVALID} --owner: 'bob' is not a UUID")


# --json: the error as one JSON object on stderr


def json_error(result: Any, exit_code: int) -> dict[str, Any]:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    parsed: dict[str, Any] = json.loads(result.stderr)
    assert list(parsed) == ["error"]
    return parsed["error"]  # type: ignore[no-any-return]


def test_a_domain_error_as_json(db: str) -> None:
    error = json_error(
        ledger(db, "--json", "keypair", "create", "AK1", "--owner", "bob", "--resource-policy", "default"), 1
    )
    assert error == {
        "code": "ledger_invalid_parameters",
        "message": "--owner: 'bob' is not a UUID",
        "field": "--owner",
        "status": 400,
    }
    missing = json_error(ledger(db, "--json", "keypair", "show", "AK1"), 1)
    assert missing == {"code": "keypair_not_found", "message": "keypair 'AK1' not found", "field": None, "status": 404}


def test_a_usage_error_as_json_before_and_after_the_root_options_are_read(db: str) -> None:
    early = json_error(ledger(db, "--json", "--role", "nobody", "policy", "list"), 2)  # no State yet
    assert early["code"] == "usage" and "--role" in early["message"] and set(early) == {"code", "message"}
    late = json_error(ledger(db, "--json", "policy", "create"), 2)  # the subcommand's own usage
    assert late["code"] == "usage" and "NAME" in late["message"]
    # Without --json (or with it after the subcommand, where it is not the root option): the line.
    assert usage_error(db, "policy", "create").startswith("error: usage: ")


def test_a_bug_as_json(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(ROOT_MODULE, "open_ledger", broken)
    error = json_error(ledger(db, "--json", "policy", "list"), 1)
    assert error == {"code": "internal", "message": "RuntimeError: boom second line"}


def test_ctrl_c_is_one_line_and_exit_130(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # It was a silent exit 130: typer turns a KeyboardInterrupt into Exit(130), no message.
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ROOT_MODULE, "open_ledger", interrupted)
    assert error_line(ledger(db, "policy", "list"), 130) == "error: interrupted: stopped by Ctrl-C"
    error = json_error(ledger(db, "--json", "group", "list"), 130)
    assert error == {"code": "interrupted", "message": "stopped by Ctrl-C"}


def test_a_root_option_refused_by_a_subcommand_is_named(db: str) -> None:
    line = refused(db, "--access-key", "a\x1bb", "policy", "list")  # policy list has no --access-key: the root's
    assert line.startswith(f"{INVALID} --access-key: ")


@pytest.mark.parametrize("seconds", ["inf", "1e300"])
def test_a_poll_interval_no_sleep_can_take_is_a_usage_error(db: str, seconds: str) -> None:
    # It was taken, and the follower's first wait died: `internal error: OverflowError`.
    line = usage_error(db, "projections", "run", "--poll-interval", seconds)
    assert f"'--poll-interval': must be at most 86400, got '{seconds}'" in line


def test_a_batch_size_past_a_bigint_is_a_usage_error(db: str) -> None:
    # It was taken, and the rebuild's first read died: `internal error: OverflowError:
    # Python int too large to convert to SQLite INTEGER`.
    line = usage_error(db, "projections", "rebuild", "--force", "history", "--batch-size", str(2**63))
    assert "'--batch-size': must be at most 9223372036854775807" in line


def integer_options() -> list[tuple[tuple[str, ...], str]]:
    """Every integer option of every command, as (the command's words, the option), read
    from the app itself: an option added later is held to the rule without being listed."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(command: Any, words: tuple[str, ...]) -> None:
        for param in command.params:
            if param.type_descriptor.annotation is int:
                found.append((words, param.opts[0] if param.opts else param.name.upper()))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*words, name))

    walk(typer.main.get_command(app), ())
    return found


INTEGER_OPTIONS = integer_options()


def test_the_integer_options_are_found() -> None:
    # An empty or shrunken list would pass the test below without testing anything.
    assert len(INTEGER_OPTIONS) > 50
    assert (("policy", "create"), "--idle-timeout") in INTEGER_OPTIONS
    assert (("serve",), "--port") in INTEGER_OPTIONS


@pytest.mark.parametrize("raw", ["1_0", "1.0"])
@pytest.mark.parametrize(("words", "option"), INTEGER_OPTIONS, ids=[f"{' '.join(w)} {o}" for w, o in INTEGER_OPTIONS])
def test_every_integer_option_reads_the_domain_s_integer_forms_only(
    tmp_path: Path, words: tuple[str, ...], option: str, raw: str
) -> None:
    """Only --limit was read as the HTTP API reads an integer: the others took `1.0` as 1
    and `1_0` as 10 (Python's and pydantic's forms), which the HTTP API and a body refuse.
    No ledger is there: a command that took the value fails opening it, where `serve` or
    `projections run` would run on."""
    line = usage_error(f"sqlite:///{tmp_path / 'missing' / 'l.db'}", *words, option, raw)
    assert f"'{option}': expected an integer, got '{raw}' (" in line, line


def test_an_integer_option_takes_what_the_domain_takes(db: str) -> None:
    # parse_int's forms: surrounding blanks and a sign (as a query's ?limit=+2 is read).
    policy = json.loads(ok(db, "--json", "policy", "create", "p", "--idle-timeout", " +7 ").stdout)
    assert policy["idle_timeout"] == 7


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("audit", "--status", "bogus"), "'--status': 'bogus' is not one of 'success', 'error'"),
        (("policy", "create", "p", "--idle-timeout", "abc"), "'--idle-timeout': expected an integer, got 'abc' ("),
        (("group", "list", "--limit", "1.5"), "'--limit': expected an integer, got '1.5' ("),
        # Read as 1 and as 10, where the HTTP API's `limit` refuses them as the domain does.
        (("group", "list", "--limit", "1.0"), "'--limit': expected an integer, got '1.0' ("),
        (("policy", "list", "--limit", "1_0"), "'--limit': expected an integer, got '1_0' ("),
        (("policy", "list", "--limit", "0"), "'--limit': must be at least 1, got 0 ("),
        (("projections", "run", "--poll-interval", "x"), "'--poll-interval': expected a number, got 'x' ("),
        # Bounds were pydantic's too: `Input should be greater than or equal to 1`.
        (("serve", "--workers", "0"), "'--workers': must be at least 1, got 0 ("),
        (("serve", "--port", "70000"), "'--port': must be at most 65535, got 70000 ("),
        (("projections", "run", "--poll-interval", "0"), "'--poll-interval': must be at least 0.01, got '0' ("),
        (("usage", "month", "202402", "--limit", "-1"), "'--limit': must be at least 0, got -1 ("),
        (("policy", "history", "p", "--after", "-1"), "'--after': must be at least 0, got -1 ("),
        (("projections", "rebuild", "--batch-size", "0"), "'--batch-size': must be at least 1, got 0 ("),
    ],
)
def test_a_value_the_option_type_refuses_is_said_in_the_domain_s_words(
    db: str, args: tuple[str, ...], reason: str
) -> None:
    """They were said in pydantic's: `'--status': Value error, 'bogus' is not one of ...`,
    `'--idle-timeout': Input should be a valid integer, unable to parse string as an integer`."""
    line = usage_error(db, *args)
    assert reason in line and "Value error" not in line and "Input should" not in line, line
