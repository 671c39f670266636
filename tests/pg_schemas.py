"""PostgreSQL test schemas handed on from test to test, as a fresh open leaves them.

Opening a ledger on a new schema costs ~0.2 s of the server's DDL (28 tables, their
indexes, functions and triggers), paid by every PostgreSQL test that takes the `ledger`
fixture: about 540 of them. A schema such a test used goes back to its worker's pool
only if its catalog (tables, columns, indexes, constraints, triggers, functions, types,
sequences, rules, policies, owners, grants, storage, comments) is still exactly what a
fresh open makes, and then with its rows made exactly those of a
fresh open again: every table emptied, the rows of a template schema (opened once,
never used by a test) copied in, and the sequences set to the template's. Anything else a
test left (a dropped index, an altered table, a rebuild's extra table) sends the schema
to be dropped, as before. A pool is kept per ledger environment (the master key in
particular: a fresh open stores a check of it). Not reset: the planner's statistics, and
the rows' timestamps and random values, which are the template's (no test reads them as
its own).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

# The whole catalog of one schema, as rows that name no oid and no schema: two schemas
# with equal fingerprints have the same objects with the same definitions.
_FINGERPRINT = """
SELECT 'rel', c.relname,
       c.relkind::text || ' ' || pg_get_userbyid(c.relowner) || ' ' || c.relpersistence::text
         || ' ' || c.relreplident::text || ' ' || c.relrowsecurity::text || ' ' || c.relforcerowsecurity::text,
       coalesce(c.relacl::text, ''), coalesce(c.reloptions::text, '')
  FROM pg_class c WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'col', c.relname, a.attnum::text || ' ' || a.attname,
       format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' ' || a.attidentity::text
         || a.attgenerated::text || a.attstorage::text || ' ' || a.attcollation::regcollation::text
         || ' ' || a.attstattarget::text || ' ' || coalesce(a.attacl::text, ''),
       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = %(schema)s::text::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'idx', indexname, indexdef, '', '' FROM pg_indexes WHERE schemaname = %(schema)s::text
UNION ALL
SELECT 'con', con.conname, pg_get_constraintdef(con.oid), '', ''
  FROM pg_constraint con WHERE con.connamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'trg', t.tgname, c.relname, t.tgenabled::text, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'typ', t.typname, t.typtype::text, '', '' FROM pg_type t WHERE t.typnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'fn', p.proname,
       pg_get_function_identity_arguments(p.oid) || ' ' || pg_get_function_result(p.oid) || ' '
         || p.prolang::text || ' ' || pg_get_userbyid(p.proowner) || ' ' || p.prosecdef::text
         || ' ' || p.provolatile::text || ' ' || p.proparallel::text || ' ' || coalesce(p.proconfig::text, ''),
       md5(replace(p.prosrc, %(schema)s::text, '{schema}')), coalesce(p.proacl::text, '')
  FROM pg_proc p WHERE p.pronamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'nsp', n.nspname, pg_get_userbyid(n.nspowner), coalesce(n.nspacl::text, ''),
       coalesce((SELECT string_agg(d.defaclobjtype::text || coalesce(d.defaclacl::text, ''), ',' ORDER BY 1)
                   FROM pg_default_acl d WHERE d.defaclnamespace = n.oid), '')
  FROM pg_namespace n WHERE n.nspname = %(schema)s::text
UNION ALL
SELECT 'seq', c.relname,
       format('%%s %%s %%s %%s %%s %%s',
              s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache),
       s.seqcycle::text,
       coalesce((SELECT d.refobjid::regclass::text || '.' || d.refobjsubid FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')), '')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'idxx', c.relname, i.indisvalid::text || ' ' || i.indisready::text || ' ' || i.indislive::text, '', ''
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'rule', r.rulename, c.relname, r.ev_enabled::text, pg_get_ruledef(r.oid)
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'pol', p.polname, c.relname, p.polcmd::text, coalesce(pg_get_expr(p.polqual, p.polrelid), '')
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = %(schema)s::text::regnamespace
UNION ALL
SELECT 'cmt', d.classoid::regclass::text, coalesce(c.relname, ''), d.objsubid::text, d.description
  FROM pg_description d LEFT JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
  WHERE c.relnamespace = %(schema)s::text::regnamespace
     OR (d.classoid = 'pg_proc'::regclass
         AND d.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = %(schema)s::text::regnamespace))
     OR (d.classoid = 'pg_namespace'::regclass AND d.objoid = %(schema)s::text::regnamespace)
ORDER BY 1, 2, 3, 4, 5
"""

Fingerprint = tuple[tuple[str, ...], ...]


def drop_schemas(database_url: str, schemas: Iterable[str]) -> None:
    """Drops each schema and everything in it (what is not there is no error)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def fingerprint(conn: psycopg.Connection[Any], schema: str) -> Fingerprint:
    rows = conn.execute(_FINGERPRINT, {"schema": schema}).fetchall()
    return tuple(tuple(str(value).replace(schema, "{schema}") for value in row) for row in rows)


@dataclass
class _Template:
    """A schema a ledger opened once and nothing touched since."""

    schema: str
    catalog: Fingerprint
    tables: list[str]  # every table, to truncate
    filled: list[str]  # the tables a fresh open writes rows to
    sequences: list[str]
    free: list[str] = field(default_factory=list)  # schemas reset to this template, for the next test


class SchemaPool:
    """Per process (an xdist worker): templates and free schemas, by ledger environment."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.templates: dict[tuple[tuple[str, str], ...], _Template] = {}

    @staticmethod
    def environment() -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LEDGER_")))

    def take(self) -> str | None:
        """A schema as a fresh open leaves it, or None: the caller makes a new one."""
        template = self.templates.get(self.environment())
        return template.free.pop() if template is not None and template.free else None

    def give_back(self, schema: str, opened: Callable[[str], None]) -> bool:
        """Keeps `schema` for the next test when its catalog is the template's, with the
        template's rows; False when it must be dropped. `opened(url)` opens and closes a
        ledger there (the template is made on first use, under the current environment)."""
        template = self._template(opened)
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                if fingerprint(conn, schema) != template.catalog:
                    return False
                _reset(conn, schema, template)
        except psycopg.Error:
            return False  # whatever the test did to it, it is dropped
        template.free.append(schema)
        return True

    def drop_all(self) -> None:
        """Drops the templates and the free schemas (at the end of a worker's session)."""
        schemas = [name for template in self.templates.values() for name in (template.schema, *template.free)]
        self.templates.clear()
        drop_schemas(self.database_url, schemas)

    def _template(self, opened: Callable[[str], None]) -> _Template:
        key = self.environment()
        template = self.templates.get(key)
        if template is not None:
            return template
        schema = f"t_{uuid.uuid4().hex[:16]}"
        opened(f"{self.database_url}?schema={schema}")
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            listed = conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind IN ('r', 'S')"
                " ORDER BY relname",
                (schema,),
            ).fetchall()
            tables = [name for name, kind in listed if kind == "r"]
            exists = sql.SQL("SELECT EXISTS (SELECT FROM {})")
            filled = [
                name
                for name in tables
                if conn.execute(exists.format(sql.Identifier(schema, name))).fetchone() == (True,)
            ]
            template = _Template(
                schema, fingerprint(conn, schema), tables, filled, [name for name, kind in listed if kind == "S"]
            )
        self.templates[key] = template
        return template


def _reset(conn: psycopg.Connection[Any], schema: str, template: _Template) -> None:
    """The rows and sequences of `schema` made the template's, in one transaction; then vacuumed."""
    with conn.transaction():
        # The ledger's own triggers refuse DELETE on its events and chain: not here.
        conn.execute("SET LOCAL session_replication_role = replica")
        # DELETE, not TRUNCATE: a test leaves few rows, and TRUNCATE gives each of the 27
        # tables and their indexes new files (0.3-0.5 s a reset against 0.01-0.04 s). The
        # dead rows are vacuumed after (the test server runs no autovacuum); a test that
        # reads raw pages takes a fresh schema.
        for name in template.tables:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, name)))
        for name in template.filled:
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                    sql.Identifier(schema, name), sql.Identifier(template.schema, name)
                )
            )
        for name in template.sequences:
            conn.execute(
                sql.SQL("SELECT setval({}, last_value, is_called) FROM {}").format(
                    sql.Literal(f'"{schema}"."{name}"'), sql.Identifier(template.schema, name)
                )
            )
    # A few milliseconds: the next test scans no dead rows (VACUUM runs outside a transaction).
    conn.execute(sql.SQL("VACUUM {}").format(sql.SQL(", ").join(sql.Identifier(schema, n) for n in template.tables)))
