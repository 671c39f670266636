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

from sqlalchemy.engine import url as sa_url

from adapters.store.quoting import quote_identifier
from domain.errors import InvalidAPIParameters

DEFAULT_URL = "sqlite:///ledger.db"
EVENTS_TABLE = {"sqlite": "stored_events", "postgresql": "ledger_events"}


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


def parse_url(url: str | None) -> StoreConfig:
    """Turns a ledger URL into the library's settings and a read-model URL. A URL the
    ledger cannot use is an `InvalidAPIParameters` naming `url` (or `schema`), one line."""
    url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # say an unclosed IPv6 bracket
        raise InvalidAPIParameters(f"malformed database URL: {exc}", field="url") from None
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        return _sqlite_config(url, parts.query)
    if scheme in ("postgresql", "postgres"):
        return _postgres_config(parts)
    raise InvalidAPIParameters(
        f"unsupported database URL scheme {parts.scheme!r} (use sqlite:/// or postgresql://)", field="url"
    )


def _sqlite_config(url: str, query: str) -> StoreConfig:
    if query:
        raise InvalidAPIParameters(f"a sqlite URL takes no query parameters, got {query!r}", field="url")
    # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
    path = unquote(url.split("://", 1)[1][1:]) if url.count("/") >= 3 else ""
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
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
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
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise InvalidAPIParameters("a postgresql URL needs a database: postgresql://user@host/DB", field="url")
    if "/" in dbname:
        raise InvalidAPIParameters(f"{dbname!r} is not a database name", field="url")
    schema = _schema_from_query(parts.query)
    host = parts.hostname or "127.0.0.1"
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_SCHEMA": schema or "",
        "APPLICATION_RECORDER_TOPIC": "adapters.store.chain:ChainedPostgresRecorder",
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
