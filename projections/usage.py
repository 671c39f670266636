"""Read model of usage: one indexed row per kernel, and daily rollups per group and slot.

The per-kernel rows answer the reports' kernel lists (selected by index on start time
and end time); the rollups hold, per local calendar day, group and slot, the slot amount
times the seconds ended kernels held it that day, so totals over a period cost O(days).
Days are local to the reporting time zone, which is part of the projection's versioned name: a
ledger reporting in another zone builds its own tables.

A batch of events is folded in memory and written with a few statements (see
`UsageProjection.apply_batch`): a rebuild has several events per kernel, and one or
more statements per event dominated its time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoResultFound
from sqlalchemy.schema import conv

from domain.group import Group
from domain.times import as_utc
from domain.usage import finite, local_days
from domain.workload import Kernel, VFolder
from projections.projection import Batch, BatchProjection, on
from projections.sql import POSITION, BulkInsert, chunks, compact_json, insert_for

_JSON_COLUMNS = ("occupied_slots", "mounts", "last_stats")  # serialised here, as SQLAlchemy would
# What an update of a kernel of an earlier batch sets: its bind parameter -> its column.
_CHANGES = {"stats": "last_stats", "ended": "terminated_at", "end_status": "status"}
_CHUNK = 300  # keys per `IN (...)` (up to 3 parameters each): under every driver's limit
_CACHED = 10_000  # entries per converted-value cache (days, amounts): a long follower stays bounded

DailyKey = tuple[str, Any, str]  # (group_id, day, slot)
KernelInfo = tuple[str, datetime, dict[str, Any]]  # (group_id, started_at, occupied_slots)


def parse_time(text: str | None) -> datetime | None:
    # In UTC: SQLite stores a time's wall clock and drops its offset (events keep the offset given).
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


class _Fold:
    """The net effect of a run of events (a batch, or its part before or after a purge)."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []  # kernels started here, in their final state
        self.started: dict[str, list[Any]] = {}  # kernel id -> its row in `rows`
        self.infos: dict[str, KernelInfo] = {}  # kernel id -> what its end's rollups need
        self.changes: dict[str, dict[str, Any]] = {}  # kernels of earlier batches: parameter -> value
        self.ends: list[tuple[str, datetime, str]] = []  # (kernel id, terminated_at, status), in order
        self.vfolders: list[list[Any]] = []
        self.longest: dict[str, float] = {}  # group id -> its longest kernel ended here, in seconds


def _index(table: str, *columns: str) -> sa.Index:
    """An index of `table` (its name as `Projection.table` makes it) named after all its
    columns: SQLAlchemy names one after the first only, so two indexes that begin alike
    had one name, and the second was never created (`CREATE INDEX IF NOT EXISTS`). A
    `conv` name is shortened with a hash past the database's limit, as a generated one is."""
    return sa.Index(conv(f"ix_{table}_{'_'.join(columns)}"), *columns)


def zone_key(timezone: str) -> str:
    """The zone's part of the usage read model's names (`asia_seoul`)."""
    return timezone.replace("/", "_").replace("-", "_").replace("+", "p").lower()


class UsageProjection(BatchProjection):
    name = "usage"
    # 2: times stored in UTC; no rollups of cancelled kernels; DST days of 23 or 25 hours.
    # 3: each group's longest ended kernel, which bounds a window's scan of started kernels.
    # 4: no index on terminated_at (no query ranges over it); JSON written compact.
    # 5: kernels indexed by each filter of their list (group, domain, user, access key) and
    #    ordered as it pages, (started_at, kernel_id); vfolders by (group_id, name, vfolder_id)
    #    and (name, vfolder_id): a page of a filtered list was a scan of the whole table and a sort.
    # 6: each kernel's store position (its start event's), the list's order, indexed alone
    #    and after each filter of the list: ordered by the start time the platform reported,
    #    a start recorded late (an import of yesterday's facts, a retried report) sorted
    #    before a page already read, and a client paging on from it never saw the kernel.
    version = 6

    def __init__(self, metadata: sa.MetaData, timezone: str = "UTC") -> None:
        self.tz = ZoneInfo(timezone)
        super().__init__(metadata)
        kernels = f"{self.storage_name}_kernels"  # the name `table` gives it, for `_index`
        self.kernels = self.table(
            "kernels",
            sa.Column("kernel_id", sa.String(36), primary_key=True),
            sa.Column("group_id", sa.String(36), nullable=False),
            sa.Column("session_id", sa.String(36), nullable=False),
            sa.Column("session_name", sa.String(256), nullable=False),
            sa.Column("domain_name", sa.String(256), nullable=False),
            sa.Column("user_id", sa.String(36), nullable=False),
            sa.Column("access_key", sa.String(256), nullable=False),
            sa.Column("agent", sa.String(256), nullable=False),
            sa.Column("image", sa.String(256), nullable=False),
            sa.Column("occupied_slots", sa.JSON, nullable=False),
            sa.Column("mounts", sa.JSON, nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("terminated_at", sa.DateTime(timezone=True)),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("last_stats", sa.JSON),
            # The position of its Created event, the list's order: positions follow commit
            # order (appends are serialised), so a kernel whose start is recorded later
            # always lists later, whatever start time the platform reported for it.
            sa.Column("position", POSITION, nullable=False, unique=True),
            # The list's filters, each with its order (the position; alone: the unique
            # constraint's index): a page is a walk of an index range, whatever the
            # table's size. A window (started_at) filters it, or is read by the reports'
            # indexes and sorted (see `WorkloadQueries.kernels`).
            sa.Index(None, "group_id", "position"),
            sa.Index(None, "domain_name", "position"),
            sa.Index(None, "user_id", "position"),
            sa.Index(None, "access_key", "position"),
            sa.Index(None, "status", "position"),
            # The reports range over started_at, alone, in a group or in a domain, and find
            # the running kernels, few, directly.
            _index(kernels, "group_id", "started_at"),
            _index(kernels, "domain_name", "started_at"),
            sa.Index(None, "started_at"),
            _index(kernels, "status", "group_id"),
        )
        self.vfolders = self.table(
            "vfolders",
            sa.Column("vfolder_id", sa.String(36), primary_key=True),
            sa.Column("group_id", sa.String(36), nullable=False),
            sa.Column("host", sa.String(256), nullable=False),
            sa.Column("name", sa.String(256), nullable=False),
            # The list's order, (name, vfolder_id), alone and in a group (a purge deletes a group's).
            sa.Index(None, "group_id", "name", "vfolder_id"),
            sa.Index(None, "name", "vfolder_id"),
        )
        self.daily = self.table(
            "daily",
            sa.Column("group_id", sa.String(36), primary_key=True),
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("slot", sa.String(64), primary_key=True),
            sa.Column("amount_seconds", sa.Float, nullable=False),
        )
        # A kernel that ended inside a window started at most `longest_seconds` before it:
        # with this bound a report reads the kernels of its window, not of all time before it.
        self.spans = self.table(
            "spans",
            sa.Column("group_id", sa.String(36), primary_key=True),
            sa.Column("longest_seconds", sa.Float, nullable=False),
        )

        k, d = self.kernels, self.daily
        # Where, in a row of `kernels` (its columns in order), are the values later events change.
        columns = list(k.columns.keys())
        self._terminated_at, self._status, self._last_stats = (
            columns.index(name) for name in ("terminated_at", "status", "last_stats")
        )
        # Statements are built once and run with parameters: SQLAlchemy then compiles each
        # once, instead of once per batch.
        self._insert_kernels = BulkInsert(k, raw=_JSON_COLUMNS)
        self._insert_vfolders = BulkInsert(self.vfolders)
        self._updates: dict[tuple[str, ...], Any] = {}  # kernel updates, by the parameters they set
        self._kernel_infos = sa.select(k.c.kernel_id, k.c.group_id, k.c.started_at, k.c.occupied_slots).where(
            k.c.kernel_id.in_(sa.bindparam("ids", expanding=True))
        )
        self._daily_values = sa.select(d.c.group_id, d.c.day, d.c.slot, d.c.amount_seconds).where(
            sa.tuple_(d.c.group_id, d.c.day, d.c.slot).in_(sa.bindparam("keys", expanding=True))
        )
        self._purges = [
            sa.delete(table).where(table.c.group_id == sa.bindparam("group"))
            for table in (k, self.vfolders, d, self.spans)
        ]
        self._upserts: dict[tuple[str, bool], Any] = {}  # the daily upserts, per SQL dialect and kind
        self._span_upserts: dict[str, Any] = {}  # the longest-span upsert, per SQL dialect
        self._day_bounds: dict[date, tuple[datetime, datetime]] = {}  # bounded by _CACHED
        self._amounts: dict[Any, float] = {}  # slot amounts, converted once

    @classmethod
    def versioned_name_in(cls, timezone: str) -> str:
        """This version's name for the read model of `timezone` (`usage_v5_asia_seoul`)."""
        return f"{cls.name}_v{cls.version}_{zone_key(timezone)}"

    @property
    def versioned_name(self) -> str:
        return self.versioned_name_in(self.tz.key)

    @on(Kernel.Created, Kernel.StatsReported, Kernel.Terminated, VFolder.Created, Group.Purged)
    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        """Folds the events in memory, then writes their net effect: the kernels started in
        the batch inserted once in their final state (one COPY or executemany), those of
        earlier batches updated (one executemany per set of changed columns, after one
        lookup of the ended ones' group, start and slots), each (group, day, slot) rollup
        written once (see `_add_to_daily`). A purge writes what came before it first."""
        fold = _Fold()
        for position, event in batch:
            kind = type(event)
            if kind is Kernel.Created:
                self._started(fold, event, position)
            elif kind is Kernel.StatsReported:
                row = fold.started.get(kernel_id := str(event.originator_id))
                if row is not None:
                    row[self._last_stats] = compact_json(event.stats)
                else:
                    fold.changes.setdefault(kernel_id, {})["stats"] = event.stats
            elif kind is Kernel.Terminated:
                ended = parse_time(event.terminated_at)
                assert ended is not None
                row = fold.started.get(kernel_id := str(event.originator_id))
                if row is not None:
                    row[self._terminated_at], row[self._status] = ended, event.status
                else:
                    fold.changes.setdefault(kernel_id, {}).update(ended=ended, end_status=event.status)
                fold.ends.append((kernel_id, ended, event.status))
            elif kind is VFolder.Created:
                f = event.fields
                fold.vfolders.append(
                    self._insert_vfolders.row(
                        vfolder_id=event.key, group_id=f["group_id"], host=f["host"], name=f["name"]
                    )
                )
            elif kind is Group.Purged:
                # A purge removes the group's kernels and vfolders, so they leave the reports too.
                self._write(conn, fold)
                fold = _Fold()
                for statement in self._purges:
                    conn.execute(statement, {"group": str(event.originator_id)})
        self._write(conn, fold)

    def _started(self, fold: _Fold, event: Any, position: int) -> None:
        f = event.fields
        started = parse_time(f["started_at"])
        assert started is not None
        row = self._insert_kernels.row(
            kernel_id=event.key,
            group_id=f["group_id"],
            session_id=f["session_id"],
            session_name=f["session_name"],
            domain_name=f["domain_name"],
            user_id=f["user_id"],
            access_key=f["access_key"],
            agent=f["agent"],
            image=f["image"],
            occupied_slots=compact_json(f["occupied_slots"]),
            mounts=compact_json(f["mounts"]),
            started_at=started,
            terminated_at=None,
            status=f["status"],
            last_stats=None,
            position=position,
        )
        fold.rows.append(row)
        fold.started[event.key] = row
        fold.infos[event.key] = (f["group_id"], started, f["occupied_slots"])

    def _write(self, conn: Connection, fold: _Fold) -> None:
        self._insert_kernels(conn, fold.rows)
        self._update_kernels(conn, fold.changes)
        self._insert_vfolders(conn, fold.vfolders)
        self._add_to_daily(conn, self._rollups(conn, fold))
        if fold.longest:
            rows = [{"group_id": g, "longest_seconds": seconds} for g, seconds in fold.longest.items()]
            conn.execute(self._span_upsert(conn), rows)

    def _span_upsert(self, conn: Connection) -> Any:
        """Inserts a group's span, or keeps the longer of the stored and the new one."""
        name = conn.dialect.name
        if name not in self._span_upserts:
            statement = insert_for(conn, self.spans)
            stored, new = self.spans.c.longest_seconds, statement.excluded.longest_seconds
            longer = sa.func.greatest(stored, new) if name == "postgresql" else sa.func.max(stored, new)
            self._span_upserts[name] = statement.on_conflict_do_update(
                index_elements=["group_id"], set_={"longest_seconds": longer}
            )
        return self._span_upserts[name]

    def _update_kernels(self, conn: Connection, changes: dict[str, dict[str, Any]]) -> None:
        """The kernels of earlier batches: one executemany per set of columns changed."""
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for kernel_id, values in changes.items():
            by_columns.setdefault(tuple(sorted(values)), []).append({**values, "id": kernel_id})
        for names, rows in by_columns.items():
            if names not in self._updates:
                k = self.kernels
                self._updates[names] = (
                    sa.update(k)
                    .where(k.c.kernel_id == sa.bindparam("id"))
                    .values({_CHANGES[name]: sa.bindparam(name) for name in names})
                )
            conn.execute(self._updates[names], rows)

    def _rollups(self, conn: Connection, fold: _Fold) -> dict[DailyKey, list[float]]:
        """The amounts the ended kernels add to each (group, day, slot), in event order."""
        infos = fold.infos
        earlier = list({kernel_id: True for kernel_id, _ended, _status in fold.ends if kernel_id not in infos})
        if earlier:
            infos = {**infos, **self._infos(conn, earlier)}
        added: dict[DailyKey, list[float]] = {}
        for kernel_id, ended, status in fold.ends:
            info = infos.get(kernel_id)
            if info is None:
                raise NoResultFound(f"usage: kernel {kernel_id} ended but has no row")
            if status != "TERMINATED":  # a cancelled kernel used nothing (REFERENCE.md)
                continue
            group_id, started, slots = info
            span = (ended - started).total_seconds()
            if span > fold.longest.get(group_id, 0.0):
                fold.longest[group_id] = span
            for day, seconds in self.seconds_per_day(started, ended):
                for slot, amount in slots.items():
                    added.setdefault((group_id, day, slot), []).append(self._amount(amount) * seconds)
        return added

    def _infos(self, conn: Connection, kernel_ids: list[str]) -> dict[str, KernelInfo]:
        found = {}
        for chunk in chunks(kernel_ids, _CHUNK):
            for row in conn.execute(self._kernel_infos, {"ids": chunk}):
                found[row.kernel_id] = (row.group_id, as_utc(row.started_at), row.occupied_slots)
        return found

    def seconds_per_day(self, start: datetime, end: datetime) -> list[tuple[Any, float]]:
        """How many seconds of [start, end) fall on each local calendar day."""
        result = []
        for day in local_days(start, end, self.tz) if end > start else []:
            day_start, day_end = self._day_bounds.get(day) or self._bounds(day)
            # In UTC: times of one zone subtract as wall clocks, an hour off on a DST day.
            overlap = min(end, day_end).astimezone(UTC) - max(start, day_start).astimezone(UTC)
            if overlap > timedelta(0):  # else a day the zone skipped (Pacific/Apia's 2011-12-30): none ran on it
                result.append((day, overlap.total_seconds()))
        return result

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        """The local day's first instant and the next local midnight (23 to 25 hours on)."""
        day_start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        if len(self._day_bounds) >= _CACHED:  # kernels may lie anywhere in 1900-9000: 2.6M days
            self._day_bounds.clear()
        bounds = self._day_bounds[day] = (day_start, day_start + timedelta(days=1))
        return bounds

    def _amount(self, amount: Any) -> float:
        """A slot amount (text such as "0.5") as a float, through Decimal as ever; 0 for an
        older release's `inf`, as the reports count it (an `inf` rollup absorbs every other
        kernel's amount)."""
        value = self._amounts.get(amount)
        if value is None:
            if len(self._amounts) >= _CACHED:
                self._amounts.clear()
            value = self._amounts[amount] = finite(float(Decimal(amount)))
        return value

    def _add_to_daily(self, conn: Connection, added: dict[DailyKey, list[float]]) -> None:
        """Adds each key's amounts to its rollup in order, as one upsert per amount would:
        floating-point sums depend on their order, and a rebuild must leave the same values
        as the live read model whatever the batches. A key with one amount is upserted with
        the amount added; the totals of keys with more are computed from the stored ones."""
        once = [_daily_row(key, amounts[0]) for key, amounts in added.items() if len(amounts) == 1]
        more = {key: amounts for key, amounts in added.items() if len(amounts) > 1}
        if once:
            conn.execute(self._upsert(conn, add=True), once)
        if more:
            stored = self._stored_daily(conn, list(more))
            totals = []
            for key, amounts in more.items():
                total = stored.get(key)
                if total is None:
                    total, amounts = amounts[0], amounts[1:]
                for amount in amounts:
                    total += amount
                totals.append(_daily_row(key, total))
            conn.execute(self._upsert(conn, add=False), totals)

    def _stored_daily(self, conn: Connection, keys: list[DailyKey]) -> dict[DailyKey, float]:
        stored = {}
        for chunk in chunks(keys, _CHUNK):
            for row in conn.execute(self._daily_values, {"keys": chunk}):
                stored[(row.group_id, row.day, row.slot)] = row.amount_seconds
        return stored

    def _upsert(self, conn: Connection, add: bool) -> Any:
        """Inserts a rollup row, or on conflict adds its amount (`add`) or sets it."""
        name = conn.dialect.name
        if (name, add) not in self._upserts:
            statement = insert_for(conn, self.daily)
            excluded = statement.excluded.amount_seconds
            self._upserts[name, add] = statement.on_conflict_do_update(
                index_elements=["group_id", "day", "slot"],
                set_={"amount_seconds": self.daily.c.amount_seconds + excluded if add else excluded},
            )
        return self._upserts[name, add]


def _daily_row(key: DailyKey, amount: float) -> dict[str, Any]:
    return {"group_id": key[0], "day": key[1], "slot": key[2], "amount_seconds": amount}
