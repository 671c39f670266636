"""The ledgers of one process share their read models' table definitions (one MetaData per
zone), and each keeps its own projection objects and knows its own tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.bootstrap import open_ledger
from projections.projection import Projection


def test_ledgers_of_one_process_share_table_definitions_not_projections(tmp_path: Path) -> None:
    with (
        open_ledger(f"sqlite:///{tmp_path / 'a.db'}") as first,
        open_ledger(f"sqlite:///{tmp_path / 'b.db'}") as second,
        open_ledger(f"sqlite:///{tmp_path / 'c.db'}", "Asia/Seoul") as seoul,
    ):
        assert second.projections.policies.rows is first.projections.policies.rows
        # Projections hold caches of what they wrote: each ledger has its own.
        assert second.projections.usage is not first.projections.usage
        # Another zone's usage tables have other names, in other metadata.
        assert seoul.projections.usage.metadata is not first.projections.usage.metadata
        assert {t.name for t in seoul.projections.usage.tables}.isdisjoint(
            t.name for t in first.projections.usage.tables
        )
        for ledger in (first, second, seoul):
            made = set(sa.inspect(ledger.read_models.engine).get_table_names())
            own = {t.name for p in ledger.projections.all() for t in p.tables}
            assert own <= made
            assert not {name for name in made if name.startswith("usage_")} - own  # no other zone's


class _Rows(Projection):
    name = "shared_rows_check"

    def __init__(self, metadata: sa.MetaData, *columns: sa.Column[int] | sa.Index) -> None:
        super().__init__(metadata)
        self.rows = self.table("rows", *columns)


def test_a_table_made_again_with_other_columns_is_refused() -> None:
    metadata = sa.MetaData()
    first = _Rows(metadata, sa.Column("a", sa.Integer, primary_key=True))
    again = _Rows(metadata, sa.Column("a", sa.Integer, primary_key=True))
    assert again.rows is first.rows and again.tables == [first.rows]
    with pytest.raises(TypeError, match="shared_rows_check_v1_rows"):
        _Rows(metadata, sa.Column("b", sa.Integer, primary_key=True))


def _two_columns() -> tuple[sa.Column[int], sa.Column[int]]:
    return sa.Column("a", sa.Integer, primary_key=True), sa.Column("b", sa.Integer)


def test_a_table_whose_indexes_share_a_name_is_refused() -> None:
    """SQLAlchemy names an index after its table and first column only: two indexes that
    begin alike (the kernels' list by group and position, the reports' by group and start)
    had one name, and the second was never made (indexes are created IF NOT EXISTS), so
    its queries sorted or scanned with nothing said."""
    with pytest.raises(TypeError, match="two indexes share a name"):
        _Rows(sa.MetaData(), *_two_columns(), sa.Index(None, "b", "a"), sa.Index(None, "b"))
    made = _Rows(sa.MetaData(), *_two_columns(), sa.Index(None, "b", "a"), sa.Index("ix_b_alone", "b"))
    assert len(made.rows.indexes) == 2
