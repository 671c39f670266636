"""The workload the usage read model holds: kernels and vfolders, listed and looked up.

Answered from the usage projection's `kernels` and `vfolders` tables after catching up
with every stored event, like every other query, and refused with `ReadModelStalled`
while that read model is stalled. A purged group's kernels and vfolders are gone from
the read model, so they are not listed.

Endpoints have no read model: `EndpointQueries` reads them from the event store itself
(the group's stream lists its active endpoints, each endpoint's stream its name), fresh
on every call, so they are listed per group only.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import PersistenceError

from adapters.read.arguments import checked
from adapters.read.paging import after_row, cursor_row, page_limit, unknown_cursor
from adapters.read.rows import read_rows
from adapters.store import LedgerApplication
from domain.errors import InvalidAPIParameters, StoreUnavailable
from domain.group import Group
from domain.parsers import parse_access_key, parse_name, parse_uuid
from domain.shown import shown
from domain.times import as_utc, parse_window
from domain.workload import Endpoint
from projections.database import ReadModelDatabase
from projections.groups import GroupsProjection
from projections.projection import Projection
from projections.runner import ProjectionRunner
from projections.usage import UsageProjection

KERNEL_STATUSES = ("RUNNING", "TERMINATED", "CANCELLED")


@dataclass(frozen=True)
class KernelEntry:
    """One kernel as the usage read model holds it."""

    kernel_id: str
    group_id: str
    session_id: str
    session_name: str
    domain_name: str
    user_id: str
    access_key: str
    agent: str
    image: str
    occupied_slots: dict[str, Any]
    mounts: list[str]
    started_at: datetime
    terminated_at: datetime | None
    status: str
    last_stats: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        ended = None if self.terminated_at is None else self.terminated_at.isoformat()
        return {**asdict(self), "started_at": self.started_at.isoformat(), "terminated_at": ended}


@dataclass(frozen=True)
class VFolderEntry:
    """One vfolder as the usage read model holds it."""

    vfolder_id: str
    group_id: str
    host: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _kernel(row: sa.Row[Any]) -> KernelEntry:
    values = row._asdict()
    values.pop("position")  # the list's order, not part of a kernel's answer
    ended = values["terminated_at"]
    return KernelEntry(
        **{
            **values,
            "started_at": as_utc(values["started_at"]),
            "terminated_at": None if ended is None else as_utc(ended),
        }
    )


def _status(raw: Any) -> str:
    status = raw.strip().upper() if isinstance(raw, str) else None
    if status not in KERNEL_STATUSES:
        raise InvalidAPIParameters(f"{shown(raw)} is not one of {', '.join(KERNEL_STATUSES)}", field="status")
    return status


def _id_or_none(raw: Any, field: str) -> str | None:
    """A looked-up id as the table keys it; None if it is no UUID (then nothing has it)."""
    try:
        return str(parse_uuid(raw, field))
    except InvalidAPIParameters:
        return None


class WorkloadQueries:
    def __init__(
        self,
        read_models: ReadModelDatabase,
        runner: ProjectionRunner,
        usage: UsageProjection,
        groups: GroupsProjection,
    ) -> None:
        self._db = read_models
        self._runner = runner
        self._usage = usage
        self._groups = groups  # a vfolder's domain is its group's

    def _rows(self, statement: sa.Executable, *also: Projection) -> list[sa.Row[Any]]:
        return read_rows(self._db, self._runner, statement, self._usage, *also)

    @checked
    def kernels(
        self,
        group_id: uuid.UUID | str | None = None,
        status: str | None = None,
        access_key: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        after: uuid.UUID | str | None = None,
        *,
        domain_name: str | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> list[KernelEntry]:
        """Kernels started in [since, until), in the order the ledger recorded their
        starts (their Created event's store position, which follows commit order); `status`
        is RUNNING, TERMINATED or CANCELLED (any case); `domain_name` and `user_id` narrow
        them to a domain's or a user's (what an admin and a user may read over HTTP).
        `after`: the id of the last kernel of the previous page (`after_row`: placed by its
        position, so a kernel whose start is recorded after that page was read comes after
        it, whatever start time the platform reported). A filter value out of its domain is
        `InvalidAPIParameters` naming it."""
        k = self._usage.kernels
        conditions: list[sa.ColumnElement[bool]] = []
        if group_id is not None:
            conditions.append(k.c.group_id == str(parse_uuid(group_id, "group_id")))
        if status is not None:
            conditions.append(k.c.status == _status(status))
        if access_key is not None:
            conditions.append(k.c.access_key == parse_access_key(access_key, "access_key"))
        if domain_name is not None:
            conditions.append(k.c.domain_name == parse_name(domain_name, "domain_name"))
        if user_id is not None:
            conditions.append(k.c.user_id == str(parse_uuid(user_id, "user_id")))
        # A window selects by the start time the platform reported, a filter on the list's
        # order: its page walks the position order, or reads the window's kernels by the
        # reports' start-time indexes and sorts them, as the database finds cheaper.
        start, end = parse_window(since, until, "kernel")  # as the audit trail: an empty window is a mistake
        if start is not None:
            conditions.append(k.c.started_at >= as_utc(start))
        if end is not None:
            conditions.append(k.c.started_at < as_utc(end))
        cursor = None if after is None else str(parse_uuid(after, "after"))
        if cursor is not None:
            conditions.append(after_row(k.c.position, k.c.kernel_id, cursor))
        bound = page_limit(limit)
        # Positions are unique: the position alone is the whole order. Not the start time
        # the platform reported: facts come late (an import of yesterday's, a retried
        # report), and a start recorded after a page was read would sort before its cursor.
        statement = sa.select(k).where(*conditions).order_by(k.c.position).limit(bound)
        rows = self._rows(statement)
        if cursor is not None and not rows and not self._rows(cursor_row(k.c.kernel_id, cursor)):
            raise unknown_cursor("kernel")
        return [_kernel(row) for row in rows]

    @checked
    def kernel(self, kernel_id: uuid.UUID | str) -> KernelEntry | None:
        """The kernel, running or ended; None if unknown (or its group was purged)."""
        key = _id_or_none(kernel_id, "kernel_id")
        k = self._usage.kernels
        rows = self._rows(sa.select(k).where(k.c.kernel_id == key)) if key is not None else []
        return _kernel(rows[0]) if rows else None

    @checked
    def vfolders(
        self,
        group_id: uuid.UUID | str | None = None,
        host: str | None = None,
        limit: int | None = None,
        after: uuid.UUID | str | None = None,
        *,
        domain_name: str | None = None,
    ) -> list[VFolderEntry]:
        """Vfolders, ordered by (name, vfolder_id); `domain_name`: only those of the
        domain's groups (what its admin may read). `after`: the id of the last vfolder of
        the previous page (`after_row`)."""
        v = self._usage.vfolders
        conditions: list[sa.ColumnElement[bool]] = []
        also: list[Projection] = []
        if group_id is not None:
            conditions.append(v.c.group_id == str(parse_uuid(group_id, "group_id")))
        if domain_name is not None:
            groups = self._groups.rows
            in_domain = groups.c.fields["domain_name"].as_string() == parse_name(domain_name, "domain_name")
            conditions.append(v.c.group_id.in_(self._groups.live().with_only_columns(groups.c.key).where(in_domain)))
            also.append(self._groups)
        if host is not None:
            conditions.append(v.c.host == parse_name(host, "host"))
        cursor = None if after is None else str(parse_uuid(after, "after"))
        if cursor is not None:
            conditions.append(after_row(v.c.name, v.c.vfolder_id, cursor))
        bound = page_limit(limit)
        statement = sa.select(v).where(*conditions).order_by(v.c.name, v.c.vfolder_id).limit(bound)
        rows = self._rows(statement, *also)
        if cursor is not None and not rows and not self._rows(cursor_row(v.c.vfolder_id, cursor)):
            raise unknown_cursor("vfolder")
        return [VFolderEntry(**row._asdict()) for row in rows]

    @checked
    def vfolder(self, vfolder_id: uuid.UUID | str) -> VFolderEntry | None:
        key = _id_or_none(vfolder_id, "vfolder_id")
        v = self._usage.vfolders
        rows = self._rows(sa.select(v).where(v.c.vfolder_id == key)) if key is not None else []
        return VFolderEntry(**rows[0]._asdict()) if rows else None


@dataclass(frozen=True)
class EndpointEntry:
    """One endpoint as its stream holds it: `active` until it is destroyed."""

    endpoint_id: str
    group_id: str
    name: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EndpointQueries:
    """Endpoints read from the event store (no read model holds them)."""

    def __init__(self, app: LedgerApplication) -> None:
        self._app = app

    def _get(self, stream: uuid.UUID) -> Aggregate | None:
        try:
            found: Aggregate = self._app.replayed(stream)  # a group's snapshot only as the ledger wrote it
        except AggregateNotFoundError:
            return None
        except PersistenceError as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc
        return found

    @checked
    def endpoint(self, endpoint_id: uuid.UUID | str) -> EndpointEntry | None:
        """The endpoint, active or destroyed; None if no endpoint has the id."""
        key = _id_or_none(endpoint_id, "endpoint_id")
        found = None if key is None else self._get(uuid.UUID(key))
        if not isinstance(found, Endpoint):  # unknown, or another kind's stream
            return None
        fields = found.fields
        return EndpointEntry(found.key, fields["group_id"], fields["name"], not found.is_deleted)

    @checked
    def endpoints(self, group_id: uuid.UUID | str) -> list[EndpointEntry]:
        """The group's active endpoints, ordered by (name, endpoint_id); none for an
        unknown or purged group."""
        group = self._get(parse_uuid(group_id, "group_id"))
        if not isinstance(group, Group) or group.is_deleted:
            return []
        found = [self.endpoint(key) for key in group.endpoints]
        return sorted((e for e in found if e is not None), key=lambda e: (e.name, e.endpoint_id))
