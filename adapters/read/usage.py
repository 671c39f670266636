"""The usage reader: kernels of a report window, from the usage read model."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from domain.times import as_utc
from domain.usage import KernelUsage, finite
from projections.database import ReadModelDatabase
from projections.registry import ProjectionSet
from projections.runner import ProjectionRunner
from projections.sql import chunks


class SqlUsageReader:
    def __init__(self, read_models: ReadModelDatabase, runner: ProjectionRunner, projections: ProjectionSet) -> None:
        self._db = read_models
        self._runner = runner
        self._usage = projections.usage
        self._groups = projections.groups
        self._users = projections.users

    def kernels(
        self, start: datetime, end: datetime, group_ids: Iterable[str] | None, domain_name: str | None = None
    ) -> list[KernelUsage]:
        """REFERENCE.md's selection, answered by the (group_id | domain_name, started_at),
        (started_at) and (status, group_id) indexes; `domain_name` narrows it in SQL (an
        admin's report read every domain's kernels, then kept their own)."""
        k, spans = self._usage.kernels, self._usage.spans
        start, end = start.astimezone(UTC), end.astimezone(UTC)  # SQLite compares wall clocks, stored in UTC
        # The groups asked for, each once, so no chunk of `_in_chunks` repeats another's
        # kernels (a report may name any number); None: every group.
        groups = None if group_ids is None else {str(g) for g in group_ids}
        self._runner.catch_up()
        with self._db.snapshot() as conn:  # one state: a kernel ending meanwhile is read once
            # Ended kernels started no earlier than the longest one before the window: a range
            # of the (group_id, started_at) index; the running ones by the (status) index.
            longest = sa.select(sa.func.max(spans.c.longest_seconds))
            seconds = max((row[0] or 0.0 for row in _in_chunks(conn, longest, spans.c.group_id, groups)), default=0.0)
            earliest = start - timedelta(seconds=seconds)
            ended = sa.select(k).where(
                k.c.started_at >= earliest,
                k.c.started_at < end,
                k.c.status == "TERMINATED",
                k.c.terminated_at >= start,
            )
            running = sa.select(k).where(k.c.status == "RUNNING", k.c.started_at < end)
            if domain_name is not None:
                ended, running = (q.where(k.c.domain_name == domain_name) for q in (ended, running))
            rows = [*_in_chunks(conn, ended, k.c.group_id, groups), *_in_chunks(conn, running, k.c.group_id, groups)]
            nfs = self._vfolder_names(conn, {m for row in rows for m in row.mounts})
            names = self._group_names(conn, {row.group_id for row in rows} | {g for _, g in nfs.values()})
            people = self._user_names(conn, {row.user_id for row in rows})
        return [_kernel(row, names, nfs, people) for row in rows]

    def totals(self, first: date, last: date, group_id: str | None = None) -> dict[str, dict[str, float]]:
        """Slot-seconds per group over the local days [first, last]: ended kernels from the
        daily rollups (O(days)), running kernels added for the part they have run."""
        daily = self._usage.daily
        statement = (
            sa.select(daily.c.group_id, daily.c.slot, sa.func.sum(daily.c.amount_seconds).label("amount"))
            .where(daily.c.day >= first, daily.c.day <= last)
            .group_by(daily.c.group_id, daily.c.slot)
        )
        if group_id is not None:
            statement = statement.where(daily.c.group_id == group_id)
        tz = self._usage.tz
        # In UTC: times of one zone subtract as wall clocks, an hour off across a DST change.
        start = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
        end = (datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
        # The running kernels started before the end, by the (status, group_id) index: only
        # what the top-up reads, not every kernel of the window with its names and folders.
        k = self._usage.kernels
        running = sa.select(k.c.group_id, k.c.started_at, k.c.occupied_slots).where(
            k.c.status == "RUNNING", k.c.started_at < end
        )
        if group_id is not None:
            running = running.where(k.c.group_id.in_([group_id]))
        self._runner.catch_up()
        with self._db.snapshot() as conn:  # one state: a kernel ending meanwhile is read once
            kernels = conn.execute(running).all()
            rows = conn.execute(statement).all()
        totals: dict[str, dict[str, float]] = {}
        for row in rows:
            totals.setdefault(row.group_id, {})[row.slot] = float(row.amount)
        now = datetime.now(UTC)
        for kernel_group, started_at, occupied_slots in kernels:
            # In UTC, as `kernels` reads it: PostgreSQL's session-zone times subtract as wall clocks.
            seconds = (min(end, now) - max(start, as_utc(started_at))).total_seconds()
            if seconds <= 0:  # the days are after now, or it starts later: it ran none of them
                continue
            slots = totals.setdefault(kernel_group, {})
            for slot, amount in dict(occupied_slots).items():
                slots[slot] = slots.get(slot, 0.0) + finite(float(amount)) * seconds  # as the rollups count it
        return totals

    def _group_names(self, conn: sa.Connection, group_ids: set[str]) -> dict[str, tuple[str, str | None]]:
        """(name, domain) of each group the groups read model holds: the domain it is in
        now, which a group moved since its kernels ran no longer shares with them."""
        rows = self._groups.rows
        found = _in_chunks(conn, sa.select(rows.c.key, rows.c.fields), rows.c.key, group_ids)
        return {row.key: (row.fields["name"], row.fields.get("domain_name")) for row in found}

    def _user_names(self, conn: sa.Connection, user_ids: set[str]) -> dict[str, _Person]:
        """(email, full_name, domain) of each user the users read model holds, deleted ones
        too: a report keeps naming who used the resources as long as the row exists
        (Backend.AI joins its users table, so a user row it has dropped names no one there
        either)."""
        rows = self._users.rows
        found = _in_chunks(conn, sa.select(rows.c.key, rows.c.fields), rows.c.key, user_ids)
        return {
            row.key: (row.fields.get("email"), row.fields.get("full_name"), row.fields.get("domain_name"))
            for row in found
        }

    def _vfolder_names(self, conn: sa.Connection, vfolder_ids: set[str]) -> dict[str, tuple[str, str]]:
        """("host:name", group id) of each vfolder the usage read model holds."""
        v = self._usage.vfolders
        found = _in_chunks(conn, sa.select(v), v.c.vfolder_id, vfolder_ids)
        return {row.vfolder_id: (f"{row.host}:{row.name}", row.group_id) for row in found}


# Keys per `IN (...)`: a report names any number of groups, users and vfolders, and
# PostgreSQL's driver refuses a statement of more than 65,535 parameters.
_CHUNK = 10_000


def _in_chunks(conn: sa.Connection, statement: sa.Select[Any], key: Any, keys: set[str] | None) -> list[Any]:
    """The rows of `statement` whose `key` is one of `keys`, read `_CHUNK` keys at a time
    (None: every row, one statement)."""
    if keys is None:
        return list(conn.execute(statement).all())
    found: list[Any] = []
    for chunk in chunks(sorted(keys), _CHUNK):
        found.extend(conn.execute(statement.where(key.in_(chunk))).all())
    return found


_Person = tuple[str | None, str | None, str | None]  # email, full name, domain
_NO_ONE: _Person = (None, None, None)  # a user the ledger does not know


def _kernel(
    row: Any,
    names: dict[str, tuple[str, str | None]],
    nfs: dict[str, tuple[str, str]],
    people: dict[str, _Person],
) -> KernelUsage:
    # Unpacked by position (the kernels table's column order): a Row's attribute lookups
    # cost more than building the whole KernelUsage.
    (kernel_id, group_id, session_id, session_name, domain_name, user_id, access_key, agent, image,
     slots, mounts, started_at, terminated_at, status, last_stats, _position) = row  # fmt: skip
    # In UTC: PostgreSQL's session-zone times would make used_time wall-clock time across DST.
    started = as_utc(started_at)
    email, full_name, user_domain = people.get(user_id, _NO_ONE)
    group_name, group_domain = names.get(group_id, ("", None))
    return KernelUsage(
        kernel_id=kernel_id,
        session_id=session_id,
        session_name=session_name,
        group_id=group_id,
        group_name=group_name,
        domain_name=domain_name,
        user_id=user_id,
        access_key=access_key,
        agent=agent,
        image=image,
        occupied_slots=dict(slots),
        nfs=[nfs[m][0] if m in nfs else m for m in mounts],
        started_at=started,
        terminated_at=None if terminated_at is None else as_utc(terminated_at),
        status=status,
        last_stats=last_stats,
        email=email,
        full_name=full_name,
        user_domain=user_domain,
        group_domain=group_domain,
        mounted=tuple((m, names.get(nfs[m][1], ("", None))[1] if m in nfs else None) for m in mounts),
    )
