"""The test harness's PostgreSQL schema pool (`tests.pg_schemas`): a schema handed to the
next test reads exactly as a fresh open leaves it, and one a test changed is not handed on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import open_ledger
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.conftest import PG_DATABASE, PG_SERVER, require_postgres
from tests.pg_schemas import SchemaPool, drop_schemas

DATABASE = f"{PG_SERVER}/{PG_DATABASE}"


def _opened(url: str) -> None:
    open_ledger(url).close()


def _contents(schema: str) -> dict[str, str]:
    """Every table's rows (a digest of them in order) and every sequence's position."""
    with psycopg.connect(DATABASE) as conn:
        listed = conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = %s::text::regnamespace"
            " AND relkind IN ('r', 'S')",
            (schema,),
        ).fetchall()
        found = {}
        for name, kind in listed:
            where = sql.Identifier(schema, name)
            if kind == "r":
                query = sql.SQL("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {} x")
            else:
                query = sql.SQL("SELECT last_value::text || ' ' || is_called::text FROM {}")
            row = conn.execute(query.format(where)).fetchone()
            assert row is not None
            found[name] = str(row[0])
        return found


@pytest.fixture
def pool() -> Iterator[SchemaPool]:
    require_postgres()
    made = SchemaPool(DATABASE)
    yield made
    made.drop_all()


def _fresh() -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    _opened(f"{DATABASE}?schema={schema}")
    return schema


def test_a_used_schema_comes_back_as_a_fresh_open_leaves_it(pool: SchemaPool) -> None:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with open_ledger(f"{DATABASE}?schema={schema}") as ledger:
        create = CreateKeyPairResourcePolicyAction(creator={"name": "used"})
        asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))
    assert pool.give_back(schema, _opened)
    assert pool.take() == schema
    template = next(iter(pool.templates.values())).schema
    assert _contents(schema) == _contents(template)
    with open_ledger(f"{DATABASE}?schema={schema}") as ledger:
        assert [p.name for p in ledger.queries.keypair_resource_policies()] == ["default"]  # as made fresh
        create = CreateKeyPairResourcePolicyAction(creator={"name": "used"})  # the name is free again
        asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))
    drop_schemas(DATABASE, [schema])


CHANGES: dict[str, Callable[[str], sql.Composable]] = {
    "a table added": lambda s: sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(s, "extra")),
    "a trigger disabled": lambda s: sql.SQL("ALTER TABLE {} DISABLE TRIGGER ALL").format(
        sql.Identifier(s, "ledger_events")
    ),
    "a sequence's step": lambda s: sql.SQL("ALTER SEQUENCE {} INCREMENT BY 10").format(
        sql.Identifier(s, "ledger_events_notification_id_seq")
    ),
    "a grant": lambda s: sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(sql.Identifier(s, "ledger_events")),
    "a rule": lambda s: sql.SQL("CREATE RULE quiet AS ON INSERT TO {} DO INSTEAD NOTHING").format(
        sql.Identifier(s, "ledger_chain")
    ),
    "a table's storage": lambda s: sql.SQL("ALTER TABLE {} SET UNLOGGED").format(
        sql.Identifier(s, "projection_garbage")
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_schema_whose_catalog_changed_is_not_handed_on(pool: SchemaPool, change: str) -> None:
    schema = _fresh()
    with psycopg.connect(DATABASE, autocommit=True) as conn:
        conn.execute(CHANGES[change](schema))
    assert not pool.give_back(schema, _opened)
    assert pool.take() is None
    drop_schemas(DATABASE, [schema])
