"""Usage reports from the projections vs a straightforward scan of the kernel events.

Run: .venv/bin/python bench/reports.py [--kernels 1000000] [--groups 100] [--db PATH | --url URL] [--repeat 7]

Builds (or reuses, with --db) a ledger holding a year of workload: --groups groups and
--kernels kernels started and terminated through WorkloadService.record_batch (10% of
them with a stats report), lets the projections catch up, then times in one process, each
path the same way (one untimed warm-up run, then the median of --repeat timed runs):
- a month report for one group (usage_per_month; goal < 50 ms), each kernel named by its
  user (one user per group, from the users read model);
- a 100-day period report for one group (usage_per_period);
- the same month report computed by scanning every kernel event in the store
  (select_notifications by topic + decode);
and prints the times and the scan / projection ratio (goal >= 100x).
--repeat (new; default 7) is the number of timed runs of every path: the scan reads the
whole store each run, so lower it on a large ledger rather than timing one side less.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.utils import get_topic

from adapters.bootstrap import Ledger, open_ledger
from domain.domains import CreateDomainAction
from domain.group import CreateGroupAction, UsagePerMonthAction, UsagePerPeriodAction
from domain.usage import KernelUsage, month_report, month_window
from domain.user import CreateUserAction
from domain.workload import Kernel, ReportKernelStatsAction, StartKernelAction, TerminateKernelAction

YEAR = datetime(2024, 1, 1, tzinfo=UTC)
SLOT_CHOICES = [
    {"cpu": "1", "mem": "2g"},
    {"cpu": "4", "mem": "16g", "cuda.device": "1"},
    {"cpu": "8", "mem": "64g", "cuda.shares": "2.5"},
]


def build(ledger: Ledger, kernels: int, groups: int, seed: int = 7) -> list[uuid.UUID]:
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ledger.services.domain.create_domain(CreateDomainAction(creator={"name": "bench"})))
    group_ids = [
        loop.run_until_complete(
            ledger.services.group.create_group(CreateGroupAction(input={"name": f"g{i}", "domain_name": "bench"}))
        ).data.id
        for i in range(groups)
    ]
    for i, group_id in enumerate(group_ids):  # each group's kernels are run by one user (named in reports)
        creator = {"user_id": group_id, "domain_name": "bench", "email": f"u{i}@example.org", "full_name": f"User {i}"}
        loop.run_until_complete(ledger.services.user.create_user(CreateUserAction(creator=creator)))
    batch: list[Any] = []
    began = time.perf_counter()
    for i in range(kernels):
        kernel_id, group_id = uuid.UUID(int=i + 1), rng.choice(group_ids)
        started = YEAR + timedelta(seconds=rng.uniform(0, 365 * 86400))
        ended = started + timedelta(seconds=rng.uniform(60, 3 * 86400))
        batch.append(
            StartKernelAction(
                kernel_id=kernel_id, session_id=kernel_id, session_name=f"s{i}", group_id=group_id,
                domain_name="bench", user_id=group_id, access_key="AKBENCH", occupied_slots=rng.choice(SLOT_CHOICES),
                started_at=started, image="python:3.11", agent=f"agent-{i % 16}",
            )
        )  # fmt: skip
        if i % 10 == 0:
            batch.append(
                ReportKernelStatsAction(kernel_id=kernel_id, reported_at=ended, cpu_used=12.5, mem_used=1 << 30)
            )
        batch.append(TerminateKernelAction(kernel_id=kernel_id, terminated_at=ended))
        if len(batch) >= 2000:
            loop.run_until_complete(ledger.services.workload.record_batch(batch))
            batch = []
            if (i + 1) % 100_000 < 700:
                print(f"  recorded {i + 1} kernels ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    if batch:
        loop.run_until_complete(ledger.services.workload.record_batch(batch))
    loop.close()
    return group_ids


def scan_month(ledger: Ledger, group_id: str, month: str) -> list[dict[str, Any]]:
    """The straightforward way: read every kernel event, rebuild each kernel, select, report."""
    tz = ZoneInfo(ledger.timezone)
    start, end = month_window(month, tz)
    topics = [get_topic(cls) for cls in (Kernel.Created, Kernel.StatsReported, Kernel.Terminated)]
    kernels: dict[str, dict[str, Any]] = {}
    position = 0
    while True:
        notes = ledger.app.recorder.select_notifications(position, 5000, topics=topics, inclusive_of_start=False)
        if not notes:
            break
        for note in notes:
            event: Any = ledger.app.mapper.to_domain_event(note)
            if isinstance(event, Kernel.Created):
                kernels[event.key] = dict(event.fields)
            elif isinstance(event, Kernel.StatsReported):
                kernels[str(event.originator_id)]["last_stats"] = event.stats
            else:
                kernels[str(event.originator_id)].update(terminated_at=event.terminated_at, status=event.status)
        position = notes[-1].id
    selected = [
        usage
        for key, f in kernels.items()
        if f["group_id"] == group_id and overlaps(usage := _kernel_usage(key, f), start, end)
    ]
    return month_report(selected, tz)


def overlaps(kernel: KernelUsage, start: datetime, end: datetime) -> bool:
    """REFERENCE.md's selection, checked kernel by kernel (the reference the read model's
    indexed selection is compared with): (terminated_at >= start and created_at < end and
    status in TERMINATED/RUNNING) or (created_at < end and RUNNING)."""
    if kernel.started_at >= end or kernel.status not in ("RUNNING", "TERMINATED"):
        return False
    return kernel.status == "RUNNING" or (kernel.terminated_at is not None and kernel.terminated_at >= start)


def _kernel_usage(key: str, f: dict[str, Any]) -> KernelUsage:
    ended = f.get("terminated_at")
    return KernelUsage(
        kernel_id=key, session_id=f["session_id"], session_name=f["session_name"], group_id=f["group_id"],
        group_name="", domain_name=f["domain_name"], user_id=f["user_id"], access_key=f["access_key"],
        agent=f["agent"], image=f["image"], occupied_slots=f["occupied_slots"], nfs=list(f["mounts"]),
        started_at=datetime.fromisoformat(f["started_at"]),
        terminated_at=None if ended is None else datetime.fromisoformat(ended), status=f["status"],
        last_stats=f.get("last_stats"),
    )  # fmt: skip


def timed(run: Any, times: int) -> tuple[float, Any]:
    """One untimed warm-up run (caches, statement compilation), then the median of `times` runs:
    every path in this benchmark is timed by this one function, so the ratio compares like with like."""
    result = run()
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--db", default=None, help="a ledger file to build once and reuse")
    parser.add_argument("--url", default=None, help="instead of --db: an empty ledger URL, built each run")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of every path, after one warm-up")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    folder = tempfile.mkdtemp()
    path = args.db or f"{folder}/reports.db"
    reuse = args.url is None and args.db is not None and Path(args.db).exists()
    with open_ledger(args.url or f"sqlite:///{path}") as ledger:
        if not reuse:
            began = time.perf_counter()
            build(ledger, args.kernels, args.groups)
            print(f"built {args.kernels} kernels in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        began = time.perf_counter()
        head = ledger.runner.catch_up()
        print(f"projections caught up to {head} events in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        groups = ledger.queries.groups("bench")
        group_id = groups[len(groups) // 2].id
        loop = asyncio.new_event_loop()
        service = ledger.services.group
        month_action = UsagePerMonthAction(month="202406", group_ids=[group_id])
        month_s, month = timed(lambda: loop.run_until_complete(service.usage_per_month(month_action)), args.repeat)
        period_s, _ = timed(
            lambda: loop.run_until_complete(
                service.usage_per_period(
                    UsagePerPeriodAction(start_date="20240301", end_date="20240608", project_id=group_id)
                )
            ),
            args.repeat,
        )
        scan_s, scanned = timed(lambda: scan_month(ledger, str(group_id), "202406"), args.repeat)
        kernels_in_month = len(month.result[0]["c_infos"]) if month.result else 0
        named = sum(1 for c in month.result[0]["c_infos"] if c["email"]) if month.result else 0
        same = [c["id"] for c in scanned[0]["c_infos"]] == [c["id"] for c in month.result[0]["c_infos"]]
    print(f"usage reports ({args.kernels} kernels, {args.groups} groups, {head} events; one group)")
    print(f"  every path: one warm-up run, then the median of {args.repeat} runs")
    month_kernels = f"{kernels_in_month} kernels, {named} named by their user"
    print(f"  month report (projections)   {month_s * 1000:10.1f} ms   ({month_kernels}; goal < 50 ms)")
    print(f"  100-day period report        {period_s * 1000:10.1f} ms")
    print(f"  month report by event scan   {scan_s * 1000:10.1f} ms   (same kernels: {same})")
    print(f"  scan / projections           {scan_s / month_s:10.0f}x   (goal >= 100x)")


if __name__ == "__main__":
    main()
