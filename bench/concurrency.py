"""Concurrent writers, with and without group commit, on SQLite and PostgreSQL (issue 15).

Run: .venv/bin/python bench/concurrency.py [--commands 1200] [--writers 1 4 16] [--rounds 3]
     [--no-postgres] [--db-dir DIR]

Each writer is a thread issuing create-policy commands through the action processors (as
the HTTP API runs them: permission check, service, audit record in the same append) on
its own aggregates. Every (backend, mode, writers) cell gets a fresh ledger and the same
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
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from adapters.bootstrap import open_ledger
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator

ADMIN = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
PG_SERVER = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "ledger_bench"


def percentile(values: list[float], q: float) -> float:
    """Inclusive percentile (never above the maximum)."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def writers_run(url: str, group_commit: bool, writers: int, commands: int) -> tuple[float, float]:
    """(commands/s, p99 ms) of `commands` spread over `writers` threads on a fresh ledger."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_writer = commands // writers
    with open_ledger(url, group_commit=group_commit) as ledger:
        create = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
        start = threading.Barrier(writers + 1)

        def writer(index: int) -> None:
            loop = asyncio.new_event_loop()
            mine: list[float] = []
            start.wait()
            for i in range(per_writer):
                action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=f"w{index}-{i}"))
                began = time.perf_counter()
                loop.run_until_complete(create.wait_for_complete(action, ADMIN))
                mine.append(time.perf_counter() - began)
            loop.close()
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, percentile(latencies, 99) * 1000


def raw_sqlite(folder: str, rows: int) -> float:
    """Single-row INSERT + COMMIT per row with sqlite3 on a WAL database (rows/s)."""
    conn = sqlite3.connect(f"{folder}/raw-{uuid.uuid4().hex}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (id TEXT, version INTEGER, topic TEXT, state BLOB, PRIMARY KEY (id, version))")
    state = os.urandom(600)
    began = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (f"r{i}", 1, "topic", state))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return rows / elapsed


def postgres_ready() -> bool:
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3) as conn:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1200, help="commands per cell (split over its writers)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--db-dir", default=None)
    args = parser.parse_args()
    # A throwaway master key: PostgreSQL ledgers need one, and SQLite ones need no key file.
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    backends = ["sqlite"] + ([] if args.no_postgres or not postgres_ready() else ["postgresql"])
    cells = [(b, g, w) for b in backends for g in (False, True) for w in args.writers]
    rates: dict[tuple[str, bool, int], list[float]] = {cell: [] for cell in cells}
    p99s: dict[tuple[str, bool, int], list[float]] = {cell: [] for cell in cells}
    raw: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        for round_ in range(args.rounds):
            order = cells[round_ % len(cells) :] + cells[: round_ % len(cells)]  # rotate the order each round
            raw.append(raw_sqlite(folder, args.commands))
            for backend, grouped, writers in order:
                rate, p99 = writers_run(fresh_url(backend, folder), grouped, writers, args.commands)
                rates[backend, grouped, writers].append(rate)
                p99s[backend, grouped, writers].append(p99)
            if "postgresql" in backends:
                drop_schemas()
    raw_rate = statistics.median(raw)
    print(f"concurrent writers (commands per cell: {args.commands}, rounds: {args.rounds}, medians)")
    print(f"  raw sqlite3 one row per commit: {raw_rate:8.0f} rows/s")
    print(f"  {'backend':10} {'group commit':>12} {'writers':>7} {'commands/s':>10} {'p99 ms':>8} {'x 1 writer':>10}")
    for backend, grouped, writers in cells:
        rate = statistics.median(rates[backend, grouped, writers])
        base = statistics.median(rates[backend, grouped, args.writers[0]])
        p99 = statistics.median(p99s[backend, grouped, writers])
        mode = "on" if grouped else "off"
        print(f"  {backend:10} {mode:>12} {writers:>7} {rate:10.0f} {p99:8.1f} {rate / base:10.2f}")
    most = max(args.writers)
    for backend in backends:
        one, many = (statistics.median(rates[backend, True, w]) for w in (args.writers[0], most))
        one_p99, many_p99 = (statistics.median(p99s[backend, True, w]) for w in (args.writers[0], most))
        want = 3.0 if backend == "postgresql" else 2.0
        print(
            f"  goal {backend}, group commit, {most} writers: {many / one:.2f}x one writer (>= {want:g}: "
            f"{'met' if many / one >= want else 'NOT met'}); p99 {many_p99 / one_p99:.2f}x one writer's (<= 2: "
            f"{'met' if many_p99 <= 2 * one_p99 else 'NOT met'}); {many / raw_rate:.2f}x raw commits (> 1: "
            f"{'met' if many > raw_rate else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
