"""One backend fixture for every store-level test: each runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (override with LEDGER_TEST_POSTGRES_URL).
Each run has a database of its own (LEDGER_TEST_DATABASE names another), dropped when the
run ends, and each test its own schema in it, dropped afterwards or, for a test of the
`ledger` fixture, reset and handed to the next such test (`tests.pg_schemas`). When the
server is unreachable the PostgreSQL half skips with the reason, except under CI
(CI=true), where it fails.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer.testing
from hypothesis import settings

from adapters.bootstrap import GROUP_COMMIT_VARIABLE, Ledger, open_ledger
from domain.actions import ActionTriggerMeta
from tests.pg_schemas import SchemaPool, drop_schemas

# A PostgreSQL ledger needs its master key from the environment (docs/ERASURE.md); tests
# and the processes they start share this fixed one. SQLite file ledgers would make a key
# file beside the database without it.
os.environ.setdefault("LEDGER_MASTER_KEY", "dGVzdHMtb25seS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=")

# No per-example deadline (tests assert no timings): with the suite on every core, one
# example can wait behind another worker, PostgreSQL or a server process for longer than
# Hypothesis's default 200 ms, which would fail a correct test.
settings.register_profile("ledger", deadline=None)
settings.load_profile("ledger")

# typer's CliRunner turns the app into its click command tree on every invoke: ~50 ms,
# a fifth of the suite's CPU across its thousands of in-process CLI runs. The tree is the
# same each time (the `ledger` process builds it once too), so each app's is built once.
typer.testing._get_command = cache(typer.testing._get_command)

PG_SERVER = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# Each run has a database of its own, dropped when the run ends: thousands of schemas made
# and dropped leave dead rows in the database's own catalogs, which nothing reclaims on a
# server without autovacuum (a later run's DDL then crawled: 5 minutes became 15). The
# first process names it; xdist workers and the processes tests start inherit the name.
_DATABASE_VARIABLE = "LEDGER_TEST_DATABASE"
_RUN_DATABASE_PREFIX = "ledger_test_run_"
_OWN_DATABASE = _DATABASE_VARIABLE not in os.environ
os.environ.setdefault(_DATABASE_VARIABLE, f"{_RUN_DATABASE_PREFIX}{os.getpid()}")
PG_DATABASE = os.environ[_DATABASE_VARIABLE]
# The advisory lock key that serialises creating PG_DATABASE across test processes.
_CREATE_LOCK = 0x6C6564676572


@cache
def _postgres_problem() -> str | None:
    """None when the test database is ready, else why it is not."""
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3) as conn:
            # pytest-xdist workers start together: the lock (released with the connection)
            # lets one create the database while the others wait, then find it there.
            conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK,))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    except psycopg.errors.DuplicateDatabase:
        return None  # made by a test run outside the lock (an older checkout, say)
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_SERVER} is unreachable: {exc}".strip()
    return None


def _drop_run_databases(conn: psycopg.Connection[Any]) -> None:
    """Drops this run's database, and those of earlier runs killed before they could:
    named by a process no longer alive on this machine, with nobody connected."""
    names = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{_RUN_DATABASE_PREFIX}%",))
    for (name,) in names.fetchall():
        pid = name.removeprefix(_RUN_DATABASE_PREFIX)
        if name != PG_DATABASE and (not pid.isdigit() or _alive(int(pid))):
            continue
        busy = conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
        if name == PG_DATABASE or busy is None:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PROJECT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """The run's first process compiles the project's modules once, before any worker or
    subprocess starts. Where PYTHONDONTWRITEBYTECODE is set (this machine kind sets it),
    nothing else would, and every process the suite starts (the xdist workers, each CLI
    and server process, the import-order test's 187 imports) compiled every module from
    source again: ~0.25 s per process, 10% of the CLI tests' time."""
    if hasattr(config, "workerinput"):
        return
    for package in ("domain", "projections", "adapters"):
        compileall.compile_dir(PROJECT / package, quiet=1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Each process drops the schemas its pool kept (`tests.pg_schemas`): a run on a
    database it does not drop (LEDGER_TEST_DATABASE set) must not pile them up."""
    if _SCHEMAS.templates:
        with contextlib.suppress(psycopg.Error):  # the server went away: nothing to drop there
            _SCHEMAS.drop_all()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's first process drops the run's database once every worker is done."""
    if not _OWN_DATABASE or hasattr(config, "workerinput"):
        return
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3) as conn:
            _drop_run_databases(conn)
    except psycopg.Error:
        pass  # unreachable: nothing was made there


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI requires PostgreSQL: {problem}")
    pytest.skip(problem)


@contextmanager
def own_database(prefix: str, options: str = "") -> Iterator[str]:
    """The URL of a PostgreSQL database of this process's own, made with `options` (SQL
    after CREATE DATABASE) and dropped after: for a test that changes what a whole database
    is (its collation, its roles' settings), which the run's database shares with every worker."""
    require_postgres()
    database = f"{prefix}_{os.getpid()}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}" {options}')
    try:
        yield f"{PG_SERVER}/{database}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _drop_schema(schema: str) -> None:
    drop_schemas(f"{PG_SERVER}/{PG_DATABASE}", [schema])


@contextmanager
def fresh_url(backend: str) -> Iterator[str]:
    """A new, empty ledger location; removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledger-") as folder:
            yield f"sqlite:///{folder}/ledger.db"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{PG_SERVER}/{PG_DATABASE}?schema={schema}"
    finally:
        _drop_schema(schema)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name, for tests that need several fresh locations on it."""
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def ledger_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty ledger location on each backend; for a test that takes the `ledger`
    fixture, on PostgreSQL, one as a fresh open leaves it (`tests.pg_schemas`)."""
    if backend != "postgresql" or "ledger" not in request.fixturenames:
        with fresh_url(backend) as url:
            yield url
        return
    require_postgres()
    environment = _SCHEMAS.environment()
    schema = _SCHEMAS.take() or f"t_{uuid.uuid4().hex[:16]}"
    url = f"{PG_SERVER}/{PG_DATABASE}?schema={schema}"
    kept = False
    try:
        yield url
        # Handed on only under the environment it was taken in: a LEDGER_* variable the
        # test changed and has not restored yet would key (and make) another template.
        kept = _SCHEMAS.environment() == environment and _SCHEMAS.give_back(schema, _open_and_close)
    finally:
        if not kept:  # also when give_back raised: dropped, never leaked
            _drop_schema(schema)


def _open_and_close(url: str) -> None:
    open_ledger(url).close()


_SCHEMAS = SchemaPool(f"{PG_SERVER}/{PG_DATABASE}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh ledger location on PostgreSQL only, for what only PostgreSQL has."""
    with fresh_url("postgresql") as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with open_ledger(ledger_url) as opened:
        yield opened


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    """For pure domain behaviour that needs no real file or server."""
    with open_ledger("sqlite:///:memory:") as opened:
        yield opened


SUPERADMIN = ActionTriggerMeta(
    user_id=uuid.UUID(int=1),
    access_key="AKSUPERADMIN",
    role="superadmin",
    domain_name="default",
    request_id="req-test",
)


@pytest.fixture(params=["commit_alone", "group_commit"])
def group_commit_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every race runs twice: each command in its own transaction, and with group commit
    (issue 15), where concurrent appends share one. Race modules opt in with
    `pytestmark = pytest.mark.usefixtures("group_commit_mode")`, which sets it up before
    the ledger fixtures open their ledger."""
    grouped = request.param == "group_commit"
    monkeypatch.setenv(GROUP_COMMIT_VARIABLE, "on" if grouped else "off")
    return grouped
