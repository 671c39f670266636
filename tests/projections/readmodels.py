"""Read models compared row by row, clean rebuilds, and projections as old code had them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
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
