"""`/v1/keypair-resource-policies`: seed 000's service over HTTP (the template the other
resource routes follow: list, get, create, modify, delete, then the history routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel

from adapters.http.calls import Body, Call, CallDep, LedgerRoute
from adapters.http.paths import with_slashes
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
from domain.catalog import EntityType
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    ModifyKeyPairResourcePolicyAction,
)
from domain.keypair_resource_policy.types import (
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
    deprecation_message,
)

POLICY = EntityType.KEYPAIR_RESOURCE_POLICY
router = APIRouter(route_class=LedgerRoute, prefix="/keypair-resource-policies", tags=["keypair resource policies"])
Name = Annotated[str, Path(max_length=256, description="The policy's name."), AfterValidator(with_slashes)]
Quantity = float | int | str


class PolicyOut(BaseModel):
    name: str
    created_at: datetime
    default_for_unspecified: str
    total_resource_slots: dict[str, Quantity]
    max_session_lifetime: int | None
    max_concurrent_sessions: int
    max_pending_session_count: int | None
    max_pending_session_resource_slots: dict[str, Quantity] | None
    max_concurrent_sftp_sessions: int
    max_containers_per_session: int
    idle_timeout: int | None
    allowed_vfolder_hosts: dict[str, list[str]]
    max_vfolder_count: int | None
    max_vfolder_size: int | None
    max_quota_scope_size: int | None
    fallback_policy: str | None


class PolicyChange(BaseModel):
    keypair_resource_policy: PolicyOut
    changed: bool


def _out(policy: KeyPairResourcePolicyData) -> dict[str, Any]:
    return policy.to_json()


def _visible(call: Call, name: str) -> None:
    if call.caller.scope(POLICY) is None:
        raise not_found(POLICY, name)


@router.get("", response_model=Page[PolicyOut], responses=READ_ERRORS, summary="Live policies, by name.")
def list_policies(
    call: CallDep,
    name_prefix: Annotated[str | None, Query(max_length=256)] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    if call.caller.scope(POLICY) is None:
        return empty_page()
    call.wait_for(min_position)
    found = call.ledger.queries.keypair_resource_policies(
        name_prefix=name_prefix, after=after, limit=fetch_limit(limit)
    )
    return page(found, limit, lambda p: p.name)


@router.get("/{name}", response_model=PolicyOut, responses=ONE_ENTITY, summary="One live policy.")
def get_policy(call: CallDep, name: Name, min_position: MinPosition = None) -> Response:
    _visible(call, name)
    call.wait_for(min_position)
    version = call.version_before(lambda: KeyPairResourcePolicy.id_for(name))
    found = call.ledger.queries.keypair_resource_policy(name)
    if found is None:
        raise not_found(POLICY, name)
    return call.entity_response(_out(found), version)


@router.post(
    "",
    status_code=201,
    response_model=PolicyOut,
    responses=WRITE_ERRORS,
    openapi_extra=body(KeyPairResourcePolicyCreator),
    summary="Create a policy (superadmin).",
)
def create_policy(call: CallDep, payload: Body) -> Response:
    processor = call.ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    return call.command(
        processor,
        lambda: CreateKeyPairResourcePolicyAction(creator=payload),
        lambda result: _out(result.keypair_resource_policy),
        status=201,
        entity=lambda result: KeyPairResourcePolicy.id_for(result.keypair_resource_policy.name),
        body=payload,
        created=lambda result: result.keypair_resource_policy.name,
        warning=lambda action: deprecation_message(action.creator.deprecated_given()),
    )


@router.patch(
    "/{name}",
    response_model=PolicyChange,
    responses=WRITE_ERRORS,
    openapi_extra=body(KeyPairResourcePolicyModifier, like=KeyPairResourcePolicyCreator),
    summary="Change the fields given, leave the others (superadmin). Honours If-Match.",
)
def modify_policy(call: CallDep, name: Name, payload: Body) -> Response:
    processor = call.ledger.processors.keypair_resource_policy.modify_keypair_resource_policy
    return call.command(
        processor,
        lambda: ModifyKeyPairResourcePolicyAction(name=name, modifier=payload),
        lambda result: {"keypair_resource_policy": _out(result.keypair_resource_policy), "changed": result.changed},
        entity=KeyPairResourcePolicy.id_for(name),
        warning=lambda action: deprecation_message(action.modifier.deprecated_given()),
    )


@router.delete(
    "/{name}",
    response_model=PolicyOut,
    responses=WRITE_ERRORS,
    summary="Delete a policy no keypair uses (superadmin). Honours If-Match.",
)
def delete_policy(call: CallDep, name: Name) -> Response:
    processor = call.ledger.processors.keypair_resource_policy.delete_keypair_resource_policy
    return call.command(
        processor,
        lambda: DeleteKeyPairResourcePolicyAction(name=name),
        lambda result: _out(result.keypair_resource_policy),
        entity=KeyPairResourcePolicy.id_for(name),
    )


add_history_routes(router, POLICY, "name", _visible)
