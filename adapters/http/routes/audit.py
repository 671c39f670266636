"""`/v1/audit` and `/v1/verify`: the auditor's reads over HTTP (`ledger audit`, `ledger verify`).

The audit trail records every action's input, so it is read through the table of
authorised reads: a superadmin reads all of it, an admin the actions that concern their
domain's entities (filtered in SQL), anyone else an empty page. The chain walk is the superadmin's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from adapters.http.calls import CallDep, LedgerRoute
from adapters.http.problems import not_found
from adapters.http.routes.common import (
    DEFAULT_PAGE,
    READ_ERRORS,
    After,
    MinPosition,
    Page,
    PageLimit,
    empty_page,
    fetch_limit,
    page,
)
from adapters.read.queries import AuditEntry
from adapters.read_model_check import verify_ledger
from adapters.store.chain import parse_head
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters
from domain.times import parse_window

AUDIT = "audit"  # the READS resources of the trail and of the chain walk
VERIFY = "verify"
router = APIRouter(route_class=LedgerRoute, tags=["audit"])
Time = Annotated[str | None, Query(max_length=64, description="ISO 8601 time (UTC if no zone).")]
Text = Annotated[str | None, Query(max_length=256)]


class BadEventOut(BaseModel):
    position: int
    stream: str | None
    version: int | None
    kind: str
    reason: str


class BadSnapshotOut(BaseModel):
    stream: str
    version: int
    reason: str


class SnapshotsOut(BaseModel):
    checked: int
    bad: list[BadSnapshotOut]


class BadKeyOut(BaseModel):
    subject: str
    reason: str


class KeysOut(BaseModel):
    checked: int
    own: int  # of those, the ledger's own keys, no subject's (`ledger keys status` leaves them out)
    bad: list[BadKeyOut]


class BadReadModelOut(BaseModel):
    read_model: str
    reason: str


class ReadModelsOut(BaseModel):
    checked: int
    bad: list[BadReadModelOut]
    # Why the comparison proves nothing (erasures appended during every attempt, an event
    # of a type this release does not know), or null.
    unsettled: str | None = None


class GuardOut(BaseModel):
    bad: list[str]  # an append-only trigger disabled, replaced or missing, or one the ledger never made


class VerifyOut(BaseModel):
    checked: int
    head_position: int | None
    head_hash: str
    first_bad: BadEventOut | None
    snapshots: SnapshotsOut  # not chained: each compared with its stream's events
    keys: KeysOut  # not chained: an erasure deletes key rows; each checked against the events
    guard: GuardOut  # the append-only triggers, as the ledger made them
    read_models: ReadModelsOut  # the audit trail and history index, built again from the events
    ok: bool


def _position(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise InvalidAPIParameters("expected the next_after of a previous page (a position)", field="after")
    return int(cursor)


@router.get(
    "/audit",
    response_model=Page[AuditEntry],
    responses=READ_ERRORS,
    summary="Every action's outcome, who asked, when, in the order recorded. Newest first unless oldest_first.",
)
def audit_log(
    call: CallDep,
    entity_type: Annotated[EntityType | None, Query(description="The entity's type.")] = None,
    entity_id: Annotated[str | None, Query(max_length=600, description="A policy name, a group id, ...")] = None,
    actor: Annotated[str | None, Query(max_length=256, description="A user id or an access key.")] = None,
    operation: Annotated[str | None, Query(max_length=64, description="create, modify, purge, ...")] = None,
    status: Annotated[Literal["success", "error", "denied", "running"] | None, Query()] = None,
    since: Time = None,
    until: Time = None,
    oldest_first: Annotated[
        bool, Query(description="In the order they were recorded (paging from the first) instead of newest first.")
    ] = False,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    # The CLI's `--limit` keeps the latest N; over HTTP `limit` is a page size and the pages
    # follow the chosen order, each from the previous page's `next_after` (a position).
    scope = call.caller.scope(AUDIT)
    if scope is None:
        return empty_page()
    start, end = parse_window(since, until, "action")
    cursor = _position(after)
    call.wait_for(min_position)
    found = call.ledger.queries.audit_log(
        None if entity_type is None else entity_type.value,
        entity_id,
        start,
        end,
        actor=actor,
        operation=operation,
        status=status,
        limit=fetch_limit(limit),
        newest_first=not oldest_first,
        domain_name=call.caller.domain_name if scope is ReadScope.DOMAIN else None,
        after=cursor,
    )
    return page(found, limit, lambda entry: str(entry.position))


@router.get(
    "/verify",
    response_model=VerifyOut,
    responses=READ_ERRORS,
    summary="Walk the hash chain over every stored event and compare each snapshot with its events (superadmin).",
)
def verify_chain(
    call: CallDep,
    expect_head: Annotated[
        str | None,
        Query(max_length=100, description="POSITION:HASH kept earlier: the chain must still pass through it."),
    ] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    if call.caller.scope(VERIFY) is None:
        raise not_found(VERIFY, "chain")
    # The read models are compared with the events: the caller's writes are applied first.
    call.wait_for(min_position)
    kept = None if expect_head is None else parse_head(expect_head, "expect_head")
    return verify_ledger(call.ledger, kept)
