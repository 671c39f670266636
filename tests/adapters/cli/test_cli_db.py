"""`--db`: an empty URL is a usage error, a SQLite path that cannot be opened is named with
its cause, and a file of another application is refused, never adopted."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from adapters.bootstrap import open_ledger
from adapters.store import parse_url
from adapters.store.triggers import postgres_is_set_up
from domain.errors import ConfigurationError, InvalidAPIParameters, StoreUnavailable
from tests.adapters.cli.helpers import ROOT, error_line, ledger, ok, refused, stdout_of, usage_error
from tests.adapters.http.server import ledger_command


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("url", ["", " ", "\t"])
def test_an_empty_db_is_a_usage_error_not_the_default(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the default ./ledger.db would be created
    line = usage_error(url, "policy", "list")
    assert (
        line == "error: usage: Invalid value for '--db': the ledger URL is empty (see 'root --help')"
    )  # in-process the program is 'root'
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["", "  "])
def test_parse_url_refuses_an_empty_url(url: str) -> None:
    with pytest.raises(InvalidAPIParameters, match="the database URL is empty"):
        parse_url(url)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("sqlite:{path}", "'sqlite:{path}' has no '//' after its scheme (meant 'sqlite:///{path}'?)"),  # was IndexError
        ("sqlite:l.db", "'sqlite:l.db' has no '//' after its scheme (meant 'sqlite:///l.db'?)"),
        # Read as a database on 127.0.0.1; not echoed, as what follows the scheme may hold a password.
        ("postgresql:ledger", "a postgresql URL has '//' after its scheme: postgresql://user@host/DB"),
        ("postgres:/ledger", "a postgresql URL has '//' after its scheme: postgresql://user@host/DB"),
    ],
)
def test_a_url_without_the_slashes_after_its_scheme_is_named(tmp_path: Path, typed: str, says: str) -> None:
    path = tmp_path / "sub" / "l.db"
    line = refused(typed.format(path=path), "policy", "list")
    assert line == f"error: ledger_invalid_parameters: --db: {says.format(path=path)}"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "l.db"
    assert refused(f"sqlite:///{path}", "policy", "list") == (
        f"error: ledger_unavailable: cannot open the ledger '{path}': the directory '{path.parent}' does not exist"
    )
    assert not path.parent.exists()


def test_a_directory_is_not_a_ledger_file(tmp_path: Path) -> None:
    assert refused(f"sqlite:///{tmp_path}", "policy", "list") == (
        f"error: ledger_unavailable: cannot open the ledger '{tmp_path}': it is a directory, not a file"
    )


def test_a_file_in_place_of_the_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "l.db"
    assert refused(f"sqlite:///{path}", "policy", "list") == (
        f"error: ledger_unavailable: cannot open the ledger '{path}': '{tmp_path / 'file'}' is not a directory"
    )


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, this is text\n" * 100)
    line = refused(f"sqlite:///{path}", "policy", "list")
    assert line == f"error: ledger_unavailable: cannot open the ledger '{path}': file is not a database"
    assert path.read_text() == "hello, this is text\n" * 100


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the permissions say")
def test_no_permission_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = refused(f"sqlite:///{locked / 'l.db'}", "policy", "list")
        assert line == (
            f"error: ledger_unavailable: cannot create the ledger '{locked / 'l.db'}': "
            f"no permission to write in '{locked}'"
        )
    finally:
        locked.chmod(0o700)
    open_ledger(f"sqlite:///{tmp_path / 'l.db'}").close()  # a ledger there
    (tmp_path / "l.db").chmod(0o400)
    line = refused(f"sqlite:///{tmp_path / 'l.db'}", "policy", "list")
    assert line.endswith(f"cannot open the ledger '{tmp_path / 'l.db'}': no permission to read and write it")


def test_an_unwritable_file_is_named_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The permission checks are `os.access`: simulated here so that they run under root too."""
    path = tmp_path / "l.db"
    open_ledger(f"sqlite:///{path}").close()  # a ledger there
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path else real(p, mode))
    with pytest.raises(StoreUnavailable, match="no permission to read and write it"):
        open_ledger(f"sqlite:///{path}")
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "new" else real(p, mode))
    (tmp_path / "new").mkdir()
    with pytest.raises(StoreUnavailable, match="no permission to write in"):
        open_ledger(f"sqlite:///{tmp_path / 'new' / 'l.db'}")


def test_an_existing_ledger_in_an_unwritable_folder_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file itself writable, its folder not: SQLite cannot create the -wal and -shm files
    beside it, and the refusal was SQLite's "attempt to write a readonly database", about a
    file an operator then finds writable. Simulated as above (os.access), so it runs as root."""
    path = tmp_path / "l.db"
    open_ledger(f"sqlite:///{path}").close()  # a ledger there
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    with pytest.raises(StoreUnavailable) as refused_open:
        open_ledger(f"sqlite:///{path}")
    assert refused_open.value.message == (
        f"cannot open the ledger '{path}': no permission to write in '{tmp_path}' "
        "(SQLite keeps l.db-wal and l.db-shm beside the database)"
    )


def foreign(path: Path, *statements: str) -> str:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    return f"sqlite:///{path}"


def test_another_applications_file_is_refused_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = foreign(path, "CREATE TABLE foo (x)", "INSERT INTO foo VALUES (1)")
    line = refused(url, "policy", "list")
    assert line == (
        f"error: configuration_invalid: '{path}' is not a ledger: its tables (foo) are another "
        "application's (a ledger has stored_events and ledger_chain or projection_versions or projection_tracking); "
        "give a new file or a ledger's"
    )
    assert tables(path) == {"foo"}  # nothing was added to it


def test_serve_refuses_what_its_workers_would_as_one_line(tmp_path: Path, db: str) -> None:
    """`ledger serve` left these to uvicorn's start of each worker: a traceback per worker
    (the ConfigurationError at the bottom of it), exit 3."""
    url = foreign(tmp_path / "app.db", "CREATE TABLE foo (x)")
    assert refused(url, "serve", "--port", "0").startswith(f"error: configuration_invalid: '{tmp_path / 'app.db'}'")
    for variable, value, shown in (
        ("LEDGER_HTTP_THREADS", "abc", "error: configuration_invalid: LEDGER_HTTP_THREADS: "),
        ("LEDGER_TIMEZONE", "localtime", "error: ledger_invalid_parameters: LEDGER_TIMEZONE: "),
    ):
        line = error_line(ledger(db, "serve", "--port", "0", env={variable: value}), 1)
        assert line.startswith(shown), line


def test_serve_refuses_an_in_memory_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --db sqlite:///:memory:` started a server that no bearer token could reach:
    tokens are issued by another process (`ledger token issue`), into a ledger of its own."""
    from adapters.cli import serve

    served: list[object] = []
    monkeypatch.setattr(serve, "_serve", lambda *args: served.append(args))  # never serves here
    line = refused("sqlite:///:memory:", "serve", "--port", "0")
    assert line.startswith("error: ledger_invalid_parameters: --db: serve needs a ledger that outlives this process")
    assert served == []


def test_serve_refuses_an_empty_address_and_an_unknown_log_level_before_it_starts(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--host ""` served on every interface (uvicorn reads "" so), and `--log-level bogus`
    was `internal error: KeyError: 'bogus'` once uvicorn started."""
    from adapters.cli import serve

    served: list[object] = []
    monkeypatch.setattr(serve, "_serve", lambda *args: served.append(args))  # never serves here
    for host in ("", " "):
        assert "'--host': the address is empty" in usage_error(db, "serve", "--host", host, "--port", "0")
    line = usage_error(db, "serve", "--log-level", "bogus", "--port", "0")
    assert "'--log-level': 'bogus' is not one of 'critical', 'error', 'warning', 'info', 'debug', 'trace'" in line
    assert served == []


def test_serve_refuses_a_metrics_folder_it_cannot_write_to(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROMETHEUS_MULTIPROC_DIR naming a folder that is not there (a typo, a tmpfs not
    mounted): the server started, then every request logged prometheus_client's
    FileNotFoundError traceback, twice, and /metrics answered 500, for as long as it ran."""
    from adapters.cli import serve

    served: list[object] = []
    monkeypatch.setattr(serve, "_serve", lambda *args: served.append(args))  # never serves here
    (tmp_path / "a-file").write_text("")
    for folder in (tmp_path / "missing", tmp_path / "a-file"):
        for workers in ("1", "2"):
            env = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
            line = error_line(ledger(db, "serve", "--port", "0", "--workers", workers, env=env), 1)
            assert line.startswith(f"error: configuration_invalid: PROMETHEUS_MULTIPROC_DIR: '{folder}' "), line
    assert served == []
    ok(db, "serve", "--port", "0", "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert len(served) == 1


def serve_refused(db: str, *args: str) -> str:
    """The stderr of a `ledger serve` process that must not start: usage error, exit 2."""
    command = [*ledger_command(), "--db", db, "serve", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line: none of uvicorn's
    return done.stderr


def test_serve_on_a_port_in_use_or_an_address_it_cannot_bind_is_one_usage_error(db: str) -> None:
    """uvicorn bound the port itself: a port in use was its `[Errno 98] ...` log line and
    exit 3. The ledger binds it first and hands the bound socket to uvicorn."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = serve_refused(db, "--host", "127.0.0.1", "--port", str(port))
    assert (
        f"error: usage: Invalid value for '--port': cannot listen on 127.0.0.1:{port}: Address already in use (" in line
    )
    line = serve_refused(db, "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: no interface of this machine
    assert (
        "error: usage: Invalid value for '--host': cannot listen on 192.0.2.1:0: Cannot assign requested address ("
        in line
    )


def test_the_log_level_choices_are_uvicorns() -> None:
    from uvicorn.config import LOG_LEVELS  # (the CLI spells them out: declaring options loads no uvicorn)

    from adapters.cli.serve import LogLevel

    assert [level.value for level in LogLevel] == list(LOG_LEVELS)


def test_another_eventsourcing_applications_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "es.db"
    url = foreign(
        path,
        "CREATE TABLE stored_events (originator_id, originator_version, topic, state)",
        "CREATE TABLE stored_snapshots (originator_id, originator_version, topic, state)",
        "CREATE TABLE notification_tracking (application_name, notification_id)",
        "CREATE TABLE orders (id)",
        "CREATE TABLE customers (id)",
    )
    line = refused(url, "policy", "list")
    assert "its tables (customers, notification_tracking, orders (+2 more)) are another application's" in line
    assert tables(path) == {"stored_events", "stored_snapshots", "notification_tracking", "orders", "customers"}
    with pytest.raises(ConfigurationError, match="is not a ledger"):
        open_ledger(url)


def test_a_new_empty_file_becomes_a_ledger_and_a_ledger_reopens(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    url = f"sqlite:///{path}"
    ok(url, "policy", "create", "p1", "--total-resource-slots", "cpu=1")
    assert {"stored_events", "ledger_chain", "projection_versions"} <= tables(path)
    assert "p1" in ok(url, "policy", "list").stdout


def test_a_ledger_written_before_the_chain_still_opens(tmp_path: Path) -> None:
    """A ledger from before the hash chain has its events and read models, not the chain."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    ok(url, "policy", "create", "p1", "--total-resource-slots", "cpu=1")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE ledger_chain")
    assert "p1" in ok(url, "policy", "list").stdout
    assert "ledger_chain" in tables(path)  # sealed on opening


def test_an_in_memory_ledger_needs_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = ledger("sqlite:///:memory:", "policy", "list")
    assert result.exit_code == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


READS = [
    ("audit",),
    ("metrics",),
    ("policy", "list"),
    ("policy", "show", "default"),
    ("policy", "history", "default"),
    ("policy", "effective", "AK"),
    ("keypair", "list"),
    ("keypair", "show", "AK"),
    ("group", "list"),
    ("group", "show", "g"),
    ("group", "members", "g"),
    ("domain", "list"),
    ("domain", "show", "default"),
    ("user", "list"),
    ("kernel", "list"),
    ("vfolder", "list"),
    ("session", "list"),
    ("session", "due"),
    ("keys", "status"),
    ("token", "list"),
    ("projections", "status"),
    ("usage", "month", "202401"),
    ("usage", "period", "20240101", "20240201"),
]


def test_a_command_that_only_reads_refuses_a_ledger_that_is_not_there(ledger_url: str) -> None:
    """On a mistyped path or schema, a reading command made an empty ledger there (and a
    key file beside a SQLite one) and answered as if its history were empty, exit 0: an
    auditor's `ledger audit` on a typo read as a ledger where nothing happened."""
    for command in READS:
        line = refused(ledger_url, *command)
        assert line.startswith("error: configuration_invalid: no ledger "), (command, line)
        assert "nothing to read (a ledger is made by a command that writes)" in line, (command, line)
    config = parse_url(ledger_url)
    if config.sqlite_path is not None:
        assert list(config.sqlite_path.parent.iterdir()) == []  # no file, no key file
    else:
        assert not postgres_is_set_up(config)
    ok(ledger_url, "policy", "create", "p")  # a write makes the ledger; then reads answer
    assert "p" in stdout_of(ledger_url, "policy", "list")


READ_MODEL_WORK = [
    (("projections", "rebuild"), "nothing to rebuild"),
    (("projections", "rebuild", "--force"), "nothing to rebuild"),
    (("projections", "run", "--once"), "nothing to follow"),
    (("projections", "skip", "usage_utc", "--position", "1", "--reason", "r"), "nothing to skip"),
]


def test_read_model_work_refuses_a_ledger_that_is_not_there(ledger_url: str) -> None:
    """Read models are built from the events: on a mistyped path or schema, `projections
    rebuild` made an empty ledger there (and a key file) and said `nothing to rebuild`,
    exit 0, and a follower (`projections run`) followed that empty ledger for good while
    the real one's read models were kept current by nothing."""
    for command, nothing in READ_MODEL_WORK:
        line = refused(ledger_url, *command)
        assert line.startswith("error: configuration_invalid: no ledger "), (command, line)
        assert f"{nothing} (a ledger is made by a command that writes)" in line, (command, line)
    config = parse_url(ledger_url)
    if config.sqlite_path is not None:
        assert list(config.sqlite_path.parent.iterdir()) == []  # no file, no key file
    else:
        assert not postgres_is_set_up(config)
    ok(ledger_url, "policy", "create", "p")
    assert "rebuilt" in stdout_of(ledger_url, "projections", "rebuild", "--force", "keypair_resource_policies")


def strip_to_the_first_release(url: str) -> None:
    """Leaves of a ledger what its first releases wrote beside the events: the snapshots,
    the runner's tracking and read models (no hash chain, no versioned read models, no
    subject keys)."""
    config = parse_url(url)
    kept = {config.events_table, "stored_snapshots", "ledger_snapshots", "projection_tracking"}
    if config.sqlite_path is not None:
        with sqlite3.connect(config.sqlite_path) as conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                if name not in kept:
                    conn.execute(f'DROP TABLE "{name}"')
        return
    with config.connect_postgres() as conn:
        schema = config.schema or "public"
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
        for (name,) in rows:
            if name not in kept:
                conn.execute(f'DROP TABLE "{schema}"."{name}" CASCADE')
    assert not postgres_is_set_up(config)


def test_a_ledger_written_before_the_read_models_were_versioned_opens(ledger_url: str) -> None:
    """A ledger of the first releases has its events, snapshots and the runner's tracking,
    neither the chain nor projection_versions: a SQLite one was refused as another
    application's file, and on PostgreSQL a reading command said there was no ledger."""
    ok(ledger_url, "policy", "create", "p1", "--total-resource-slots", "cpu=1")
    strip_to_the_first_release(ledger_url)
    assert "p1" in stdout_of(ledger_url, "policy", "list")
    assert "chain intact" in stdout_of(ledger_url, "verify")  # sealed on the first open


def test_a_postgresql_server_that_cannot_be_reached_is_one_unavailable_line_for_reads_too() -> None:
    """A write said `ledger_unavailable: cannot reach PostgreSQL`, but a read (which first
    asks whether the schema holds a ledger) printed `internal error: OperationalError`."""
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/nowhere"
    for command in (("policy", "list"), ("audit",), ("policy", "create", "p")):
        line = refused(url, *command)
        assert line.startswith("error: ledger_unavailable: cannot reach PostgreSQL: "), (command, line)
