"""`/v1/users`: users over HTTP, named by their UUID.

Who reads what (READS): a superadmin every user, an admin their domain's, a user only
themselves; the rest is answered as if it did not exist. Writes go through the
permission table (domain admins), a foreign user being the same 404 as an unknown one.
An erasure (`POST /v1/users/{id}/erase`, superadmin) destroys the key of the user's
personal values: they read `[erased]` from then on (issue 14).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

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
    page,
)
from adapters.http.schema import body
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import InvalidAPIParameters
from domain.parsers import parse_name, parse_uuid
from domain.user import (
    CreateUserAction,
    DeleteUserAction,
    EraseUserAction,
    ModifyUserAction,
    User,
    UserCreator,
    UserData,
    UserModifier,
)

USER = EntityType.USER
router = APIRouter(route_class=LedgerRoute, prefix="/users", tags=["users"])
UserId = Annotated[str, Path(max_length=64, description="The user's UUID.")]


class UserOut(BaseModel):
    user_id: str
    domain_name: str
    email: str | None
    full_name: str | None
    default_keypair_resource_policy: str | None
    created_at: datetime
    modified_at: datetime


class UserModified(BaseModel):
    user: UserOut
    changed: bool


class UserErasure(BaseModel):
    """The body of an erasure: why (kept in clear in the audit trail: no personal values
    in it), and whether values stored in clear before sealing existed may stay behind."""

    reason: str = Field(min_length=1, max_length=1000)
    accept_clear_history: bool = False


class UserErased(BaseModel):
    user: UserOut | None  # None: no such user, only the input of refused commands naming it was erased
    clear_values: int  # values stored in clear that stay readable (accepted), else 0


def _out(user: UserData) -> dict[str, Any]:
    return user.to_json()


def _key(user_id: str) -> str:
    """The id as the ledger keys it (a malformed one is a 400 naming `user_id`)."""
    return str(parse_uuid(user_id, "user_id"))


def _visible(call: Call, user_id: str) -> None:
    """404 unless the caller may read this user; the domain comes from the user's stream,
    so a deleted user's history stays readable to whoever read the user."""
    scope = call.caller.scope(USER)
    if scope is ReadScope.ALL:
        return
    found = None if scope is None else call.ledger.app.get(User.id_for(user_id), Entity)
    if not isinstance(found, User) or not call.caller.sees(USER, found.fields.get("domain_name"), {user_id}):
        raise not_found(USER, user_id)


@router.get("", response_model=Page[UserOut], responses=READ_ERRORS, summary="Live users, by UUID.")
def list_users(
    call: CallDep,
    domain_name: Annotated[str | None, Query(max_length=256, description="Only this domain's users.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(USER)
    if scope is None:
        return empty_page()
    domain = None if domain_name is None else parse_name(domain_name, "domain_name")
    cursor = None if after is None else str(parse_uuid(after, "after"))
    call.wait_for(min_position)
    if scope is ReadScope.OWN:
        # A page of at most one: the caller, if the filter and the cursor leave them in.
        me = call.ledger.queries.user(call.caller.user_id)
        if me is None or domain not in (None, me.domain_name) or (cursor is not None and cursor >= str(me.user_id)):
            return empty_page()
        return page([_out(me)], limit, lambda u: str(u["user_id"]))
    if scope is ReadScope.DOMAIN:
        if domain not in (None, call.caller.domain_name):
            return empty_page()
        domain = call.caller.domain_name
    found = call.ledger.queries.users(domain, after=cursor, limit=fetch_limit(limit))
    return page([_out(u) for u in found], limit, lambda u: str(u["user_id"]))


@router.get("/{user_id}", response_model=UserOut, responses=ONE_ENTITY, summary="One live user.")
def get_user(call: CallDep, user_id: UserId, min_position: MinPosition = None) -> Response:
    key = _key(user_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: User.id_for(key))
    found = call.ledger.queries.user(key)
    if found is None or not call.caller.sees(USER, found.domain_name, {key}):
        raise not_found(USER, user_id)
    return call.entity_response(_out(found), version)


@router.post(
    "",
    status_code=201,
    response_model=UserOut,
    responses=WRITE_ERRORS,
    openapi_extra=body(UserCreator),
    summary="Create a user (or again one that was deleted) in a domain (domain admins).",
)
def create_user(call: CallDep, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.user.create_user,
        lambda: CreateUserAction(creator=payload),
        lambda result: _out(result.user),
        status=201,
        entity=lambda result: User.id_for(str(result.user.user_id)),
        body=payload,
        created=lambda result: str(result.user.user_id),
    )


@router.patch(
    "/{user_id}",
    response_model=UserModified,
    responses=WRITE_ERRORS,
    openapi_extra=body(UserModifier, like=UserCreator),
    summary="Change the fields given, leave the others (domain admins). Honours If-Match.",
)
def modify_user(call: CallDep, user_id: UserId, payload: Body) -> Response:
    key = _key(user_id)
    return call.command(
        call.ledger.processors.user.modify_user,
        lambda: ModifyUserAction(user_id=key, modifier=payload),
        lambda result: {"user": _out(result.user), "changed": result.changed},
        entity=User.id_for(key),
    )


@router.delete(
    "/{user_id}",
    response_model=UserOut,
    responses=WRITE_ERRORS,
    summary="Delete a user who owns no keypair (domain admins). Honours If-Match.",
)
def delete_user(call: CallDep, user_id: UserId) -> Response:
    key = _key(user_id)
    return call.command(
        call.ledger.processors.user.delete_user,
        lambda: DeleteUserAction(user_id=key),
        lambda result: _out(result.user),
        entity=User.id_for(key),
    )


@router.post(
    "/{user_id}/erase",
    response_model=UserErased,
    responses=WRITE_ERRORS,
    openapi_extra=body(UserErasure),
    summary="Erase a user's personal values for good (superadmin); refused while its history holds clear ones.",
)
def erase_user(call: CallDep, user_id: UserId, payload: Body) -> Response:
    key = _key(user_id)

    def action() -> EraseUserAction:
        if not isinstance(payload, dict):
            raise InvalidAPIParameters("expected a JSON object", field="body")
        if "user_id" in payload:
            raise InvalidAPIParameters("is given by the path, not the body", field="user_id")
        return EraseUserAction(user_id=key, **payload)

    return call.command(
        call.ledger.processors.user.erase_user,
        action,
        lambda result: {
            "user": None if result.user is None else _out(result.user),
            "clear_values": result.clear_values,
        },
        entity=User.id_for(key),
        body=payload,
    )


add_history_routes(router, USER, "user_id", _visible, key_of=_key)
