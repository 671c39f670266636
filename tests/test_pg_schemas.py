"""The test harness's PostgreSQL schema pool (`tests.pg_schemas`): a schema handed to the
next test reads exactly as a fresh open leaves it, and one a test changed is not handed on."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from adapters.bootstrap import open_ledger
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.conftest import PG_DATABASE, PG_SERVER, require_postgres
from tests.pg_schemas import SchemaPool, fingerprint

DATABASE = f"{PG_SERVER}/{PG_DATABASE}"


def _opened(url: str) -> None:
    open_ledger(url).close()


def _rows(schema: str) -> dict[str, int]:
    with psycopg.connect(DATABASE) as conn:
        tables = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::text::regnamespace AND relkind = 'r'", (schema,)
        ).fetchall()
        counted = {}
        for (name,) in tables:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(schema, name))
            counted[name] = conn.execute(query).fetchone()[0]  # type: ignore[index]
        return counted


@pytest.fixture
def pool() -> SchemaPool:
    require_postgres()
    return SchemaPool(DATABASE)


def test_a_used_schema_comes_back_as_a_fresh_open_leaves_it(pool: SchemaPool) -> None:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with open_ledger(f"{DATABASE}?schema={schema}") as ledger:
        create = CreateKeyPairResourcePolicyAction(creator={"name": "used"})
        asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))
    assert pool.give_back(schema, _opened)
    assert pool.take() == schema
    template = next(iter(pool.templates.values())).schema
    assert _rows(schema) == _rows(template)
    with open_ledger(f"{DATABASE}?schema={schema}") as ledger:
        assert [p.name for p in ledger.queries.keypair_resource_policies()] == ["default"]  # as made fresh
        create = CreateKeyPairResourcePolicyAction(creator={"name": "used"})  # the name is free again
        asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))


def test_a_schema_whose_catalog_changed_is_not_handed_on(pool: SchemaPool) -> None:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    _opened(f"{DATABASE}?schema={schema}")
    with psycopg.connect(DATABASE, autocommit=True) as conn:
        before = fingerprint(conn, schema)
        conn.execute(psycopg.sql.SQL("CREATE TABLE {} (x int)").format(psycopg.sql.Identifier(schema, "extra")))
        assert fingerprint(conn, schema) != before
    assert not pool.give_back(schema, _opened)
    assert pool.take() is None
    with psycopg.connect(DATABASE, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
