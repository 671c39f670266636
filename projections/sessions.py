"""Read model of sessions: one row per session the ledger enqueued, with its status, who
and where (access key, user, group, domain), what it asked for, the policy its latest
decision applied (name, source, version) and its times.

`sessions_due` reads the running set from here (indexed by status), so finding the
sessions past a deadline never walks the event store; the deadlines themselves are
computed at each call from the policies as they are then (`domain.session.runtime`).
A TERMINATING session is not in that set: it is being ended already.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.session import Session, SessionStatus
from domain.session.types import CANCELLED
from projections.projection import Projection, on
from projections.sql import POSITION


class SessionsProjection(Projection):
    name = "sessions"
    # 2: indexed by the list's order, (enqueued_at, session_id), alone and in a domain (an
    #    admin's list): a page of the list was a scan of the whole table and a sort.
    # 3: each session's store position (its Created event's), the list's order, indexed
    #    alone and in a domain: ordered by the event's time (when it was made, not stored),
    #    an enqueue committed after a page was read could sort before that page's last
    #    row, and a client paging on from it never saw the session.
    # (TERMINATING, from the TerminationStarted event, needed none: no row built from
    #  the events recorded before it differs, and the status column holds its name.)
    version = 3
    cost = 0.3

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.rows = self.table(
            "rows",
            sa.Column("session_id", sa.String(36), primary_key=True),
            # The position of its Created event: positions follow commit order (appends
            # are serialised), so a session committed later always lists later.
            sa.Column("position", POSITION, nullable=False, unique=True),
            sa.Column("stream_id", sa.Uuid, nullable=False, unique=True),
            sa.Column("access_key", sa.String(256), nullable=False),
            sa.Column("user_id", sa.String(36)),
            sa.Column("group_id", sa.String(36), nullable=False),
            sa.Column("domain_name", sa.String(256), nullable=False),
            sa.Column("requested_slots", sa.JSON, nullable=False),
            sa.Column("cluster_size", sa.Integer, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("policy_name", sa.String(256)),  # the latest decision's (or the enqueue's) policy
            sa.Column("policy_source", sa.String(16)),
            sa.Column("policy_version", sa.Integer),
            sa.Column("decisions", sa.Integer, nullable=False),
            sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True)),
            sa.Column("last_activity_at", sa.DateTime(timezone=True)),
            sa.Column("ended_at", sa.DateTime(timezone=True)),
            sa.Column("end_reason", sa.String(256)),
            sa.Column("kernels", sa.Integer, nullable=False),  # attached and not yet terminated
            sa.Index(None, "status", "session_id"),
            sa.Index(None, "access_key", "status"),
            sa.Index(None, "group_id", "status"),
            sa.Index(None, "domain_name", "position"),  # alone: the unique constraint's index
        )

    def _set(self, conn: Connection, event: Any, **values: Any) -> None:
        conn.execute(sa.update(self.rows).where(self.rows.c.stream_id == event.originator_id).values(**values))

    @on(Session.Created)
    def created(self, conn: Connection, event: Any, position: int) -> None:
        fields = event.fields
        policy = fields.get("enqueued_under") or {}
        conn.execute(
            sa.insert(self.rows).values(
                session_id=event.key,
                position=position,
                stream_id=event.originator_id,
                access_key=fields["access_key"],
                user_id=fields.get("user_id"),
                group_id=fields["group_id"],
                domain_name=fields["domain_name"],
                requested_slots=fields["requested_slots"],
                cluster_size=fields["cluster_size"],
                status=fields["status"],
                policy_name=policy.get("name"),
                policy_source=policy.get("source"),
                policy_version=policy.get("version"),
                decisions=0,
                enqueued_at=event.timestamp,
                kernels=0,
            )
        )

    def _decided(self, conn: Connection, event: Any, **values: Any) -> None:
        policy = event.policy
        self._set(
            conn,
            event,
            policy_name=policy.get("name"),
            policy_source=policy.get("source"),
            policy_version=policy.get("version"),
            decisions=self.rows.c.decisions + 1,
            **values,
        )

    @on(Session.Admitted)
    def admitted(self, conn: Connection, event: Any, _position: int) -> None:
        self._decided(conn, event, status=SessionStatus.RUNNING.value, started_at=event.timestamp)

    @on(Session.Deferred)
    def deferred(self, conn: Connection, event: Any, _position: int) -> None:
        self._decided(conn, event)

    @on(Session.ActivityReported)
    def activity(self, conn: Connection, event: Any, _position: int) -> None:
        self._set(conn, event, last_activity_at=datetime.fromisoformat(event.at).astimezone(UTC))

    @on(Session.KernelAttached)
    def kernel_attached(self, conn: Connection, event: Any, _position: int) -> None:
        self._set(conn, event, kernels=self.rows.c.kernels + 1)

    @on(Session.KernelDetached)
    def kernel_detached(self, conn: Connection, event: Any, _position: int) -> None:
        self._set(conn, event, kernels=self.rows.c.kernels - 1)

    @on(Session.Cancelled)
    def cancelled(self, conn: Connection, event: Any, _position: int) -> None:
        reason = event.reason or CANCELLED  # None: the platform's cancel (and every one stored before reasons)
        self._set(conn, event, status=SessionStatus.CANCELLED.value, ended_at=event.timestamp, end_reason=reason)

    @on(Session.TerminationStarted)
    def termination_started(self, conn: Connection, event: Any, _position: int) -> None:
        # Still occupying until its kernels end: no end time yet, the reason it will end with.
        self._set(conn, event, status=SessionStatus.TERMINATING.value, end_reason=event.reason)

    @on(Session.Terminated)
    def terminated(self, conn: Connection, event: Any, _position: int) -> None:
        self._set(conn, event, status=SessionStatus.TERMINATED.value, ended_at=event.timestamp, end_reason=event.reason)
