"""The CLI as an operator's safe tool, in process: hostile values are shown escaped and
never obeyed (terminal escapes, bidi and invisible characters, rich markup), and every
failure is one stderr line with the right exit code, never a traceback.

Values a laxer, older ledger may hold are stored here by saving aggregates directly,
past the validation of today's actions. The same promises checked in subprocesses, on
the console script, are in `test_cli_hostile_processes.py`."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner, Result

from adapters.bootstrap import open_ledger
from adapters.cli import app
from adapters.cli.audit import _audit_table
from adapters.cli.options import parse_slots_option
from adapters.cli.render import fmt, history_table, safe
from adapters.cli.usage import month_lines
from adapters.monitors import AuditMonitor
from adapters.read.queries import AuditEntry, HistoryEntry
from domain.actions import ActionTriggerMeta
from domain.errors import LedgerError
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, DeleteKeyPairResourcePolicyAction
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy
from tests.adapters.cli.helpers import error_line, given_domains, ledger, usage_error

# What must never reach a terminal raw: C0 (but the line feeds tables use), DEL, C1, and
# the bidi / zero-width / BOM / separator characters that hide or reorder text.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
HOSTILE = "AK\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\u200b\x9b31m\ufeff\u061c\x7f"
HOSTILE_SHOWN = r"AK\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\u200b\x9b31m\ufeff\u061c\x7f"
MARKUP = "[red]x[/red] [/oops] [link=http://evil]y[/link]"
# The root module (`adapters.cli.app` as an attribute is the typer app it defines).
ROOT_MODULE = importlib.import_module("adapters.cli.app")


def ok(db: str, *args: str, columns: int = 250) -> Result:
    """A successful command whose output is checked safe to print."""
    result = ledger(db, *args, columns=columns)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert not UNSAFE.search(result.stdout) and not UNSAFE.search(result.stderr)
    return result


def one_error_line(result: Result, exit_code: int) -> str:
    """The single stderr line of a failed command, checked safe to print."""
    line = error_line(result, exit_code)
    assert not UNSAFE.search(result.stderr)
    return line


def rendered(table: Table) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None).print(table)  # wide: no cell folds
    return buffer.getvalue()


# The escaping itself


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x00", r"\x00"),
        ("\x07", r"\x07"),
        ("\x1b", r"\x1b"),
        ("\n", r"\x0a"),
        ("\x7f", r"\x7f"),
        ("\x85", r"\x85"),
        ("\x9b", r"\x9b"),
        ("\u061c", r"\u061c"),
        ("\u200b", r"\u200b"),
        ("\u200f", r"\u200f"),
        ("\u2028", r"\u2028"),
        ("\u202a", r"\u202a"),
        ("\u202e", r"\u202e"),
        ("\u2066", r"\u2066"),
        ("\u2069", r"\u2069"),
        ("\ufeff", r"\ufeff"),
        ("\U000e0041", r"\U000e0041"),  # a tag character: invisible text
        ("\udcff", r"\udcff"),  # a lone surrogate (undecodable argv bytes): printing it would raise
    ],
)
def test_safe_shows_each_control_or_invisible_character_as_an_escape(char: str, shown: str) -> None:
    assert safe(f"a{char}b") == f"a{shown}b"


def test_safe_leaves_printable_text_alone_and_keeps_what_it_is_told() -> None:
    text = "한국어 \u211d \u0663 café \uff46\uff55\uff4c\uff4c [red]x[/red] a\\x1b tab-free"  # R, 3, "full"
    assert safe(text) == text
    assert safe("a\nb\x1b", keep="\n") == "a\nb\\x1b"


# The render helpers: every path by which a stored value becomes table text


def test_field_values_are_escaped_whatever_their_shape() -> None:
    assert fmt("description", HOSTILE) == HOSTILE_SHOWN
    assert fmt("total_resource_slots", {HOSTILE: "1"}) == f"{HOSTILE_SHOWN}=1"
    assert fmt("allowed_vfolder_hosts", {HOSTILE: ["mount-in-session"]}) == f"{HOSTILE_SHOWN}(mount-in-session)"
    assert fmt("user_uuids", ["a\nb", HOSTILE]) == f"a\\x0ab, {HOSTILE_SHOWN}"


def history_entry(**overrides: Any) -> HistoryEntry:
    fields: dict[str, Any] = dict(
        position=1,
        entity_type="group",
        entity_id=HOSTILE,
        version=1,
        event="Modified",
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        action_id="a",
        request_id=HOSTILE,
        actor={"role": "superadmin", "user_id": None, "access_key": HOSTILE},
        changes={HOSTILE: {"old": "[bold]", "new": HOSTILE}},
        details={"note\x1b": MARKUP},
    )
    return HistoryEntry(**{**fields, **overrides})


def test_history_table_escapes_actor_request_fields_and_values_and_reads_no_markup() -> None:
    out = rendered(history_table(f"history of group {HOSTILE!r} {MARKUP}", [history_entry()]))
    assert not UNSAFE.search(out)
    flat = re.sub(r"\s+", "", out)  # cells fold; compare without the folding
    assert re.sub(r"\s+", "", f"request {HOSTILE_SHOWN}") in flat
    assert re.sub(r"\s+", "", f"{HOSTILE_SHOWN}: [bold] -> {HOSTILE_SHOWN}") in flat
    assert re.sub(r"\s+", "", f"note\\x1b: {MARKUP}") in flat
    assert "[red]x[/red]" in out  # the title's markup is text too


def test_audit_table_escapes_every_stored_text() -> None:
    entry = AuditEntry(
        position=1,
        action_id="a",
        entity_type="keypair_resource_policy",
        operation="delete",
        entity_id=HOSTILE,
        status="denied",
        description=f"user {HOSTILE} may not delete {MARKUP}",
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        ended_at=datetime(2024, 1, 1, tzinfo=UTC),
        duration=0.001,
        error_code="permission_forbidden",
        request_id=HOSTILE,
        triggered_by=None,
        access_key=HOSTILE,
        role="user",
        domain_name="default",
        spec={},
    )
    out = rendered(_audit_table([entry]))
    assert not UNSAFE.search(out)
    flat = re.sub(r"\s+", "", out)
    assert re.sub(r"\s+", "", f"user {HOSTILE_SHOWN}") in flat
    assert re.sub(r"\s+", "", f"denied: user {HOSTILE_SHOWN} may not delete {MARKUP}") in flat


def test_usage_table_escapes_names_from_workload_facts() -> None:
    names = ("cpu_allocated", "cpu_used", "mem_allocated", "mem_used", "gpu_allocated", "gpu_mem_allocated")
    usage = dict.fromkeys((*names, "io_read", "io_write", "disk_used"), 0)
    kernel: dict[str, Any] = {"id": HOSTILE, "name": MARKUP, "status": "RUNNING", "created_at": "x", "used_time": None}
    kernel |= {"used_days": None, "nfs": [HOSTILE], **usage}
    group = {"g_id": "g", "g_name": HOSTILE, "c_infos": [kernel], **{f"g_{k}": v for k, v in usage.items()}}
    out = "\n".join(month_lines("202410", "UTC", [group], None, 1000))
    assert not UNSAFE.search(out)
    assert HOSTILE_SHOWN[:12] in out and "[red]x[/red]" in out


# End to end: values stored by an older, laxer ledger


def store_raw_policy(db: str, name: str, **fields: Any) -> None:
    """Saves a policy as validation never would let it be created today."""
    with open_ledger(db) as opened:
        template = CreateKeyPairResourcePolicyAction(creator={"name": "template"}).creator.fields_json()
        opened.app.save(KeyPairResourcePolicy.create(name, {**template, **fields}))


def test_a_stored_hostile_policy_is_shown_escaped_everywhere(db: str) -> None:
    name = f"p{HOSTILE}"
    hosts = {HOSTILE: ["mount-in-session"], MARKUP: ["mount-in-session"]}
    store_raw_policy(db, name, allowed_vfolder_hosts=hosts, total_resource_slots={"cpu": "1"})
    for command in (["policy", "show", name], ["policy", "list"], ["policy", "history", name]):
        out = ok(db, *command).stdout
        assert HOSTILE_SHOWN[:12] in re.sub(r"\s+", "", out), command
        assert "[/oops]" in out, command  # markup shown as typed, and its bad tag did not crash rich
    assert ok(db, "policy", "show", name, "--version", "1").stdout.count("\\u202e") >= 2
    # JSON escapes them too (ensure_ascii) and gives the stored value back exactly.
    shown = ledger(db, "--json", "policy", "show", name)
    assert "\\u001b" in shown.stdout and not UNSAFE.search(shown.stdout)
    assert json.loads(shown.stdout)["name"] == name


def laxer_meta(role: str) -> ActionTriggerMeta:
    """An actor as an older ledger took it: access key and request id unchecked."""
    meta = ActionTriggerMeta(None, "AK", role, "default", "r")
    object.__setattr__(meta, "access_key", HOSTILE)  # past today's validation, as a stored event may be
    object.__setattr__(meta, "request_id", HOSTILE)
    object.__setattr__(meta, "domain_name", f"default{HOSTILE}")
    return meta


def test_stored_actor_fields_are_shown_escaped(db: str) -> None:
    with open_ledger(db) as opened:
        processors = opened.processors.keypair_resource_policy
        create = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
        asyncio.run(processors.create_keypair_resource_policy.wait_for_complete(create, laxer_meta("superadmin")))
        delete = DeleteKeyPairResourcePolicyAction(name="p")
        with pytest.raises(LedgerError, match="may not"):
            asyncio.run(processors.delete_keypair_resource_policy.wait_for_complete(delete, laxer_meta("user")))
    history = re.sub(r"\s+", "", ok(db, "policy", "history", "p", columns=1000).stdout)  # wide: no folds
    assert re.sub(r"\s+", "", f"request {HOSTILE_SHOWN}") in history
    table = re.sub(r"\s+", "", ok(db, "audit", columns=1000).stdout)
    assert re.sub(r"\s+", "", f"denied: user {HOSTILE_SHOWN} may not delete") in table
    lines = ok(db, "audit", "--jsonl").stdout.splitlines()
    assert all("\\u001b" in line for line in lines)
    assert [json.loads(line)["access_key"] for line in lines] == [HOSTILE, HOSTILE]
    assert [e["request_id"] for e in json.loads(ok(db, "--json", "audit").stdout)] == [HOSTILE, HOSTILE]
    assert json.loads(ok(db, "--json", "policy", "history", "p").stdout)[0]["actor"]["access_key"] == HOSTILE
    assert 'domain="default' + HOSTILE_SHOWN in ok(db, "metrics").stdout  # label values escaped too


def test_a_hostile_actor_option_is_refused_in_one_escaped_line(db: str) -> None:
    line = one_error_line(ledger(db, "--access-key", HOSTILE, "policy", "list"), 1)
    assert line.startswith("error: ledger_invalid_parameters: --access-key: ")  # the root option


def test_markup_in_a_group_description_prints_literally(db: str) -> None:
    group = str(uuid.UUID(int=7))
    given_domains(db, "d")
    ok(db, "group", "create", "g", "--domain-name", "d", "--id", group, "--description", MARKUP)
    assert MARKUP in ok(db, "group", "show", group).stdout


# Errors: one line, the right exit code


def test_a_slot_given_twice_is_a_usage_error_naming_it(db: str) -> None:
    for slots in ("cpu=1,cpu=2", " cpu = 1 , mem=1, cpu=2", '{"cpu": "1", "cpu": "2"}'):
        line = one_error_line(ledger(db, "policy", "create", "p", "--total-resource-slots", slots), 2)
        assert "--total-resource-slots" in line and "'cpu' given twice" in line, slots
    hosts = '{"nfs": ["mount-in-session"], "nfs": []}'
    assert "'nfs' given twice" in one_error_line(
        ledger(db, "policy", "create", "p", "--allowed-vfolder-hosts", hosts), 2
    )
    assert parse_slots_option("cpu=1,mem=2") == {"cpu": "1", "mem": "2"}  # distinct keys still pass
    assert json.loads(ok(db, "--json", "policy", "list").stdout)[0]["name"] == "default"  # nothing created


def test_a_json_number_too_large_for_a_float_is_refused_not_unlimited(db: str) -> None:
    for slots in ('{"cpu": 1e400}', '{"mem": 1e400}'):
        line = one_error_line(ledger(db, "policy", "create", "p", "--total-resource-slots", slots), 1)
        assert "--total-resource-slots" in line and "too large" in line, slots
    assert json.loads(ok(db, "--json", "policy", "list").stdout)[0]["name"] == "default"  # nothing created


def test_usage_errors_are_one_line_with_a_pointer_to_help(db: str) -> None:
    bad_int = one_error_line(ledger(db, "policy", "create", "p", "--max-concurrent-sessions", "many"), 2)
    assert bad_int.startswith("error: usage: ") and "'--max-concurrent-sessions'" in bad_int
    assert bad_int.endswith("policy create --help')")
    unknown = one_error_line(ledger(db, "policy", "bogus\x1b[2J"), 2)
    assert "bogus\\x1b[2J" in unknown
    assert "--owner" in one_error_line(ledger(db, "keypair", "create", "AK"), 2)  # a missing option


def test_no_arguments_prints_the_help_not_an_error(db: str) -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert "Usage" in result.stdout and "error" not in result.stderr


def test_an_unexpected_exception_is_one_internal_error_line(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line \x1b[2J")

    monkeypatch.setattr(ROOT_MODULE, "open_ledger", broken)
    line = one_error_line(ledger(db, "policy", "list"), 1)
    assert line == r"internal error: RuntimeError: boom second line \x1b[2J (LEDGER_DEBUG=1 shows the traceback)"
    # LEDGER_DEBUG=1 hides nothing: the exception escapes with its traceback.
    debug = CliRunner(env={"LEDGER_DEBUG": "1"}).invoke(app, ["--db", db, "policy", "list"])
    assert debug.exit_code == 1 and isinstance(debug.exception, RuntimeError)


def test_a_ledger_error_raised_anywhere_is_one_error_line(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class Odd(LedgerError):
        error_detail = "odd\x1b"

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise Odd("multi\nline\u202e")

    monkeypatch.setattr(ROOT_MODULE, "open_ledger", refuse)
    assert one_error_line(ledger(db, "policy", "list"), 1) == r"error: ledger_odd\x1b: multi line\u202e"


# A failing monitor: logged as one line, never over the command's own outcome


@pytest.fixture
def audit_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    async def done(self: AuditMonitor, action: object, result: object) -> None:
        raise OSError("attempt to write a readonly database")

    monkeypatch.setattr(AuditMonitor, "done", done)


@pytest.mark.usefixtures("audit_broken")
def test_a_failing_audit_monitor_is_one_warning_line_and_the_action_stands(db: str) -> None:
    created = ledger(db, "policy", "create", "p")
    assert created.exit_code == 0, created.stderr
    assert "created keypair resource policy 'p'" in created.stdout
    assert created.stderr.count("\n") == 1 and "Traceback" not in created.stderr
    assert created.stderr.startswith("warning: domain.actions.processor: action monitor AuditMonitor failed in done")
    assert created.stderr.rstrip().endswith("OSError: attempt to write a readonly database")
    # A refused action: its own error stays the last line, the right one.
    refused = ledger(db, "policy", "delete", "default")
    assert refused.exit_code == 1
    lines = refused.stderr.splitlines()
    assert lines[-1].startswith("error: keypair_resource_policy_delete_system_policy: ")
    assert len(lines) == 2 and lines[0].startswith("warning: ") and "Traceback" not in refused.stderr


@pytest.mark.usefixtures("audit_broken")
def test_with_debug_the_monitor_failure_keeps_its_traceback(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DEBUG", "1")
    created = CliRunner().invoke(app, ["--db", db, "policy", "create", "p"])
    assert created.exit_code == 0
    assert "Traceback" in created.stderr and "OSError: attempt to write a readonly database" in created.stderr


def test_logging_is_left_as_it_was_after_a_command(db: str) -> None:
    import logging

    handlers = list(logging.getLogger().handlers)
    ok(db, "policy", "list")
    assert logging.getLogger().handlers == handlers


HUGE_KEY = "k" * 10_000


@pytest.mark.parametrize(
    "command",
    [
        ("policy", "show", HUGE_KEY),
        ("policy", "history", HUGE_KEY),
        ("keypair", "show", HUGE_KEY),
        ("group", "show", HUGE_KEY),
        ("domain", "show", HUGE_KEY),
        ("projections", "skip", HUGE_KEY, "--position", "1", "--reason", "r"),
    ],
    ids=lambda command: "-".join(command[:2]),
)
def test_a_lookup_of_a_huge_key_is_refused_in_one_short_line(db: str, command: tuple[str, ...]) -> None:
    """A lookup passes its key to the read models unchecked (no entity has it, so none is
    found), and the refusal quoted the whole key back: a 10 kB error line."""
    line = error_line(ledger(db, *command), 1)
    assert "\n" not in line and len(line) < 400, line
    assert "'kkkk" in line and "..." in line, line
    name = "n" * 256  # the longest a real key may be is named in full
    assert f"'{name}'" in error_line(ledger(db, "policy", "show", name), 1)


@pytest.mark.parametrize("value", ["nan", "NaN", "-nan"])
def test_nan_for_a_bounded_number_is_said_not_a_number_not_out_of_a_bound(db: str, value: str) -> None:
    """`--poll-interval nan` said 'Input should be less than or equal to 86400': NaN fails
    every comparison, so the first bound checked was named as the reason."""
    line = usage_error(db, "projections", "run", "--poll-interval", value)
    assert f"Invalid value for '--poll-interval': expected a number, got {value!r} " in line
