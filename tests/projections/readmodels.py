"""Read models compared row by row, clean rebuilds, and projections as old code had them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger
from projections import registry
from projections.database import ReadModelDatabase
from projections.projection import Projection
from projections.registry import ProjectionSet, build_projections
from projections.runner import ProjectionRunner

Dump = dict[str, list[tuple[Any, ...]]]


def _value(value: Any) -> Any:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them as UTC.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def tables(projection: Projection) -> list[sa.Table]:
    return [t for t in projection.metadata.sorted_tables if t.name.startswith(f"{projection.versioned_name}_")]


def dump(read_models: ReadModelDatabase, projections: list[Projection]) -> Dump:
    """Every row of every table of the projections, by table name, in a stable order."""
    found: Dump = {}
    with read_models.connect() as conn:
        for projection in projections:
            for table in tables(projection):
                rows = [tuple(_value(v) for v in row) for row in conn.execute(sa.select(table))]
                found[table.name] = sorted(rows, key=repr)
    return found


def clean_rebuild(ledger: Ledger, batch_size: int = 1000, timezone: str | None = None) -> Dump:
    """Today's projections built from nothing over the ledger's events, in a private
    in-memory read-model database: what any rebuild must end with."""
    read_models = ReadModelDatabase("sqlite://", {})
    projections = build_projections(sa.MetaData(), timezone or ledger.timezone).all()
    runner = ProjectionRunner(read_models, ledger.app.recorder, ledger.app.mapper, projections, batch_size)
    try:
        runner.setup()
        runner.catch_up()
        return dump(read_models, projections)
    finally:
        read_models.close()


def older(cls: type[Projection]) -> type[Projection]:
    """The same projection as code one version older had it."""
    return type(f"Older{cls.__name__}", (cls,), {"version": cls.version - 1})


def _class_name(field: str) -> str:
    (found,) = [f.type for f in dataclasses.fields(ProjectionSet) if f.name == field]
    return str(found)  # the annotation's text: the class's name in `projections.registry`


@contextmanager
def code_with(**classes: type[Projection]) -> Iterator[None]:
    """Ledgers opened inside build these classes for the named projections (fields of
    `ProjectionSet`): other code over the same store. Objects built keep their classes."""
    with pytest.MonkeyPatch.context() as patch:
        for field, cls in classes.items():
            patch.setattr(registry, _class_name(field), cls)
        yield


def old_code() -> AbstractContextManager[None]:
    """Every projection one version older than today's."""
    fields = [f.name for f in dataclasses.fields(ProjectionSet)]
    return code_with(**{f: older(getattr(registry, _class_name(f))) for f in fields})


def totals_from_every_kernel(ledger: Ledger, first: date, last: date, group_id: str | None) -> dict[str, Any]:
    """`Queries.usage_totals` as it was computed before it read only the running kernels:
    the daily rollups, plus the RUNNING ones among every kernel `SqlUsageReader.kernels`
    selects for the window, for the part of the window they have run."""
    from adapters.read.usage import SqlUsageReader

    reader = SqlUsageReader(ledger.read_models, ledger.runner, ledger.projections)
    tz, daily = ledger.projections.usage.tz, ledger.projections.usage.daily
    start = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
    end = (datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
    running = [k for k in reader.kernels(start, end, None if group_id is None else [group_id]) if k.status == "RUNNING"]
    statement = (
        sa.select(daily.c.group_id, daily.c.slot, sa.func.sum(daily.c.amount_seconds).label("amount"))
        .where(daily.c.day >= first, daily.c.day <= last)
        .group_by(daily.c.group_id, daily.c.slot)
    )
    if group_id is not None:
        statement = statement.where(daily.c.group_id == group_id)
    with ledger.read_models.connect() as conn:
        rows = conn.execute(statement).all()
    totals: dict[str, dict[str, float]] = {}
    for row in rows:
        totals.setdefault(row.group_id, {})[row.slot] = float(row.amount)
    now = datetime.now(UTC)
    for kernel in running:
        seconds = max(0.0, (min(end, now) - max(start, kernel.started_at)).total_seconds())
        slots = totals.setdefault(kernel.group_id, {})
        for slot, amount in kernel.occupied_slots.items():
            slots[slot] = slots.get(slot, 0.0) + float(amount) * seconds
    return totals
