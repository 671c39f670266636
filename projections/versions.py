"""Versions of read models, switched blue/green.

Tables are named after the projection's versioned name, `{name}_v{version}_{table}`, and
`projection_versions` records which version of each read model is active. Code whose
version is newer than the active one has a *pending* version: it is built in its own
tables, from position 0, with its own tracking row, while the old version's tables keep
answering the processes that still run old code. When the pending version has caught up,
one transaction makes it active, deletes the old tracking row and retires the old tables;
old code then refuses to read (`ReadModelVersionMismatch`) instead of reading tables that
are gone. A build that is killed resumes from its tracking row. A forced rebuild of the
active version (`force`) is built in a new generation of its tables and swapped in by
rename. Retired tables are dropped at once on PostgreSQL; on SQLite renamed, then
emptied a chunk per transaction and dropped (`drop_retired_tables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder
from sqlalchemy.engine import Connection
from sqlalchemy.schema import DropTable

from domain.errors import ReadModelVersionMismatch, StoreUnavailable
from projections.database import ReadModelDatabase
from projections.projection import GENERATIONS, Factory, Projection, build_storage_name
from projections.sql import insert_for
from projections.tracking import Tracking, tables_of


class _BuildBehind(Exception):
    """The active version has applied events a forced rebuild has not: catch it up first."""


class Versions(Tracking):
    """Switches versions and forced rebuilds in, and retires the tables they replace."""

    def __init__(
        self,
        read_models: ReadModelDatabase,
        recorder: ApplicationRecorder,
        projections: Sequence[Projection],
        factory: Factory | None = None,
    ) -> None:
        super().__init__(read_models, recorder, projections)
        self.factory = factory
        self._builds: dict[str, Projection] = {}  # storage name -> a forced rebuild's projection

    @staticmethod
    def _version_row(projection: Projection) -> dict[str, Any]:
        return {"name": projection.stable_name, "version": projection.version, "projection": projection.versioned_name}

    def refresh(self) -> None:
        """Re-reads versions and positions, which other processes may have moved."""
        self._read_state()
        self._refuse_outdated_code()

    def _refuse_outdated_code(self, discard: bool = False) -> None:
        for projection in self.projections:
            version, _key = self.active[projection.stable_name]
            if version > projection.version:
                if discard:
                    self._discard(projection.versioned_name)
                raise ReadModelVersionMismatch(
                    f"read model {projection.stable_name} is at version {version}, this code has version "
                    f"{projection.version}: run the newer code"
                )

    def _discard(self, key: str) -> None:
        """Takes away the tables and tracking row of a version that is not and will never be active."""
        with self.read_models.begin() as conn:
            self._take_away(conn, key)

    def _take_away(self, conn: Connection, key: str) -> None:
        """The tracking row, stall and tables stored under `key`, in the caller's transaction."""
        conn.execute(sa.delete(self.tracking).where(self.tracking.c.projection == key))
        conn.execute(sa.delete(self.stalls).where(self.stalls.c.projection == key))
        self._retire_tables(conn, key)

    def _explain_replaced_version(self) -> None:
        """A read failed: if newer code replaced one of our versions, say so."""
        self._read_state()
        for projection in self.projections:
            self._position(projection)
        self._refuse_outdated_code()

    def pending(self) -> list[Projection]:
        """This code's projections whose version is newer than the active one."""
        return [p for p in self.projections if self.active[p.stable_name][0] < p.version]

    def force(self, projections: Sequence[Projection]) -> list[Projection]:
        """Starts a forced rebuild of each projection's active version (a fixed handler, a
        damaged table): a new generation of its tables, built from the first event beside
        the active ones, which `catch_up` swaps in when it has caught up. One in progress
        is resumed, not restarted. Returns the builds, to pass to `catch_up`."""
        keys = [p.versioned_name for p in projections if self.active[p.stable_name][0] == p.version]
        with self.read_models.begin(immediate=True) as conn:  # reads the generation, then writes the next
            for key in keys:
                row = conn.execute(sa.select(self.rebuilds).where(self.rebuilds.c.projection == key)).first()
                if row is None:
                    fresh = {"projection": key, "generation": 1, "building": True}
                    conn.execute(insert_for(conn, self.rebuilds).on_conflict_do_nothing(), fresh)
                elif not row.building:
                    conn.execute(
                        sa.update(self.rebuilds)
                        .where(self.rebuilds.c.projection == key, self.rebuilds.c.generation == row.generation)
                        .values(generation=row.generation + 1, building=True)
                    )
        self._read_state()
        return self.builds(keys)

    def builds(self, keys: Sequence[str] | None = None) -> list[Projection]:
        """The forced rebuilds in progress of this code's active versions (`keys` only, if
        given), their tables and tracking rows created. Needs the runner's `factory`."""
        wanted = {
            key: generation
            for key, (generation, building) in self.generations.items()
            if building and (keys is None or key in keys)
        }
        ours = [
            p for p in self.projections if p.versioned_name in wanted and self.active[p.stable_name][0] == p.version
        ]
        names = {p.versioned_name: build_storage_name(p.versioned_name, wanted[p.versioned_name]) for p in ours}
        missing = [p for p in ours if names[p.versioned_name] not in self._builds]
        if missing:
            if self.factory is None:
                raise TypeError("this runner has no projection factory to build a forced rebuild with")
            made = {p.versioned_name: p for p in self.factory(sa.MetaData(info={GENERATIONS: wanted}))}
            for projection in missing:
                build = made[projection.versioned_name]
                self._builds[build.storage_name] = build
            new = [made[p.versioned_name] for p in missing]
            self._create(self._tables(new))
            self._insert_missing(self.tracking, [{"projection": p.storage_name, "position": 0} for p in new])
            self._read_state()
        return [self._builds[names[p.versioned_name]] for p in ours]

    def _activate_caught_up(self, chosen: Sequence[Projection], head: int) -> bool:
        """Activates the pending versions and swaps in the forced rebuilds that reached
        `head`; True if a build was left because the active version had got past it."""
        behind = False
        for projection in chosen:
            if projection.generation:
                if self.positions.get(projection.storage_name, -1) >= head:
                    behind |= not self._swap_in(projection)
            elif projection in self.pending() and self._position(projection) >= head:
                self._activate(projection)
        return behind

    def _activate(self, projection: Projection) -> None:
        """Makes a caught-up pending version the active one and, in the same transaction,
        takes the old version's tables away from old code: dropped on PostgreSQL; renamed
        `replaced_…` and recorded as retired on SQLite, where `drop_retired_tables` drops them
        after (old code then fails on a missing table and refuses to read, at once). The
        update comes first and is conditional: of several processes activating at once, one
        does it and the others only re-read."""
        old_version, old_key = self.active[projection.stable_name]
        with self.read_models.begin() as conn:
            flipped = conn.execute(
                sa.update(self.versions)
                .where(self.versions.c.name == projection.stable_name, self.versions.c.version == old_version)
                .values(version=projection.version, projection=projection.versioned_name)
            )
            if flipped.rowcount == 1:
                self._take_away(conn, old_key)
                self._discard_build_of(conn, old_key)
        self._read_state()
        self._refuse_outdated_code()  # another process may have activated a still newer version

    def _discard_build_of(self, conn: Connection, key: str) -> None:
        """Takes away, in the caller's transaction, a forced rebuild of the replaced version
        `key` left unfinished (a killed `rebuild --force`): no code builds or reads it any
        more, and its tables, tracking row and rows in clear (values erased since included,
        which no erasure reaches there) were otherwise kept for good."""
        row = conn.execute(sa.select(self.rebuilds).where(self.rebuilds.c.projection == key)).first()
        if row is None:
            return
        if row.building:
            self._take_away(conn, build_storage_name(key, row.generation))
        conn.execute(sa.delete(self.rebuilds).where(self.rebuilds.c.projection == key))

    def _swap_in(self, build: Projection) -> bool:
        """Puts a caught-up forced rebuild in place of its active version, in one
        transaction: the active tables are retired as a replaced version's are, the
        build's renamed to the active names (so every process's tables, bound to those
        names, now read the new rows), and the active tracking row takes the build's
        position. The stall goes with the old tables. Conditional, like `_activate`: one
        process swaps. False, and nothing done, if the active version has applied events
        the build has not (stored while it caught up): swapped in, its rows would go back
        to an older position, which a process whose read models are at the head would
        read as they are, having nothing new to apply."""
        key, generation, build_key = build.versioned_name, build.generation, build.storage_name
        try:
            with self.read_models.begin(immediate=True) as conn:
                done = conn.execute(
                    sa.update(self.rebuilds)
                    .where(self.rebuilds.c.projection == key, self.rebuilds.c.generation == generation)
                    .where(self.rebuilds.c.building.is_(True))
                    .values(building=False)
                )
                if done.rowcount == 1:
                    self._replace_by_build(conn, key, build_key)
        except _BuildBehind:
            self._read_state()
            return False
        self._builds.pop(build_key, None)
        self._retried.discard(key)
        self._read_state()
        return True

    def _replace_by_build(self, conn: Connection, key: str, build_key: str) -> None:
        tracked = self.tracking.c.projection
        # The active tracking row first (PostgreSQL: locked until the swap commits), before
        # the tables: a batch into the active version claims its row, then writes its tables.
        active = conn.execute(sa.select(self.tracking.c.position).where(tracked == key).with_for_update()).scalar_one()
        # The build's next, before its tables, for the same reason: a batch into the build
        # (an erasure catching it up, another rebuild) claims that row, then writes the tables
        # in its handlers' order; renamed meanwhile, each side held a table (or the row) the
        # other waited for, and PostgreSQL failed one of them as a deadlock.
        conn.execute(sa.select(self.tracking.c.position).where(tracked == build_key).with_for_update()).all()
        self._retire_tables(conn, key, _REPLACED + build_key)
        quote = conn.dialect.identifier_preparer.quote
        for name in tables_of(conn, build_key):
            renamed = key + name[len(build_key) :]
            conn.exec_driver_sql(f"ALTER TABLE {quote(name)} RENAME TO {quote(renamed)}")
        # Read once the renames hold the build's tables: another process's batch into
        # them (a second rebuild of the same generation) has committed its rows and
        # its position by then, or has not begun; read before, the position could be
        # older than the rows, and the next catch-up would apply those events again.
        position = conn.execute(sa.select(self.tracking.c.position).where(tracked == build_key)).scalar_one()
        if position < active:
            raise _BuildBehind(build_key)  # rolls the swap back
        conn.execute(sa.update(self.tracking).where(tracked == key).values(position=position))
        conn.execute(sa.delete(self.tracking).where(tracked == build_key))
        conn.execute(sa.delete(self.stalls).where(self.stalls.c.projection.in_([key, build_key])))

    def _retire_tables(self, conn: Connection, key: str, retired_name: str | None = None) -> None:
        """Takes the tables stored under `key` away, in the caller's transaction: dropped on
        PostgreSQL; on SQLite renamed `retired_name` (default `replaced_{key}`) + their own
        name after the key, recorded as retired and left to `drop_retired_tables`."""
        if conn.dialect.name != "sqlite":
            for name in tables_of(conn, key):
                conn.execute(DropTable(sa.Table(name, sa.MetaData())))
            return
        retired_name = retired_name or _REPLACED + key
        quote = conn.dialect.identifier_preparer.quote
        for name in tables_of(conn, key):
            conn.exec_driver_sql(f"ALTER TABLE {quote(name)} RENAME TO {quote(retired_name + name[len(key) :])}")
        conn.execute(insert_for(conn, self.retired).on_conflict_do_nothing(), {"projection": retired_name})

    def drop_retired_tables(self, max_chunks: int | None = None) -> bool:
        """Drops the tables of replaced versions (SQLite's; PostgreSQL drops them in the
        switch); True when none is left. A DROP of a large table holds SQLite's one write
        lock while it frees every page (minutes for millions of rows, with the event store
        in the same file), so the rows go first, `RETIRED_CHUNK` per transaction, and the
        empty table after; `max_chunks` bounds one call's work. Not run by the catch-up
        that activates a version (a query's read-your-writes would wait on it), nor when a
        ledger is opened with nothing to build, but by a `build_pending` that built,
        `ledger projections rebuild` and, a few chunks per wake, the follower; a drop cut
        short is taken up by the next one."""
        used = 0
        with self.read_models.connect() as conn:
            keys = list(conn.execute(sa.select(self.retired.c.projection)).scalars())
        for key in keys:
            with self.read_models.connect() as conn:
                names = tables_of(conn, key)
            for name in names:
                if self.read_models.engine.dialect.name == "sqlite":
                    emptied, chunks = self._empty_in_chunks(name, None if max_chunks is None else max_chunks - used)
                    used += chunks
                    if not emptied:
                        return False
                with self.read_models.begin() as conn:
                    conn.execute(DropTable(sa.Table(name, sa.MetaData()), if_exists=True))
            with self.read_models.begin() as conn:
                conn.execute(sa.delete(self.retired).where(self.retired.c.projection == key))
        return True

    def _empty_in_chunks(self, name: str, limit: int | None) -> tuple[bool, int]:
        """Deletes the table's rows, a chunk per transaction, at most `limit` chunks:
        (emptied, chunks used)."""
        quoted = self.read_models.engine.dialect.identifier_preparer.quote(name)
        delete = sa.text(f"DELETE FROM {quoted} WHERE rowid IN (SELECT rowid FROM {quoted} LIMIT {RETIRED_CHUNK})")
        chunks = 0
        while limit is None or chunks < limit:
            try:
                with self.read_models.begin() as conn:
                    deleted = conn.execute(delete).rowcount
            except (sa.exc.OperationalError, StoreUnavailable):  # the read models wrap the driver's error
                # Another process (a follower, a rebuild) dropping the same retired tables
                # got there first: a table gone is a table emptied.
                with self.read_models.connect() as conn:
                    if name not in sa.inspect(conn).get_table_names():
                        return True, chunks
                raise
            chunks += 1
            if deleted < RETIRED_CHUNK:
                return True, chunks
        return False, chunks


RETIRED_CHUNK = 20_000  # rows of a replaced table deleted per transaction (SQLite)
_REPLACED = "replaced_"  # the prefix of a replaced version's tables still to be dropped (SQLite)
