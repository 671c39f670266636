"""Who is calling: the bearer token of every request, turned into the actor of its actions.

The actor on every event and audit row comes from the token, never from the request:
there is no body field or header that names a role, a user or a domain.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta
from domain.actions.base import Role
from domain.actions.permissions import ReadScope, may_read, read_scope
from domain.errors import InvalidAPIParameters, MissingToken
from domain.token import TokenActor, authenticate

_bearer = HTTPBearer(auto_error=False, description="A token from `ledger token issue` (shown once when issued).")
REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True)
class Caller:
    actor: TokenActor
    meta: ActionTriggerMeta

    @property
    def role(self) -> Role:
        return Role(self.actor.role)

    @property
    def user_id(self) -> str:
        return str(self.actor.user_id)

    @property
    def domain_name(self) -> str:
        return self.actor.domain_name

    @property
    def identity(self) -> str:
        """Whom the token speaks for, whole (user, role, domain, access key): what an
        Idempotency-Key is scoped by, so that a replay never hands one token's response to
        another token of the same user with another role or domain (one the permission
        check would refuse)."""
        actor = self.actor
        return "\n".join((str(actor.user_id), actor.role, actor.domain_name, actor.access_key or ""))

    def scope(self, resource: str) -> ReadScope | None:
        return read_scope(resource, self.role)

    def sees(self, resource: str, domain: str | None, owners: set[str] | frozenset[str] = frozenset()) -> bool:
        return may_read(resource, self.role, self.domain_name, self.user_id, domain, set(owners))


def single_header(request: Request, name: str) -> None:
    """Refuses a header that takes one value given on several lines: it was read as its
    first, where a proxy in front may read another (another token, another key)."""
    if len(request.headers.getlist(name)) > 1:
        raise InvalidAPIParameters("given more than once: it takes one value", field=name)


def caller_request_id(state: Mapping[str, Any]) -> str | None:
    """The request id of an authenticated request, from the request's state (its scope's
    "state", where `authenticate_request` keeps the caller); None without a caller."""
    caller = state.get("caller")
    return None if caller is None else str(caller.meta.request_id)


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def authenticate_request(request: Request, presented: str) -> Caller:
    """The caller `presented` (a bearer token) speaks for, or 401 (unknown, revoked or
    expired). Reads the token's stream: run it on a worker thread."""
    actor = authenticate(ledger_of(request).app.store, presented, datetime.now(UTC))
    try:
        meta = ActionTriggerMeta(
            user_id=actor.user_id,
            access_key=actor.access_key,
            role=actor.role,
            domain_name=actor.domain_name,
            request_id=request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4()),
        )
    except InvalidAPIParameters as exc:  # only the request id is the client's
        raise InvalidAPIParameters(exc.reason, field=REQUEST_ID_HEADER) from None
    caller = Caller(actor, meta)
    request.state.caller = caller
    return caller


async def presented_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The bearer token of the request (checked later, on the worker thread), or 401 at once."""
    single_header(request, "Authorization")
    if credentials is None or not credentials.credentials:
        raise MissingToken("send Authorization: Bearer <token> (a token from `ledger token issue`)")
    return credentials.credentials


async def token_of(request: Request) -> str:
    """`presented_token` where FastAPI solves no dependency (an error handler)."""
    return await presented_token(request, await _bearer(request))
