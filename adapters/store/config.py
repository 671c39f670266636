"""Which store a ledger URL names, and the library's settings for it.

`sqlite:///path` (embedded default, one file, WAL), `sqlite:///:memory:` (tests),
`postgresql://user[:password]@host[:port]/db[?schema=name]` (production; the schema is a
plain identifier, folded to lower case: `validate_schema`). A URL the ledger cannot use
is refused here, before anything is opened.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from eventsourcing.persistence import PersistenceError
from sqlalchemy.engine import url as sa_url

from adapters.store.quoting import quote_identifier
from domain.errors import ConfigurationError, InvalidAPIParameters, StoreUnavailable

DEFAULT_URL = "sqlite:///ledger.db"
URL_VARIABLE = "LEDGER_DATABASE_URL"
EVENTS_TABLE = {"sqlite": "stored_events", "postgresql": "ledger_events"}
# A SQLite file is a ledger when it holds the events table and one of these beside it: the
# hash chain, or (a ledger written before the chain existed) the read models' versions, or
# (one written before the read models were versioned) the projection runner's tracking.
LEDGER_MARKS = ("ledger_chain", "projection_versions", "projection_tracking")


class ServerUnreachable(PersistenceError):
    """No connection to the store's server can be made. Not an `OperationalError`, so the
    library does not retry it, and a group commit fails its whole batch with it."""


class StoreClosed(PersistenceError):
    """A PostgreSQL ledger used after `close()` (its pool cannot be opened again): said at
    once, not retried ten times as the library's `OperationalError` would be."""

    def __init__(self) -> None:
        super().__init__("the ledger is closed")


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" or "postgresql"
    env: dict[str, str]
    read_model_url: str
    schema: str | None = None
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def events_table(self) -> str:
        return EVENTS_TABLE[self.kind]

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite ledger (None in memory or on PostgreSQL)."""
        if self.kind != "sqlite" or self.env["SQLITE_DBNAME"].startswith("file:"):
            return None
        return Path(self.env["SQLITE_DBNAME"])

    def check_sqlite_file(self) -> None:
        """Before a SQLite ledger is opened: its file can be opened, and it is a ledger or
        a new, empty file. Each refusal is one line naming the path and the cause (SQLite
        itself says only "unable to open database file"), and a file of another
        application is never adopted (the ledger would add its tables beside the others')."""
        path = self.sqlite_path
        if path is None:
            return
        shown = str(path)
        parent = path.parent
        if not parent.exists():
            raise StoreUnavailable(f"cannot open the ledger {shown!r}: the directory {str(parent)!r} does not exist")
        if not parent.is_dir():
            raise StoreUnavailable(f"cannot open the ledger {shown!r}: {str(parent)!r} is not a directory")
        if path.is_dir():
            raise StoreUnavailable(f"cannot open the ledger {shown!r}: it is a directory, not a file")
        if not path.exists():
            if not os.access(parent, os.W_OK | os.X_OK):
                raise StoreUnavailable(f"cannot create the ledger {shown!r}: no permission to write in {str(parent)!r}")
            return
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreUnavailable(f"cannot open the ledger {shown!r}: no permission to read and write it")
        companions = [path.with_name(f"{path.name}{suffix}") for suffix in ("-wal", "-shm")]
        if not all(c.exists() for c in companions) and not os.access(parent, os.W_OK | os.X_OK):
            # SQLite would say "attempt to write a readonly database", of a writable file.
            raise StoreUnavailable(
                f"cannot open the ledger {shown!r}: no permission to write in {str(parent)!r} "
                f"(SQLite keeps {' and '.join(c.name for c in companions)} beside the database)"
            )
        tables = _sqlite_tables(path)
        if not tables:
            return  # a new, empty file
        if self.events_table in tables and any(mark in tables for mark in LEDGER_MARKS):
            return
        listed = sorted(tables)
        more = f" (+{len(listed) - 3} more)" if len(listed) > 3 else ""
        raise ConfigurationError(
            f"{shown!r} is not a ledger: its tables ({', '.join(listed[:3])}{more}) are another application's "
            f"(a ledger has {self.events_table} and {' or '.join(LEDGER_MARKS)}); give a new file or a ledger's"
        )

    def connect_postgres(self) -> Any:
        """A psycopg connection (autocommit) to this PostgreSQL ledger's database, for what
        the library's pool does not do: DDL locks, LISTEN."""
        import psycopg  # only PostgreSQL ledgers need it loaded

        env = self.env
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=5,
            autocommit=True,
        )

    def reach_postgres(self) -> Any:
        """`connect_postgres` for opening a ledger: a server that cannot be reached (or a
        database that is not there) is one `ledger_unavailable` line, not the driver's error."""
        import psycopg

        try:
            return self.connect_postgres()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc


def _sqlite_tables(path: Path) -> set[str]:
    """The table names of an existing SQLite file, read without writing to it."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open the ledger {str(path)!r}: {exc}") from None
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:  # say a text file: "file is not a database"
        raise StoreUnavailable(f"cannot open the ledger {str(path)!r}: {exc}") from None
    finally:
        conn.close()
    return {str(name) for (name,) in rows if not str(name).startswith("sqlite_")}


def parse_url(url: str | None) -> StoreConfig:
    """Turns a ledger URL into the library's settings and a read-model URL. A URL the
    ledger cannot use is an `InvalidAPIParameters` naming `url` (or `schema`), one line."""
    if url is not None and not isinstance(url, str):
        raise InvalidAPIParameters(f"expected the database URL as text, got {type(url).__name__}", field="url")
    if url is not None and not url.strip():
        # An empty --db is a mistake (an unset shell variable), not a request for the default.
        raise InvalidAPIParameters("the database URL is empty", field="url")
    if url is None and os.environ.get(URL_VARIABLE):
        try:
            return _parsed(os.environ[URL_VARIABLE])
        except InvalidAPIParameters as exc:
            # Named where it was written: no option was typed.
            raise exc.renamed(lambda _field: URL_VARIABLE) from None
    return _parsed(url or DEFAULT_URL)


def _plain(text: str, what: str) -> str:
    """`text` when a database can be named by it. libpq ends its connection string at a NUL,
    so `postgresql://u@h/db%00` connected over the local socket as the OS user to that
    user's database and made a ledger there; SQLite and the drivers cannot encode a lone
    surrogate (a non-UTF-8 byte of the environment) and failed with UnicodeEncodeError."""
    if "\x00" in text:
        raise InvalidAPIParameters(f"the {what} holds a NUL character", field="url")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidAPIParameters(f"the {what} is not valid Unicode text (a lone surrogate)", field="url") from None
    return text


def _parsed(url: str) -> StoreConfig:
    _plain(url, "database URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # say an unclosed IPv6 bracket
        raise InvalidAPIParameters(f"malformed database URL: {exc}", field="url") from None
    scheme = parts.scheme.split("+")[0]
    rest = url.split(":", 1)[1] if ":" in url else ""
    if scheme in ("sqlite", "postgresql", "postgres") and rest.strip("/") and not rest.startswith("//"):
        # `sqlite:/abs.db` raised IndexError; `postgresql:db` silently meant 127.0.0.1.
        if scheme == "sqlite":
            raise InvalidAPIParameters(
                f"{url!r} has no '//' after its scheme (meant {parts.scheme + ':///' + rest!r}?)", field="url"
            )
        raise InvalidAPIParameters("a postgresql URL has '//' after its scheme: postgresql://user@host/DB", field="url")
    if scheme == "sqlite":
        return _sqlite_config(url, parts.query)
    if scheme in ("postgresql", "postgres"):
        return _postgres_config(parts)
    if not parts.scheme:  # `--db ./ledger.db`: not echoed, as it might be `//user:password@host`
        raise InvalidAPIParameters(
            "is not a URL: a file is sqlite:///PATH, a server postgresql://user@host/DB", field="url"
        )
    raise InvalidAPIParameters(
        f"unsupported database URL scheme {parts.scheme!r} (use sqlite:/// or postgresql://)", field="url"
    )


def _sqlite_config(url: str, query: str) -> StoreConfig:
    if query:
        raise InvalidAPIParameters(f"a sqlite URL takes no query parameters, got {query!r}", field="url")
    # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
    path = _plain(unquote(url.split("://", 1)[1][1:]), "path") if url.count("/") >= 3 else ""
    if not path:
        raise InvalidAPIParameters("a sqlite URL needs a path or :memory:", field="url")
    if path == ":memory:":
        # A named shared-cache database: every pooled connection sees the same events.
        db_name = f"file:ledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
        read_url = "sqlite://"
    else:
        db_name = str(Path(path))
        read_url = f"sqlite:///{db_name}"
    env = {
        "PERSISTENCE_MODULE": "adapters.store.connections:LedgerSQLiteFactory",
        "SQLITE_DBNAME": db_name,
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "adapters.store.chain:ChainedSQLiteRecorder",
    }
    return StoreConfig("sqlite", env, read_url, connect_args={"timeout": 30})


def _postgres_config(parts: SplitResult) -> StoreConfig:
    bad_port = InvalidAPIParameters(
        f"the port in {parts.netloc.rpartition('@')[2]!r} is not a number from 1 to 65535", field="url"
    )
    try:
        port = 5432 if parts.port is None else parts.port
    except ValueError:  # urllib's message names neither the URL nor what to do
        raise bad_port from None
    if port == 0:
        raise bad_port
    dbname = _plain(unquote(parts.path.lstrip("/")), "database name")
    if not dbname:
        raise InvalidAPIParameters("a postgresql URL needs a database: postgresql://user@host/DB", field="url")
    if "/" in dbname:
        raise InvalidAPIParameters(f"{dbname!r} is not a database name", field="url")
    schema = _schema_from_query(parts.query)
    host = parts.hostname or "127.0.0.1"
    user = _plain(unquote(parts.username or "postgres"), "user name")
    password = _plain(unquote(parts.password or ""), "password")
    env = {
        "PERSISTENCE_MODULE": "adapters.store.postgres_pool:LedgerPostgresFactory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_SCHEMA": schema or "",
        "APPLICATION_RECORDER_TOPIC": "adapters.store.chain_postgres:ChainedPostgresRecorder",
    }
    read_url = sa_url.URL.create(
        "postgresql+psycopg", username=user, password=password or None, host=host, port=port, database=dbname
    ).render_as_string(hide_password=False)
    # The schema is a checked identifier (letters, digits, underscores): nothing in it can
    # end the option or add another one.
    connect_args = {"options": f"-csearch_path={quote_identifier(schema)}"} if schema else {}
    return StoreConfig("postgresql", env, read_url, schema, connect_args)


SCHEMA_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently cut


def _schema_from_query(query: str) -> str | None:
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidAPIParameters(f"malformed query {query!r} (expected ?schema=NAME)", field="url") from None
    unknown = sorted(set(params) - {"schema"})
    if unknown:
        raise InvalidAPIParameters(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            "(only ?schema=NAME is understood)",
            field="url",
        )
    values = params.get("schema")
    if values is None:
        return None
    if len(values) > 1:
        raise InvalidAPIParameters("schema is given more than once", field="url")
    return validate_schema(values[0])


def validate_schema(name: str) -> str:
    """The schema a `?schema=` value names, folded to lower case as PostgreSQL folds an
    unquoted name, so `Prod` and `prod` are one schema on every run; and the library needs
    it so, since it looks its composite type up by the unquoted name `schema.type`. Only
    plain identifiers are accepted: every statement quotes it anyway, but a name that
    needs quoting cannot be written unquoted where the library does."""
    if not SCHEMA_PATTERN.fullmatch(name):
        raise InvalidAPIParameters(
            f"{name!r} is not a schema name: use letters, digits and underscores, not starting with a digit",
            field="schema",
        )
    folded = name.lower()
    if len(folded.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidAPIParameters(f"{name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes", field="schema")
    if folded.startswith("pg_") or folded == "information_schema":
        raise InvalidAPIParameters(f"{name!r} is a name PostgreSQL reserves for system schemas", field="schema")
    return folded
