"""`/v1/groups`: seed 003's group (project) service over HTTP: list, get, create, modify
(members too: `user_update_mode` with `user_uuids`), delete, purge, members, history.

Who reads what (READS): a superadmin every group, an admin their domain's, a user the
groups they are a member of; anyone else none, answered as if it did not exist."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import Field

from adapters.http.calls import Body, Call, CallDep, LedgerRoute
from adapters.http.problems import not_found
from adapters.http.routes.common import (
    DEFAULT_PAGE,
    ONE_ENTITY,
    READ_ERRORS,
    WRITE_ERRORS,
    After,
    Exact,
    MinPosition,
    Page,
    PageLimit,
    add_history_routes,
    empty_page,
    fetch_limit,
    page,
)
from adapters.http.schema import body
from adapters.read.queries import group_cursor
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters
from domain.group.actions import CreateGroupAction, DeleteGroupAction, ModifyGroupAction, PurgeGroupAction
from domain.group.aggregate import Group
from domain.group.types import GroupCreator, GroupData, GroupModifier
from domain.parsers import parse_uuid

GROUP = EntityType.GROUP
MEMBERSHIP = ("user_update_mode", "user_uuids")
router = APIRouter(route_class=LedgerRoute, prefix="/groups", tags=["groups"])
GroupId = Annotated[str, Path(max_length=256, description="The group's id (a UUID).")]
Quantity = float | int | str


class GroupOut(Exact):
    id: str
    name: str
    domain_name: str
    type: str
    description: str | None
    is_active: bool
    integration_id: str | None
    total_resource_slots: dict[str, Quantity]
    allowed_vfolder_hosts: dict[str, list[str]]
    dotfiles: Annotated[str, Field(description="The dotfiles' bytes, base64.")]
    resource_policy: str
    container_registry: dict[str, str] | None
    created_at: datetime
    modified_at: datetime


class GroupEnded(GroupOut):
    """A deleted or purged group as it was just before, and the pending sessions the same
    append cancelled (the platform must not start them)."""

    cancelled_sessions: list[str]


class GroupChange(Exact):
    group: GroupOut
    changed: bool


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class GroupPatch(GroupModifier):
    """The PATCH body: the modifier's fields, and a membership change (both or neither)."""

    # Documented without a default: a membership change needs both fields (one alone is a 400).
    user_update_mode: Literal["add", "remove", "replace"] = Field(
        default="add",
        description="How `user_uuids` change the members: added, removed, or the new list "
        "(both or neither: with `user_uuids`).",
        json_schema_extra=_no_default,
    )
    user_uuids: list[uuid.UUID] = Field(
        default=[],
        description="Users of the group's domain (both or neither: with `user_update_mode`).",
        json_schema_extra=_no_default,
    )


def _out(group: GroupData) -> dict[str, Any]:
    return group.to_json()


def _ended(group: GroupData, cancelled: Sequence[str]) -> dict[str, Any]:
    return {**_out(group), "cancelled_sessions": list(cancelled)}


def _decoded(payload: Any) -> Any:
    """The body with `dotfiles` read as base64, the form GroupOut gives them, so a group
    read back can be written again unchanged (the model itself reads a string as text)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("dotfiles"), str):
        return payload
    try:
        dotfiles = base64.b64decode(payload["dotfiles"], validate=True)
    except ValueError:  # binascii.Error, or a character beyond ASCII
        raise InvalidAPIParameters("expected the dotfiles' bytes in base64", field="dotfiles") from None
    return {**payload, "dotfiles": dotfiles}


def _stream(group_id: str) -> uuid.UUID | None:
    """The group's stream (its ETag's version), or None for a malformed id (the action's
    own validation then names the field)."""
    try:
        return Group.id_for(group_id)
    except ValueError:
        return None


def _group(call: Call, group_id: str) -> GroupData | None:
    """The group a read names (a malformed id is a 400 naming `group_id`, as a write's)."""
    return call.ledger.queries.group(parse_uuid(group_id, "group_id"))


def _sees(call: Call, group: GroupData) -> bool:
    scope = call.caller.scope(GROUP)
    if scope is ReadScope.OWN:  # a user: only groups they belong to (members looked up only then)
        members = {str(u) for u in call.ledger.queries.group_members(group.id)}
        return call.caller.sees(GROUP, group.domain_name, members)
    return call.caller.sees(GROUP, group.domain_name)


def _visible(call: Call, group_id: str) -> None:
    """404 unless the caller may read the group (a superadmin also a purged one's history)."""
    scope = call.caller.scope(GROUP)
    if scope is ReadScope.ALL:
        return
    found = None if scope is None else _group(call, group_id)
    if found is None or not _sees(call, found):
        raise not_found(GROUP, group_id)


@router.get("", response_model=Page[GroupOut], responses=READ_ERRORS, summary="Groups by (domain, name), paged.")
def list_groups(
    call: CallDep,
    domain_name: Annotated[str | None, Query(max_length=256)] = None,
    name: Annotated[str | None, Query(max_length=256)] = None,
    name_prefix: Annotated[str | None, Query(max_length=256)] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) groups.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(GROUP)
    if scope is None:
        return empty_page()
    member: str | None = None
    if scope is ReadScope.DOMAIN:
        if domain_name is not None and domain_name != call.caller.domain_name:
            return empty_page()
        domain_name = call.caller.domain_name
    elif scope is ReadScope.OWN:
        member = call.caller.user_id
    call.wait_for(min_position)
    found = call.ledger.queries.groups(
        domain_name,
        name=name,
        name_prefix=name_prefix,
        active=active,
        after=after,
        limit=fetch_limit(limit),
        member=member,
    )
    return page(found, limit, group_cursor)


@router.get("/{group_id}", response_model=GroupOut, responses=ONE_ENTITY, summary="One group (active or not).")
def get_group(call: CallDep, group_id: GroupId, min_position: MinPosition = None) -> Response:
    _visible(call, group_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: _stream(group_id))
    found = _group(call, group_id)
    if found is None:
        raise not_found(GROUP, group_id)
    return call.entity_response(_out(found), version)


@router.get(
    "/{group_id}/members", response_model=list[uuid.UUID], responses=READ_ERRORS, summary="The members' user ids."
)
def group_members(call: CallDep, group_id: GroupId, min_position: MinPosition = None) -> list[str]:
    _visible(call, group_id)
    call.wait_for(min_position)
    found = _group(call, group_id)
    if found is None:
        raise not_found(GROUP, group_id)
    return sorted(str(u) for u in call.ledger.queries.group_members(found.id))


@router.post(
    "",
    status_code=201,
    response_model=GroupOut,
    responses=WRITE_ERRORS,
    openapi_extra=body(GroupCreator),
    summary="Create a group in a domain (superadmin, or an admin in theirs); the ledger chooses its id.",
)
def create_group(call: CallDep, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.group.create_group,
        lambda: CreateGroupAction(input=_decoded(payload)),
        lambda result: _out(result.data),
        status=201,
        entity=lambda result: Group.id_for(str(result.data.id)),
        body=payload,
        created=lambda result: str(result.data.id),
    )


def _modify(group_id: str, payload: Any) -> ModifyGroupAction:
    """The modifier from the body's fields, the membership change from its two own."""
    payload = _decoded(payload)
    if not isinstance(payload, dict):
        return ModifyGroupAction(group_id=group_id, modifier=payload)
    fields = {k: v for k, v in payload.items() if k not in MEMBERSHIP}
    membership = {k: v for k, v in payload.items() if k in MEMBERSHIP}
    return ModifyGroupAction(group_id=group_id, modifier=fields, **membership)


@router.patch(
    "/{group_id}",
    response_model=GroupChange,
    responses=WRITE_ERRORS,
    openapi_extra=body(GroupPatch, like=GroupCreator),
    summary="Change the fields given, leave the others; add, remove or replace members. Honours If-Match.",
)
def modify_group(call: CallDep, group_id: GroupId, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.group.modify_group,
        lambda: _modify(group_id, payload),
        lambda result: {"group": _out(result.data), "changed": result.changed},
        entity=_stream(group_id),
    )


@router.delete(
    "/{group_id}",
    response_model=GroupEnded,
    responses=WRITE_ERRORS,
    summary="Soft-delete a group (it becomes inactive, keeps its name) and cancel its pending sessions. "
    "Honours If-Match.",
)
def delete_group(call: CallDep, group_id: GroupId) -> Response:
    return call.command(
        call.ledger.processors.group.delete_group,
        lambda: DeleteGroupAction(group_id=group_id),
        lambda result: _ended(result.data, result.cancelled_sessions),
        entity=_stream(group_id),
    )


@router.post(
    "/{group_id}/purge",
    # null: the id names no group, only the input of refused commands sealed under its key was erased
    response_model=GroupEnded | None,
    responses=WRITE_ERRORS,
    summary="Remove a group for good (refused while it has active kernels or endpoints). Honours If-Match.",
)
def purge_group(
    call: CallDep,
    group_id: GroupId,
    accept_clear_history: Annotated[
        bool, Query(description="Purge even though an older release stored some personal values in clear.")
    ] = False,
) -> Response:
    return call.command(
        call.ledger.processors.group.purge_group,
        lambda: PurgeGroupAction(group_id=group_id, accept_clear_history=accept_clear_history),
        lambda result: None if result.data is None else _ended(result.data, result.cancelled_sessions),
        entity=_stream(group_id),
    )


add_history_routes(router, GROUP, "group_id", _visible, key_of=lambda raw: str(parse_uuid(raw, "group_id")))
