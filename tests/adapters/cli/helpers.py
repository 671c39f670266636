"""Running `ledger` in-process for tests, and the workload facts several CLI tests import."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from adapters.cli import app

ROOT = Path(__file__).resolve().parents[3]
ACTOR = "00000000-0000-0000-0000-0000000000a1"
GROUP = "0e0e0e0e-0000-4000-8000-000000000001"
U1 = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "0e0e0e0e-0000-4000-8000-000000000002"  # a second group
SERVICE = ["--role", "service", "--user-id", ACTOR, "--access-key", "AKSVC", "--request-id", "import-1"]
NS = uuid.UUID("5eed0000-0000-4000-8000-000000000000")


def ledger(
    db: str, *args: str, input: str | None = None, env: dict[str, str | None] | None = None, columns: int = 300
) -> Result:
    """`ledger --db DB ARGS...`; wide enough that rich never folds a cell the assertions look
    for; the time zone comes from the options and tracebacks stay off unless `env` sets them."""
    environment = {"COLUMNS": str(columns), "LEDGER_TIMEZONE": None, "LEDGER_DEBUG": None, **(env or {})}
    return CliRunner(env=environment).invoke(app, ["--db", db, *args], input=input)


def ok(db: str, *args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    result = ledger(db, *args, input=input, env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def stdout_of(db: str, *args: str, env: dict[str, str | None] | None = None) -> str:
    """What a successful command prints on stdout."""
    return ok(db, *args, env=env).stdout


def as_json(db: str, *args: str, input: str | None = None) -> Any:
    return json.loads(ok(db, "--json", *args, input=input).stdout)


def error_line(result: Result, exit_code: int) -> str:
    """The one stderr line of a failed command (nothing on stdout, no traceback)."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr.rstrip("\n")


def refused(db: str, *args: str, input: str | None = None) -> str:
    """The one stderr line of a command the ledger refuses (exit 1)."""
    return error_line(ledger(db, *args, input=input), 1)


def usage_error(db: str, *args: str) -> str:
    """The one stderr line of a malformed command (exit 2)."""
    return error_line(ledger(db, *args), 2)


def labelled_utc(table: str, header: str) -> bool:
    """Whether the column `header` of a printed table says its times are UTC: `(UTC)`
    after the header, or under it on the header's second line."""
    lines = table.splitlines()
    for n, line in enumerate(lines[:-1]):
        at = line.find(f" {header} ") + 1
        if at > 0:
            return line[at + len(header) :].startswith(" (UTC)") or lines[n + 1][at:].startswith("(UTC)")
    raise AssertionError(f"no column {header!r} in {table}")


def given_users(db: str, *users: str, domain: str = "default") -> None:
    """Creates the domain and the users a test's keypairs and groups name (groups and
    keypairs name existing domains; owners and members are existing users of them),
    directly through the store, as a superadmin would have beforehand."""
    from adapters.bootstrap import open_ledger
    from tests.domain.fakes import ensure_domain, ensure_user

    with open_ledger(db) as opened:
        ensure_domain(opened.app.store, domain)
        for user in users:
            ensure_user(opened.app.store, user, domain)


def given_domains(db: str, *domains: str) -> None:
    for domain in domains:
        given_users(db, domain=domain)


# Workload facts, as `ledger workload import` reads them


def jsonl(facts: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(f) + "\n" for f in facts)


def workload_facts(group: str = GROUP, vfolders: int = 20, kernels: int = 60, endpoints: int = 10) -> tuple[list, list]:
    """(what a busy group does, what ends it all): vfolders, kernels (every other one mounting
    a vfolder) with two stats reports each, endpoints; then terminations and destroys."""
    vf = [str(uuid.uuid5(NS, f"vf{i}")) for i in range(vfolders)]
    ks = [str(uuid.uuid5(NS, f"k{i}")) for i in range(kernels)]
    eps = [str(uuid.uuid5(NS, f"ep{i}")) for i in range(endpoints)]
    begin: list[dict[str, Any]] = [
        {"fact": "create_vfolder", "vfolder_id": v, "name": f"vf{i}", "host": "nfs", "group_id": group}
        for i, v in enumerate(vf)
    ]
    for i, k in enumerate(ks):
        begin.append(
            {
                "fact": "start_kernel",
                "kernel_id": k,
                "session_id": str(uuid.uuid5(NS, f"s{i}")),
                "session_name": f"s{i}",
                "group_id": group,
                "domain_name": "d1",
                "user_id": U1,
                "access_key": "AKUSER",
                "occupied_slots": {"cpu": "1", "mem": "2g"},
                "started_at": f"2024-10-01T{i % 24:02d}:00:00Z",
                "mounts": [vf[i % vfolders]] if i % 2 == 0 else [],
            }
        )
    for round_ in range(2):
        begin += [
            {
                "fact": "report_kernel_stats",
                "kernel_id": k,
                "reported_at": "2024-10-02T00:00:00Z",
                "cpu_used": round_ + 1,
            }
            for k in ks
        ]
    begin += [
        {"fact": "create_endpoint", "endpoint_id": e, "group_id": group, "name": f"ep{i}"} for i, e in enumerate(eps)
    ]
    end: list[dict[str, Any]] = [
        {"fact": "terminate_kernel", "kernel_id": k, "terminated_at": "2024-10-03T00:00:00Z", "status": "TERMINATED"}
        for k in ks
    ]
    end += [{"fact": "destroy_endpoint", "endpoint_id": e} for e in eps]
    return begin, end
