"""Read model of usage: one indexed row per kernel, and daily rollups per group and slot.

The per-kernel rows answer the reports' kernel lists (selected by index on start time
and end time); the rollups hold, per local calendar day, group and slot, the slot amount
times the seconds ended kernels held it that day, so totals over a period cost O(days).
Days are local to the reporting time zone, which is part of the projection's key: a
ledger reporting in another zone builds its own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain.group import Group
from domain.group.usage import local_days
from domain.workload import Kernel, VFolder
from projections.engine import Projection, on

_KERNEL_COLUMNS = (
    "group_id", "session_id", "session_name", "domain_name", "user_id", "access_key", "agent", "image",
    "occupied_slots", "mounts", "status",
)  # fmt: skip


def parse_time(text: str | None) -> datetime | None:
    # In UTC: SQLite stores a time's wall clock and drops its offset (events keep the offset given).
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


class UsageProjection(Projection):
    name = "usage"
    version = 2  # 2: times stored in UTC; no rollups of cancelled kernels; DST days of 23 or 25 hours

    def __init__(self, metadata: sa.MetaData, timezone: str = "UTC") -> None:
        self.tz = ZoneInfo(timezone)
        self.zone_key = timezone.replace("/", "_").replace("-", "_").replace("+", "p").lower()
        super().__init__(metadata)
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
            sa.Index(None, "group_id", "started_at"),
            sa.Index(None, "started_at"),
            sa.Index(None, "terminated_at"),
        )
        self.vfolders = self.table(
            "vfolders",
            sa.Column("vfolder_id", sa.String(36), primary_key=True),
            sa.Column("group_id", sa.String(36), nullable=False),
            sa.Column("host", sa.String(256), nullable=False),
            sa.Column("name", sa.String(256), nullable=False),
        )
        self.daily = self.table(
            "daily",
            sa.Column("group_id", sa.String(36), primary_key=True),
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("slot", sa.String(64), primary_key=True),
            sa.Column("amount_seconds", sa.Float, nullable=False),
        )

        k, v = self.kernels, self.vfolders
        # Statements are built once and run with parameters: SQLAlchemy then compiles each
        # once, instead of once per event (that dominated catch-up time).
        self._insert_kernel = sa.insert(k)
        self._insert_vfolder = sa.insert(v)
        self._set_stats = (
            sa.update(k).where(k.c.kernel_id == sa.bindparam("id")).values(last_stats=sa.bindparam("stats"))
        )
        self._end_kernel = (
            sa.update(k)
            .where(k.c.kernel_id == sa.bindparam("id"))
            .values(terminated_at=sa.bindparam("ended"), status=sa.bindparam("end_status"))
            .returning(k.c.group_id, k.c.started_at, k.c.occupied_slots)
        )
        self._upserts: dict[str, Any] = {}  # the daily upsert, per SQL dialect

    @property
    def key(self) -> str:
        return f"{self.name}_v{self.version}_{self.zone_key}"

    @on(Kernel.Created)
    def kernel_started(self, conn: Connection, event: Any, _position: int) -> None:
        f = event.fields
        row = {name: f[name] for name in _KERNEL_COLUMNS}
        conn.execute(self._insert_kernel, {**row, "kernel_id": event.key, "started_at": parse_time(f["started_at"])})

    @on(Kernel.StatsReported)
    def stats_reported(self, conn: Connection, event: Any, _position: int) -> None:
        conn.execute(self._set_stats, {"id": str(event.originator_id), "stats": event.stats})

    @on(Kernel.Terminated)
    def kernel_ended(self, conn: Connection, event: Any, _position: int) -> None:
        ended = parse_time(event.terminated_at)
        assert ended is not None
        values = {"id": str(event.originator_id), "ended": ended, "end_status": event.status}
        row = conn.execute(self._end_kernel, values).one()
        started = _aware(row.started_at)
        rollups = [
            {"group_id": row.group_id, "day": day, "slot": slot, "amount_seconds": float(Decimal(amount)) * seconds}
            for day, seconds in self.seconds_per_day(started, ended)
            for slot, amount in row.occupied_slots.items()
        ]
        if rollups and event.status == "TERMINATED":  # a cancelled kernel used nothing (REFERENCE.md)
            self._add_to_daily(conn, rollups)

    @on(VFolder.Created)
    def vfolder_created(self, conn: Connection, event: Any, _position: int) -> None:
        f = event.fields
        conn.execute(
            self._insert_vfolder,
            {"vfolder_id": event.key, "group_id": f["group_id"], "host": f["host"], "name": f["name"]},
        )

    @on(Group.Purged)
    def group_purged(self, conn: Connection, event: Any, _position: int) -> None:
        # A purge removes the group's kernels and vfolders, so they leave the reports too.
        group_id = str(event.originator_id)
        for table in (self.kernels, self.vfolders, self.daily):
            conn.execute(sa.delete(table).where(table.c.group_id == group_id))

    def seconds_per_day(self, start: datetime, end: datetime) -> list[tuple[Any, float]]:
        """How many seconds of [start, end) fall on each local calendar day."""
        result = []
        for day in local_days(start, end, self.tz) if end > start else []:
            day_start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
            day_end = day_start + timedelta(days=1)  # the next local midnight: 23 to 25 hours on
            # In UTC: times of one zone subtract as wall clocks, an hour off on a DST day.
            overlap = min(end, day_end).astimezone(UTC) - max(start, day_start).astimezone(UTC)
            result.append((day, overlap.total_seconds()))
        return result

    def _add_to_daily(self, conn: Connection, rollups: list[dict[str, Any]]) -> None:
        name = conn.dialect.name
        if name not in self._upserts:
            statement = (postgresql if name == "postgresql" else sqlite).insert(self.daily)
            self._upserts[name] = statement.on_conflict_do_update(
                index_elements=["group_id", "day", "slot"],
                set_={"amount_seconds": self.daily.c.amount_seconds + statement.excluded.amount_seconds},
            )
        conn.execute(self._upserts[name], rollups)


def _aware(at: datetime) -> datetime:
    # SQLite returns naive UTC times; PostgreSQL times in the session's zone (DST-prone).
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
