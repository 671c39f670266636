"""`ledger usage month` and `period` output: the table and --csv against --json, same report.

Run: .venv/bin/python bench/usage_render.py [--kernels 27000] [--groups 30] [--rounds 3] [--db PATH]

Builds (or reuses, with --db) a SQLite ledger with --kernels kernels in October 2024
(sessions of one to three kernels, random UUIDs, a tenth with a stats report, one in
fifty still running), recorded through WorkloadService.record_batch, and lets the
projections catch up. Then, in this process through typer's CliRunner at COLUMNS=80,
times each output of `usage month 202410` and `usage period 20241001 20241031`: the root
--json, the table, --csv (interleaved rounds, medians; each run opens the ledger and
computes the report, as the command does). Prints the times and table / json (goal <= 2)
and csv / json.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typer.testing import CliRunner

from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from domain.domains import CreateDomainAction
from domain.group import CreateGroupAction
from domain.workload import ReportKernelStatsAction, StartKernelAction, TerminateKernelAction

OCTOBER = datetime(2024, 10, 1, tzinfo=UTC)
SLOTS = [
    {"cpu": "1", "mem": "2g"},
    {"cpu": "4", "mem": "16g", "cuda.device": "1"},
    {"cpu": "8", "mem": "64g", "cuda.shares": "2.5", "cuda.mem": "16g"},
]
OUTPUTS = {"json": ["--json"], "table": [], "csv": ["--csv"]}
REPORTS = {"month": ["usage", "month", "202410"], "period": ["usage", "period", "20241001", "20241031"]}


def build(ledger: Ledger, kernels: int, groups: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    # Groups name an existing domain (issue 12).
    loop.run_until_complete(ledger.services.domain.create_domain(CreateDomainAction(creator={"name": "bench"})))
    group_ids = [
        loop.run_until_complete(
            ledger.services.group.create_group(CreateGroupAction(input={"name": f"team-{i}", "domain_name": "bench"}))
        ).data.id
        for i in range(groups)
    ]
    batch: list[Any] = []
    made = 0
    while made < kernels:
        session_id, group_id = uuid.UUID(int=rng.getrandbits(128), version=4), rng.choice(group_ids)
        session_start = OCTOBER + timedelta(seconds=rng.uniform(0, 30 * 86400))
        for _ in range(min(rng.randint(1, 3), kernels - made)):
            kernel_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            started = session_start + timedelta(seconds=rng.uniform(0, 600))
            batch.append(
                StartKernelAction(
                    kernel_id=kernel_id, session_id=session_id, session_name=f"train-resnet-{made % 977}",
                    group_id=group_id, domain_name="bench", user_id=group_id, access_key="AKBENCH",
                    occupied_slots=rng.choice(SLOTS), started_at=started, image="python:3.11",
                    agent=f"agent-{made % 16}",
                )
            )  # fmt: skip
            ended = started + timedelta(seconds=rng.uniform(60, 2 * 86400))
            if made % 10 == 0:
                batch.append(
                    ReportKernelStatsAction(kernel_id=kernel_id, reported_at=ended, cpu_used=12.5, mem_used=1 << 30)
                )
            if made % 50:
                batch.append(TerminateKernelAction(kernel_id=kernel_id, terminated_at=ended))
            made += 1
        if len(batch) >= 2000:
            loop.run_until_complete(ledger.services.workload.record_batch(batch))
            batch = []
    if batch:
        loop.run_until_complete(ledger.services.workload.record_batch(batch))
    loop.close()


def run(url: str, report: list[str], output: list[str]) -> tuple[float, int]:
    """Seconds for one command, and the characters it printed."""
    runner = CliRunner(env={"COLUMNS": "80", "LEDGER_TIMEZONE": "UTC", "LEDGER_DEBUG": None})
    root = [a for a in output if a == "--json"]
    began = time.perf_counter()
    result = runner.invoke(app, ["--db", url, *root, *report, *(a for a in output if a != "--json")])
    elapsed = time.perf_counter() - began
    if result.exit_code != 0:
        raise SystemExit(f"{report} {output} failed: {result.stderr or result.output}")
    return elapsed, len(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=27_000)
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default=None, help="a ledger file to build once and reuse")
    args = parser.parse_args()
    path = args.db or f"{tempfile.mkdtemp()}/usage_render.db"
    url = f"sqlite:///{path}"
    if not (args.db and Path(args.db).exists()):
        began = time.perf_counter()
        with open_ledger(url, timezone="UTC") as ledger:
            build(ledger, args.kernels, args.groups)
            ledger.runner.catch_up()
        print(f"built {args.kernels} kernels in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    seconds: dict[tuple[str, str], list[float]] = {(r, o): [] for r in REPORTS for o in OUTPUTS}
    size: dict[tuple[str, str], int] = {}
    order = list(OUTPUTS)
    for _ in range(args.rounds):
        order = order[1:] + order[:1]  # each output goes first in some round
        for report, report_args in REPORTS.items():
            for output in order:
                elapsed, size[report, output] = run(url, report_args, OUTPUTS[output])
                seconds[report, output].append(elapsed)
    print(f"ledger usage output ({args.kernels} kernels, {args.groups} groups, COLUMNS=80, medians of {args.rounds})")
    for report in REPORTS:
        median = {o: statistics.median(seconds[report, o]) for o in OUTPUTS}
        for output in OUTPUTS:
            print(f"  {report:6} {output:5}  {median[output]:7.2f} s   {size[report, output]:>11,} characters")
        print(f"  {report:6} table / json  {median['table'] / median['json']:5.2f}x   (goal <= 2)")
        print(f"  {report:6} csv / json    {median['csv'] / median['json']:5.2f}x")


if __name__ == "__main__":
    main()
