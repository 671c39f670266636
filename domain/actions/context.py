"""The action context: who is acting, carried to the event mapper in a context variable.

Services never take the actor as a parameter; the processor (or, for direct service
calls, the store) opens a context, and every event saved inside it is stamped with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any

from domain.actions.base import ActionTriggerMeta


@dataclass(frozen=True)
class ActionContext:
    action_id: str  # empty: the ledger's own doing, no action (`SYSTEM`)
    request_id: str | None
    user_id: str | None
    access_key: str | None
    role: str
    domain_name: str | None
    entity_type: str | None
    operation: str | None

    def stamp(self) -> dict[str, Any]:
        """The metadata stored with each event (computed once: it is on the write path).
        Fields without a value (None, or the system's empty action id) are left out, not
        stored as null: every event carries the stamp, and readers take a missing field as
        None (`event_meta(...).get`)."""
        cached: dict[str, Any] | None = self.__dict__.get("_stamp")
        if cached is None:
            cached = {name: value for name in _STAMPED if (value := getattr(self, name)) is not None and value != ""}
            object.__setattr__(self, "_stamp", cached)
        return cached


_STAMPED: tuple[str, ...] = tuple(f.name for f in fields(ActionContext))


# What the ledger does of itself outside any action (the policy and domain `default` it
# starts with): stamped as the system's, naming no action, so that no history shows an
# action id the audit trail has no row for.
SYSTEM = ActionContext(
    action_id="",
    request_id=None,
    user_id=None,
    access_key=None,
    role="system",
    domain_name=None,
    entity_type=None,
    operation=None,
)

_current: ContextVar[ActionContext | None] = ContextVar("ledger_action", default=None)


def current_context() -> ActionContext | None:
    return _current.get()


@contextmanager
def system_context() -> Iterator[ActionContext]:
    """Stamps what is saved inside as the ledger's own doing (`SYSTEM`), even through a
    store's `run`, which would otherwise open an action of the system's."""
    token = _current.set(SYSTEM)
    try:
        yield SYSTEM
    finally:
        _current.reset(token)


@contextmanager
def action_context(
    meta: ActionTriggerMeta | None, entity_type: str | None = None, operation: str | None = None
) -> Iterator[ActionContext]:
    """Opens a context for one action; a nested call keeps the outer action's identity."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    if meta is None:
        ctx = ActionContext(
            action_id=str(uuid.uuid4()),
            request_id=SYSTEM.request_id,
            user_id=SYSTEM.user_id,
            access_key=SYSTEM.access_key,
            role=SYSTEM.role,
            domain_name=SYSTEM.domain_name,
            entity_type=entity_type,
            operation=operation,
        )
    else:
        ctx = ActionContext(
            action_id=str(uuid.uuid4()),
            request_id=meta.request_id,
            user_id=None if meta.user_id is None else str(meta.user_id),
            access_key=meta.access_key,
            role=meta.role_name,
            domain_name=meta.domain_name,
            entity_type=entity_type,
            operation=operation,
        )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def event_meta(event: object) -> dict[str, Any]:
    """The stamp an event was stored with (empty for events stored without one; a field
    without a value is absent: read it with `.get`)."""
    meta: dict[str, Any] = vars(event).get("meta") or {}
    return meta
