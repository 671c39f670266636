"""`BulkInsert.row`: a projection names each value's column and the row comes out in
the table's order, so no projection restates that order by hand."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from projections.sql import BulkInsert

TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("a", sa.Integer, primary_key=True),
    sa.Column("b", sa.String(8)),
    sa.Column("c", sa.Integer),
)


def test_a_row_follows_the_tables_column_order_whatever_the_order_of_its_names() -> None:
    assert BulkInsert(TABLE).row(c=3, a=1, b="x") == [1, "x", 3]


def test_a_missing_column_is_named() -> None:
    with pytest.raises(TypeError, match="no value for column 'c'"):
        BulkInsert(TABLE).row(a=1, b="x")


def test_an_unknown_column_is_named() -> None:
    with pytest.raises(TypeError, match=r"unknown columns \['d'\]"):
        BulkInsert(TABLE).row(a=1, b="x", c=3, d=4)
    with pytest.raises(TypeError, match=r"unknown columns \['d'\]"):
        BulkInsert(TABLE).row(a=1, b="x", d=4)


def test_rows_built_by_name_are_inserted_in_place() -> None:
    engine = sa.create_engine("sqlite://")
    TABLE.metadata.create_all(engine)
    insert = BulkInsert(TABLE)
    with engine.begin() as conn:
        insert(conn, [insert.row(b="x", c=3, a=1), insert.row(a=2, c=None, b=None)])
        assert conn.execute(sa.select(TABLE).order_by(TABLE.c.a)).all() == [(1, "x", 3), (2, None, None)]


def test_a_one_column_table_gives_a_one_value_row() -> None:
    single = sa.Table("s", sa.MetaData(), sa.Column("only", sa.String(8), primary_key=True))
    assert BulkInsert(single).row(only="x") == ["x"]
