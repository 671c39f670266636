"""Queries answered from the read models, after catching up with every stored event."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from eventsourcing.persistence import PersistenceError

from adapters.read.arguments import checked
from adapters.read.directory import DirectoryQueries
from adapters.read.paging import after_row, cursor_row, page_limit, starts_with, unknown_cursor
from adapters.read.rows import read_rows, stream_rows
from adapters.read.sessions import SessionQueries
from adapters.read.timetravel import EntityState, TimeTravel, entity_kind
from adapters.read.usage import SqlUsageReader
from adapters.read.workload import EndpointQueries, WorkloadQueries
from adapters.store import LedgerApplication
from adapters.store.application import reading
from domain.actions import ActionStatus
from domain.catalog import EntityType
from domain.entity import FieldChanges, diff_fields
from domain.errors import DamagedEvent, InvalidAPIParameters, StoreUnavailable
from domain.group.types import GroupData
from domain.keypair.types import KeyPairData
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from domain.parsers import parse_name, parse_uuid
from domain.shown import shown
from domain.times import as_utc, parse_window, query_time, time_or_none
from domain.usage.windows import report_day
from projections.database import ReadModelDatabase
from projections.history import describe
from projections.projection import Projection
from projections.registry import ProjectionSet
from projections.runner import ProjectionRunner


@dataclass(frozen=True)
class HistoryEntry:
    """One event in an entity's history."""

    position: int
    entity_type: str
    entity_id: str
    version: int
    event: str
    occurred_at: datetime
    action_id: str | None
    request_id: str | None
    actor: dict[str, Any]
    changes: dict[str, dict[str, Any]]
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "occurred_at": self.occurred_at.isoformat()}


def _known(value: str | None, kind: type[enum.StrEnum], what: str, field: str) -> None:
    """`value`, if given, is one of `kind`'s; else refused naming `field` and the known ones."""
    if value is not None and value not in kind._value2member_map_:
        known = ", ".join(sorted(kind._value2member_map_))
        raise InvalidAPIParameters(f"unknown {what} {shown(value)} (known: {known})", field=field)


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(**{**row._asdict(), "started_at": as_utc(row.started_at), "ended_at": as_utc(row.ended_at)})


_BATCH = ("workload", "record_batch")  # the one batch action: the platform's workload facts


def _withheld(entry: AuditEntry) -> AuditEntry:
    """A batch record as a domain's admin reads it when it concerns other domains too: that
    it ran and how it ended, without its input, its label or its message (any of which may
    name another domain's entities)."""
    return replace(entry, entity_id=None, spec={}, description=entry.status)


def _history_entry(row: Any, entity_type: str, entity_id: str, event: Any) -> HistoryEntry:
    changes, details = describe(event)
    return HistoryEntry(
        position=row.position,
        entity_type=entity_type,
        entity_id=entity_id,
        version=row.version,
        event=row.event,
        occurred_at=as_utc(row.occurred_at),
        action_id=row.action_id,
        request_id=row.request_id,
        actor=row.actor,
        changes=changes,
        details=details,
    )


@dataclass(frozen=True)
class AuditEntry:
    """One action's outcome, as the audit trail recorded it."""

    position: int
    action_id: str
    entity_type: str
    operation: str
    entity_id: str | None
    status: str
    description: str
    started_at: datetime
    ended_at: datetime
    duration: float
    error_code: str | None
    request_id: str | None
    triggered_by: str | None
    access_key: str | None
    role: str
    domain_name: str | None
    spec: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat(), "ended_at": self.ended_at.isoformat()}


class AuditOutcome(NamedTuple):
    """What the action metrics count of one audit entry (`PrometheusMonitor.replay`)."""

    entity_type: str
    operation: str
    status: str
    domain_name: str | None
    error_code: str | None
    duration: float


# An entity's id as the queries take it: text, or a UUID object for the entities whose ids
# are UUIDs (groups, users, sessions, workload), as the commands and `group()` take them.
EntityId = str | uuid.UUID

# Rows per fetch of `Queries.audit_outcomes`: what it holds in memory at once.
OUTCOMES_CHUNK = 1000


class Queries:
    def __init__(
        self,
        read_models: ReadModelDatabase,
        runner: ProjectionRunner,
        projections: ProjectionSet,
        app: LedgerApplication,
    ) -> None:
        self._time_travel = TimeTravel(app)
        self._audit = projections.audit
        self._db = read_models
        self._runner = runner
        self._policies = projections.policies
        self._keypairs = projections.keypairs
        self._groups = projections.groups
        self._history = projections.history
        self._app = app
        self._usage = SqlUsageReader(read_models, runner, projections)
        self._usage_projection = projections.usage
        # Kernels and vfolders, from the usage read model (adapters/read/workload.py).
        self.workload = WorkloadQueries(read_models, runner, projections.usage, projections.groups)
        self.kernels, self.kernel = self.workload.kernels, self.workload.kernel
        self.vfolders, self.vfolder = self.workload.vfolders, self.workload.vfolder
        # Endpoints have no read model: read from the event store (adapters/read/workload.py).
        endpoints = EndpointQueries(app)
        self.endpoints, self.endpoint = endpoints.endpoints, endpoints.endpoint
        # Domains and users, from their read models (adapters/read/directory.py).
        self.directory = DirectoryQueries(read_models, runner, projections.domains, projections.users)
        self.domain, self.domains = self.directory.domain, self.directory.domains
        self.user, self.users = self.directory.user, self.directory.users
        # Sessions, their decisions, runtime deadlines, effective policies (adapters/read/sessions.py).
        sessions = SessionQueries(read_models, runner, projections.sessions, app, projections.keypairs)
        self.sessions, self.session = sessions.sessions, sessions.session
        self.sessions_due, self.effective_policy = sessions.sessions_due, sessions.effective_policy

    def _rows(self, statement: sa.Executable, projection: Projection) -> list[sa.Row[Any]]:
        return read_rows(self._db, self._runner, statement, projection)

    @checked
    def keypair_resource_policy(self, name: str) -> KeyPairResourcePolicyData | None:
        rows = self._rows(self._policies.live().where(self._policies.rows.c.key == name), self._policies)
        return _policy(rows[0]) if rows else None

    @checked
    def keypair_resource_policies(
        self, *, name_prefix: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[KeyPairResourcePolicyData]:
        """Live policies ordered by name (the paging cursor `after` is the last name seen),
        at most `limit` of them, those whose name starts with `name_prefix` only."""
        key = self._policies.rows.c.key
        conditions = [starts_with(key, name_prefix)] if name_prefix is not None else []
        if after is not None:
            conditions.append(key > after)
        statement = self._policies.live().where(*conditions).order_by(key).limit(page_limit(limit))
        return [_policy(row) for row in self._rows(statement, self._policies)]

    @checked
    def keypair(self, access_key: str) -> KeyPairData | None:
        rows = self._rows(self._keypairs.live().where(self._keypairs.rows.c.key == access_key), self._keypairs)
        return KeyPairData.from_fields(rows[0].key, rows[0].fields) if rows else None

    @checked
    def keypairs(
        self,
        resource_policy: str | None = None,
        *,
        domain_name: str | None = None,
        owner: uuid.UUID | str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[KeyPairData]:
        """Live keypairs ordered by access key (the paging cursor `after` is the last one
        seen), filtered in SQL; a malformed filter value is `InvalidAPIParameters` naming it."""
        rows = self._keypairs.rows
        fields = rows.c.fields
        conditions: list[sa.ColumnElement[bool]] = []
        if resource_policy is not None:
            conditions.append(fields["resource_policy"].as_string() == resource_policy)
        if domain_name is not None:
            conditions.append(fields["domain_name"].as_string() == parse_name(domain_name, "domain_name"))
        if owner is not None:
            conditions.append(fields["user_id"].as_string() == str(parse_uuid(owner, "owner")))
        if after is not None:
            conditions.append(rows.c.key > after)
        statement = self._keypairs.live().where(*conditions).order_by(rows.c.key).limit(page_limit(limit))
        return [KeyPairData.from_fields(row.key, row.fields) for row in self._rows(statement, self._keypairs)]

    @checked
    def group(self, group_id: uuid.UUID | str) -> GroupData | None:
        """A group that exists, active or soft-deleted; None once purged or if unknown."""
        key = _canonical_uuid(str(group_id))  # any spelling of the UUID, as the commands take it
        rows = self._rows(self._groups.live().where(self._groups.rows.c.key == key), self._groups)
        return _group(rows[0]) if rows else None

    @checked
    def group_by_name(self, domain_name: str, name: str) -> GroupData | None:
        """The group holding `name` in the domain, active or soft-deleted (a soft delete
        keeps the name; a purge frees it); None if no group holds it."""
        domain, group_name = self._group_name_columns()
        statement = self._groups.live().where(domain == domain_name, group_name == name)
        rows = self._rows(statement, self._groups)
        return _group(rows[0]) if rows else None

    @checked
    def groups(
        self,
        domain_name: str | None = None,
        *,
        name: str | None = None,
        name_prefix: str | None = None,
        active: bool | None = None,
        after: str | None = None,
        limit: int | None = None,
        member: uuid.UUID | str | None = None,
    ) -> list[GroupData]:
        """Groups (active and soft-deleted; only one kind with `active`) ordered by (domain,
        name), unique among them. The paging cursor `after` is the last group seen as
        `DOMAIN/NAME` (`group_cursor`); `member`: only groups that user belongs to; filters
        run in SQL."""
        domain, group_name = self._group_name_columns()
        conditions: list[sa.ColumnElement[bool]] = []
        if member is not None:
            members = self._groups.members
            user_id = str(parse_uuid(member, "member"))
            joined = sa.select(members.c.group_id).where(members.c.user_id == user_id)
            conditions.append(self._groups.rows.c.key.in_(joined))
        if domain_name is not None:
            conditions.append(domain == parse_name(domain_name, "domain_name"))
        if name is not None:
            conditions.append(group_name == name)
        if name_prefix is not None:
            conditions.append(starts_with(group_name, name_prefix))
        if active is not None:
            conditions.append(self._groups.rows.c.fields["is_active"].as_boolean() == active)
        if after is not None:
            conditions.append(sa.tuple_(domain, group_name) > sa.tuple_(*map(sa.literal, _group_after(after))))
        statement = self._groups.live().where(*conditions).order_by(domain, group_name).limit(page_limit(limit))
        return [_group(row) for row in self._rows(statement, self._groups)]

    def _group_name_columns(self) -> tuple[sa.ColumnElement[str], sa.ColumnElement[str]]:
        fields = self._groups.rows.c.fields
        return fields["domain_name"].as_string(), fields["name"].as_string()

    @checked
    def group_members(self, group_id: uuid.UUID | str) -> set[uuid.UUID]:
        members = self._groups.members
        key = _canonical_uuid(str(group_id))
        statement = sa.select(members.c.user_id).where(members.c.group_id == key)
        return {uuid.UUID(row.user_id) for row in self._rows(statement, self._groups)}

    @checked
    def usage_totals(
        self, first: date, last: date, group_id: uuid.UUID | str | None = None
    ) -> dict[str, dict[str, float]]:
        """Slot-seconds per group and slot over the local days [first, last]."""
        first, last = report_day(first, "first"), report_day(last, "last")
        if last < first:  # no day: an empty answer would read as "nothing ran then"
            raise InvalidAPIParameters(f"{last} is before first {first}: no day could match", field="last")
        key = None if group_id is None else str(parse_uuid(group_id, "group_id"))  # any spelling of the UUID
        totals = self._usage.totals(first, last, key)
        self._runner.require(self._usage_projection)
        return totals

    @checked
    def history(
        self,
        entity_type: str,
        entity_id: EntityId,
        *,
        after: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[HistoryEntry]:
        """Every event of the entity, oldest first (newest first with `newest_first`): who
        and when from the history read model, what changed from the stored events
        themselves. `limit`: at most that many; `after`: the position of the last entry of
        the previous page, the entries that follow it in this order. A page reads only its
        own events: a group's history holds two entries per kernel it ever ran."""
        entity_kind(entity_type)  # a mistyped type would read as an entity without history
        limit = page_limit(limit)
        if after is not None and after < 0:
            raise InvalidAPIParameters("must be a position (0 or more)", field="after")
        entries = self._history.entries
        self._runner.catch_up()
        self._runner.require(self._history)
        self._app.meet_erasures()  # another process's erasure: no cached key opens the events' values
        with self._db.connect() as conn:
            numbers = self._history_streams(conn, entity_type, str(entity_id))
            statement = sa.select(entries).where(entries.c.stream.in_(list(numbers)))
            if after is not None:
                statement = statement.where(entries.c.position < after if newest_first else entries.c.position > after)
            order = entries.c.position.desc() if newest_first else entries.c.position
            rows = conn.execute(statement.order_by(order).limit(limit)).all()
            # Only the versions the read model has reached are shown. A page that ends the
            # history reads its streams on to their end, so that an event it cannot decode
            # (cut behind the ledger's back, which stalls the read model before it) is
            # told, not left out.
            newest = after is None if newest_first else limit is None or len(rows) < limit
            reached: dict[int, int] = {}
            if newest:
                last = sa.select(entries.c.stream, sa.func.max(entries.c.version))
                found = conn.execute(last.where(entries.c.stream.in_(list(numbers))).group_by(entries.c.stream))
                reached = {number: version for number, version in found}
        try:
            events: dict[int, dict[int, Any]] = {}
            for number, stream_id in numbers.items():
                versions = [row.version for row in rows if row.stream == number]
                if not versions and number not in reached:
                    continue
                after_version = min(versions) - 1 if versions else reached[number]
                with reading(stream_id):  # an event altered behind the ledger's back: DamagedEvent
                    stored = self._app.events.get(stream_id, gt=after_version, lte=None if newest else max(versions))
                    events[number] = {e.originator_version: e for e in stored}
        except PersistenceError as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc
        missing = next((row for row in rows if row.version not in events[row.stream]), None)
        if missing is not None:
            # The index names an event its stream no longer has (moved or removed behind the
            # ledger's back): the store is damaged, and a KeyError said nothing of it.
            raise DamagedEvent(
                f"event {missing.position} (version {missing.version} of stream {numbers[missing.stream]}) "
                "is gone from its stream: `ledger verify` names it"
            )
        return [_history_entry(row, entity_type, str(entity_id), events[row.stream][row.version]) for row in rows]

    @checked
    def incarnations(self, entity_type: str, entity_id: EntityId) -> list[tuple[int, int]]:
        """(position, version) of each event that began an incarnation of the entity (its
        creation, and each creation again after a delete), oldest first: which one a page
        of its history starts in."""
        entity_kind(entity_type)
        entries = self._history.entries
        self._runner.catch_up()
        self._runner.require(self._history)
        with self._db.connect() as conn:
            numbers = self._history_streams(conn, entity_type, str(entity_id))
            rows = conn.execute(
                sa.select(entries.c.position, entries.c.version)
                .where(entries.c.stream.in_(list(numbers)), entries.c.event.in_(_CREATION_EVENTS))
                .order_by(entries.c.position)
            ).all()
        return [(row.position, row.version) for row in rows]

    def _history_streams(self, conn: sa.Connection, entity_type: str, given: str) -> dict[int, uuid.UUID]:
        """The history read model's streams of the entity (number -> stream id): an id as
        given or, when a UUID, as stored (the commands take any spelling); a name that
        merely looks like a UUID is found as given, never with another."""
        streams = self._history.streams
        found = conn.execute(
            sa.select(streams.c.number, streams.c.stream_id, streams.c.entity_id).where(
                streams.c.entity_type == entity_type, streams.c.entity_id.in_({given, _canonical_uuid(given)})
            )
        ).all()
        if any(row.entity_id == given for row in found):
            found = [row for row in found if row.entity_id == given]
        return {row.number: row.stream_id for row in found}

    @checked
    def audit_log(
        self,
        entity_type: str | None = None,
        entity_id: EntityId | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        actor: str | None = None,
        operation: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        domain_name: str | None = None,
        after: int | None = None,
    ) -> list[AuditEntry]:
        """Action outcomes in the order the ledger recorded them (their store position),
        oldest first (newest first with `newest_first`, so `limit` keeps the latest), started
        in [since, until); `actor` matches the user id or the access key.
        `domain_name`: only the actions that concern that domain's entities (what its admin
        reads; not the actor's domain, which the entries show as `domain_name`).
        `after`: the position of the last entry of the previous page; the entries that
        follow it in this order (`unknown_cursor` if none is at that position, or none of the
        domain's; 0, before every entry, starts from the first). A window that holds no
        instant is refused (`parse_window`)."""
        since, until = parse_window(since, until, "action")
        statement = self._audit_select(
            entity_type, entity_id, since, until, actor, operation, status, limit, newest_first, domain_name, after
        )
        found = self._rows(statement, self._audit)
        if after and not found:  # 0 is before every position: the start, never unknown
            _, _, position, within = self._audit_rows(domain_name)
            if not self._rows(cursor_row(position, after, within), self._audit):
                raise unknown_cursor("audit entry")
        entries = [_audit_entry(row) for row in found]
        if domain_name is None or not entries:
            return entries
        batches = [e.position for e in entries if (e.entity_type, e.operation) == _BATCH]
        shared = self._shared_batches(batches, domain_name) if batches else set()
        return [_withheld(e) if e.position in shared else e for e in entries]

    def _shared_batches(self, positions: list[int], domain_name: str) -> set[int]:
        """Of the batches at `positions` (the platform's workload facts, of any domains),
        those that concern another domain than `domain_name` too: their input and label
        name that domain's entities, which its admin may not read."""
        concern = self._audit.domains
        statement = (
            sa.select(concern.c.position)
            .where(concern.c.position.in_(positions), concern.c.domain_name != domain_name)
            .distinct()
        )
        return {row.position for row in self._rows(statement, self._audit)}

    @checked
    def audit_export(
        self,
        entity_type: str | None = None,
        entity_id: EntityId | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        actor: str | None = None,
        operation: str | None = None,
        status: str | None = None,
        newest_first: bool = False,
        after: int | None = None,
    ) -> Iterator[AuditEntry]:
        """`audit_log`'s entries with the same filters, streamed: one statement (one
        consistent view of the trail, as a list is), fetched `OUTCOMES_CHUNK` rows at a
        time, so an export of the whole trail holds a chunk, never the trail (154 MB held
        for a 22 MB export of 10,000 actions). Its arguments are refused at the call, before
        any entry is asked for: `after` too, when no entry is at that position."""
        since, until = parse_window(since, until, "action")
        statement = self._audit_select(
            entity_type, entity_id, since, until, actor, operation, status, None, newest_first, None, after
        )
        if after and not self._rows(cursor_row(self._audit.entries.c.position, after), self._audit):
            raise unknown_cursor("audit entry")
        rows = stream_rows(self._db, self._runner, statement, OUTCOMES_CHUNK, self._audit)
        return (_audit_entry(row) for row in rows)

    def _audit_rows(
        self, domain_name: str | None
    ) -> tuple[sa.FromClause, sa.ColumnElement[Any], sa.ColumnElement[Any], sa.ColumnElement[bool] | None]:
        """(the rows, their start time, their position, what makes a row the domain's) of
        the table that drives a page of the trail, its window and its order and cursor (the
        position): a domain's rows (keyed by domain and position: a page of an admin's trail
        is a walk of that key), else the entries."""
        log = self._audit.entries
        if domain_name is None:
            return log, log.c.started_at, log.c.position, None
        concern = self._audit.domains
        rows = concern.join(log, log.c.position == concern.c.position)
        return rows, concern.c.started_at, concern.c.position, concern.c.domain_name == domain_name

    def _audit_select(
        self,
        entity_type: str | None,
        entity_id: EntityId | None,
        since: datetime | None,
        until: datetime | None,
        actor: str | None,
        operation: str | None,
        status: str | None,
        limit: int | None,
        newest_first: bool,
        domain_name: str | None,
        after: int | None,
    ) -> sa.Select[Any]:
        """The statement of `audit_log` (and `audit_export`)."""
        # A mistyped type or status matched nothing, an empty answer that reads as "nothing
        # was done"; `history` refuses an unknown type, and so do the CLI and the HTTP API.
        _known(entity_type, EntityType, "entity type", "entity_type")
        _known(status, ActionStatus, "status", "status")
        log = self._audit.entries
        conditions: list[sa.ColumnElement[bool]] = []
        rows, started_at, position, within = self._audit_rows(domain_name)
        if within is not None:
            conditions.append(within)
        if after is not None:
            # The order is the store's, not the start times': an action that started first
            # may be recorded after one that started later (they overlapped), and a page
            # ordered by start time had already gone past it for good. Positions only grow,
            # so every entry recorded after a page was read comes after that page's last one.
            # With a domain, a cursor of an entry not of the domain places nothing, as an
            # unknown one does, so that an admin learns nothing of other domains' entries.
            if after == 0:  # before every position: the start (nothing precedes it newest first)
                conditions.append(position < 0 if newest_first else position > 0)
            else:
                conditions.append(after_row(position, position, after, descending=newest_first, within=within))
        if entity_id is not None:
            # A batch's record is found by any entity it touched, not only by its label; a
            # UUID as given and in the form ids are stored in (an auditor may paste it in
            # capitals; a policy's name that looks like one is matched as given too).
            named = {str(entity_id), _canonical_uuid(str(entity_id))}
            touched = self._audit.batch_entities
            # A batch names each fact's entity with its kind (`kernel:ID`); a bare id, as a
            # single fact's record is named, finds the batches that touched it too.
            in_batches = named | {f"{kind}:{name}" for kind in _BATCHED_KINDS for name in named if ":" not in name}
            in_batch = sa.select(touched.c.position).where(touched.c.entity_id.in_(in_batches))
            if domain_name is not None:
                # A batch that concerns another domain too is not found by the entities it
                # touched: found by another domain's, it told its admin that they exist.
                concern = self._audit.domains
                shared = sa.select(concern.c.position).where(
                    concern.c.position.in_(in_batch.scalar_subquery()), concern.c.domain_name != domain_name
                )
                in_batch = in_batch.where(touched.c.position.not_in(shared))
            conditions.append(sa.or_(log.c.entity_id.in_(named), log.c.position.in_(in_batch)))
        for column, value in (
            (log.c.entity_type, entity_type),
            (log.c.operation, operation),
            (log.c.status, status),
        ):
            if value is not None:
                conditions.append(column == value)
        if since is not None:
            conditions.append(started_at >= as_utc(since))
        if until is not None:
            conditions.append(started_at < as_utc(until))
        if actor is not None:
            # A user id as stored (pasted in capitals, it matched nothing), an access key as given.
            ids = {str(actor), _canonical_uuid(str(actor))}
            conditions.append(sa.or_(log.c.triggered_by.in_(ids), log.c.access_key == actor))
        if limit is not None and limit < 1:
            raise InvalidAPIParameters("must be at least 1", field="limit")
        order = position.desc() if newest_first else position
        return sa.select(log).select_from(rows).where(*conditions).order_by(order).limit(limit)

    def audit_outcomes(self) -> Iterator[AuditOutcome]:
        """Every action's outcome as the metrics count it, in the order `audit_log` lists
        them (oldest first): only those columns, fetched `OUTCOMES_CHUNK` rows at a time,
        so counting a long trail holds a chunk, never the trail with its inputs."""
        log = self._audit.entries
        statement = sa.select(
            log.c.entity_type, log.c.operation, log.c.status, log.c.domain_name, log.c.error_code, log.c.duration
        ).order_by(log.c.position)
        for row in stream_rows(self._db, self._runner, statement, OUTCOMES_CHUNK, self._audit):
            yield AuditOutcome(*row)

    @checked
    def state_at(
        self, entity_type: str, entity_id: EntityId, at: datetime | str | None = None, version: int | None = None
    ) -> EntityState | None:
        """The entity after its event `version`, or as it stood at `at` (None if it did not
        exist yet; ISO 8601 text or a datetime), read from the event store itself."""
        self._app.meet_erasures()  # another process's erasure: no cached key opens the past values
        return self._time_travel.state_at(entity_type, str(entity_id), at=time_or_none(at, "at"), version=version)

    @checked
    def group_named_at(self, domain_name: str, name: str, at: datetime | str) -> str | None:
        """The id of the group that held `name` in the domain at `at` (active or
        soft-deleted then), None if no group did; read from the event store."""
        return self._time_travel.group_named_at(domain_name, name, query_time(at, "at"))

    @checked
    def diff(
        self,
        entity_type: str,
        entity_id: EntityId,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        from_at: datetime | str | None = None,
        to_at: datetime | str | None = None,
    ) -> FieldChanges:
        """The fields that differ between two states of one entity, each as old -> new (a
        state before the entity existed counts as having no fields). A delete keeps the
        fields, so it shows as `deleted` false -> true (null -> true from no entity), and a
        re-creation in between as its new `created_at` (neither is a field of any entity)."""
        older = self.state_at(entity_type, entity_id, at=time_or_none(from_at, "from_at"), version=from_version)
        newer = self.state_at(entity_type, entity_id, at=time_or_none(to_at, "to_at"), version=to_version)
        return changes_between(older, newer)


def changes_between(older: EntityState | None, newer: EntityState | None) -> FieldChanges:
    """What `Queries.diff` answers for two states already read (None: not existing yet)."""
    old_fields = older.fields if older else {}
    # Every field of either state: one only the older state has (the newer did not exist
    # yet) changes to null, as one only the newer has changes from null.
    changes = diff_fields(old_fields, {**dict.fromkeys(old_fields), **(newer.fields if newer else {})})
    if older is not None and newer is not None:
        if older.deleted != newer.deleted:
            changes["deleted"] = {"old": older.deleted, "new": newer.deleted}
        if older.created_at != newer.created_at:
            changes["created_at"] = {"old": _iso(older.created_at), "new": _iso(newer.created_at)}
    # Against no entity, a deleted state's fields alone read as a live entity's.
    elif older is None and newer is not None and newer.deleted:
        changes["deleted"] = {"old": None, "new": True}
    elif newer is None and older is not None and older.deleted:
        changes["deleted"] = {"old": True, "new": None}
    return changes


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def group_cursor(group: GroupData) -> str:
    """A group's paging cursor for `Queries.groups(after=...)`: `DOMAIN/NAME`, as the group
    name index keys it (a group name has no '/', so the last one splits it)."""
    return f"{group.domain_name}/{group.name}"


def _group_after(cursor: str) -> tuple[str, str]:
    domain_name, slash, name = cursor.rpartition("/")
    if not slash or not domain_name or not name:
        raise InvalidAPIParameters(f"{shown(cursor)} is not a group cursor DOMAIN/NAME", field="after")
    return domain_name, name


def _group(row: sa.Row[Any]) -> GroupData:
    return GroupData.from_fields(uuid.UUID(row.key), as_utc(row.created_at), as_utc(row.modified_at), row.fields)


def _policy(row: sa.Row[Any]) -> KeyPairResourcePolicyData:
    return KeyPairResourcePolicyData.from_fields(row.key, as_utc(row.created_at), row.fields)


# The events that begin an incarnation (`projections.history` names rows by event class).
_CREATION_EVENTS = ("Created", "Recreated")

# The kinds a workload batch names its entities by (`RecordWorkloadBatchAction.entity_ids`).
_BATCHED_KINDS = (EntityType.KERNEL, EntityType.VFOLDER, EntityType.ENDPOINT)


def _canonical_uuid(text: str) -> str:
    """`text` as ids are stored when it is a UUID (lower case, hyphens), or an entity of a
    batch named by its type and UUID (`kernel:…`), else as given."""
    kind, sep, rest = text.partition(":")
    for prefix, candidate in (("", text), (kind + sep, rest)):
        try:
            return prefix + str(uuid.UUID(candidate))
        except ValueError:
            continue
    return text
