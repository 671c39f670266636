"""`/v1/usage`: seed 003's usage reports over HTTP, per month and per period, answered as
the CLI's --json gives them (`.result` of the action).

Reports are audited actions: they run through the group processors (`call.run`). A
superadmin reads every group's usage; an admin only their domain's groups (the group
service filters the report to the acting admin's domain; a period report naming a group
the admin may not see is that group's 404); anyone else reads none (an empty report)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from adapters.http.calls import Call, CallDep, LedgerRoute, json_response
from adapters.http.problems import not_found
from adapters.http.routes.common import READ_ERRORS, Exact, MinPosition
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.group.aggregate import Group
from domain.parsers import parse_uuid_list
from domain.usage import UsagePerMonthAction, UsagePerPeriodAction

USAGE = "usage"
router = APIRouter(route_class=LedgerRoute, prefix="/usage", tags=["usage"])
Day = Annotated[str, Query(max_length=16, description="A day, YYYYMMDD (local time of the ledger's zone).")]


class KernelUsageOut(Exact):
    """Usage of one kernel, or the sums over a session's or project's kernels."""

    nfs: list[str] | None
    cpu_allocated: float
    cpu_used: float
    mem_allocated: int
    mem_used: int
    shared_memory: int
    disk_allocated: int
    disk_used: int
    io_read: int
    io_write: int
    device_type: list[str]
    smp: float
    gpu_mem_allocated: float
    gpu_allocated: float


class ContainerInfoOut(Exact):
    id: str
    session_id: str
    container_id: str
    domain_name: str
    group_id: str
    group_name: str
    name: str
    access_key: str
    email: str | None
    full_name: str | None
    agent: str
    cpu_allocated: float
    cpu_used: float
    mem_allocated: int
    mem_used: int
    shared_memory: int
    disk_allocated: int
    disk_used: int
    io_read: int
    io_write: int
    used_time: str | None
    used_days: int | None
    device_type: list[str]
    smp: float
    gpu_mem_allocated: float
    gpu_allocated: float
    nfs: list[str] | None
    image_id: str
    image_name: str
    created_at: str
    terminated_at: str
    status: str
    status_info: None
    status_changed: str
    cluster_mode: str


class MonthGroupOut(Exact):
    """One group's totals in the month and its kernels."""

    domain_name: str
    g_id: str
    g_name: str
    g_cpu_allocated: float
    g_cpu_used: float
    g_mem_allocated: int
    g_mem_used: int
    g_shared_memory: int
    g_disk_allocated: int
    g_disk_used: int
    g_io_read: int
    g_io_write: int
    g_smp: float
    g_gpu_mem_allocated: float
    g_gpu_allocated: float
    g_device_type: list[str]
    c_infos: list[ContainerInfoOut]


class PeriodKernelOut(Exact):
    group_unit: Literal["kernel"]
    kernel_id: str
    session_id: str
    agent: str
    image: str
    status: str
    created_at: str
    terminated_at: str
    used_time: str | None
    used_days: int | None
    total_usage: KernelUsageOut


class PeriodSessionOut(Exact):
    group_unit: Literal["session"]
    session_id: str
    session_name: str
    project_id: str
    domain_name: str
    user_id: str
    access_key: str
    kernels: list[PeriodKernelOut]
    total_usage: KernelUsageOut


class PeriodProjectOut(Exact):
    group_unit: Literal["project"]
    project_id: str
    project_name: str
    domain_name: str
    sessions: list[PeriodSessionOut]
    total_usage: KernelUsageOut


def _reads(call: Call) -> ReadScope | None:
    return call.caller.scope(USAGE)


def _require_visible_group(call: Call, project_id: str) -> None:
    """A named project the caller may not read is not found (a superadmin may name any id,
    a purged group's too: its usage stays)."""
    scope = _reads(call)
    if scope is ReadScope.ALL:
        return
    try:
        found = call.ledger.queries.group(Group.id_for(project_id))
    except ValueError:
        return  # malformed: the action names the field
    if found is None or scope is None or not call.caller.sees(USAGE, found.domain_name):
        raise not_found(EntityType.GROUP, project_id)


@router.get(
    "/month/{month}",
    response_model=list[MonthGroupOut],
    responses=READ_ERRORS,
    summary="Usage in one month: per group, its totals and its kernels.",
)
def usage_per_month(
    call: CallDep,
    month: Annotated[str, Path(max_length=16, description="The month, YYYYMM (e.g. 202410).")],
    group_id: Annotated[
        list[str] | None, Query(max_length=1000, description="Only these groups (repeatable). Default: all.")
    ] = None,
    min_position: MinPosition = None,
) -> JSONResponse:
    # The action's parser under the query's name: the ledger's words, as project_id gets.
    group_ids = parse_uuid_list(group_id, "group_id") if group_id else None
    action = UsagePerMonthAction(month=month, group_ids=group_ids)
    if _reads(call) is None:
        return json_response([])
    call.wait_for(min_position)
    return json_response(call.run(call.ledger.processors.group.usage_per_month, action).result)


@router.get(
    "/period",
    response_model=list[PeriodProjectOut],
    responses=READ_ERRORS,
    summary="Usage in a period (at most 100 days): per project, its sessions and their kernels, with totals.",
)
def usage_per_period(
    call: CallDep,
    start_date: Day,
    end_date: Day,
    project_id: Annotated[str | None, Query(max_length=64, description="Only this project (group) id.")] = None,
    min_position: MinPosition = None,
) -> JSONResponse:
    action = UsagePerPeriodAction(start_date=start_date, end_date=end_date, project_id=project_id)
    if project_id is not None:
        _require_visible_group(call, project_id)
    if _reads(call) is None:
        return json_response([])
    call.wait_for(min_position)
    # The dates weighed together (a span past 100 days, an end before the start) are
    # refused naming end_date by the window itself (domain/usage/windows.py).
    return json_response(call.run(call.ledger.processors.group.usage_per_period, action).result)
