"""A ledger URL cannot be turned against the database, its mistakes are one-line domain
errors, and a role that may only use a ledger (no CREATE anywhere) can run it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from psycopg.sql import SQL, Identifier
from typer.testing import CliRunner

from adapters.bootstrap import Ledger, open_ledger
from adapters.store import parse_url
from adapters.store.chain import verify
from adapters.store.config import validate_schema
from domain.errors import InvalidAPIParameters, StoreUnavailable
from domain.group import CreateGroupAction, ModifyGroupAction
from domain.keypair import CreateKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from domain.user import CreateUserAction
from tests.conftest import PG_DATABASE, PG_SERVER, SUPERADMIN, fresh_url, require_postgres

INJECTION = 'x"; CREATE TABLE public.pwned(i int); --'
PG = f"{PG_SERVER}/{PG_DATABASE}"

# URLs


@pytest.mark.parametrize(
    ("url", "field", "says"),
    [
        ("postgresql://postgres@127.0.0.1:abc/db", "url", "port"),
        ("postgresql://postgres@127.0.0.1:99999/db", "url", "port"),
        ("postgresql://postgres@127.0.0.1:0/db", "url", "port"),
        ("mysql://root@localhost/x", "url", "scheme"),
        ("nonsense", "url", "not a URL"),
        ("postgresql://postgres@127.0.0.1:5432", "url", "needs a database"),
        ("postgresql://postgres@127.0.0.1:5432/", "url", "needs a database"),
        ("postgresql://postgres@127.0.0.1/db/extra", "url", "not a database name"),
        ("postgresql://postgres@127.0.0.1/db?sslmode=require", "url", "unknown query parameter 'sslmode'"),
        ("postgresql://postgres@127.0.0.1/db?schema=a&schema=b", "url", "more than once"),
        ("postgresql://postgres@127.0.0.1/db?schema", "url", "malformed query"),
        ("postgresql://postgres@127.0.0.1/db?schema=", "schema", "not a schema name"),
        ("postgresql://[::1/db", "url", "malformed"),
        ("sqlite:///ledger.db?mode=ro", "url", "no query parameters"),
        ("sqlite://", "url", "path"),
        # libpq ends its connection string at a NUL: these reached another database (the
        # OS user's, over the local socket) and made a ledger there.
        ("postgresql://postgres@127.0.0.1/db%00", "url", "database name holds a NUL"),
        ("postgresql://postgres@127.0.0.1/db\x00x", "url", "URL holds a NUL"),
        ("postgresql://post%00gres@127.0.0.1/db", "url", "user name holds a NUL"),
        ("postgresql://postgres:pw%00@127.0.0.1/db", "url", "password holds a NUL"),
        ("sqlite:///led%00ger.db", "url", "path holds a NUL"),
        # No driver can encode a lone surrogate (what a non-UTF-8 byte of the environment reads as).
        ("postgresql://postgres@127.0.0.1/db\udc80", "url", "lone surrogate"),
        ("sqlite:///\udc80.db", "url", "lone surrogate"),
    ],
)
def test_bad_urls_are_one_line_domain_errors(url: str, field: str, says: str) -> None:
    for attempt in (parse_url, open_ledger):  # refused before anything is opened
        with pytest.raises(InvalidAPIParameters) as raised:
            attempt(url)
        assert raised.value.field == field
        assert says in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize("url", [5, b"sqlite:///:memory:", ["sqlite:///:memory:"]])
def test_a_url_that_is_not_text_is_refused_naming_it(url: object) -> None:
    for attempt in (parse_url, open_ledger):
        with pytest.raises(InvalidAPIParameters) as raised:
            attempt(url)  # type: ignore[arg-type]  # what an untyped caller passes
        assert raised.value.field == "url" and type(url).__name__ in raised.value.message


def test_the_cli_shows_a_bad_port_as_one_line() -> None:
    from adapters.cli import app

    result = CliRunner().invoke(app, ["--db", "postgresql://postgres@127.0.0.1:abc/db", "policy", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ledger_invalid_parameters: --db: the port in '127.0.0.1:abc'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    "name",
    [INJECTION, "pg_x", "PG_Catalog", "information_schema", "1abc", "a-b", "a b", "a.b", 'a"b', "ü", "a" * 64, ""],
)
def test_schemas_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(InvalidAPIParameters) as raised:
        parse_url(f"postgresql://postgres@127.0.0.1/db?schema={quote(name)}")
    assert raised.value.field == "schema" and "\n" not in raised.value.message


def test_schema_names_are_folded_as_postgresql_folds_unquoted_names() -> None:
    config = parse_url("postgresql://postgres@127.0.0.1/db?schema=Prod_2")
    assert config.schema == "prod_2" and config.env["POSTGRES_SCHEMA"] == "prod_2"
    assert config.connect_args == {"options": '-csearch_path="prod_2"'}
    assert validate_schema("_x1") == "_x1" and validate_schema("a" * 63) == "a" * 63


def test_credentials_with_reserved_characters_reach_both_connections() -> None:
    config = parse_url("postgresql://al%40ice:p%3Ass%2Fw@db.internal:6543/led%20ger?schema=s")
    assert (config.env["POSTGRES_USER"], config.env["POSTGRES_PASSWORD"]) == ("al@ice", "p:ss/w")
    assert config.env["POSTGRES_DBNAME"] == "led ger"
    from sqlalchemy.engine import make_url

    read = make_url(config.read_model_url)
    assert (read.username, read.password, read.host, read.port, read.database) == (
        "al@ice",
        "p:ss/w",
        "db.internal",
        6543,
        "led ger",
    )


# The reported injection, against the real server


def _exists(relation: str) -> bool:
    with psycopg.connect(PG, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
        return bool(row and row[0])


def _schemas_like(pattern: str) -> list[str]:
    with psycopg.connect(PG, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (pattern,))]


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "percent-encoded"])
def test_the_injection_url_is_refused_and_creates_nothing(encode: bool) -> None:
    require_postgres()
    assert not _exists("public.pwned")
    schema = quote(INJECTION) if encode else INJECTION
    try:
        with pytest.raises(InvalidAPIParameters) as raised:
            open_ledger(f"{PG}?schema={schema}")
        assert raised.value.field == "schema"
        # The CLI, as the injection was reported.
        from adapters.cli import app

        result = CliRunner().invoke(app, ["--db", f"{PG}?schema={schema}", "policy", "list"])
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert not _exists("public.pwned")
        assert _schemas_like('x"%') == [] and _schemas_like("x") == []
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:  # never leave it for other tests
            conn.execute("DROP TABLE IF EXISTS public.pwned")


@pytest.mark.parametrize("keyword", ["user", "select", "int"])
def test_keywords_postgresql_reserves_are_refused(keyword: str) -> None:
    require_postgres()
    with pytest.raises(InvalidAPIParameters) as raised:
        open_ledger(f"{PG}?schema={keyword}")
    assert raised.value.field == "schema" and "keyword" in raised.value.message
    assert _schemas_like(keyword) == []
    # A read says the same: it said "no ledger in schema 'select'; a ledger is made by a
    # command that writes", sending the operator to a write that is refused anyway.
    from adapters.cli import app

    read = CliRunner().invoke(app, ["--db", f"{PG}?schema={keyword}", "policy", "list"])
    assert read.exit_code == 1 and "keyword PostgreSQL reserves" in read.stderr, read.stderr


def _create_policy(ledger: Ledger, name: str) -> None:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
    asyncio.run(
        ledger.processors.keypair_resource_policy.create_keypair_resource_policy.wait_for_complete(action, SUPERADMIN)
    )


def test_an_upper_case_schema_is_the_same_ledger_on_every_run() -> None:
    require_postgres()
    lower = f"t_case_{uuid.uuid4().hex[:8]}"
    try:
        with open_ledger(f"{PG}?schema={lower.upper()}") as ledger:
            _create_policy(ledger, "upper")
        with open_ledger(f"{PG}?schema={lower}") as ledger:
            assert ledger.queries.keypair_resource_policy("upper") is not None
        assert _schemas_like(lower) == [lower] and _schemas_like(lower.upper()) == []
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(lower)))


# Least privilege

# What an owner grants a role that uses a ledger it set up (the README's paragraph).
USER_GRANTS = [
    "GRANT USAGE ON SCHEMA {s} TO {r}",
    # Read models: the projections' rows (catch-up writes them, in the caller's process).
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
    "REVOKE INSERT, UPDATE, DELETE ON {s}.projection_versions, {s}.projection_garbage FROM {r}",
    "REVOKE INSERT, DELETE ON {s}.projection_tracking FROM {r}",
    # The store: appended to, never changed; UPDATE on the events only because the
    # library's LOCK TABLE ... IN EXCLUSIVE MODE requires it (the trigger refuses UPDATEs).
    "REVOKE UPDATE, DELETE ON {s}.ledger_snapshots, {s}.ledger_chain FROM {r}",
    "REVOKE DELETE ON {s}.ledger_events FROM {r}",
    "GRANT USAGE ON SEQUENCE {s}.ledger_events_notification_id_seq TO {r}",
]


@pytest.fixture
def user_role() -> Iterator[str]:
    require_postgres()
    role = f"ledger_user_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(SQL("CREATE ROLE {} LOGIN").format(Identifier(role)))
    try:
        yield role
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(SQL("DROP OWNED BY {}").format(Identifier(role)))
            conn.execute(SQL("DROP ROLE {}").format(Identifier(role)))


def _grant(schema: str, role: str) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        for statement in USER_GRANTS:
            conn.execute(SQL(statement).format(s=Identifier(schema), r=Identifier(role)))
        privileges = conn.execute(
            "SELECT has_database_privilege(%(r)s, current_database(), 'CREATE'), "
            "has_schema_privilege(%(r)s, %(s)s, 'CREATE')",
            {"r": role, "s": schema},
        ).fetchone()
    assert privileges == (False, False)  # the role can create nothing, anywhere


def test_a_role_without_create_runs_a_ledger_its_owner_set_up(user_role: str) -> None:
    with fresh_url("postgresql") as owner_url:
        schema = parse_url(owner_url).schema
        assert schema is not None
        with open_ledger(owner_url) as owner:
            _create_policy(owner, "by-owner")
        _grant(schema, user_role)
        with open_ledger(f"postgresql://{user_role}@127.0.0.1:5432/{PG_DATABASE}?schema={schema}") as ledger:
            _create_policy(ledger, "by-user")
            policies = ledger.processors.keypair_resource_policy
            modify = ModifyKeyPairResourcePolicyAction(name="by-user", modifier={"idle_timeout": 60})
            asyncio.run(policies.modify_keypair_resource_policy.wait_for_complete(modify, SUPERADMIN))
            owner_id, member_id = uuid.uuid4(), uuid.uuid4()
            for user_id in (owner_id, member_id):
                user = CreateUserAction(creator={"user_id": user_id, "domain_name": "default"})
                asyncio.run(ledger.processors.user.create_user.wait_for_complete(user, SUPERADMIN))
            keypair = CreateKeyPairAction(
                access_key="AKUSER", user_id=owner_id, domain_name="default", resource_policy="by-user"
            )
            asyncio.run(ledger.processors.keypair.create_keypair.wait_for_complete(keypair, SUPERADMIN))
            group_id = uuid.uuid4()
            create = CreateGroupAction(input={"name": "team", "domain_name": "default"}, group_id=group_id)
            asyncio.run(ledger.processors.group.create_group.wait_for_complete(create, SUPERADMIN))
            members = ModifyGroupAction(group_id=group_id, modifier={}, user_update_mode="add", user_uuids=[member_id])
            asyncio.run(ledger.processors.group.modify_group.wait_for_complete(members, SUPERADMIN))

            policy = ledger.queries.keypair_resource_policy("by-user")
            assert policy is not None and policy.idle_timeout == 60
            assert ledger.queries.keypair_resource_policy("by-owner") is not None
            assert len(ledger.queries.group_members(group_id)) == 1
            assert [entry.event for entry in ledger.queries.history("keypair_resource_policy", "by-user")] == [
                "Created",
                "Modified",
                "KeyPairAssigned",
            ]
            assert {r.operation for r in ledger.queries.audit_log(entity_type="keypair_resource_policy")} >= {
                "create",
                "modify",
            }
            assert verify(ledger.app).ok
            head = ledger.app.recorder.max_notification_id()
            assert all(s.position == head for s in ledger.runner.status())
        # The UPDATE granted for the table lock changes nothing: the trigger refuses it.
        user = f"postgresql://{user_role}@127.0.0.1:5432/{PG_DATABASE}"
        with psycopg.connect(user) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(SQL("UPDATE {} SET topic = 'x'").format(Identifier(schema, "ledger_events")))


def test_a_role_without_create_is_told_the_owner_builds_a_new_version_first(user_role: str) -> None:
    """After an upgrade that raised a read model's version, every command of the role (and
    `projections status`, the upgrade's first step) failed with the database's "permission
    denied for schema ... CREATE TABLE usage_v6_utc_kernels" alone."""
    from projections.usage import UsageProjection
    from tests.projections.readmodels import code_with, older

    with fresh_url("postgresql") as owner_url:
        schema = parse_url(owner_url).schema
        assert schema is not None
        with code_with(usage=older(UsageProjection)), open_ledger(owner_url) as owner:
            _create_policy(owner, "by-owner")
        _grant(schema, user_role)
        role_url = f"postgresql://{user_role}@127.0.0.1:5432/{PG_DATABASE}?schema={schema}"
        with pytest.raises(StoreUnavailable) as refused:
            open_ledger(role_url, build_pending=False)
        said = str(refused.value)
        assert f"cannot create the tables of usage_utc v{UsageProjection.version}" in said
        assert "owner runs `ledger projections rebuild`" in said and "grants this role again" in said
        open_ledger(owner_url).close()  # the owner builds it, and grants again
        _grant(schema, user_role)
        with open_ledger(role_url) as ledger:
            assert ledger.queries.keypair_resource_policy("by-owner") is not None
