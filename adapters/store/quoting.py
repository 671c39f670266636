"""SQL quoting for the few statements no driver can parameterise (DDL, a `search_path`
option): every name or text pasted into SQL goes through one of these."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier (double quotes, a quote doubled), as SQLite and
    PostgreSQL read it, for where no driver-level quoting applies."""
    return '"' + name.replace('"', '""') + '"'


def quote_string(text: str) -> str:
    """`text` as an SQL string literal (single quotes, a quote doubled)."""
    return "'" + text.replace("'", "''") + "'"
