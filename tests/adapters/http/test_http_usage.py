"""The usage report routes over HTTP: the reports as the CLI's --json gives them, who
reads which groups' usage, and problems naming the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from adapters.http.routes.usage import MonthGroupOut, PeriodProjectOut
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.workload import CreateVFolderAction, StartKernelAction, TerminateKernelAction
from tests.adapters.http.api import FOREIGN, HOME, Api, root_run

MONTH = "/v1/usage/month"
PERIOD = "/v1/usage/period"
OCTOBER = {"start_date": "20241001", "end_date": "20241031"}


def _group_with_a_kernel(api: Api, name: str, domain: str) -> str:
    created = api.post("/v1/groups", {"name": name, "domain_name": domain})
    assert created.status_code == 201, created.text
    gid = str(created.json()["id"])
    kernel = uuid.uuid4()
    start = StartKernelAction(
        kernel_id=kernel,
        session_id=uuid.uuid4(),
        session_name=f"{name}-session",
        group_id=gid,
        domain_name=domain,
        user_id=api.users["user"],
        access_key="AKUSER",
        occupied_slots={"cpu": "2", "mem": "1073741824"},
        started_at=datetime(2024, 10, 2, tzinfo=UTC),
    )
    root_run(api.ledger, "workload", "start_kernel", start)
    end = TerminateKernelAction(kernel_id=kernel, terminated_at=datetime(2024, 10, 3, tzinfo=UTC))
    root_run(api.ledger, "workload", "terminate_kernel", end)
    return gid


@pytest.fixture
def groups(api: Api) -> dict[str, str]:
    return {"home": _group_with_a_kernel(api, "home", HOME), "foreign": _group_with_a_kernel(api, "far", FOREIGN)}


def test_reports_are_the_actions_results(api: Api, groups: dict[str, str]) -> None:
    month = api.get(f"{MONTH}/202410")
    assert month.status_code == 200, month.text
    expected = root_run(api.ledger, "group", "usage_per_month", UsagePerMonthAction(month="202410")).result
    assert month.json() == expected and {g["g_id"] for g in expected} == set(groups.values())
    (home,) = (g for g in month.json() if g["g_id"] == groups["home"])
    assert home["g_cpu_allocated"] == 2.0 and home["c_infos"][0]["used_days"] == 2
    period = api.get(PERIOD, params=OCTOBER)
    assert period.status_code == 200, period.text
    action = UsagePerPeriodAction(**OCTOBER)
    assert period.json() == root_run(api.ledger, "group", "usage_per_period", action).result
    # The documented models describe the reports field for field (they forbid any other).
    TypeAdapter(list[MonthGroupOut]).validate_python(month.json())
    TypeAdapter(list[PeriodProjectOut]).validate_python(period.json())
    one = api.get(PERIOD, params={**OCTOBER, "project_id": groups["foreign"]}).json()
    assert [p["project_id"] for p in one] == [groups["foreign"]]
    only = api.get(f"{MONTH}/202410", params={"group_id": groups["home"]}).json()
    assert [g["g_id"] for g in only] == [groups["home"]]
    assert api.get(f"{MONTH}/202411").json() == []


def test_the_report_is_an_audited_action_of_the_caller(api: Api, groups: dict[str, str]) -> None:
    api.get(f"{MONTH}/202410", role="admin")
    audit = api.ledger.queries.audit_log()
    entry = next(e for e in reversed(audit) if e.operation == "usage_per_month")
    assert entry.triggered_by == str(api.users["admin"]) and entry.role == "admin"


SEES = {
    "superadmin": {"home", "foreign"},
    "admin": {"home"},
    "foreign_admin": {"foreign"},
    "user": set(),
    "service": set(),
}


@pytest.mark.parametrize("role", list(SEES))
def test_who_reads_whose_usage(api: Api, groups: dict[str, str], role: str) -> None:
    seen = {groups[k] for k in SEES[role]}
    month = api.get(f"{MONTH}/202410", role=role)
    assert month.status_code == 200 and {g["g_id"] for g in month.json()} == seen
    named = api.get(f"{MONTH}/202410", params={"group_id": list(groups.values())}, role=role)
    assert {g["g_id"] for g in named.json()} == seen
    period = api.get(PERIOD, params=OCTOBER, role=role)
    assert period.status_code == 200 and {p["project_id"] for p in period.json()} == seen
    for key, gid in groups.items():
        one = api.get(PERIOD, params={**OCTOBER, "project_id": gid}, role=role)
        if key in SEES[role]:
            assert one.status_code == 200 and [p["project_id"] for p in one.json()] == [gid]
        else:
            assert one.status_code == 404 and one.json()["code"] == api.get(f"/v1/groups/{uuid.uuid4()}").json()["code"]


def test_bad_input_names_the_field(api: Api) -> None:
    month = api.get(f"{MONTH}/202413")
    assert month.status_code == 400 and month.json()["field"] == "month"
    start = api.get(PERIOD, params={"start_date": "2024-10-01", "end_date": "20241031"})
    assert start.status_code == 400 and start.json()["field"] == "start_date"
    long = api.get(PERIOD, params={"start_date": "20240101", "end_date": "20241231"})
    assert long.status_code == 400 and long.json()["detail"] == "Cannot query more than 100 days"  # the seed's words
    assert long.json()["field"] == "end_date"  # named, as every refusal of one input's value is
    backwards = api.get(PERIOD, params={"start_date": "20241002", "end_date": "20241001"})
    assert backwards.status_code == 400 and backwards.json()["detail"] == "end_date must be later than start_date."
    assert backwards.json()["field"] == "end_date"
    project = api.get(PERIOD, params={**OCTOBER, "project_id": "nope"})
    assert project.status_code == 400 and project.json()["field"] == "project_id"
    group = api.get(f"{MONTH}/202410", params={"group_id": "nope"})
    assert group.status_code == 400 and group.json()["field"] == "group_id"
    assert group.json()["detail"] == "group_id: 'nope' is not a UUID"  # the ledger's words, as project_id's
    missing = api.get(PERIOD, params={"start_date": "20241001"})
    assert missing.status_code == 400 and missing.json()["field"] == "end_date"


def test_an_admins_report_names_no_user_of_another_domain(api: Api, groups: dict[str, str]) -> None:
    """A kernel's user is whoever the platform reported (here alpha's user runs a kernel in
    beta's group "far"): beta's admin read that alpha user's email and full name in the
    kernel list of their report. Only a user of the admin's own domain is named there."""

    def emails(role: str) -> dict[str, set[str | None]]:
        month = api.get(f"{MONTH}/202410", role=role)
        assert month.status_code == 200, month.text
        return {g["g_id"]: {c["email"] for c in g["c_infos"]} for g in month.json()}

    named = "user@example.org"
    assert emails("superadmin") == {groups["home"]: {named}, groups["foreign"]: {named}}
    assert emails("admin") == {groups["home"]: {named}}
    foreign = api.get(f"{MONTH}/202410", role="foreign_admin").json()
    assert named not in str(foreign) and emails("foreign_admin") == {groups["foreign"]: {None}}
    (kernel,) = foreign[0]["c_infos"]
    assert kernel["full_name"] is None and kernel["access_key"] == "AKUSER"  # the usage itself stays


def test_an_admins_report_names_no_group_moved_to_another_domain(api: Api, groups: dict[str, str]) -> None:
    """A group whose kernels ran in alpha, moved since to beta (and renamed there): the
    kernels stay alpha's usage, but alpha's admin read the group's name as beta now keeps
    it in both reports. Only a group still in the admin's domain is named to them."""
    moved = api.patch(f"/v1/groups/{groups['home']}", {"domain_name": FOREIGN, "name": "beta-secret-project"})
    assert moved.status_code == 200, moved.text

    def names(role: str) -> tuple[dict[str, str], dict[str, str]]:
        month = api.get(f"{MONTH}/202410", role=role)
        period = api.get(PERIOD, params=OCTOBER, role=role)
        assert month.status_code == period.status_code == 200, (month.text, period.text)
        return (
            {g["g_id"]: g["g_name"] for g in month.json()},
            {p["project_id"]: p["project_name"] for p in period.json()},
        )

    named = {groups["home"]: "beta-secret-project", groups["foreign"]: "far"}
    assert names("superadmin") == (named, named)
    assert names("foreign_admin") == ({groups["foreign"]: "far"},) * 2  # the kernels were not beta's
    withheld = {groups["home"]: ""}  # as a group the ledger no longer knows reads
    assert names("admin") == (withheld, withheld)


def test_an_admins_report_names_no_vfolder_of_another_domain(api: Api, groups: dict[str, str]) -> None:
    """A kernel mounts whatever vfolders the platform reported (here alpha's kernel mounts
    beta's "secret-data"): alpha's admin read that vfolder's host and name in the `nfs` of
    their report. A vfolder of another domain's group reads as its id, as an unknown one."""
    vfolder = uuid.uuid4()
    create = CreateVFolderAction(vfolder_id=vfolder, name="secret-data", host="beta-nas", group_id=groups["foreign"])
    root_run(api.ledger, "workload", "create_vfolder", create)
    start = StartKernelAction(
        kernel_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        session_name="mounting",
        group_id=groups["home"],
        domain_name=HOME,
        user_id=api.users["user"],
        access_key="AKUSER",
        occupied_slots={"cpu": "1"},
        started_at=datetime(2024, 10, 5, tzinfo=UTC),
        mounts=[vfolder],
    )
    root_run(api.ledger, "workload", "start_kernel", start)

    def mounted(role: str) -> tuple[set[str], set[str]]:
        month = api.get(f"{MONTH}/202410", role=role).json()
        period = api.get(PERIOD, params=OCTOBER, role=role).json()
        in_month = {n for g in month for c in g["c_infos"] for n in c["nfs"] or []}
        in_period = {
            n for p in period for s in p["sessions"] for k in s["kernels"] for n in k["total_usage"]["nfs"] or []
        }
        return in_month, in_period

    assert mounted("superadmin") == ({"beta-nas:secret-data"},) * 2
    assert mounted("admin") == ({str(vfolder)},) * 2
