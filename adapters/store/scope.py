"""What one request asks of the appends its command makes, and what it learns from them.

The HTTP layer opens a `WriteScope` around a command: `expected` holds the versions its
`If-Match` names (checked on the aggregate being appended to, inside the command's retried
load-decide-save, so a stale precondition can never be decided on a cached copy), and
`idempotency` the request record to append with the command's first effectful append.
Appends report back the versions they reached (the `ETag`) and the last notification id
(`Ledger-Position`). Embedded callers open no scope and pay nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Recording

from domain.actions.context import current_context
from domain.errors import IdempotentRequestApplied, PreconditionFailed
from domain.idempotency import IdempotentRequest


@dataclass
class IdempotencyClaim:
    key: str  # `domain.idempotency.request_key`
    request_hash: str
    method: str
    path: str
    applied: bool = False  # its record is stored (with this command's first append)
    attempts: int = 0

    @property
    def stream(self) -> uuid.UUID:
        return IdempotentRequest.id_for(self.key)


MOST_NAMED = 5  # versions of an If-Match list a refusal names


def stale(expected: frozenset[int], current: int) -> PreconditionFailed:
    """The 412 of an `If-Match` none of whose versions is the entity's `current` one."""
    shown = sorted(expected)
    # A list of any length may be sent: a few are named back, never all of them.
    named = ", ".join(str(version) for version in shown[:MOST_NAMED]) + (", ..." if len(shown) > MOST_NAMED else "")
    if len(expected) == 1:
        return PreconditionFailed(f"If-Match: version {named} is not current (version {current} is)")
    return PreconditionFailed(f"If-Match: none of versions {named} is current (version {current} is)")


def no_current_version() -> PreconditionFailed:
    """The 412 of an `If-Match` sent with a command naming no existing entity (a create, a
    facts batch): there is no version it could match."""
    return PreconditionFailed(
        "If-Match: this request names no existing entity, so no current version can match; send it without If-Match"
    )


@dataclass
class WriteScope:
    expected: dict[uuid.UUID, frozenset[int]] = field(default_factory=dict)  # If-Match: any of them
    idempotency: IdempotencyClaim | None = None
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    position: int | None = None
    loaded: dict[uuid.UUID, int] = field(default_factory=dict)  # versions read of the `expected` ones
    tagged: uuid.UUID | None = None  # the entity the answer's ETag names: its version read is kept too
    # If-Match on a command naming no existing entity (a create): the condition is false,
    # as there is no current version (RFC 9110 13.1.1), so whatever it would append is refused.
    absent: bool = False

    def read(self, aggregate_id: uuid.UUID, version: int) -> None:
        if aggregate_id in self.expected or aggregate_id == self.tagged:
            self.loaded[aggregate_id] = version

    def check(self, saving: Sequence[Aggregate]) -> None:
        """Refuses an append to an aggregate whose version before this command is not the
        one `If-Match` named, and any append of a command `If-Match` cannot hold for (`absent`)."""
        if self.absent and any(aggregate.pending_events for aggregate in saving):
            raise no_current_version()
        for aggregate in saving:
            expected = self.expected.get(aggregate.id)
            if expected is None or not aggregate.pending_events:
                continue
            before = aggregate.version - len(aggregate.pending_events)
            if before not in expected:
                raise stale(expected, before)

    def request_record(self, exists: Any) -> IdempotentRequest | None:
        """The idempotency record to append with this save, once per command. On a retried
        attempt, first `exists(stream)`: a twin request that committed meanwhile wins."""
        claim = self.idempotency
        if claim is None or claim.applied:
            return None
        claim.attempts += 1
        if claim.attempts > 1 and exists(claim.stream):
            raise IdempotentRequestApplied("a request with this Idempotency-Key was applied meanwhile")
        ctx = current_context()
        fields = {
            "request_hash": claim.request_hash,
            "method": claim.method,
            "path": claim.path,
            "action_id": None if ctx is None else ctx.action_id,
        }
        return IdempotentRequest.accept(claim.key, fields)

    def note(self, recordings: Sequence[Recording[uuid.UUID]]) -> None:
        for recording in recordings:
            event = recording.domain_event
            if isinstance(event.originator_id, uuid.UUID):
                self.versions[event.originator_id] = event.originator_version
            self.position = max(self.position or 0, recording.notification.id)
        claim = self.idempotency
        if claim is not None and any(r.domain_event.originator_id == claim.stream for r in recordings):
            claim.applied = True


_scope: ContextVar[WriteScope | None] = ContextVar("ledger_write_scope", default=None)


def current_write_scope() -> WriteScope | None:
    return _scope.get()


@contextmanager
def write_scope(scope: WriteScope) -> Iterator[WriteScope]:
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
