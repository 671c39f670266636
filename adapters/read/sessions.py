"""Sessions read: the sessions read model listed and looked up, a session's decisions with
their reasons, the sessions past a runtime deadline, and a keypair's effective policy.

Lists and lookups come from the sessions read model after catching up with every stored
event (refused with `ReadModelStalled` while it is stalled), like every other query. A
session's decisions are read from its own stream (each Admitted or Deferred event keeps
every number it decided on). `sessions_due` takes the running set from the read model and
resolves each keypair's policy from the store at each call, so a policy edit applies to
running sessions at the next call. `effective_policy` resolves from the store too: it is
what the next decision would apply, not what a read model last saw.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import PersistenceError

from adapters.read.arguments import checked
from adapters.read.paging import after_row, cursor_row, page_limit, unknown_cursor
from adapters.read.rows import read_rows
from adapters.store import LedgerApplication
from domain.effective_policy import EffectivePolicy, resolve_effective_policy
from domain.errors import InvalidAPIParameters, StoreUnavailable
from domain.parsers import parse_access_key, parse_uuid
from domain.ports import UnitOfWork
from domain.session import DueSession, RunningSession, Session, SessionService, SessionStatus
from domain.shown import shown
from domain.times import as_utc, parse_time
from projections.database import ReadModelDatabase
from projections.keypairs import KeyPairsProjection
from projections.projection import Projection
from projections.runner import ProjectionRunner
from projections.sessions import SessionsProjection

SESSION_STATUSES = tuple(status.value for status in SessionStatus)


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class SessionEntry:
    """One session as the read model holds it. `policy_*`: the policy of its latest
    decision (the enqueue's until the start gate decided)."""

    session_id: str
    access_key: str
    user_id: str | None
    group_id: str
    domain_name: str
    requested_slots: dict[str, str]
    cluster_size: int
    status: str
    policy_name: str | None
    policy_source: str | None
    policy_version: int | None
    decisions: int
    enqueued_at: datetime
    started_at: datetime | None
    last_activity_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    kernels: int

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "enqueued_at": _at(self.enqueued_at),
            "started_at": _at(self.started_at),
            "last_activity_at": _at(self.last_activity_at),
            "ended_at": _at(self.ended_at),
        }


@dataclass(frozen=True)
class SessionDecision:
    """One gate's decision on a session: `enqueue` (passed the hard gate), `admitted` or
    `deferred` (the start gate). `checks`: every limit weighed (enqueue, admitted) or the
    failed ones (deferred), each {limit, scope, scope_id, slot, requested, used, allowed}.
    `grants` (enqueue): per mounted vfolder {vfolder_id, host, permission, granted_by: the
    levels granting it, each {scope, scope_id} (and `policy` for the keypair's)}."""

    at: datetime
    decision: str
    policy: dict[str, Any]
    checks: list[dict[str, Any]]
    grants: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class SessionDetail:
    session: SessionEntry
    decisions: list[SessionDecision]

    def to_json(self) -> dict[str, Any]:
        return {**self.session.to_json(), "decisions": [d.to_json() for d in self.decisions]}


def _entry(row: sa.Row[Any]) -> SessionEntry:
    values = row._asdict()
    values.pop("stream_id")
    values.pop("position")  # the list's order, not part of a session's answer
    for name in ("enqueued_at", "started_at", "last_activity_at", "ended_at"):
        if values[name] is not None:
            values[name] = as_utc(values[name])
    return SessionEntry(**values)


def _status(raw: Any) -> str:
    status = raw.strip().upper() if isinstance(raw, str) else None
    if status not in SESSION_STATUSES:
        raise InvalidAPIParameters(f"{shown(raw)} is not one of {', '.join(SESSION_STATUSES)}", field="status")
    return status


class SessionQueries:
    def __init__(
        self,
        read_models: ReadModelDatabase,
        runner: ProjectionRunner,
        sessions: SessionsProjection,
        app: LedgerApplication,
        keypairs: KeyPairsProjection,
    ) -> None:
        self._db = read_models
        self._runner = runner
        self._sessions = sessions
        self._keypairs = keypairs  # a session without a user is its keypair's owner's
        self._app = app
        self._service = SessionService(app.store)

    def _rows(self, statement: sa.Executable, *also: Projection) -> list[sa.Row[Any]]:
        return read_rows(self._db, self._runner, statement, self._sessions, *also)

    @checked
    def sessions(
        self,
        status: str | None = None,
        *,
        access_key: str | None = None,
        group_id: uuid.UUID | str | None = None,
        domain_name: str | None = None,
        limit: int | None = None,
        after: uuid.UUID | str | None = None,
        owner: uuid.UUID | str | None = None,
    ) -> list[SessionEntry]:
        """Sessions in the order they were recorded in (their Created event's store
        position, which follows commit order), filtered in SQL; at most `limit` of them;
        `after`: the id of the last session of the previous page (`after_row`: placed by its
        position, so a session committed after that page was read comes after it, whatever
        its event's time); `owner`: only the user's own (the session's user, else its live
        keypair's owner: what a user reads over HTTP). A malformed filter is
        `InvalidAPIParameters` naming it."""
        rows = self._sessions.rows
        conditions: list[sa.ColumnElement[bool]] = []
        also: list[Projection] = []
        if owner is not None:
            me = str(parse_uuid(owner, "owner"))
            keypairs = self._keypairs.rows
            theirs = keypairs.c.fields["user_id"].as_string() == me
            owned = self._keypairs.live().with_only_columns(keypairs.c.key).where(theirs)
            conditions.append(
                sa.or_(rows.c.user_id == me, sa.and_(rows.c.user_id.is_(None), rows.c.access_key.in_(owned)))
            )
            also.append(self._keypairs)
        if status is not None:
            conditions.append(rows.c.status == _status(status))
        if access_key is not None:
            conditions.append(rows.c.access_key == parse_access_key(access_key, "access_key"))
        if group_id is not None:
            conditions.append(rows.c.group_id == str(parse_uuid(group_id, "group_id")))
        if domain_name is not None:
            conditions.append(rows.c.domain_name == domain_name)
        cursor = None if after is None else str(parse_uuid(after, "after"))
        if cursor is not None:
            conditions.append(after_row(rows.c.position, rows.c.session_id, cursor))
        # Positions are unique: the position alone is the whole order.
        statement = sa.select(rows).where(*conditions).order_by(rows.c.position)
        if limit is not None:
            statement = statement.limit(page_limit(limit))
        found = self._rows(statement, *also)
        if cursor is not None and not found and not self._rows(cursor_row(rows.c.session_id, cursor)):
            raise unknown_cursor("session")
        return [_entry(row) for row in found]

    @checked
    def session(self, session_id: uuid.UUID | str) -> SessionDetail | None:
        """The session and every decision on it, oldest first; None if the ledger never
        enqueued it."""
        key = str(parse_uuid(session_id, "session_id"))
        rows = self._rows(sa.select(self._sessions.rows).where(self._sessions.rows.c.session_id == key))
        if not rows:
            return None
        entry = _entry(rows[0])
        try:
            events = list(self._app.events.get(Session.id_for(key)))
        except PersistenceError as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc
        decisions = []
        for event in events:
            if isinstance(event, Session.Created):
                # Sessions enqueued before the gate recorded its checks (or its mounts'
                # grants) show none.
                fields = event.fields
                enqueued = SessionDecision(
                    event.timestamp,
                    "enqueue",
                    fields.get("enqueued_under") or {},
                    fields.get("enqueue_checks") or [],
                    fields.get("mount_grants") or [],
                )
                decisions.append(enqueued)
            elif isinstance(event, Session.Admitted):
                decisions.append(SessionDecision(event.timestamp, "admitted", event.policy, event.checks))
            elif isinstance(event, Session.Deferred):
                decisions.append(SessionDecision(event.timestamp, "deferred", event.policy, event.reasons))
        return SessionDetail(entry, decisions)

    @checked
    def sessions_due(self, now: datetime | str | None = None) -> list[DueSession]:
        """Running sessions past a deadline of their keypair's effective policy at `now`
        (default: the current time), by deadline: reason `idle_timeout` or
        `max_session_lifetime` and the deadline (`domain.session.runtime`). A TERMINATING
        session is left out: it is being ended already."""
        at = datetime.now(UTC) if now is None else parse_time(now, "now")
        rows = self._sessions.rows
        statement = sa.select(rows.c.session_id, rows.c.access_key, rows.c.started_at, rows.c.last_activity_at).where(
            rows.c.status == SessionStatus.RUNNING.value
        )
        running = [
            RunningSession(
                uuid.UUID(row.session_id),
                row.access_key,
                as_utc(row.started_at),
                None if row.last_activity_at is None else as_utc(row.last_activity_at),
            )
            for row in self._rows(statement)
        ]
        return self._service.sessions_due(running, at)

    @checked
    def effective_policy(self, access_key: str) -> EffectivePolicy:
        """The keypair's effective policy now: `.policy` (the whole policy's data),
        `.source` (keypair, user, domain or system), `.version`; the keypair's not-found
        error when it has no live keypair. The key is looked up as given (in NFC), as
        `keypair` does: an older release stored keys a new one may not have."""
        return resolve_effective_policy(UnitOfWork(self._app.store), access_key)
