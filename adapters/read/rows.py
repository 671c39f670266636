"""How every query reads its read models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from projections.database import ReadModelDatabase
from projections.projection import Projection
from projections.runner import ProjectionRunner


def read_rows(
    read_models: ReadModelDatabase, runner: ProjectionRunner, statement: sa.Executable, *projections: Projection
) -> list[sa.Row[Any]]:
    """The statement's rows over the read models of `projections`, after every event stored
    so far is applied (read-your-writes: every command that returned before this query is
    visible). Refused while one of them is stalled: it would answer from before the event
    it stopped at."""
    _caught_up(runner, projections)
    with read_models.connect() as conn:
        return list(conn.execute(statement))


def stream_rows(
    read_models: ReadModelDatabase,
    runner: ProjectionRunner,
    statement: sa.Executable,
    chunk: int,
    *projections: Projection,
) -> Iterator[sa.Row[Any]]:
    """`read_rows`, fetched `chunk` rows at a time (a server-side cursor on PostgreSQL): one
    statement, so one consistent view, held a chunk at a time, never whole."""
    _caught_up(runner, projections)
    with read_models.connect() as conn:
        yield from conn.execution_options(yield_per=chunk).execute(statement)


def _caught_up(runner: ProjectionRunner, projections: tuple[Projection, ...]) -> None:
    runner.catch_up()
    for projection in projections:
        runner.require(projection)
