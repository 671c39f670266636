"""SQL helpers of the read models: bulk inserts, compact JSON, dialect INSERTs, chunks."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

# A table keyed by event position: on SQLite an INTEGER key is the rowid itself, where a
# BIGINT key would be a second B-tree beside it.
POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class BulkInsert:
    """Inserts many rows of a table in one driver-level operation: COPY on PostgreSQL (an
    executemany there is one round of the protocol per row), else one executemany. Values
    go through the columns' own bind processors, as SQLAlchemy converts them, but in one
    tight loop: SQLAlchemy's per-row parameter handling cost more than the inserts
    themselves in a rebuild. A row is a tuple of every column's value, in the table's
    column order; no defaults are applied. Columns named in `raw` are given in driver form
    already (say JSON text a projection serialised once for many rows)."""

    def __init__(self, table: sa.Table, raw: Sequence[str] = ()) -> None:
        self.table = table
        self.raw = set(raw)
        self._columns = tuple(column.key for column in table.columns)
        self._pick = operator.itemgetter(*self._columns)
        self._writers: dict[str, Callable[[Connection, Sequence[Sequence[Any]]], None]] = {}

    def row(self, **values: Any) -> list[Any]:
        """A row of the table from its values by column name, in the table's column order
        (so no caller spells that order out); a missing or unknown column is a TypeError."""
        if len(values) > len(self._columns):
            raise TypeError(f"{self.table.name}: unknown columns {sorted(set(values) - set(self._columns))}")
        try:
            picked = self._pick(values)  # itemgetter: one C call per row, in a rebuild's hot loop
            return list(picked) if len(self._columns) > 1 else [picked]
        except KeyError as exc:
            if values.keys() - set(self._columns):  # an unknown name took a known one's place
                raise TypeError(
                    f"{self.table.name}: unknown columns {sorted(set(values) - set(self._columns))}"
                ) from None
            raise TypeError(f"{self.table.name}: no value for column {exc.args[0]!r}") from None

    def __call__(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            name = conn.dialect.name
            if name not in self._writers:
                self._writers[name] = self._writer(conn.dialect)
            self._writers[name](conn, rows)

    def _writer(self, dialect: sa.Dialect) -> Callable[[Connection, Sequence[Sequence[Any]]], None]:
        columns = [column.key for column in self.table.columns]
        processors = [
            (i, _bind_processor(column.type, dialect))
            for i, column in enumerate(self.table.columns)
            if column.key not in self.raw
        ]
        steps = [(i, process) for i, process in processors if process is not None]

        def convert(row: Sequence[Any]) -> list[Any]:
            values = list(row)
            for i, process in steps:
                if values[i] is not None:
                    values[i] = process(values[i])
            return values

        if dialect.name == "postgresql":
            quote = dialect.identifier_preparer.quote
            copy = f"COPY {quote(self.table.name)} ({', '.join(map(quote, columns))}) FROM STDIN"
            return lambda conn, rows: _copy(conn, copy, map(convert, rows))
        compiled = sa.insert(self.table).compile(dialect=dialect, column_keys=columns)
        order = compiled.positiontup
        if order is None:  # a named paramstyle
            return lambda conn, rows: _executemany(
                conn, compiled.string, [dict(zip(columns, convert(r), strict=True)) for r in rows]
            )
        if list(order) == columns:  # qmark style, values in column order: no reordering
            return lambda conn, rows: _executemany(conn, compiled.string, list(map(tuple, map(convert, rows))))
        positions = [columns.index(name) for name in order]
        return lambda conn, rows: _executemany(
            conn, compiled.string, [tuple(values[i] for i in positions) for values in map(convert, rows)]
        )


def _bind_processor(type_: Any, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor; for SQLite's DATETIME in its default storage
    format, an equivalent one five times faster (a rebuild formats a time per row)."""
    impl = type_.dialect_impl(dialect)
    if type(impl) is sqlite.DATETIME and impl._storage_format == sqlite.DATETIME._storage_format:
        return _sqlite_datetime
    process: Callable[[Any], Any] | None = impl.bind_processor(dialect)
    return process


def _sqlite_datetime(value: Any) -> Any:
    # SQLAlchemy writes "YYYY-MM-DD HH:MM:SS.ffffff" from the fields as they are, offset
    # dropped; isoformat gives the same 26 characters, then the offset if any. A date goes
    # through SQLAlchemy's own conversion.
    if type(value) is not datetime:
        return _SQLITE_DATETIME(value)
    return value.isoformat(" ", "microseconds")[:26]


_SQLITE_DATETIME: Callable[[Any], Any] = sa.DateTime().dialect_impl(sqlite.dialect()).bind_processor(
    sqlite.dialect()
) or (lambda value: value)


def compact_json(value: Any) -> str:
    """JSON text without spaces, as projections store it in their raw JSON columns; the C
    encoder is built once (`json.dumps` builds one per call: half the cost for small values)."""
    return "".join(_COMPACT(value, 0)) if _COMPACT is not None else _COMPACT_FALLBACK.encode(value)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder `json` itself uses for compact one-shot encoding, if this Python has it."""
    try:
        return json.encoder.c_make_encoder(  # type: ignore[attr-defined, no-any-return]
            None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
    except TypeError:  # no C accelerator (None), or another signature
        return None


_COMPACT_FALLBACK = json.JSONEncoder(separators=(",", ":"))
_COMPACT = _c_encoder()


def _executemany(conn: Connection, sql: str, params: list[Any]) -> None:
    conn.exec_driver_sql(sql, params)


def _copy(conn: Connection, statement: str, rows: Iterator[list[Any]]) -> None:
    # The connection's own driver connection: the COPY is part of the batch's transaction.
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def insert_for(conn: Connection, table: sa.Table) -> Any:
    """An INSERT in the connection's dialect, which has ON CONFLICT (PostgreSQL or SQLite)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """`items` in slices of at most `size`: for `IN (...)` lists under every driver's limit."""
    return (items[first : first + size] for first in range(0, len(items), size))
