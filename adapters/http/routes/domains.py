"""`/v1/domains`: domains over HTTP, named by their name.

Who reads what (READS): a superadmin every domain, an admin only their own; the rest is
answered as if it did not exist. Only a superadmin writes (the permission table).
"""

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
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.domains import (
    CreateDomainAction,
    DeleteDomainAction,
    Domain,
    DomainCreator,
    DomainData,
    DomainModifier,
    ModifyDomainAction,
)

DOMAIN = EntityType.DOMAIN
router = APIRouter(route_class=LedgerRoute, prefix="/domains", tags=["domains"])
Name = Annotated[str, Path(max_length=256, description="The domain's name."), AfterValidator(with_slashes)]
Quantity = float | int | str


class DomainOut(BaseModel):
    name: str
    description: str | None
    is_active: bool
    total_resource_slots: dict[str, Quantity]
    allowed_vfolder_hosts: dict[str, list[str]]
    default_keypair_resource_policy: str | None
    allowed_keypair_resource_policies: list[str] | None
    created_at: datetime
    modified_at: datetime


class DomainModified(BaseModel):
    domain: DomainOut
    changed: bool


def _out(domain: DomainData) -> dict[str, Any]:
    return domain.to_json()


def _visible(call: Call, name: str) -> None:
    if not call.caller.sees(DOMAIN, name):
        raise not_found(DOMAIN, name)


@router.get("", response_model=Page[DomainOut], responses=READ_ERRORS, summary="Live domains, by name.")
def list_domains(
    call: CallDep,
    name_prefix: Annotated[str | None, Query(max_length=256, description="Only names starting so.")] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) domains.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(DOMAIN)
    if scope is None:
        return empty_page()
    call.wait_for(min_position)
    if scope is ReadScope.DOMAIN:
        # A page of at most one: the caller's own domain, if the filters leave it in.
        own = call.ledger.queries.domain(call.caller.domain_name)
        shown = own is not None and (
            (name_prefix is None or own.name.startswith(name_prefix))
            and (active is None or own.is_active == active)
            and (after is None or own.name > after)
        )
        return page([_out(own)] if own is not None and shown else [], limit, lambda d: str(d["name"]))
    found = call.ledger.queries.domains(name_prefix=name_prefix, active=active, after=after, limit=fetch_limit(limit))
    return page([_out(d) for d in found], limit, lambda d: str(d["name"]))


@router.get("/{name}", response_model=DomainOut, responses=ONE_ENTITY, summary="One live domain.")
def get_domain(call: CallDep, name: Name, min_position: MinPosition = None) -> Response:
    _visible(call, name)
    call.wait_for(min_position)
    version = call.version_before(lambda: Domain.id_for(name))
    found = call.ledger.queries.domain(name)
    if found is None:
        raise not_found(DOMAIN, name)
    return call.entity_response(_out(found), version)


@router.post(
    "",
    status_code=201,
    response_model=DomainOut,
    responses=WRITE_ERRORS,
    openapi_extra=body(DomainCreator),
    summary="Create a domain (or again one that was deleted) (superadmin).",
)
def create_domain(call: CallDep, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.domain.create_domain,
        lambda: CreateDomainAction(creator=payload),
        lambda result: _out(result.domain),
        status=201,
        entity=lambda result: Domain.id_for(result.domain.name),
        body=payload,
        created=lambda result: result.domain.name,
    )


@router.patch(
    "/{name}",
    response_model=DomainModified,
    responses=WRITE_ERRORS,
    openapi_extra=body(DomainModifier, like=DomainCreator),
    summary="Change the fields given, leave the others (superadmin). Honours If-Match.",
)
def modify_domain(call: CallDep, name: Name, payload: Body) -> Response:
    return call.command(
        call.ledger.processors.domain.modify_domain,
        lambda: ModifyDomainAction(domain_name=name, modifier=payload),
        lambda result: {"domain": _out(result.domain), "changed": result.changed},
        entity=Domain.id_for(name),
    )


@router.delete(
    "/{name}",
    response_model=DomainOut,
    responses=WRITE_ERRORS,
    summary="Delete a domain without live users or groups (superadmin). Honours If-Match.",
)
def delete_domain(call: CallDep, name: Name) -> Response:
    return call.command(
        call.ledger.processors.domain.delete_domain,
        lambda: DeleteDomainAction(domain_name=name),
        lambda result: _out(result.domain),
        entity=Domain.id_for(name),
    )


add_history_routes(router, DOMAIN, "name", _visible)
