"""Append-only in the database, and the checks that let a least-privileged role open a ledger.

Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events table and
on the hash chain. On PostgreSQL, a ledger that is already set up is opened without any
DDL (`postgres_is_set_up`), and its schema is created only when it is missing
(`ensure_postgres_schema`): both checks read the catalogs, which any role may.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from adapters.store.chain import CHAIN_TABLE, row_tuple
from adapters.store.config import StoreConfig
from adapters.store.quoting import quote_identifier, quote_string
from domain.errors import InvalidAPIParameters, StoreUnavailable

SNAPSHOTS_TABLE = "ledger_snapshots"  # the library's name for the application "Ledger" (PostgreSQL)
STORED_EVENT_TYPE = "stored_event_uuid"  # the library's composite type for inserts (PostgreSQL)

APPEND_ONLY_FUNCTION = "ledger_append_only"


def _protected_tables(config: StoreConfig) -> tuple[str, ...]:
    # Snapshots are not protected: they are derived from the events and can be taken again.
    return (config.events_table, CHAIN_TABLE)


def _trigger_names(table: str) -> tuple[str, str]:
    return f"{table}_no_update_delete", f"{table}_no_truncate"


def install_append_only_triggers(recorder: ApplicationRecorder, config: StoreConfig) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events table and on the hash
    chain fail. Every name is quoted as an identifier (the schema comes from a URL)."""
    datastore = recorder.datastore  # type: ignore[attr-defined]
    if config.kind == "sqlite":
        statements: list[Any] = list(_sqlite_trigger_statements(config).values())
    else:
        statements = _postgres_trigger_statements(config)
    with datastore.transaction(commit=True) as cursor:
        if config.kind == "postgresql":
            # Two processes opening one ledger at once must not race on the DDL.
            cursor.execute("SELECT pg_advisory_xact_lock(7412001)")
        for statement in statements:
            cursor.execute(statement)


def _sqlite_trigger_statements(config: StoreConfig) -> dict[str, str]:
    """Each trigger's name and statement (`CREATE TRIGGER IF NOT EXISTS ...`)."""
    return {
        f"{table}_no_{op.lower()}": f"CREATE TRIGGER IF NOT EXISTS {quote_identifier(f'{table}_no_{op.lower()}')} "
        f"BEFORE {op} ON {quote_identifier(table)} BEGIN SELECT RAISE(ABORT, "
        f"{quote_string(f'the ledger is append-only: {op} on {table} refused')}); END"
        for table in _protected_tables(config)
        for op in ("UPDATE", "DELETE")
    }


_APPEND_ONLY_BODY = " BEGIN RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END "


# Who, in this database, has `session_replication_role = replica` by default (a server's,
# database's or role's setting): no ENABLEd trigger fires in their sessions, though
# pg_trigger still shows each enabled. `local` and `origin` fire them.
_REPLICA_SESSIONS = (
    "SELECT current_setting('session_replication_role') = 'replica', "
    "ARRAY(SELECT coalesce('role ' || r.rolname, 'every role') FROM pg_db_role_setting s "
    "LEFT JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) "
    "AND 'session_replication_role=replica' = ANY(s.setconfig) ORDER BY 1)"
)


def guard_faults(recorder: ApplicationRecorder, config: StoreConfig) -> list[str]:
    """What is wrong with the append-only triggers now (`ledger verify`): one disabled,
    replaced or missing, or a trigger the ledger never made on a protected table. Opening
    a ledger makes a missing one again, but leaves these as they are."""
    datastore = recorder.datastore  # type: ignore[attr-defined]
    tables = _protected_tables(config)
    with datastore.transaction(commit=False) as cursor:
        if config.kind == "sqlite":
            marks = ", ".join("?" for _ in tables)
            cursor.execute(
                f"SELECT name, tbl_name, sql, 'O' FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})",
                tables,
            )
        else:
            cursor.execute(
                "SELECT g.tgname, c.relname, p.prosrc, g.tgenabled, fn.nspname = n.nspname AND p.proname = %s "
                "FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = g.tgfoid "
                "JOIN pg_namespace fn ON fn.oid = p.pronamespace "
                "WHERE n.nspname = %s AND c.relname = ANY(%s) AND NOT g.tgisinternal",
                (APPEND_ONLY_FUNCTION, config.schema or "public", list(tables)),
            )
        found = [row_tuple(row) for row in cursor.fetchall()]
        replica: tuple[Any, ...] = (False, [])
        if config.kind == "postgresql":
            cursor.execute(_REPLICA_SESSIONS)
            replica = row_tuple(cursor.fetchone())
    if config.kind == "sqlite":
        # SQLite keeps a trigger's statement as written, without IF NOT EXISTS; the first
        # releases wrote the names unquoted, so quotes and spacing are left out.
        expected = {
            name: _plain_sql(statement.replace("CREATE TRIGGER IF NOT EXISTS", "CREATE TRIGGER", 1))
            for name, statement in _sqlite_trigger_statements(config).items()
        }
        rows = [(name, table, _plain_sql(str(sql)), enabled, True) for name, table, sql, enabled in found]
    else:
        expected = dict.fromkeys((name for table in tables for name in _trigger_names(table)), _APPEND_ONLY_BODY)
        rows = found
    faults, seen = [], set()
    for name, table, source, enabled, ours in sorted(rows, key=lambda row: (str(row[1]), str(row[0]))):
        seen.add(name)
        if name not in expected or not ours or source != expected[name]:
            faults.append(f"trigger {name} on {table} is not the ledger's: it does not refuse every change")
        elif enabled not in ("O", "A"):  # PostgreSQL: D disabled, R fires only on a replica
            faults.append(f"trigger {name} on {table} is disabled: changes behind the ledger's back go through")
    faults += [f"trigger {name} is missing" for name in sorted(set(expected) - seen)]
    here, who = replica
    if here:
        faults.append("session_replication_role is replica in this session: no trigger fires")
    faults += [f"session_replication_role is replica for {each} in this database: no trigger fires" for each in who]
    return faults


def _plain_sql(statement: str) -> str:
    return " ".join(statement.replace('"', "").split())


def _postgres_trigger_statements(config: StoreConfig) -> list[Any]:
    from psycopg.sql import SQL, Identifier  # only PostgreSQL ledgers need it loaded

    schema = config.schema or "public"
    function = Identifier(schema, APPEND_ONLY_FUNCTION)
    statements = [
        SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$" + _APPEND_ONLY_BODY + "$$"
        ).format(function=function)
    ]
    for table in _protected_tables(config):
        row_trigger, truncate_trigger = _trigger_names(table)
        names = {"table": Identifier(schema, table), "function": function}
        statements += [
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION {function}()"
            ).format(trigger=Identifier(row_trigger), **names),
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            ).format(trigger=Identifier(truncate_trigger), **names),
        ]
    return statements


def postgres_is_set_up(config: StoreConfig) -> bool:
    """Whether this PostgreSQL ledger's tables, type, index, trigger function and triggers
    all exist. Then opening it runs no DDL at all: `CREATE ... IF NOT EXISTS` and `CREATE
    OR REPLACE` need CREATE on the schema or ownership even when nothing is created, and
    `CREATE INDEX IF NOT EXISTS` locks the table; a role granted only the use of a ledger
    its owner set up must be able to open it. Reads the catalogs only, which any role may."""
    schema = config.schema or "public"
    tables = [config.events_table, SNAPSHOTS_TABLE, CHAIN_TABLE]
    relations = [*tables, f"{config.events_table}_notification_id_idx"]
    triggers = [name for table in _protected_tables(config) for name in _trigger_names(table)]
    query = """
        SELECT
          (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = ANY(%(relations)s)) = cardinality(%(relations)s)
          AND EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = %(schema)s AND t.typname = %(type)s)
          AND EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %(schema)s AND p.proname = %(function)s)
          AND (SELECT count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND g.tgname = ANY(%(triggers)s)
              AND NOT g.tgisinternal) = cardinality(%(triggers)s)
    """
    params = {
        "schema": schema,
        "relations": relations,
        "tables": list(_protected_tables(config)),
        "type": STORED_EVENT_TYPE,
        "function": APPEND_ONLY_FUNCTION,
        "triggers": triggers,
    }
    with config.connect_postgres() as conn:
        row = conn.execute(query, params).fetchone()
    return bool(row and row[0])


def postgres_has_events(config: StoreConfig) -> bool:
    """Whether this PostgreSQL schema holds the ledger's events table: a ledger, though one
    written by an older release may lack what `postgres_is_set_up` asks for (the hash chain
    and its triggers, made when this release first opens it)."""
    query = """
        SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = %(schema)s AND c.relname = %(table)s)
    """
    schema = config.schema or "public"
    with config.reach_postgres() as conn:  # a read's first contact with the server
        row = conn.execute(query, {"schema": schema, "table": config.events_table}).fetchone()
        if not (row and row[0]):
            # A read names why no ledger can ever be there, as a write would, not only that none is.
            refuse_reserved_schema(conn, schema)
    return bool(row and row[0])


def refuse_reserved_schema(conn: Any, schema: str) -> None:
    """Refuses a schema named by a keyword PostgreSQL reserves (select, user, int): the
    library finds its composite type by the unquoted name `schema.type`, which PostgreSQL
    cannot parse then."""
    keyword = conn.execute("SELECT 1 FROM pg_get_keywords() WHERE word = %s AND catcode <> 'U'", (schema,))
    if keyword.fetchone() is not None:
        raise InvalidAPIParameters(
            f"{schema!r} is an SQL keyword PostgreSQL reserves; choose another name", field="schema"
        )


def ensure_postgres_schema(conn: Any, config: StoreConfig) -> None:
    """Creates the ledger's schema unless it exists, on `conn` (autocommit). Checked first:
    `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the database even when the schema is
    there, which a role that only uses a ledger has not."""
    import psycopg  # only PostgreSQL ledgers need it loaded
    from psycopg.sql import SQL, Identifier

    schema = config.schema or "public"
    refuse_reserved_schema(conn, schema)
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None:
        return
    try:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot create schema {schema!r}: {' '.join(str(exc).split())}") from exc
