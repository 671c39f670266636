"""`/v1/tokens`: bearer tokens over HTTP (`ledger token issue|list|revoke`), superadmin only.

Issuing answers the plaintext once; the ledger keeps only its SHA-256 hash, and neither
the list nor the audit trail ever shows a token or a hash. The CLI with database access
stays the root of trust: it issues the first superadmin token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from adapters.http.calls import Body, Call, CallDep, LedgerRoute
from adapters.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from adapters.http.idempotency import REFUSED as IDEMPOTENCY_REFUSED
from adapters.http.problems import not_found
from adapters.http.routes.common import (
    DEFAULT_PAGE,
    ONE_ENTITY,
    READ_ERRORS,
    WRITE_ERRORS,
    After,
    MinPosition,
    Page,
    PageLimit,
    empty_page,
)
from adapters.http.schema import body
from adapters.read.paging import unknown_cursor
from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters
from domain.parsers import parse_uuid
from domain.token import IssueTokenAction, RevokeTokenAction, Token, TokenData

TOKEN = EntityType.TOKEN
ISSUED_TOPIC = "domain.token.aggregate:Token.TokenIssued"
_BATCH = 1000
router = APIRouter(route_class=LedgerRoute, prefix="/tokens", tags=["tokens"])


def _token_id(raw: str) -> uuid.UUID:
    # Parsed by the ledger's parser, so a typo is refused in the words a user's id gets.
    return parse_uuid(raw, "token_id")


TokenId = Annotated[
    uuid.UUID,
    Path(description="The token's id (from issue or the list).", json_schema_extra={"format": "uuid"}),
    BeforeValidator(_token_id),
]


@dataclass(frozen=True)
class IssuedToken(TokenData):
    token: str  # the plaintext, in this answer only


def _visible(call: Call, token_id: uuid.UUID) -> None:
    if call.caller.scope(TOKEN) is None:
        raise not_found(TOKEN, str(token_id))


def _issued(call: Call, after: int, limit: int | None, revoked: bool) -> tuple[list[TokenData], int | None]:
    """Tokens issued after position `after`, in issue order, at most `limit` (revoked ones
    only with `revoked`), and the cursor of the next page. Read from their streams, as
    `ledger token list` does: tokens are few, and this keeps the hash out of every read model."""
    recorder, store = call.ledger.app.recorder, call.ledger.app.store
    found: list[TokenData] = []
    start = after + 1
    while True:
        batch = recorder.select_notifications(start=start, limit=_BATCH, topics=[ISSUED_TOPIC])
        for notification in batch:
            token = store.get(uuid.UUID(str(notification.originator_id)), Token)
            if token is None or (token.revoked_at is not None and not revoked):
                continue
            if limit is not None and len(found) == limit:
                return found, after  # one more follows: the page ends at the last one kept
            found.append(token.data())
            after = notification.id
        if len(batch) < _BATCH:
            return found, None
        start = batch[-1].id + 1


def _issued_at(call: Call, position: int) -> bool:
    """Whether a token was issued at `position` (a `next_after`): any other cursor, one past
    the head say, answered an empty page a client took for the list's end."""
    found = call.ledger.app.recorder.select_notifications(position, 1, stop=position, topics=[ISSUED_TOPIC])
    return bool(found)


@router.get(
    "", response_model=Page[TokenData], responses=READ_ERRORS, summary="The tokens, in issue order (superadmin)."
)
def list_tokens(
    call: CallDep,
    all_tokens: Annotated[bool, Query(alias="all", description="Revoked tokens too.")] = False,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    # A list is filtered by what the caller may read: nobody but a superadmin sees a token.
    if call.caller.scope(TOKEN) is None:
        return empty_page()
    if after is not None and (not after.isascii() or not after.isdigit() or len(after) > 18):
        raise InvalidAPIParameters("expected the next_after of a previous page (a position)", field="after")
    call.wait_for(min_position)
    if after is not None and not _issued_at(call, int(after)):
        raise unknown_cursor("token")
    tokens, cursor = _issued(call, 0 if after is None else int(after), limit, all_tokens)
    return {"items": [t.to_json() for t in tokens], "next_after": None if cursor is None else str(cursor)}


@router.get("/{token_id}", response_model=TokenData, responses=ONE_ENTITY, summary="One token (superadmin).")
def get_token(call: CallDep, token_id: TokenId, min_position: MinPosition = None) -> Response:
    _visible(call, token_id)
    # The token is read from the store, current already; the wait is what every read
    # promises (a position past the head is 503, not an answer that skipped it).
    call.wait_for(min_position)
    found = call.ledger.app.store.get(token_id, Token)
    if found is None:
        raise not_found(TOKEN, str(token_id))
    return call.entity_response(found.data().to_json(), found.version)  # the body's own version


@router.post(
    "",
    status_code=201,
    response_model=IssuedToken,
    responses=WRITE_ERRORS,
    openapi_extra={**body(IssueTokenAction), IDEMPOTENCY_REFUSED: True},
    summary="Issue a token (superadmin): the answer shows it once; no Idempotency-Key.",
)
def issue_token(call: CallDep, payload: Body) -> Response:
    # Idempotency-Key is refused here: a replay answers a stored copy of the first response,
    # and this response is the plaintext token, which the ledger must never keep. Storing
    # the answer without it would make a retry succeed with no usable token. A client whose
    # answer was lost lists its tokens (by name), revokes the lost one and issues again.
    if IDEMPOTENCY_HEADER in call.request.headers:
        raise InvalidAPIParameters(
            "not accepted when issuing a token: the answer holds the token, which is never stored to be"
            " replayed; on a lost answer revoke the token (see the list) and issue another",
            field=IDEMPOTENCY_HEADER,
        )

    def action() -> IssueTokenAction:
        if not isinstance(payload, dict):
            raise InvalidAPIParameters("expected a JSON object", field="body")
        return IssueTokenAction(**payload)

    answer = call.command(
        call.ledger.processors.token.issue_token,
        action,
        lambda result: {"token": result.token, **result.data.to_json()},
        status=201,
        entity=lambda result: result.data.token_id,
        body=payload,
        created=lambda result: str(result.data.token_id),
    )
    # The one answer that holds the plaintext: no cache on the way may keep it (RFC 6749 5.1).
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post(
    "/{token_id}/revoke",
    response_model=TokenData,
    responses=WRITE_ERRORS,
    summary="Revoke a token (superadmin): from the next request on it authenticates no one.",
)
def revoke_token(call: CallDep, token_id: TokenId) -> Response:
    return call.command(
        call.ledger.processors.token.revoke_token,
        RevokeTokenAction(token_id=token_id),
        lambda result: result.data.to_json(),
        entity=token_id,
    )
