"""`/v1/sessions`: sessions through the two gates (issue 12) over HTTP, as `ledger session`
does them: the platform (role service) enqueues, schedules and reports activity; an admin
may also cancel or terminate a session of their own domain. Every decision answers with
the limits it weighed; refusals are the domain's problems (`QuotaExceeded` with its code).

Reads follow READS: superadmin and service see every session, an admin their domain's,
a user the sessions they own (the session's user id, else its keypair's owner). A session
a caller may not see is answered exactly as an unknown one (404; left out of lists)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from adapters.http.calls import Body, Call, CallDep, LedgerRoute
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
    add_history_routes,
    empty_page,
    fetch_limit,
)
from adapters.http.schema import body
from adapters.read.paging import unknown_cursor
from adapters.read.sessions import SessionDetail, SessionEntry
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import InvalidAPIParameters
from domain.parsers import parse_uuid
from domain.session import (
    CancelSessionAction,
    EnqueueSessionAction,
    ReportSessionActivityAction,
    ScheduleSessionAction,
    Session,
    TerminateSessionAction,
)

SESSION = EntityType.SESSION
router = APIRouter(route_class=LedgerRoute, prefix="/sessions", tags=["sessions"])
SessionId = Annotated[str, Path(max_length=64, description="The session's UUID.")]


class FallbackOut(BaseModel):
    name: str
    version: int | None


class PolicyRefOut(BaseModel):
    """The effective policy a decision applied: its name, the level it came from, its version."""

    name: str
    source: str
    version: int | None
    fallback: FallbackOut | None = None


class CheckOut(BaseModel):
    """One limit weighed: quantities as canonical text ("Infinity" for unlimited)."""

    limit: str
    scope: str
    scope_id: str
    slot: str | None
    requested: str
    used: str
    allowed: str


class SessionOut(BaseModel):
    session_id: str
    access_key: str
    user_id: str | None
    group_id: str
    domain_name: str
    requested_slots: dict[str, str]
    cluster_size: int
    mounts: list[str]
    status: str
    enqueued_at: datetime
    started_at: datetime | None
    last_activity_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    decisions: int


class Enqueued(BaseModel):
    session: SessionOut
    policy: PolicyRefOut


class Scheduled(BaseModel):
    """`admitted`; `reasons`: the failed limits when deferred; `checks`: every limit weighed;
    `changed` false: nothing recorded (already running, or the same deferral again)."""

    session: SessionOut
    admitted: bool
    changed: bool
    policy: PolicyRefOut
    reasons: list[CheckOut]
    checks: list[CheckOut]


class SessionChange(BaseModel):
    session: SessionOut
    changed: bool


class GrantOut(BaseModel):
    """A level that granted a mount's host: `scope` domain, group or keypair (its effective
    policy, named by `policy`) and its id."""

    scope: str
    scope_id: str
    policy: str | None = None


class MountGrantOut(BaseModel):
    """A mounted vfolder's host and every level that granted the permission there."""

    vfolder_id: str
    host: str
    permission: str
    granted_by: list[GrantOut]


class DecisionOut(BaseModel):
    """One gate's decision: `enqueue`, `admitted` or `deferred`, with the policy it applied
    (empty for an enqueue recorded without one), the limits it weighed or failed and
    (enqueue) which levels granted each mount."""

    at: datetime
    decision: str
    policy: dict[str, Any]
    checks: list[CheckOut]
    grants: list[MountGrantOut] = []


class SessionDetailOut(BaseModel):
    """The session (as in the list) with every decision on it, oldest first."""

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
    decisions: list[DecisionOut]
    enqueued_at: datetime
    started_at: datetime | None
    last_activity_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    kernels: int


class DueOut(BaseModel):
    session_id: str
    access_key: str
    reason: str
    deadline: datetime
    policy: str
    # The policy as resolved: name, source, version; `deleted` when a deleted keypair's
    # session runs on under a policy deleted since, as it last stood.
    policy_ref: dict[str, Any]


class EnqueueIn(BaseModel):
    """The session to enqueue: its id (the platform's), the keypair it runs under, its group,
    what the whole session requests (finite), its container count and mounted vfolders."""

    session_id: uuid.UUID
    access_key: str
    group_id: uuid.UUID
    requested_slots: dict[str, float | int | str]
    cluster_size: int = 1
    mounts: list[uuid.UUID] = []


class TerminateIn(BaseModel):
    reason: str


class ActivityIn(BaseModel):
    """`at`: when the session was active (ISO 8601, UTC if no zone); default now."""

    at: str | None = None


def _key(session_id: str) -> str:
    return str(parse_uuid(session_id, "session_id"))


def _owners(call: Call, user_id: str | None, access_key: str) -> set[str]:
    """Who owns a session: its user, else its keypair's owner (resolved now)."""
    if user_id is not None:
        return {user_id}
    keypair = call.ledger.queries.keypair(access_key)
    return set() if keypair is None else {str(keypair.user_id)}


def _sees(call: Call, domain: str, user_id: str | None, access_key: str) -> bool:
    if call.caller.scope(SESSION) is not ReadScope.OWN:
        return call.caller.sees(SESSION, domain)
    return call.caller.sees(SESSION, domain, _owners(call, user_id, access_key))


def _visible(call: Call, session_id: str) -> None:
    """The session's 404 unless the caller may read it (read from its stream, so history
    routes answer the same before the read model has it)."""
    key = _key(session_id)
    found = call.ledger.app.get(Session.id_for(key), Entity)
    if found is None or call.caller.scope(SESSION) is None:
        raise not_found(SESSION, session_id)
    fields = found.fields
    if not _sees(call, fields["domain_name"], fields.get("user_id"), fields["access_key"]):
        raise not_found(SESSION, session_id)


def _entry_visible(call: Call, entry: SessionEntry) -> bool:
    return _sees(call, entry.domain_name, entry.user_id, entry.access_key)


def _cursor_visible(call: Call, after: str) -> bool:
    """Whether the cursor, a session id of the previous page, is one the caller may see.
    It is placed by its own place in the list, the order sessions were recorded in
    (`after_row`), so a page goes on where the last ended even when that session has left
    the filter since (scheduled while a platform pages through the PENDING ones); a
    session the caller may not see is refused as an unknown one is."""
    return _visible_session(call, parse_uuid(after, "after")) is not None


def _visible_session(call: Call, session_id: str | uuid.UUID) -> SessionDetail | None:
    """The session with its decisions, if the caller may read it (read from the read model)."""
    found = call.ledger.queries.session(session_id)
    return found if found is not None and _entry_visible(call, found.session) else None


def _object(payload: Any, path_id: str | None = None) -> dict[str, Any]:
    """The body's fields; with `path_id`, the session named by the path (never by the body)."""
    if not isinstance(payload, dict):
        raise InvalidAPIParameters("expected a JSON object", field="body")
    if path_id is None:
        return dict(payload)
    if "session_id" in payload:
        raise InvalidAPIParameters("the session is the one in the path", field="session_id")
    return {**payload, "session_id": path_id}


def _changed(result: Any) -> dict[str, Any]:
    return {"session": result.session.to_json(), "changed": result.changed}


@router.get(
    "",
    response_model=Page[SessionEntry],
    responses=READ_ERRORS,
    summary="Sessions, in the order they were recorded in.",
    description=(
        "Sessions in the order the ledger recorded them (committed their enqueue), oldest first. "
        "A session recorded after a page was read always lists after that page's last session, "
        "even when its `enqueued_at` (the time its enqueue was decided) is earlier, so paging on "
        "with `next_after` never misses one."
    ),
)
def list_sessions(
    call: CallDep,
    status: Annotated[
        str | None, Query(max_length=32, description="PENDING, RUNNING, TERMINATING, CANCELLED or TERMINATED.")
    ] = None,
    access_key: Annotated[str | None, Query(max_length=256, description="Only this keypair's.")] = None,
    group_id: Annotated[str | None, Query(max_length=64, description="Only this group's.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(SESSION)
    if scope is None:
        return empty_page()
    call.wait_for(min_position)
    if after is not None and not _cursor_visible(call, after):
        raise unknown_cursor("session")
    # An admin's list is narrowed to their domain in SQL, a user's to what they own, and
    # the page stops there (a platform pages through every session without reading them
    # all again per page).
    found = call.ledger.queries.sessions(
        status,
        access_key=access_key,
        group_id=group_id,
        domain_name=call.caller.domain_name if scope is ReadScope.DOMAIN else None,
        owner=call.caller.user_id if scope is ReadScope.OWN else None,
        limit=fetch_limit(limit),
        after=after,
    )
    more = limit is not None and len(found) > limit
    shown = found[:limit] if limit is not None else found
    return {
        "items": [s.to_json() for s in shown],
        "next_after": shown[-1].session_id if more and shown else None,
    }


@router.get(
    "/due",
    response_model=list[DueOut],
    responses=READ_ERRORS,
    summary="Running sessions past a deadline of their keypair's effective policy, earliest first.",
)
def sessions_due(
    call: CallDep,
    now: Annotated[
        str | None, Query(max_length=64, description="The time to check at, ISO 8601 (UTC if no zone). Default: now.")
    ] = None,
    min_position: MinPosition = None,
) -> list[dict[str, Any]]:
    scope = call.caller.scope(SESSION)
    # Reaping is the platform's: a user is shown none (not even their own).
    if scope not in (ReadScope.ALL, ReadScope.DOMAIN):
        return []
    call.wait_for(min_position)
    due = call.ledger.queries.sessions_due(now)
    if scope is ReadScope.DOMAIN:
        mine = {s.session_id for s in call.ledger.queries.sessions(domain_name=call.caller.domain_name)}
        due = [d for d in due if str(d.session_id) in mine]
    return [d.to_json() for d in due]


@router.get(
    "/{session_id}",
    response_model=SessionDetailOut,
    responses=ONE_ENTITY,
    summary="One session and every decision on it with the limits it weighed.",
)
def get_session(call: CallDep, session_id: SessionId, min_position: MinPosition = None) -> Response:
    if call.caller.scope(SESSION) is None:
        raise not_found(SESSION, session_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: Session.id_for(str(uuid.UUID(session_id))))
    found = _visible_session(call, session_id)
    if found is None:
        raise not_found(SESSION, session_id)
    return call.entity_response(found.to_json(), version)


@router.post(
    "",
    status_code=201,
    response_model=Enqueued,
    responses=WRITE_ERRORS,
    openapi_extra=body(EnqueueIn),
    summary="Enqueue a session (the platform): the hard gate; refused with the limit it breaks.",
)
def enqueue_session(call: CallDep, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.session.enqueue_session,
        lambda: EnqueueSessionAction(**_object(payload)),
        lambda result: {"session": result.session.to_json(), "policy": result.policy},
        status=201,
        entity=lambda result: Session.id_for(str(result.session.session_id)),
        body=payload,
        created=lambda result: str(result.session.session_id),
    )


@router.post(
    "/{session_id}/schedule",
    response_model=Scheduled,
    responses=WRITE_ERRORS,
    summary="Decide a pending session at the start gate (the platform); every failed limit is a reason.",
)
def schedule_session(call: CallDep, session_id: SessionId) -> Response:
    key = _key(session_id)
    return call.command(
        call.ledger.processors.session.schedule_session,
        lambda: ScheduleSessionAction(session_id=key),
        lambda result: {
            "session": result.session.to_json(),
            "admitted": result.admitted,
            "changed": result.changed,
            "policy": result.policy,
            "reasons": [check.to_json() for check in result.reasons],
            "checks": [check.to_json() for check in result.checks],
        },
        entity=Session.id_for(key),
    )


@router.post(
    "/{session_id}/cancel",
    response_model=SessionChange,
    responses=WRITE_ERRORS,
    summary="Cancel a session (the platform, or an admin in their domain); releases what it held.",
)
def cancel_session(call: CallDep, session_id: SessionId) -> Response:
    key = _key(session_id)
    return call.command(
        call.ledger.processors.session.cancel_session,
        lambda: CancelSessionAction(session_id=key),
        _changed,
        entity=Session.id_for(key),
    )


@router.post(
    "/{session_id}/terminate",
    response_model=SessionChange,
    responses=WRITE_ERRORS,
    openapi_extra=body(TerminateIn),
    summary="Terminate a session (the platform, or an admin in their domain); idempotent.",
    description=(
        "A pending session, or a running one none of whose kernels still runs, is TERMINATED and "
        "releases its usage. A running one whose kernels still run is TERMINATING: it keeps counting "
        "toward every limit until its last kernel's end (a kernel fact) ends it, with this reason. "
        "`changed` false: it had ended, or was TERMINATING, already."
    ),
)
def terminate_session(call: CallDep, session_id: SessionId, payload: Body) -> Response:
    key = _key(session_id)
    return call.command(
        call.ledger.processors.session.terminate_session,
        lambda: TerminateSessionAction(**_object(payload, key)),
        _changed,
        entity=Session.id_for(key),
        body=payload,
    )


@router.post(
    "/{session_id}/activity",
    response_model=SessionChange,
    responses=WRITE_ERRORS,
    openapi_extra=body(ActivityIn),
    summary="Record a running session's activity (the platform); an older time records nothing.",
)
def report_activity(call: CallDep, session_id: SessionId, payload: Body) -> Response:
    key = _key(session_id)

    def action() -> ReportSessionActivityAction:
        fields = _object(payload, key)
        if fields.get("at") is None:
            fields["at"] = datetime.now(UTC)
        return ReportSessionActivityAction(**fields)

    return call.command(
        call.ledger.processors.session.report_session_activity,
        action,
        _changed,
        entity=Session.id_for(key),
        body=payload,
    )


add_history_routes(router, SESSION, "session_id", _visible, key_of=_key)
