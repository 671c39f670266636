"""What a keypair, a user, a group or a domain holds: the SET of its sessions with their
slots.

One `ScopeUsage` stream per scope, keyed `keypair:AK`, `user:UUID`, `group:UUID` or
`domain:NAME`
(stream id `stream_id("session_usage", key)`). Usage is membership, never a counter
(Backend.AI's Redis counter drifts, REFERENCE.md): a session is added once, moved from
pending to running once and released once; an event is recorded only when membership
really changes, so releasing twice records nothing and changes nothing.

Events: Created (from `Entity`, on first use), PendingAdded, Started, Released, Closed
(a group's, when the group is deleted or purged; a keypair's, when it is deleted), Moved
(a group's, when it moves to another domain), Retired (a keypair's, when its access key
is created again: the deleted keypair's running sessions leave its counts). Each applies
in O(slots of one session) but Retired (O(running sessions), once per incarnation): the
totals (`pending_total`, `running_total`) are the sums of the sets, kept with exact
Decimal arithmetic as members come and go, so a decision on a cached copy never walks
thousands of sessions. A keypair's stream holds its pending and running sessions
(pending limits and concurrency are per keypair); a group's holds both too (a delete or
a purge cancels its pending sessions, a move is refused while it holds any), weighing
only the running ones; a user's and a domain's hold only running ones (pending sessions
never count toward slots).

The start gate appends to every scope it weighs, in one save with the session's
decision: two decisions on the same scope conflict in the store, and the loser decides
again on the winner's usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity, stream_id
from domain.ports import UnitOfWork
from domain.session.types import Scope
from domain.sharedmap import SharedMap, shared

SlotsJson = dict[str, str]


def _add(totals: dict[str, Decimal], slots: SlotsJson, sign: int) -> None:
    # Each value replaces the old one (never changed in place), as Entity.clone requires.
    for slot, text in slots.items():
        value = totals.get(slot, Decimal(0)) + sign * Decimal(text)
        if value:
            totals[slot] = value
        else:
            totals.pop(slot, None)


class ScopeUsage(Entity):
    ENTITY_TYPE = EntityType.SESSION_USAGE

    class PendingAdded(Entity.Event):
        session_id: str
        slots: SlotsJson

        def apply(self, aggregate: ScopeUsage) -> None:
            if self.session_id not in aggregate.pending:
                aggregate.pending = shared(aggregate.pending).set(self.session_id, self.slots)
                _add(aggregate.pending_total, self.slots, 1)

    class Started(Entity.Event):
        """The session was admitted: it leaves the pending set (if there) for the running one."""

        session_id: str
        slots: SlotsJson

        def apply(self, aggregate: ScopeUsage) -> None:
            aggregate.leave_pending(self.session_id)
            if self.session_id not in aggregate.running:
                aggregate.running = shared(aggregate.running).set(self.session_id, self.slots)
                _add(aggregate.running_total, self.slots, 1)

    class Released(Entity.Event):
        session_id: str

        def apply(self, aggregate: ScopeUsage) -> None:
            aggregate.leave_pending(self.session_id)
            if self.session_id in aggregate.retired:
                aggregate.retired = shared(aggregate.retired).without(self.session_id)
            if self.session_id in aggregate.retired_under:
                aggregate.retired_under = shared(aggregate.retired_under).without(self.session_id)
            slots = aggregate.running.get(self.session_id)
            if slots is not None:
                aggregate.running = shared(aggregate.running).without(self.session_id)
                _add(aggregate.running_total, slots, -1)

    class Retired(Entity.Event):
        """Its keypair was created again, a new incarnation: the deleted keypair's running
        sessions run on (their user's, group's and domain's scopes count them) but count
        no more against the new keypair's limits. Their end still releases them.
        `keypair`: the deleted keypair's `PRECEDENCE_FIELDS` as it last stood and the
        policy its delete recorded (`deleted_keypair_state`), under which its sessions
        run on (None in events recorded before it was kept; no policy in those recorded
        before the delete recorded one)."""

        keypair: dict[str, Any] | None = None

        def apply(self, aggregate: ScopeUsage) -> None:
            if self.keypair is not None:
                under = dict.fromkeys(aggregate.running, self.keypair)
                aggregate.retired_under = SharedMap({**aggregate.retired_under, **under})
            aggregate.retired = SharedMap({**aggregate.retired, **aggregate.running})
            aggregate.running, aggregate.running_total = {}, {}

    class Closed(Entity.Event):
        """Its group was purged (its pending sessions cancelled in the same append; an
        admitted one refuses the purge) or soft-deleted (its pending sessions cancelled
        likewise; an admitted one runs on), or its keypair deleted (its pending sessions
        cancelled likewise). It changes no state: the append itself is what a decision on
        the scope racing the purge or the delete conflicts with, and the group or keypair,
        read again, refuses any new one (a soft-deleted group, made active again, takes
        sessions again on the same stream)."""

        def apply(self, aggregate: ScopeUsage) -> None:
            pass

    class Moved(Entity.Event):
        """Its group moved to domain `domain_name`, holding no session (one refuses the
        move). Like Closed, it changes no state: an enqueue or a schedule racing the move
        conflicts with this append, and decides again on the moved group."""

        domain_name: str

        def apply(self, aggregate: ScopeUsage) -> None:
            pass

    def __init__(self) -> None:
        super().__init__()
        self.pending: Mapping[str, SlotsJson] = {}
        self.running: Mapping[str, SlotsJson] = {}
        self.pending_total: dict[str, Decimal] = {}
        self.running_total: dict[str, Decimal] = {}
        # A keypair's: running sessions of its deleted incarnations, counted nowhere here,
        # and the keypair each ran under (when the Retired event kept it).
        self.retired: Mapping[str, SlotsJson] = {}
        self.retired_under: Mapping[str, Mapping[str, Any]] = {}

    # Version 2 added `retired`: a version 1 snapshot predates it (none was retired then).
    # Version 3 added `retired_under`: a version 2 snapshot's retired sessions keep no
    # keypair, as the Retired events recorded before it.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["retired"] = {}

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["retired_under"] = {}

    def leave_pending(self, session_id: str) -> None:
        """Applied by events only: the session leaves the pending set and its total."""
        slots = self.pending.get(session_id)
        if slots is not None:
            self.pending = shared(self.pending).without(session_id)
            _add(self.pending_total, slots, -1)

    @staticmethod
    def key_for(scope: Scope, scope_id: str) -> str:
        return f"{scope.value}:{scope_id}"

    @classmethod
    def open(cls, scope: Scope, scope_id: str) -> ScopeUsage:
        return cls.create(cls.key_for(scope, scope_id), {"scope": scope.value, "scope_id": scope_id})

    def holds(self, session_id: str) -> bool:
        return session_id in self.pending or session_id in self.running or session_id in self.retired

    def add_pending(self, session_id: str, slots: SlotsJson) -> None:
        if not self.holds(session_id):
            self.trigger_event(self.PendingAdded, session_id=session_id, slots=slots)

    def start(self, session_id: str, slots: SlotsJson) -> None:
        if session_id not in self.running:
            self.trigger_event(self.Started, session_id=session_id, slots=slots)

    def retire(self, keypair: Mapping[str, Any]) -> None:
        """Records nothing when nothing runs (a keypair created again after its sessions
        ended). `keypair`: what `resolve_for_deleted` reads of the deleted keypair."""
        if self.running:
            self.trigger_event(self.Retired, keypair=dict(keypair))

    def close(self) -> None:
        """Recorded unconditionally: an append to the stream is what makes a decision on
        this scope racing the purge conflict with it."""
        self.trigger_event(self.Closed)

    def moved(self, domain_name: str) -> None:
        """Recorded unconditionally, as `close` is: the append is what a racing decision
        conflicts with."""
        self.trigger_event(self.Moved, domain_name=domain_name)

    def release(self, session_id: str) -> bool:
        """Idempotent: True only when the session was held (and an event recorded)."""
        if not self.holds(session_id):
            return False
        self.trigger_event(self.Released, session_id=session_id)
        return True

    def snapshot_json(self) -> dict[str, Any]:
        """The sets and totals in JSON form (tests compare them with a model)."""
        return {
            "pending": dict(self.pending),
            "running": dict(self.running),
            "pending_total": {k: str(v) for k, v in sorted(self.pending_total.items())},
            "running_total": {k: str(v) for k, v in sorted(self.running_total.items())},
            "retired": dict(self.retired),
        }


def usage_id(scope: Scope, scope_id: str) -> uuid.UUID:
    return stream_id(ScopeUsage.ENTITY_TYPE, ScopeUsage.key_for(scope, scope_id))


def session_scopes(fields: Mapping[str, Any]) -> list[tuple[Scope, str]]:
    """The scopes a running session counts in: its keypair, its keypair's user (when the
    keypair has one), its group and its domain."""
    user_id = fields.get("user_id")
    scopes = [(Scope.KEYPAIR, fields["access_key"])]
    if user_id is not None:
        scopes.append((Scope.USER, str(user_id)))
    return [*scopes, (Scope.GROUP, fields["group_id"]), (Scope.DOMAIN, fields["domain_name"])]


def load_usage(work: UnitOfWork, scope: Scope, scope_id: str) -> ScopeUsage:
    """The scope's usage; a new, empty one (not yet in `work`) when it has no stream."""
    found = work.get(usage_id(scope, scope_id), ScopeUsage)
    return found if found is not None else ScopeUsage.open(scope, scope_id)


def release_usage(work: UnitOfWork, session: Entity) -> None:
    """Releases a session (its fields name its keypair, group and domain) from every
    scope holding it, in `work`. Idempotent: a scope not holding it records nothing."""
    for scope, scope_id in session_scopes(session.fields):
        usage = work.get(usage_id(scope, scope_id), ScopeUsage)
        if usage is not None:
            usage.release(session.key)
