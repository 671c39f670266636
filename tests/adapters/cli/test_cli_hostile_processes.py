"""The console script under hostile input, in real processes: calendar edges, numbers of
5,000 digits, inf and nan, unicode digits, control and bidi characters, 5,000-character
strings, a bad LEDGER_EXTRA_SLOTS, bad --db URLs, across the main command groups.

Each case must end in one stderr line (no traceback, nothing on stdout), with exit 1 for
a value the ledger refuses or 2 for malformed syntax, no raw control character, and never
as an `internal error` (that would be an exception nobody translated). Every case runs on
its own copy of one prepared ledger; they run two at a time (subprocess start dominates)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.bootstrap import open_ledger
from domain.group import CreateGroupAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.adapters.cli.helpers import ROOT

pytestmark = pytest.mark.slow

UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
GROUP = "0e0e0e0e-0000-4000-8000-0000000000aa"
OWNER = "11111111-2222-4333-8444-555555555555"
KERNEL = "aaaaaaaa-0000-4000-8000-0000000000aa"
SESSION = "5e55a000-0000-4000-8000-0000000000aa"
HUGE = "1" + "0" * 5000  # 10**5000, as digits
LONG = "x" * 5000
ESCAPES = "n\x1b[31m\x1b]0;pwned\x07\u202eevil\u200b\x9b2J"
ARABIC_THREE = "\u0663"  # ARABIC-INDIC DIGIT THREE: int() and Decimal() read it as 3


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    exit_code: int
    env: dict[str, str] = field(default_factory=dict)
    db: str | None = None  # a --db URL of its own instead of the case's copy of the ledger


def kernel_start(*changes: str, **options: str) -> tuple[str, ...]:
    given = {
        "--session-id": SESSION,
        "--session-name": "train",
        "--group-id": GROUP,
        "--owner": OWNER,
        "--kernel-access-key": "AKUSER",
        "--slots": "cpu=1",
        "--started-at": "2024-10-01T00:00:00Z",
        **{f"--{k.replace('_', '-')}": v for k, v in options.items()},
    }
    return ("workload", "kernel-start", KERNEL, *(x for pair in given.items() for x in pair), *changes)


CASES = [
    # policy create
    Case("policy-slot-10**5000", ("policy", "create", "q", "--total-resource-slots", f"cpu={HUGE}"), 1),
    Case("policy-slot-nan", ("policy", "create", "q", "--total-resource-slots", "cpu=nan"), 1),
    Case("policy-slot-unicode-digit", ("policy", "create", "q", "--total-resource-slots", f"cpu={ARABIC_THREE}"), 1),
    Case("policy-slot-twice", ("policy", "create", "q", "--total-resource-slots", "cpu=1,cpu=2"), 2),
    Case("policy-int-10**5000", ("policy", "create", "q", "--max-concurrent-sessions", HUGE), 2),
    Case("policy-int-inf", ("policy", "create", "q", "--max-concurrent-sessions", "inf"), 2),
    Case("policy-int-unicode-digit", ("policy", "create", "q", "--idle-timeout", ARABIC_THREE), 2),
    Case("policy-name-escapes", ("policy", "create", ESCAPES), 1),
    Case("policy-name-5000", ("policy", "create", LONG), 1),
    # policy modify
    Case("modify-json-key-twice", ("policy", "modify", "p", "--total-resource-slots", '{"cpu":"1","cpu":"2"}'), 2),
    Case("modify-unknown-escaped-name", ("policy", "modify", ESCAPES, "--idle-timeout", "1"), 1),
    Case("modify-host-escapes", ("policy", "modify", "p", "--allowed-vfolder-hosts", ESCAPES), 1),
    # keypair create
    Case(
        "keypair-owner-unicode-digit",
        ("keypair", "create", "AK1", "--owner", ARABIC_THREE, "--resource-policy", "p"),
        1,
    ),
    Case("keypair-key-escapes", ("keypair", "create", ESCAPES, "--owner", OWNER, "--resource-policy", "p"), 1),
    Case("keypair-key-5000", ("keypair", "create", LONG, "--owner", OWNER, "--resource-policy", "p"), 1),
    # group create / modify
    Case("group-description-5000", ("group", "create", "g", "--domain-name", "default", "--description", LONG), 1),
    Case("group-name-escapes", ("group", "create", ESCAPES, "--domain-name", "default"), 1),
    Case("group-modify-slot-nan", ("group", "modify", GROUP, "--total-resource-slots", "cpu=nan"), 1),
    Case("group-modify-bad-id", ("group", "modify", ESCAPES, "--name", "x"), 1),
    # workload kernel-start
    Case("kernel-year-1-east-of-utc", kernel_start(started_at="0001-01-01T00:00:00+01:00"), 1),
    Case("kernel-year-9999-west-of-utc", kernel_start(started_at="9999-12-31T23:59:59-01:00"), 1),
    Case("kernel-time-nan", kernel_start(started_at="nan"), 1),
    Case("kernel-time-unicode-digits", kernel_start(started_at="\u0662\u0660\u0662\u0664-10-01T00:00:00Z"), 1),
    Case("kernel-slot-10**5000", kernel_start(slots=f"cpu={HUGE}"), 1),
    Case("kernel-session-name-escapes", kernel_start(session_name=ESCAPES), 1),
    # usage reports
    Case("usage-month-999912", ("usage", "month", "999912"), 1),
    Case("usage-month-000101-seoul", ("usage", "month", "000101", "--timezone", "Asia/Seoul"), 1),
    Case("usage-period-99991231", ("usage", "period", "99991231", "99991231"), 1),
    Case("usage-month-unicode-digits", ("usage", "month", "\u0662\u0660\u0662\u0664\u0661\u0660"), 1),
    # audit
    Case("audit-since-year-1-east-of-utc", ("audit", "--since", "0001-01-01T00:00:00+01:00"), 1),
    Case("audit-since-nan", ("audit", "--since", "nan"), 1),
    # configuration
    Case("extra-slots-bogus", ("policy", "list"), 1, env={"LEDGER_EXTRA_SLOTS": "fpga:bogus"}),
    Case("db-port-not-a-number", ("policy", "list"), 1, db="postgresql://u@127.0.0.1:abc/db"),
    Case("timezone-env-unknown", ("usage", "month", "202410"), 1, env={"LEDGER_TIMEZONE": "Mars/Base"}),
]


def command() -> list[str]:
    """The installed console script (what operators run), else the module."""
    script = Path(sys.executable).with_name("ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adapters.cli"]


def environment(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return {**base, "PYTHONPATH": str(ROOT), "COLUMNS": "120", **extra}


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case's process, run two at a time, each on its own copy of a prepared ledger."""
    home = tmp_path_factory.mktemp("hostile")
    base = home / "base.db"
    with open_ledger(f"sqlite:///{base}", timezone="UTC") as ledger:
        policy = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
        asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(policy))
        group = CreateGroupAction(input={"name": "team", "domain_name": "default"}, group_id=GROUP)
        asyncio.run(ledger.services.group.create_group(group))

    def one(case: Case) -> subprocess.CompletedProcess[str]:
        where = home / case.name
        where.mkdir()
        for file in home.glob("base.db*"):
            shutil.copy(file, where / file.name)
        url = case.db or f"sqlite:///{where / 'base.db'}"
        return run([*command(), "--db", url, *case.args], environment(**case.env), where)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((c.name for c in CASES), pool.map(one, CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_ends_in_one_safe_error_line(
    case: Case, outcomes: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = outcomes[case.name]
    shown = (done.returncode, done.stdout[:300], done.stderr[:500])
    assert "Traceback" not in done.stdout + done.stderr, shown
    assert done.stdout == "", shown
    line = done.stderr.strip()
    assert line and "\n" not in line, shown
    assert not UNSAFE.search(done.stderr), shown
    assert not line.startswith("internal error"), shown  # an exception nobody translated
    assert line.startswith("error: "), shown
    assert done.returncode == case.exit_code, shown


def test_a_bug_is_one_internal_error_line_and_its_traceback_with_debug(tmp_path: Path) -> None:
    script = (
        "import importlib, sys\n"
        "from adapters.cli import main\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('boom\\x1b[2J')\n"
        "importlib.import_module('adapters.cli.app').open_ledger = broken\n"
        "sys.argv[0] = 'ledger'\n"
        "main()\n"
    )
    argv = [sys.executable, "-c", script, "--db", f"sqlite:///{tmp_path / 'l.db'}", "policy", "create", "p"]
    quiet = run(argv, environment(), tmp_path)
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert quiet.stderr == "internal error: RuntimeError: boom\\x1b[2J (LEDGER_DEBUG=1 shows the traceback)\n"
    debug = run(argv, environment(LEDGER_DEBUG="1"), tmp_path)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


def test_a_failing_monitor_in_a_real_process_is_one_warning_line(tmp_path: Path) -> None:
    """What a read-only database does to the audit monitor, without needing one (root
    ignores file permissions): the action stands, the failure is one logged line."""
    script = (
        "import sys\n"
        "import adapters.monitors as monitors\n"
        "async def done(self, action, result):\n"
        "    raise OSError('attempt to write a readonly database')\n"
        "monitors.AuditMonitor.done = done\n"
        "from adapters.cli import main\n"
        "sys.argv[0] = 'ledger'\n"
        "main()\n"
    )
    url = f"sqlite:///{tmp_path / 'l.db'}"
    done = run([sys.executable, "-c", script, "--db", url, "policy", "create", "p"], environment(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created keypair resource policy 'p'" in done.stdout
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("warning: domain.actions.processor: action monitor AuditMonitor failed in done")
    refused = run([sys.executable, "-c", script, "--db", url, "policy", "delete", "default"], environment(), tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.splitlines()[-1].startswith("error: keypair_resource_policy_delete_system_policy: ")


def test_a_cli_that_cannot_even_be_imported_says_so_in_one_line(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['adapters.store.chain'] = None  # as a broken install or a module failing at import\n"
        "from adapters.cli import main\n"
        "main()\n"
    )
    done = run([sys.executable, "-c", script, "policy", "list"], environment(), tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("internal error: ModuleNotFoundError: ") and done.stderr.count("\n") == 1, done.stderr
    debug = run([sys.executable, "-c", script, "policy", "list"], environment(LEDGER_DEBUG="1"), tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("policy", "list"),  # a table (rich exited 1 itself)
        ("--json", "policy", "list"),  # one JSON document (click exited 1, silently)
        ("audit", "--jsonl"),  # a stream
        ("--json", "policy", "create", "q"),  # stored, then its answer could not be written
        ("--help",),
        ("policy",),  # the group's help (a traceback)
    ],
)
def test_a_reader_that_went_away_is_exit_141_and_nothing_on_stderr(tmp_path: Path, args: tuple[str, ...]) -> None:
    """`ledger ... | head` under `set -o pipefail`: a closed pipe is told apart from a refusal
    (exit 1) as a shell reports a process SIGPIPE ended, without a line about it."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert (
        run(
            [sys.executable, "-m", "adapters.cli", "--db", url, "policy", "create", "p"], environment(), ROOT
        ).returncode
        == 0
    )
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write
    try:
        done = subprocess.run(
            [sys.executable, "-m", "adapters.cli", "--db", url, *args],
            cwd=tmp_path,
            env=environment(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_an_import_of_stdin_when_stdin_is_closed_is_a_usage_error(tmp_path: Path) -> None:
    """`ledger workload import - <&-` (a cron job's stdin) was `internal error: RuntimeError:
    Was not able to determine binary stream for sys.stdin.`"""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "--db", url, "--role", "service", "workload", "import", "-"],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.close(0),  # the child starts with no stdin at all
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith("error: usage: Invalid value for 'FILE.jsonl': '-' reads stdin, which is closed")
