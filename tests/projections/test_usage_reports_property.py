"""Usage reports against an independent computation, on generated workloads.

Each example records a workload (a few groups with vfolders; kernels started and ended
across three months, often right at a month's or a day's edge in the report's time zone
or in UTC, or at the edges of the period the example asks about; some still running, some
cancelled; random slots and stats reports) through the workload service into a fresh
ledger reporting in a drawn time zone, on SQLite and on PostgreSQL. The facts go in the
order they happen, and the read models catch up at drawn points between them, in batches
of a drawn size, so the read model's per-group state (each group's longest ended kernel)
is updated across batches as well as within one. The per-month reports (every month, and
the drawn one with a drawn group filter), the per-period reports and `usage_totals` must
then equal what this module computes from the generated facts alone: its own windows,
selection rule and sums.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from domain.group import CreateGroupAction, UsagePerMonthAction, UsagePerPeriodAction
from domain.workload import CreateVFolderAction, ReportKernelStatsAction, StartKernelAction, TerminateKernelAction
from tests.conftest import SUPERADMIN, fresh_url

MiB, GiB = 1024**2, 1024**3
ZONES = ["UTC", "Asia/Seoul", "America/New_York"]
MONTHS = ["202408", "202409", "202410", "202411", "202412"]
FIRST_DAY = date(2024, 8, 28)  # workload and periods start around here
SPAN = timedelta(days=100)
MEM = {"512m": 512 * MiB, "1g": GiB, "4g": 4 * GiB}
INPUT_OFFSETS = [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]


@dataclass
class VFolderFact:
    vfolder_id: uuid.UUID
    host: str
    name: str


@dataclass
class GroupFact:
    group_id: uuid.UUID
    name: str
    vfolders: list[VFolderFact]
    sessions: list[uuid.UUID]


@dataclass
class KernelFact:
    kernel_id: uuid.UUID
    group: GroupFact
    session: int
    slots: dict[str, str]  # as given: cpu, mem ("1g"), cuda.*
    started: datetime
    ended: datetime | None
    status: str  # RUNNING, TERMINATED or CANCELLED
    mounts: list[VFolderFact]
    reports: list[dict[str, Any]]
    given_in: timezone  # the offset the times are written with

    @property
    def session_id(self) -> uuid.UUID:
        return self.group.sessions[self.session]


@dataclass
class Workload:
    zone: str
    groups: list[GroupFact]
    kernels: list[KernelFact] = field(default_factory=list)
    catch_ups: list[int] = field(default_factory=list)  # the read models catch up after these many facts
    batch_size: int = 1000  # the runner's batch: events per apply_batch


@dataclass
class Scenario:
    """A workload and the reports asked of it (days counted from FIRST_DAY, groups by index)."""

    workload: Workload
    month: str
    month_filter: list[int] | None
    period_start: int
    period_days: int
    project: int

    def period(self) -> tuple[date, date]:
        first = FIRST_DAY + timedelta(days=self.period_start)
        return first, first + timedelta(days=self.period_days - 1)

    def windows(self) -> list[datetime]:
        """The edges of the month and of the period asked about, in UTC."""
        tz = ZoneInfo(self.workload.zone)
        first, last = self.period()
        year, number = int(self.month[:4]), int(self.month[4:])
        month_end = date(year + number // 12, number % 12 + 1, 1)
        days = [date(year, number, 1), month_end, first, last + timedelta(days=1)]
        return [local_midnight(day, tz) for day in days]


def month_starts(tz: ZoneInfo) -> list[datetime]:
    return [datetime(2024, m, 1, tzinfo=tz) for m in range(8, 13)]


@st.composite
def instants(draw: st.DrawFn, tz: ZoneInfo, windows: list[datetime]) -> datetime:
    """Any second of the span, or an edge: a month start (local or UTC), a local midnight
    or an edge of a report window asked about, exactly or a second or an hour off. Always
    in UTC."""
    kind = draw(st.sampled_from(["any", "month", "utc_month", "midnight", "window", "window"]))
    if kind == "window":
        edge = draw(st.sampled_from(windows))
    elif kind == "any":
        return datetime.combine(FIRST_DAY, time(), tzinfo=UTC) + timedelta(
            seconds=draw(st.integers(0, int(SPAN.total_seconds())))
        )
    elif kind == "midnight":
        day = FIRST_DAY + timedelta(days=draw(st.integers(0, SPAN.days)))
        edge = datetime.combine(day, time(), tzinfo=tz)
    else:
        edge = draw(st.sampled_from(month_starts(tz if kind == "month" else ZoneInfo("UTC"))))
    shift = draw(st.sampled_from([0, 0, 1, -1, 3600, -3600]))
    # In UTC: arithmetic on a zoned time is wall-clock arithmetic (an hour off across DST),
    # and a time in a repeated hour never equals one in another zone.
    return (edge + timedelta(seconds=shift)).astimezone(UTC)


SLOTS = st.fixed_dictionaries(
    {"cpu": st.sampled_from(["0.5", "1", "2", "4"]), "mem": st.sampled_from(sorted(MEM))},
    optional={
        "cuda.device": st.sampled_from(["1", "2"]),
        "cuda.shares": st.sampled_from(["0.25", "1.5"]),
        "cuda.mem": st.sampled_from(["1g", "4g"]),
    },
)
REPORT = st.fixed_dictionaries(
    {
        "cpu_used": st.sampled_from(["0", "12.5", "3000"]),
        "mem_used": st.integers(0, 2**34),
        "io_read": st.integers(0, 10**9),
        "io_write": st.integers(0, 10**9),
        "disk_used": st.integers(0, 10**9),
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """The reports first, then a workload whose times often fall on their windows' edges,
    then where the read models catch up and in what batches."""
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    scenario = Scenario(
        Workload(zone, []),
        month=draw(st.sampled_from(MONTHS)),
        month_filter=draw(st.one_of(st.none(), st.lists(st.integers(0, 3), max_size=3))),
        period_start=draw(st.integers(0, SPAN.days)),
        period_days=draw(st.integers(1, 40)),
        project=draw(st.integers(0, 3)),
    )
    windows = scenario.windows()
    groups = []
    for index in range(draw(st.integers(1, 3))):
        folders = [
            VFolderFact(uuid.uuid4(), draw(st.sampled_from(["nfs", "local"])), f"folder{n}")
            for n in range(draw(st.integers(0, 2)))
        ]
        groups.append(GroupFact(uuid.uuid4(), f"group{index}", folders, [uuid.uuid4() for _ in range(2)]))
    workload = scenario.workload
    workload.groups = groups
    for _ in range(draw(st.integers(0, 10))):
        group = draw(st.sampled_from(groups))
        started = draw(instants(tz, windows))
        status = draw(st.sampled_from(["TERMINATED", "TERMINATED", "RUNNING", "CANCELLED"]))
        ended = None
        if status != "RUNNING":
            if draw(st.booleans()):
                ended = started + timedelta(seconds=draw(st.integers(0, 40 * 86400)))
            else:
                ended = max(started, draw(instants(tz, windows)))
        workload.kernels.append(
            KernelFact(
                kernel_id=uuid.uuid4(),
                group=group,
                session=draw(st.integers(0, 1)),
                slots=draw(SLOTS),
                started=started,
                ended=ended,
                status=status,
                mounts=draw(st.lists(st.sampled_from(group.vfolders), unique_by=lambda v: v.vfolder_id))
                if group.vfolders
                else [],
                reports=draw(st.lists(REPORT, max_size=2)),
                given_in=draw(st.sampled_from(INPUT_OFFSETS)),
            )
        )
    facts = len(timeline(workload))
    workload.catch_ups = sorted(draw(st.sets(st.integers(1, max(1, facts - 1)), max_size=4))) if facts > 1 else []
    workload.batch_size = draw(st.sampled_from([1, 2, 3, 1000]))
    return scenario


def timeline(workload: Workload) -> list[Any]:
    """The workload's facts in the order they happen (vfolders first; at one instant a
    start before its stats reports, before an end), ties in the kernels' order."""
    vfolders: list[Any] = [
        CreateVFolderAction(vfolder_id=v.vfolder_id, name=v.name, host=v.host, group_id=g.group_id)
        for g in workload.groups
        for v in g.vfolders
    ]
    timed: list[tuple[datetime, int, int, Any]] = []
    for index, k in enumerate(workload.kernels):
        start = StartKernelAction(
            kernel_id=k.kernel_id,
            session_id=k.session_id,
            session_name=f"session{k.session}",
            group_id=k.group.group_id,
            domain_name="default",
            user_id=uuid.UUID(int=5),
            access_key="AKUSER",
            occupied_slots=k.slots,
            started_at=k.started.astimezone(k.given_in).isoformat(),
            mounts=[v.vfolder_id for v in k.mounts],
        )
        timed.append((k.started, 0, index, start))
        timed += [
            (k.started, 1, index, ReportKernelStatsAction(kernel_id=k.kernel_id, reported_at=k.started, **r))
            for r in k.reports
        ]
        if k.ended is not None:
            ended = k.ended.astimezone(k.given_in).isoformat()
            end = TerminateKernelAction(kernel_id=k.kernel_id, terminated_at=ended, status=k.status)
            timed.append((k.ended, 2, index, end))
    timed.sort(key=lambda t: t[:3])
    return vfolders + [fact for *_order, fact in timed]


def record(ledger: Ledger, workload: Workload) -> None:
    """Records the facts in order, in atomic batches between the catch-up points, and
    catches the read models up at each of those points."""
    for group in workload.groups:
        action = CreateGroupAction(input={"name": group.name, "domain_name": "default"}, group_id=group.group_id)
        asyncio.run(ledger.services.group.create_group(action))
    ledger.runner.batch_size = workload.batch_size
    facts = timeline(workload)
    done = 0
    for cut in [*workload.catch_ups, len(facts)]:
        if facts[done:cut]:
            asyncio.run(ledger.services.workload.record_batch(facts[done:cut]))
        done = max(done, cut)
        if cut < len(facts):
            ledger.runner.catch_up()


# The independent expectation


def amount(slots: dict[str, str], name: str) -> Decimal:
    raw = slots.get(name)
    if raw is None:
        return Decimal(0)
    return Decimal(MEM[raw]) if name in ("mem", "cuda.mem") else Decimal(raw)


def in_window(k: KernelFact, start: datetime, end: datetime) -> bool:
    """Ran during [start, end): started before the end, and still running or ended at or
    after the start. Cancelled kernels never ran."""
    if k.status == "CANCELLED" or not k.started < end:
        return False
    return k.ended is None or k.ended >= start


def counters(report: dict[str, Any]) -> tuple[Any, ...]:
    fields = ("mem_used", "io_read", "io_write", "disk_used")
    return (Decimal(report.get("cpu_used", "0")), *(report.get(f, 0) for f in fields))


def expected_kernel(k: KernelFact, tz: ZoneInfo) -> dict[str, Any]:
    # Every report is of the start's instant: the one with the larger counters is kept,
    # whatever order they came in (cpu time, then memory, io read, io write, disk).
    last = max(k.reports, key=counters, default={})
    gpu = "cuda.shares" if "cuda.shares" in k.slots else "cuda.device"
    days = None if k.ended is None else len(local_dates(k.started, k.ended, tz))
    return {
        "cpu_allocated": amount(k.slots, "cpu"),
        "mem_allocated": amount(k.slots, "mem"),
        "gpu_allocated": amount(k.slots, gpu),
        "gpu_mem_allocated": amount(k.slots, "cuda.mem"),
        "cpu_used": Decimal(last.get("cpu_used", "0")),
        "mem_used": last.get("mem_used", 0),
        "io_read": last.get("io_read", 0),
        "io_write": last.get("io_write", 0),
        "disk_used": last.get("disk_used", 0),
        "device_type": ["cuda"] if any(s.startswith("cuda.") for s in k.slots) else [],
        "nfs": sorted(f"{v.host}:{v.name}" for v in k.mounts) or None,
        "used_time": None if k.ended is None else str(k.ended - k.started),
        "used_days": days,
    }


def local_dates(first: datetime, last: datetime, tz: ZoneInfo) -> set[date]:
    """Every local calendar day from `first` to `last`, both included."""
    day, stop, found = first.astimezone(tz).date(), last.astimezone(tz).date(), set()
    while day <= stop:
        found.add(day)
        day += timedelta(days=1)
    return found


SUMMED = ["cpu_allocated", "mem_allocated", "gpu_allocated", "gpu_mem_allocated", "cpu_used", "mem_used"]
SUMMED += ["io_read", "io_write", "disk_used"]


def summed(usages: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {name: sum((u[name] for u in usages), start=Decimal(0)) for name in SUMMED}
    total["nfs"] = sorted({n for u in usages for n in u["nfs"] or []}) or None
    total["device_type"] = sorted({d for u in usages for d in u["device_type"]})
    return total


def same(found: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> None:
    for name, value in wanted.items():
        got = found[prefix + name]
        if isinstance(value, Decimal):
            assert got == pytest.approx(float(value), rel=1e-9), name
        else:
            assert got == value, name


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """In UTC, so that differences are real seconds (not wall-clock time) across DST."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def check_month(ledger: Ledger, w: Workload, month: str, group_ids: list[uuid.UUID] | None) -> None:
    tz = ZoneInfo(w.zone)
    year, number = int(month[:4]), int(month[4:])
    start = local_midnight(date(year, number, 1), tz)
    end = local_midnight(date(year + number // 12, number % 12 + 1, 1), tz)
    wanted = [k for k in w.kernels if in_window(k, start, end) and (not group_ids or k.group.group_id in group_ids)]
    action = UsagePerMonthAction(month=month, group_ids=group_ids)
    report = asyncio.run(ledger.processors.group.usage_per_month.wait_for_complete(action, SUPERADMIN)).result

    by_group = {entry["g_id"]: entry for entry in report}
    assert set(by_group) == {str(k.group.group_id) for k in wanted}
    for group in w.groups:
        if str(group.group_id) not in by_group:
            continue
        entry = by_group[str(group.group_id)]
        mine = [k for k in wanted if k.group is group]
        assert (entry["g_name"], entry["domain_name"]) == (group.name, "default")
        infos = {info["id"]: info for info in entry["c_infos"]}
        assert set(infos) == {str(k.kernel_id) for k in mine}
        usages = []
        for k in mine:
            info, usage = infos[str(k.kernel_id)], expected_kernel(k, tz)
            usages.append(usage)
            same(info, usage)
            assert (info["group_id"], info["session_id"]) == (str(group.group_id), str(k.session_id))
            assert info["status"] == k.status
            assert datetime.fromisoformat(info["created_at"]) == k.started
            if k.ended is not None:
                assert datetime.fromisoformat(info["terminated_at"]) == k.ended
        total = summed(usages)
        same(entry, {name: total[name] for name in SUMMED}, prefix="g_")
        assert entry["g_device_type"] == total["device_type"]


def check_period(ledger: Ledger, w: Workload, first: date, last: date, project: uuid.UUID | None) -> None:
    tz = ZoneInfo(w.zone)
    start, end = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    wanted = [k for k in w.kernels if in_window(k, start, end) and project in (None, k.group.group_id)]
    action = UsagePerPeriodAction(
        start_date=first.strftime("%Y%m%d"), end_date=last.strftime("%Y%m%d"), project_id=project
    )
    report = asyncio.run(ledger.processors.group.usage_per_period.wait_for_complete(action, SUPERADMIN)).result

    projects = {p["project_id"]: p for p in report}
    assert set(projects) == {str(k.group.group_id) for k in wanted}
    for group in w.groups:
        if str(group.group_id) not in projects:
            continue
        node = projects[str(group.group_id)]
        assert (node["group_unit"], node["project_name"]) == ("project", group.name)
        sessions = {s["session_id"]: s for s in node["sessions"]}
        mine = [k for k in wanted if k.group is group]
        assert set(sessions) == {str(k.session_id) for k in mine}
        session_totals = []
        for session_id, session in sessions.items():
            in_session = [k for k in mine if str(k.session_id) == session_id]
            kernels = {k["kernel_id"]: k for k in session["kernels"]}
            assert set(kernels) == {str(k.kernel_id) for k in in_session}
            assert session["group_unit"] == "session"
            usages = []
            for k in in_session:
                usage = expected_kernel(k, tz)
                usages.append(usage)
                found = kernels[str(k.kernel_id)]
                assert (found["used_time"], found["used_days"]) == (usage["used_time"], usage["used_days"])
                same(found["total_usage"], {n: v for n, v in usage.items() if n not in ("used_time", "used_days")})
            total = summed(usages)
            session_totals.append(total)
            same(session["total_usage"], total)
        same(node["total_usage"], summed(session_totals))


def check_totals(ledger: Ledger, w: Workload, first: date, last: date) -> None:
    """Slot-seconds per group over the local days [first, last]: every kernel that ran,
    for the part of it inside those days (all times are in 2024: running ones run past)."""
    tz = ZoneInfo(w.zone)
    start, end = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    wanted: dict[str, dict[str, Decimal]] = {}
    for k in w.kernels:
        if k.status == "CANCELLED":
            continue
        stop = end if k.ended is None else min(k.ended, end)
        seconds = (stop - max(k.started, start)).total_seconds()
        if seconds <= 0:
            continue
        slots = wanted.setdefault(str(k.group.group_id), {})
        for name in k.slots:
            slots[name] = slots.get(name, Decimal(0)) + amount(k.slots, name) * Decimal(seconds)
    found = ledger.queries.usage_totals(first, last)
    assert {g: set(s) for g, s in found.items()} == {g: set(s) for g, s in wanted.items()}
    for group, slots in wanted.items():
        for name, value in slots.items():
            assert found[group][name] == pytest.approx(float(value), rel=1e-9), (group, name)


# Edges the generator may not find in a run: written out


def _kernel(group: GroupFact, started: datetime, ended: datetime | None, status: str = "TERMINATED") -> KernelFact:
    return KernelFact(uuid.uuid4(), group, 0, {"cpu": "1", "mem": "1g"}, started, ended, status, [], [], UTC)


def _group(index: int) -> GroupFact:
    return GroupFact(uuid.UUID(int=100 + index), f"group{index}", [], [uuid.UUID(int=200 + index), uuid.UUID(int=300)])


def _at(zone: str, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def _long_then_short(catch_ups: list[int], batch_size: int = 1000) -> Scenario:
    """A 34-day kernel into September, then in the same group a 1-day one ending later: the
    longest span, not the newest, must bound September's scan (else the long one drops out)."""
    g = _group(0)
    long = _kernel(g, _at("UTC", 2024, 8, 5), _at("UTC", 2024, 9, 8))
    short = _kernel(g, _at("UTC", 2024, 9, 20), _at("UTC", 2024, 9, 21))
    workload = Workload("UTC", [g], [long, short], catch_ups, batch_size)
    return Scenario(workload, "202409", None, period_start=4, period_days=30, project=0)


def _window_edges(zone: str) -> Scenario:
    """September in `zone`, and the period of the same days: kernels ending exactly at its
    start (the longest of its group among them, so it is also the first of the index
    range), starting exactly at it, ending and starting exactly at its end, and a
    zero-length one at its start."""
    g, h = _group(0), _group(1)
    start, end = _at(zone, 2024, 9, 1), _at(zone, 2024, 10, 1)
    kernels = [
        _kernel(g, _at(zone, 2024, 8, 10), start),  # the group's longest, ending at the start: in
        _kernel(g, start, start + timedelta(days=1)),  # starting at the start: in
        _kernel(g, _at(zone, 2024, 9, 15), end),  # ending at the end: in
        _kernel(g, end, end + timedelta(hours=1)),  # starting at the end: out
        _kernel(g, end, None, "RUNNING"),  # running since the end: out
        _kernel(h, start, start),  # zero-length at the start: in
        _kernel(h, start - timedelta(seconds=1), start - timedelta(seconds=1)),  # ended a second before: out
        _kernel(h, start - timedelta(days=3), start, "CANCELLED"),  # cancelled: out
    ]
    return Scenario(Workload(zone, [g, h], kernels, [3]), "202409", [1], period_start=4, period_days=30, project=0)


def _longer_than_a_month() -> Scenario:
    """In New York (November has the DST change), a kernel covering all of November and a
    short one of the same group ending after it, caught up between them."""
    g = _group(0)
    zone = "America/New_York"
    long = _kernel(g, _at(zone, 2024, 10, 20), _at(zone, 2024, 12, 2, 3))
    short = _kernel(g, _at(zone, 2024, 12, 3), _at(zone, 2024, 12, 3, 6))
    workload = Workload(zone, [g], [long, short], [2], 1)
    return Scenario(workload, "202411", [0], period_start=66, period_days=36, project=0)


EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "40"))


# PostgreSQL draws three eighths as many examples, as the adversarial property does: its
# examples check the same computation through the other dialect's SQL, and each pays a
# fresh schema (~0.4 s). The explicit examples run on both.
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "examples"), [("sqlite", EXAMPLES), ("postgresql", max(1, EXAMPLES * 3 // 8))])
def test_reports_equal_an_independent_computation(kind: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @example(scenario=_long_then_short([]))  # both ends in one batch
    @example(scenario=_long_then_short([2]))  # the long one's end caught up before the short one's start
    @example(scenario=_long_then_short([], batch_size=1))  # one event per batch
    @example(scenario=_window_edges("UTC"))
    @example(scenario=_window_edges("Asia/Seoul"))
    @example(scenario=_longer_than_a_month())
    @given(scenario=scenarios())
    def check(scenario: Scenario) -> None:
        _check_reports(kind, scenario)

    check()


def _check_reports(kind: str, scenario: Scenario) -> None:
    workload = scenario.workload

    def group_id(index: int) -> uuid.UUID:
        # An index past the groups names a group that does not exist.
        return workload.groups[index].group_id if index < len(workload.groups) else uuid.UUID(int=index)

    with fresh_url(kind) as url, open_ledger(url, timezone=workload.zone) as ledger:
        record(ledger, workload)
        month_filter = scenario.month_filter
        check_month(
            ledger, workload, scenario.month, None if month_filter is None else [group_id(i) for i in month_filter]
        )
        first, last = scenario.period()
        check_period(ledger, workload, first, last, None)
        check_period(ledger, workload, first, last, group_id(scenario.project))
        check_totals(ledger, workload, first, last)
        for month in MONTHS:  # every month: a kernel at any month's edge is checked
            year, number = int(month[:4]), int(month[4:])
            check_month(ledger, workload, month, None)
            check_totals(
                ledger,
                workload,
                date(year, number, 1),
                date(year + number // 12, number % 12 + 1, 1) - timedelta(days=1),
            )
