"""The runner's bookkeeping: a tracking row per projection version (the position its
tables reflect), the active version of each read model, the retired tables still to be
dropped, stalls and forced rebuilds; all in the read-model database, so a batch's rows
and its new position commit together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from domain.errors import ReadModelVersionMismatch, StoreUnavailable
from domain.projection_ops import Stall
from projections.database import ReadModelDatabase
from projections.projection import Projection
from projections.sql import insert_for


class BuildGone(StoreUnavailable):
    """A forced rebuild whose tracking row another process took away: it swapped the
    build in (finished) or discarded it. A catch-up of that build has nothing left to do."""


class Tracking:
    """The runner's bookkeeping tables, beside the read models, and what it last read of them."""

    tracking_metadata = sa.MetaData()
    tracking = sa.Table(
        "projection_tracking",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    # The retired tables still to be dropped (SQLite), by the name they were renamed under.
    retired = sa.Table(
        "projection_garbage",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
    )
    versions = sa.Table(
        "projection_versions",
        tracking_metadata,
        sa.Column("name", sa.String(128), primary_key=True),  # a read model's stable name
        sa.Column("version", sa.Integer, nullable=False),  # the active version
        sa.Column("projection", sa.String(128), nullable=False),  # the active version's versioned name
    )
    # Where a projection's build (a tracking row's storage name) stopped because its handler raised:
    # the event at `position` is not applied, everything before it is. Beside the tracking
    # rows, so it survives restarts; a row whose position the tracking row has passed (a
    # skip, a fixed handler) no longer counts.
    stalls = sa.Table(
        "projection_stalls",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("lineage", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("stalled_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Forced rebuilds of an active version, by its versioned name: the last generation started (never
    # reused: a finished one's tables keep their generation's index and constraint names)
    # and whether it is still being built.
    rebuilds = sa.Table(
        "projection_rebuilds",
        tracking_metadata,
        sa.Column("projection", sa.String(128), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("building", sa.Boolean, nullable=False),
    )

    def __init__(
        self, read_models: ReadModelDatabase, recorder: ApplicationRecorder, projections: Sequence[Projection]
    ) -> None:
        self.read_models = read_models
        self.recorder = recorder
        self.projections = list(projections)
        self.positions: dict[str, int] = {}  # storage name -> its tracking row's position
        self.active: dict[str, tuple[int, str]] = {}  # stable name -> (active version, its versioned name)
        self.stalled: dict[str, Stall] = {}  # storage name -> where it stopped (only stalls still in force)
        self.generations: dict[str, tuple[int, bool]] = {}  # versioned name -> (last forced rebuild, building)
        # Each process tries a stalled projection's event once (its code may read it now),
        # then leaves it alone until a skip is recorded: no retry on every query or wake.
        self._retried: set[str] = set()

    def _tables(self, projections: Sequence[Projection] | None = None) -> list[sa.Table]:
        chosen = self.projections if projections is None else projections
        return [table for projection in chosen for table in projection.tables]

    def _create(self, tables: Sequence[sa.Table]) -> None:
        """Creates the missing tables with their indexes. Existing ones are skipped before
        any DDL: on PostgreSQL even `CREATE INDEX IF NOT EXISTS` locks the table, so it
        would queue behind a runner's batch and could deadlock with it. On PostgreSQL the
        creators take turns (a lock held until commit), and each looks again once it has
        its turn: two `CREATE TABLE IF NOT EXISTS` of one table at once fail the second on
        a duplicate key of the catalog (two forced rebuilds started together)."""
        with self.read_models.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
        missing = [table for table in tables if table.name not in existing]
        if not missing:
            return
        with self.read_models.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(_CREATORS_TAKE_TURNS))
                existing = set(sa.inspect(conn).get_table_names())
                missing = [table for table in missing if table.name not in existing]
            for table in missing:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))

    def _insert_missing(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Inserts the rows whose primary key is absent; concurrent inserters all succeed.
        Rows already there are left alone, without waiting on a batch that updates them."""
        (key,) = table.primary_key.columns
        with self.read_models.connect() as conn:
            present = set(conn.execute(sa.select(key)).scalars())
        rows = [row for row in rows if row[key.key] not in present]
        if not rows:
            return
        with self.read_models.begin() as conn:
            conn.execute(insert_for(conn, table).on_conflict_do_nothing(), rows)

    def stored_positions(self) -> dict[str, int]:
        """Every tracking row's position, as committed (other processes' work included)."""
        with self.read_models.connect() as conn:
            return {row.projection: row.position for row in conn.execute(sa.select(self.tracking))}

    def _read_state(self) -> None:
        with self.read_models.connect() as conn:
            positions = conn.execute(sa.select(self.tracking)).all()
            versions = conn.execute(sa.select(self.versions)).all()
            stalls = conn.execute(sa.select(self.stalls)).all()
            rebuilds = conn.execute(sa.select(self.rebuilds)).all()
        self.positions = {row.projection: row.position for row in positions}
        self.active = {row.name: (row.version, row.projection) for row in versions}
        self.stalled = {
            row.projection: Stall(row.lineage, row.version, row.position, row.cause, _utc(row.stalled_at))
            for row in stalls
            if row.projection in self.positions and self.positions[row.projection] < row.position
        }
        self.generations = {row.projection: (row.generation, row.building) for row in rebuilds}

    def _position(self, projection: Projection) -> int:
        position = self.positions.get(projection.storage_name)
        if position is None:
            if projection.generation:
                raise BuildGone(
                    f"the rebuild of {projection.versioned_name} was finished or discarded by another process"
                )
            # deleted by the activation of a newer version
            raise ReadModelVersionMismatch(
                f"read model {projection.versioned_name} was replaced by a newer version: run the newer code"
            )
        return position


_CREATORS_TAKE_TURNS = "SELECT pg_advisory_xact_lock(hashtext('ledger-read-models:' || current_schema()))"


def tables_of(conn: Connection, stored_name: str) -> list[str]:
    """The tables stored under `stored_name` (a projection's storage name, or the name its
    retired tables were given), named `{stored_name}_{table}`. A stored name can begin
    another's plus `_` (the usage model of America/Bahia, `usage_v4_america_bahia`, and of
    America/Bahia_Banderas, `usage_v4_america_bahia_banderas`), so a table is the one of
    the longest stored name it begins with, of those the bookkeeping records."""
    prefix = f"{stored_name}_"
    longer = [
        f"{name}_"
        for table in (Tracking.tracking, Tracking.retired)
        for name in conn.execute(
            sa.select(table.c.projection).where(table.c.projection.startswith(prefix, autoescape=True))
        ).scalars()
    ]
    return sorted(
        name
        for name in sa.inspect(conn).get_table_names()
        if name.startswith(prefix) and not any(name.startswith(other) for other in longer)
    )


def _utc(at: datetime) -> datetime:
    # SQLite hands back a naive time (stored in UTC), PostgreSQL an aware one.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
