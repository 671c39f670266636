"""Concurrent writers, with and without group commit, on SQLite and PostgreSQL (issue 15).

Run: .venv/bin/python bench/concurrency.py [--commands 1200] [--writers 1 4 16] [--processes 2]
     [--rounds 3] [--no-postgres] [--db-dir DIR]

Each writer is a thread issuing create-policy commands through the action processors (as
the HTTP API runs them: permission check, service, audit record in the same append) on
its own aggregates; the most writers run again as `--processes` processes of their share
of the threads each, with group commit (as `ledger serve --workers N` serves them), all
on the one ledger. Every (backend, mode, writers) cell gets a fresh ledger and the same
total number of commands; cells run interleaved round by round, so a shared machine's
drift hits them alike. Printed per cell: commands/s and p99 latency (medians over the
rounds), then the goals: with 16 writers at least 3x the one-writer rate on PostgreSQL
and 2x on SQLite, above the raw sqlite3 one-row-per-commit rate measured in the same
run, with a p99 at most 2x the one-writer p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from adapters.bootstrap import Ledger, open_ledger
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator

ADMIN = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
PG_SERVER = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "ledger_bench"


def percentile(values: list[float], q: float) -> float:
    """Inclusive percentile (never above the maximum)."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def write_in_threads(ledger: Ledger, writers: int, commands: int, ready: Callable[[], Any], prefix: str = "w") -> Run:
    """`commands` create-policy commands spread over `writers` threads, started once every
    thread exists and `ready()` returned: each command's latency, and when writing began
    and ended (wall clock: the processes of one cell are compared)."""
    latencies: list[float] = []
    lock = threading.Lock()
    create = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    start = threading.Barrier(writers + 1)

    def writer(index: int) -> None:
        loop = asyncio.new_event_loop()
        mine: list[float] = []
        start.wait()
        for i in range(commands // writers):
            name = f"{prefix}{index}-{i}"
            action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
            began = time.perf_counter()
            loop.run_until_complete(create.wait_for_complete(action, ADMIN))
            mine.append(time.perf_counter() - began)
        loop.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    ready()
    start.wait()
    began = time.time()
    for thread in threads:
        thread.join()
    return Run(latencies, began, time.time())


@dataclass
class Run:
    latencies: list[float]  # seconds
    began: float
    ended: float


def cell_run(url: str, group_commit: bool, writers: int, commands: int, processes: int = 1) -> tuple[float, float]:
    """(commands/s, p99 ms) of `commands` spread over `writers` threads on a fresh ledger,
    in this process or in `processes` processes of `writers // processes` threads each
    (as `ledger serve --workers N` runs), all on the one ledger."""
    if processes == 1:
        with open_ledger(url, group_commit=group_commit) as ledger:
            runs = [write_in_threads(ledger, writers, commands, lambda: None)]
    else:
        open_ledger(url).close()  # set up once: the processes only open it
        context = multiprocessing.get_context("spawn")
        start = context.Barrier(processes)
        results = context.Queue()
        children = [
            context.Process(
                target=process_writers,
                args=(url, group_commit, writers // processes, commands // processes, start, results, n),
            )
            for n in range(processes)
        ]
        for child in children:
            child.start()
        runs = [Run(*results.get(timeout=600)) for _ in children]
        for child in children:
            child.join()
    latencies = [latency for run in runs for latency in run.latencies]
    elapsed = max(run.ended for run in runs) - min(run.began for run in runs)
    return len(latencies) / elapsed, percentile(latencies, 99) * 1000


def process_writers(
    url: str, group_commit: bool, writers: int, commands: int, start: Any, results: Any, n: int
) -> None:
    """One process of a cell: opens the ledger, waits for the cell's other processes, writes."""
    with open_ledger(url, group_commit=group_commit) as ledger:
        run = write_in_threads(ledger, writers, commands, start.wait, prefix=f"p{n}-w")
    results.put((run.latencies, run.began, run.ended))  # a tuple: this module is __main__ in the parent


def raw_events_db(path: str) -> sqlite3.Connection:
    """Every bench's raw side: sqlite3 with no implicit transactions, on a WAL database,
    an events table keyed as the library's (stream id, version)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (id TEXT, version INTEGER, topic TEXT, state BLOB, PRIMARY KEY (id, version))")
    return conn


def raw_sqlite(folder: str, rows: int) -> float:
    """Single-row INSERT + COMMIT per row with sqlite3 on a WAL database (rows/s)."""
    conn = raw_events_db(f"{folder}/raw-{uuid.uuid4().hex}.db")
    state = os.urandom(600)
    began = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (f"r{i}", 1, "topic", state))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return rows / elapsed


def postgres_ready(server: str = PG_SERVER) -> bool:
    """Whether `server` answers; the benches' database is made there when missing."""
    try:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        return True
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {exc}")
        return False


def fresh_url(backend: str, folder: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder}/{uuid.uuid4().hex}.db"
    return f"{PG_SERVER}/{PG_DATABASE}?schema=b_{uuid.uuid4().hex[:12]}"


def drop_schemas() -> None:
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as conn:
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'b\\_%'").fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


Cell = tuple[str, bool, int, int]  # backend, group commit, writers, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1200, help="commands per cell (split over its writers)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--processes", type=int, default=2, help="the most writers also as this many processes, with group commit"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--db-dir", default=None)
    args = parser.parse_args()
    # A throwaway master key: PostgreSQL ledgers need one, and SQLite ones need no key file.
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    backends = ["sqlite"] + ([] if args.no_postgres or not postgres_ready() else ["postgresql"])
    most = max(args.writers)
    cells: list[Cell] = [(b, g, w, 1) for b in backends for g in (False, True) for w in args.writers]
    if args.processes > 1:
        cells += [(b, True, most, args.processes) for b in backends]
    rates: dict[Cell, list[float]] = {cell: [] for cell in cells}
    p99s: dict[Cell, list[float]] = {cell: [] for cell in cells}
    raw: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        for round_ in range(args.rounds):
            order = cells[round_ % len(cells) :] + cells[: round_ % len(cells)]  # rotate the order each round
            raw.append(raw_sqlite(folder, args.commands))
            for cell in order:
                backend, grouped, writers, processes = cell
                measured, tail = cell_run(fresh_url(backend, folder), grouped, writers, args.commands, processes)
                rates[cell].append(measured)
                p99s[cell].append(tail)
            if "postgresql" in backends:
                drop_schemas()
    raw_rate = statistics.median(raw)
    rate, p99 = ({cell: statistics.median(values[cell]) for cell in cells} for values in (rates, p99s))
    print(f"concurrent writers (commands per cell: {args.commands}, rounds: {args.rounds}, medians)")
    print(f"  raw sqlite3 one row per commit: {raw_rate:8.0f} rows/s")
    print(
        f"  {'backend':10} {'group commit':>12} {'writers':>7} {'processes':>9} {'commands/s':>10} {'p99 ms':>8} "
        f"{'x 1 writer':>10}"
    )
    for cell in cells:
        backend, grouped, writers, processes = cell
        base = rate[backend, grouped, args.writers[0], 1]
        mode = "on" if grouped else "off"
        print(
            f"  {backend:10} {mode:>12} {writers:>7} {processes:>9} {rate[cell]:10.0f} {p99[cell]:8.1f} "
            f"{rate[cell] / base:10.2f}"
        )
    for backend in backends:
        one = (backend, True, args.writers[0], 1)
        want = 3.0 if backend == "postgresql" else 2.0
        for processes in sorted({1, args.processes}):
            many = (backend, True, most, processes)
            print(
                f"  goal {backend}, group commit, {most} writers in {processes} process(es): "
                f"{rate[many] / rate[one]:.2f}x one writer (>= {want:g}: "
                f"{'met' if rate[many] / rate[one] >= want else 'NOT met'}); p99 {p99[many] / p99[one]:.2f}x one "
                f"writer's (<= 2: {'met' if p99[many] <= 2 * p99[one] else 'NOT met'}); "
                f"{rate[many] / raw_rate:.2f}x raw commits (> 1: {'met' if rate[many] > raw_rate else 'NOT met'})"
            )


if __name__ == "__main__":
    main()
