"""Start-up: `import adapters.cli` and `ledger --help` load typer, rich and the option
declarations, never the store, the read models or the domain's models; the commands import
those when they run. Structural, in a fresh interpreter (what this process has imported
already says nothing): no timings are asserted.

The option declarations spell out a few values the domain owns, so as not to import it;
these tests keep them equal to the domain's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters.cli import group, policy, projections
from adapters.cli.app import RoleChoice
from adapters.cli.options import nullable_fields
from adapters.rebuild import PARALLEL_FROM
from domain.actions import Role
from domain.group import GroupModifier
from domain.keypair_resource_policy import KeyPairResourcePolicyModifier

# Third-party packages and project modules only a running command may need.
HEAVY = (
    "sqlalchemy",
    "eventsourcing",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
    "pydantic",
    "adapters.bootstrap",
    "adapters.store",
    "adapters.read",
    "adapters.monitors",
    "adapters.follow",
    "adapters.rebuild",
    "projections",
    "domain.actions",
    "domain.validation",
    "domain.entity",
    "domain.keypair_resource_policy",
    "domain.keypair",
    "domain.group",
    "domain.workload",
    "domain.projection_ops",
)

# Prints the modules loaded by `import adapters.cli`, then by `ledger --help` on top of it.
PROBE = """
import json, sys
import adapters.cli
imported = sorted(sys.modules)
sys.argv = ["ledger", "--help"]
try:
    adapters.cli.main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"import": imported, "help": sorted(sys.modules), "code": code}))
"""


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == heavy or m.startswith(f"{heavy}.") for heavy in HEAVY)]


def _probe() -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    last: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return last


def test_importing_the_cli_and_its_help_load_no_store_read_model_or_domain_model() -> None:
    loaded = _probe()
    assert loaded["code"] == 0
    imported, helped = loaded["import"], loaded["help"]
    assert isinstance(imported, list) and isinstance(helped, list)
    assert "adapters.cli.policy" in imported and "typer" in imported  # the probe saw the CLI load
    for name in ("sqlalchemy", "eventsourcing", "psycopg", "prometheus_client"):
        assert name not in imported, f"`import adapters.cli` imports {name}"
    assert _heavy(imported) == []
    assert _heavy(helped) == []  # building every command's options (typer does, for --help) too


def test_the_spelled_out_role_choices_are_the_domains_roles() -> None:
    assert [choice.value for choice in RoleChoice] == [role.value for role in Role]


def test_the_spelled_out_nullable_fields_are_the_modifiers() -> None:
    assert nullable_fields(KeyPairResourcePolicyModifier) == policy.NULLABLE_FIELDS
    assert nullable_fields(GroupModifier) == group.NULLABLE_GROUP_FIELDS


def test_the_spelled_out_parallel_threshold_is_the_rebuilds() -> None:
    assert projections.PARALLEL_FROM == PARALLEL_FROM


SQLITE_PROBE = """
import json, sys
from typer.testing import CliRunner
from adapters.cli import app
result = CliRunner().invoke(app, ["--db", f"sqlite:///{sys.argv[1]}", "policy", "create", "p"])
print(json.dumps({"code": result.exit_code, "output": result.output, "modules": sorted(sys.modules)}))
"""


def test_a_command_on_a_sqlite_ledger_loads_no_postgresql_driver(tmp_path: Path) -> None:
    # Start-up: psycopg and the library's PostgreSQL module are most of what a SQLite
    # command would import needlessly; only a PostgreSQL ledger loads them.
    path = tmp_path / "ledger.db"
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_PROBE, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.splitlines()[-1])
    assert probe["code"] == 0, probe["output"]
    assert "sqlalchemy" in probe["modules"]  # the command did open the ledger
    loaded = [
        m for m in probe["modules"] if m.split(".")[0] in ("psycopg", "psycopg_pool") or m == "eventsourcing.postgres"
    ]
    assert loaded == []
