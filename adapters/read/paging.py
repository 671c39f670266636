"""Keyset paging for the lists ordered by a time or a name, then an id."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from domain.errors import InvalidAPIParameters
from domain.parsers import parse_positive_int


def after_row(
    sort: sa.ColumnElement[Any],
    key: sa.ColumnElement[Any],
    cursor: Any,
    *,
    descending: bool = False,
    within: sa.ColumnElement[bool] | None = None,
) -> sa.ColumnElement[bool]:
    """The rows that follow, in (sort, key) order (both descending with `descending`), the
    row whose key is `cursor`: the last row of the previous page. The cursor row's sort
    value is read in SQL, so the cursor is its key alone, no time round-trips through a
    string, and a page goes on from where that row stands even if it has left the list's
    filters since (a kernel ended while an operator pages through the running ones). An
    unknown cursor matches nothing (`cursor_row` tells it from the list's end). `within`:
    what the cursor row must also meet to be one (when the key alone names several rows,
    or rows the caller may not place by)."""
    at = cursor_row(key, cursor, within).with_only_columns(sort).scalar_subquery()
    # The bound on `sort` alone is implied by the rest, and is what lets an index in the
    # list's order start at the cursor: without it a page walked the index from the list's
    # start to the cursor, a cost that grew with every page.
    if descending:
        return sa.and_(sort <= at, sa.or_(sort < at, key < cursor))
    return sa.and_(sort >= at, sa.or_(sort > at, key > cursor))


def cursor_row(key: sa.ColumnElement[Any], cursor: Any, within: sa.ColumnElement[bool] | None = None) -> sa.Select[Any]:
    """The cursor row's key, if it is one (`after_row`'s `within` included): an empty page
    after a cursor is the end of the list only when this finds it."""
    found = sa.select(key).where(key == cursor)
    return found if within is None else found.where(within)


def unknown_cursor(item: str) -> InvalidAPIParameters:
    """A cursor that names no row the list could go on from: never one, one the caller may
    not read (answered alike, so that neither is told), or one deleted since the previous
    page (a kernel purged with its group). An empty last page would tell a client paging
    through the list that it has seen all of it."""
    return InvalidAPIParameters(
        f"names no {item} this list can go on from (it may have been removed since the previous page); "
        "list again from the start",
        field="after",
    )


def page_limit(limit: int | None) -> int | None:
    """A list's `limit`, checked: None for no limit."""
    return None if limit is None else parse_positive_int(limit, "limit")


def starts_with(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    """The rows whose `column` begins with `prefix`, character for character."""
    # Not LIKE: it ignores ASCII case on SQLite only, and '%' and '_' in a prefix would match anything.
    return sa.func.substr(column, 1, len(prefix)) == prefix
