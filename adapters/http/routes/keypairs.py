"""`/v1/keypairs`: keypairs, the policy each one uses and its effective policy over HTTP.

Who reads what (READS): a superadmin every keypair, an admin their domain's, a user the
keypairs they own; the rest is answered as if it did not exist. Writes go through the
permission table (domain admins), a foreign keypair being the same 404 as an unknown one.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from adapters.http.calls import Body, Call, CallDep, LedgerRoute, json_response
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
from adapters.http.routes.policies import PolicyOut
from adapters.http.schema import body
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import InvalidAPIParameters
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, KeyPairData, ModifyKeyPairAction
from domain.keypair.aggregate import KeyPair
from domain.parsers import parse_name, parse_uuid

KEYPAIR = EntityType.KEYPAIR
router = APIRouter(route_class=LedgerRoute, prefix="/keypairs", tags=["keypairs"])
AccessKey = Annotated[str, Path(max_length=256, description="The keypair's access key."), AfterValidator(with_slashes)]


class KeyPairCreate(BaseModel):
    """A new keypair (the schema of the body; the action itself validates it)."""

    model_config = ConfigDict(extra="forbid")

    access_key: str
    user_id: uuid.UUID = Field(description="The owner: a live user of the keypair's domain.")
    domain_name: str | None = Field(None, description="The keypair's domain. Default: the caller's.")
    resource_policy: str | None = Field(None, description="None: the precedence decides the effective policy.")


class KeyPairChange(BaseModel):
    """The fields to change; left out: unchanged."""

    model_config = ConfigDict(extra="forbid")

    resource_policy: str | None = Field(None, description="Another policy, or null to unassign.")


class KeyPairOut(BaseModel):
    access_key: str
    user_id: str
    domain_name: str
    resource_policy: str | None


class KeyPairEnded(KeyPairOut):
    """A deleted keypair as it was just before, and the pending sessions the same append
    cancelled (the platform must not start them)."""

    cancelled_sessions: list[str]


class KeyPairModified(BaseModel):
    keypair: KeyPairOut
    changed: bool


class FallbackOut(BaseModel):
    name: str
    version: int | None


class SkippedOut(BaseModel):
    source: str
    name: str
    reason: str


class EffectivePolicyOut(PolicyOut):
    """The whole policy in force, which level named it (`source`) and its version;
    `fallback` and `skipped` appear only when there are any."""

    source: str
    version: int
    fallback: FallbackOut | None = None
    skipped: list[SkippedOut] | None = None


def _out(keypair: KeyPairData) -> dict[str, Any]:
    return {
        "access_key": keypair.access_key,
        "user_id": str(keypair.user_id),
        "domain_name": keypair.domain_name,
        "resource_policy": keypair.resource_policy,
    }


def _visible(call: Call, access_key: str) -> None:
    """404 unless the caller may read this keypair; its domain and owner come from its
    stream, so a deleted keypair's history stays readable to whoever read the keypair."""
    scope = call.caller.scope(KEYPAIR)
    if scope is ReadScope.ALL:
        return
    found = None if scope is None else call.ledger.app.get(KeyPair.id_for(access_key), Entity)
    if not isinstance(found, KeyPair) or not call.caller.sees(
        KEYPAIR, found.fields.get("domain_name"), {str(found.fields.get("user_id"))}
    ):
        raise not_found(KEYPAIR, access_key)


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidAPIParameters("expected a JSON object", field="body")
    return payload


@router.get("", response_model=Page[KeyPairOut], responses=READ_ERRORS, summary="Live keypairs, by access key.")
def list_keypairs(
    call: CallDep,
    domain_name: Annotated[str | None, Query(max_length=256, description="Only this domain's keypairs.")] = None,
    owner: Annotated[str | None, Query(max_length=64, description="Only keypairs this user (UUID) owns.")] = None,
    resource_policy: Annotated[str | None, Query(max_length=256, description="Only keypairs using it.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(KEYPAIR)
    if scope is None:
        return empty_page()
    # The caller's own filter narrows what they may see; one outside it finds nothing.
    domain = None if domain_name is None else parse_name(domain_name, "domain_name")
    owned = None if owner is None else str(parse_uuid(owner, "owner"))
    if scope is ReadScope.DOMAIN:
        if domain not in (None, call.caller.domain_name):
            return empty_page()
        domain = call.caller.domain_name
    elif scope is ReadScope.OWN:
        if owned not in (None, call.caller.user_id):
            return empty_page()
        owned = call.caller.user_id
    call.wait_for(min_position)
    found = call.ledger.queries.keypairs(
        resource_policy, domain_name=domain, owner=owned, after=after, limit=fetch_limit(limit)
    )
    return page([_out(k) for k in found], limit, lambda k: str(k["access_key"]))


@router.get("/{access_key}", response_model=KeyPairOut, responses=ONE_ENTITY, summary="One live keypair.")
def get_keypair(call: CallDep, access_key: AccessKey, min_position: MinPosition = None) -> Response:
    call.wait_for(min_position)
    version = call.version_before(lambda: KeyPair.id_for(access_key))
    found = call.ledger.queries.keypair(access_key)
    if found is None or not call.caller.sees(KEYPAIR, found.domain_name, {str(found.user_id)}):
        raise not_found(KEYPAIR, access_key)
    return call.entity_response(_out(found), version)


@router.get(
    "/{access_key}/effective-policy",
    response_model=EffectivePolicyOut,
    responses=READ_ERRORS,
    summary="The policy in force for the keypair now (keypair, user, domain, then the system policy).",
)
def effective_policy(call: CallDep, access_key: AccessKey, min_position: MinPosition = None) -> Response:
    _visible(call, access_key)
    call.wait_for(min_position)
    return json_response(call.ledger.queries.effective_policy(access_key).to_json())


@router.post(
    "",
    status_code=201,
    response_model=KeyPairOut,
    responses=WRITE_ERRORS,
    openapi_extra=body(KeyPairCreate),
    summary="Create a keypair (or again one that was deleted) for a user of its domain (domain admins).",
)
def create_keypair(call: CallDep, payload: Body) -> Response:
    def action() -> CreateKeyPairAction:
        given = _object(payload)
        return CreateKeyPairAction(**{"domain_name": call.caller.domain_name, **given})

    return call.command(
        call.ledger.processors.keypair.create_keypair,
        action,
        lambda result: _out(result.keypair),
        status=201,
        entity=lambda result: KeyPair.id_for(result.keypair.access_key),
        body=payload,
        created=lambda result: result.keypair.access_key,
    )


@router.patch(
    "/{access_key}",
    response_model=KeyPairModified,
    responses=WRITE_ERRORS,
    openapi_extra=body(KeyPairChange),
    summary="Assign another policy or none (domain admins). Honours If-Match.",
)
def modify_keypair(call: CallDep, access_key: AccessKey, payload: Body) -> Response:
    def action() -> ModifyKeyPairAction:
        given = _object(payload)
        if "access_key" in given:  # the path names the keypair; it is not renamed
            raise InvalidAPIParameters("the access key is not modifiable", field="access_key")
        return ModifyKeyPairAction(access_key=access_key, **given)

    return call.command(
        call.ledger.processors.keypair.modify_keypair,
        action,
        lambda result: {"keypair": _out(result.keypair), "changed": result.changed},
        entity=KeyPair.id_for(access_key),
    )


@router.delete(
    "/{access_key}",
    response_model=KeyPairEnded,
    responses=WRITE_ERRORS,
    summary="Delete a keypair and cancel its pending sessions (domain admins). Honours If-Match.",
)
def delete_keypair(call: CallDep, access_key: AccessKey) -> Response:
    return call.command(
        call.ledger.processors.keypair.delete_keypair,
        lambda: DeleteKeyPairAction(access_key=access_key),
        lambda result: {**_out(result.keypair), "cancelled_sessions": list(result.cancelled_sessions)},
        entity=KeyPair.id_for(access_key),
    )


add_history_routes(router, KEYPAIR, "access_key", _visible)
