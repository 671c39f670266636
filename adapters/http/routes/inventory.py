"""`/v1/kernels`, `/v1/vfolders`, `/v1/endpoints`: the workload the platform reported, read
back as `ledger kernel|vfolder|endpoint list|show` reads it (`ledger.queries.kernels`, ...).

Reads follow READS: a superadmin and the platform (service) see all of it, an admin their
domain's (a vfolder's or an endpoint's domain is its group's), a user the kernels they
ran. What a caller may not see is answered as an unknown thing is (404; left out of
lists). Kernel and vfolder lists page with `limit` and `after` (the last item's id)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from adapters.http.calls import Call, CallDep, LedgerRoute
from adapters.http.problems import not_found
from adapters.http.routes.common import (
    DEFAULT_PAGE,
    ONE_ENTITY,
    READ_ERRORS,
    After,
    MinPosition,
    Page,
    PageLimit,
    empty_page,
    fetch_limit,
    page,
)
from adapters.read.paging import unknown_cursor
from adapters.read.workload import EndpointEntry, KernelEntry, VFolderEntry
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.parsers import parse_uuid
from domain.workload import Endpoint, Kernel, VFolder

KERNEL, VFOLDER, ENDPOINT = EntityType.KERNEL, EntityType.VFOLDER, EntityType.ENDPOINT
router = APIRouter(route_class=LedgerRoute, tags=["workload"])
GroupFilter = Annotated[str | None, Query(max_length=64, description="Only this group's.")]
Id = Annotated[str, Path(max_length=64, description="Its UUID.")]


def _group_domain(call: Call, group_id: str) -> str | None:
    """The domain of the group (None once it is purged, or for an unknown one)."""
    group = call.ledger.queries.group(group_id)
    return None if group is None else group.domain_name


@router.get(
    "/kernels",
    response_model=Page[KernelEntry],
    responses=READ_ERRORS,
    summary="Kernels, in the order their starts were recorded in.",
    description=(
        "Kernels in the order the ledger recorded their starts, oldest first. A kernel whose start is "
        "recorded after a page was read (facts reported late: an import of yesterday's, a retried "
        "report) always lists after that page's last kernel, even when its `started_at` (the time the "
        "platform reports for its start) is earlier, so paging on with `next_after` never misses one. "
        "`since` and `until` select by `started_at`."
    ),
)
def list_kernels(
    call: CallDep,
    group_id: GroupFilter = None,
    status: Annotated[str | None, Query(max_length=32, description="RUNNING, TERMINATED or CANCELLED.")] = None,
    access_key: Annotated[str | None, Query(max_length=256, description="The access key they ran under.")] = None,
    since: Annotated[str | None, Query(max_length=64, description="Started at or after (ISO 8601).")] = None,
    until: Annotated[str | None, Query(max_length=64, description="Started before (ISO 8601).")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(KERNEL)
    if scope is None:
        return empty_page()
    call.wait_for(min_position)
    if after is not None and not _kernel_cursor_visible(call, after):
        raise unknown_cursor("kernel")
    # What the caller may read is narrowed in SQL, so a page is never short of visible kernels.
    found = call.ledger.queries.kernels(
        group_id=group_id,
        status=status,
        access_key=access_key,
        since=since,
        until=until,
        limit=fetch_limit(limit),
        after=after,
        domain_name=call.caller.domain_name if scope is ReadScope.DOMAIN else None,
        user_id=call.caller.user_id if scope is ReadScope.OWN else None,
    )
    return page(found, limit, lambda k: k.kernel_id)


def _kernel_cursor_visible(call: Call, after: str) -> bool:
    """Whether the cursor is a kernel the caller may see. The page is placed by the cursor
    kernel's place in the list (the order starts were recorded in), so another domain's (or
    user's) kernel as a cursor told the caller that it exists and when it was recorded
    among theirs; it is refused as an unknown one is."""
    cursor = parse_uuid(after, "after")
    return call.caller.scope(KERNEL) is ReadScope.ALL or _visible_kernel(call, cursor) is not None


def _visible_kernel(call: Call, kernel_id: str | uuid.UUID) -> KernelEntry | None:
    """The kernel, if the caller may read it (its domain's admin, the user who ran it)."""
    found = call.ledger.queries.kernel(kernel_id)
    return found if found is not None and call.caller.sees(KERNEL, found.domain_name, {found.user_id}) else None


@router.get("/kernels/{kernel_id}", response_model=KernelEntry, responses=ONE_ENTITY, summary="One kernel.")
def get_kernel(call: CallDep, kernel_id: Id, min_position: MinPosition = None) -> Response:
    if call.caller.scope(KERNEL) is None:
        raise not_found(KERNEL, kernel_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: Kernel.id_for(kernel_id))
    found = _visible_kernel(call, kernel_id)
    if found is None:
        raise not_found(KERNEL, kernel_id)
    return call.entity_response(found.to_json(), version)


@router.get("/vfolders", response_model=Page[VFolderEntry], responses=READ_ERRORS, summary="Vfolders, by name.")
def list_vfolders(
    call: CallDep,
    group_id: GroupFilter = None,
    host: Annotated[str | None, Query(max_length=256, description="Only this storage host's.")] = None,
    limit: PageLimit = DEFAULT_PAGE,
    after: After = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    scope = call.caller.scope(VFOLDER)
    if scope is None:
        return empty_page()
    call.wait_for(min_position)
    if after is not None and not _vfolder_cursor_visible(call, after):
        raise unknown_cursor("vfolder")
    # An admin's are narrowed to their domain's groups in SQL, so a page is never short.
    domain = call.caller.domain_name if scope is ReadScope.DOMAIN else None
    found = call.ledger.queries.vfolders(group_id, host, fetch_limit(limit), after, domain_name=domain)
    return page(found, limit, lambda v: v.vfolder_id)


def _vfolder_cursor_visible(call: Call, after: str) -> bool:
    """Whether the cursor is a vfolder the caller may see: placed by its name, another
    domain's vfolder told where that name stands among the caller's (`_kernel_cursor_visible`)."""
    cursor = parse_uuid(after, "after")
    return call.caller.scope(VFOLDER) is ReadScope.ALL or _visible_vfolder(call, cursor) is not None


def _visible_vfolder(call: Call, vfolder_id: str | uuid.UUID) -> VFolderEntry | None:
    """The vfolder, if the caller may read it (its group's domain's admin)."""
    found = call.ledger.queries.vfolder(vfolder_id)
    return found if found is not None and _sees_group(call, VFOLDER, found.group_id) else None


@router.get("/vfolders/{vfolder_id}", response_model=VFolderEntry, responses=ONE_ENTITY, summary="One vfolder.")
def get_vfolder(call: CallDep, vfolder_id: Id, min_position: MinPosition = None) -> Response:
    if call.caller.scope(VFOLDER) is None:
        raise not_found(VFOLDER, vfolder_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: VFolder.id_for(vfolder_id))
    found = _visible_vfolder(call, vfolder_id)
    if found is None:
        raise not_found(VFOLDER, vfolder_id)
    return call.entity_response(found.to_json(), version)


def _sees_group(call: Call, resource: str, group_id: str) -> bool:
    """Whether the caller reads `resource` of the group: all of it, or their domain's."""
    if call.caller.scope(resource) is ReadScope.ALL:
        return True
    return call.caller.sees(resource, _group_domain(call, group_id))


@router.get(
    "/endpoints",
    response_model=Page[EndpointEntry],
    responses=READ_ERRORS,
    summary="A group's active endpoints, by name (read from the event store).",
)
def list_endpoints(
    call: CallDep,
    group_id: Annotated[str, Query(max_length=64, description="The group whose endpoints to list.")],
    min_position: MinPosition = None,
) -> dict[str, Any]:
    if call.caller.scope(ENDPOINT) is None:
        return empty_page()
    # The endpoints are read from the event store, an admin's group from its read model.
    call.wait_for(min_position)
    # Parsed first: an admin's group is looked up by its text, so a typo was a group without endpoints.
    group = parse_uuid(group_id, "group_id")
    if not _sees_group(call, ENDPOINT, str(group)):
        return empty_page()
    return page(call.ledger.queries.endpoints(group), None, lambda e: e.endpoint_id)


@router.get("/endpoints/{endpoint_id}", response_model=EndpointEntry, responses=ONE_ENTITY, summary="One endpoint.")
def get_endpoint(call: CallDep, endpoint_id: Id, min_position: MinPosition = None) -> Response:
    if call.caller.scope(ENDPOINT) is None:
        raise not_found(ENDPOINT, endpoint_id)
    call.wait_for(min_position)
    version = call.version_before(lambda: Endpoint.id_for(endpoint_id))
    found = call.ledger.queries.endpoint(endpoint_id)
    if found is None or not _sees_group(call, ENDPOINT, found.group_id):
        raise not_found(ENDPOINT, endpoint_id)
    return call.entity_response(found.to_json(), version)
