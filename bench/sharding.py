"""Sharding by domain, simulated: one PostgreSQL database per shard, one writer process per
shard, the aggregate command rate (issue 15, docs/SCALING.md).

Run: .venv/bin/python bench/sharding.py [--shards 1 2 4] [--commands 800] [--writers 4] [--rounds 2]
     [--processes 1]

Each shard is its own database on this machine's PostgreSQL server (`ledger_shard_<n>`),
with its own ledger, hash chain and positions: what a router sending each domain's
commands to its shard's API processes would see. Each shard's process runs `--writers`
threads with group commit (as `ledger serve` does), creating policies through the action
processors; all shards start together. Printed: the aggregate commands/s for each shard
count and its ratio to one shard. The server, the writers and this machine's two cores
are shared by every shard, so this measures how far one machine goes, not a cluster.
With `--processes P`, each shard is written by P processes (as `ledger serve --workers P`
would), each with its own group commit: how far one database goes past one process's GIL.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from concurrency import PG_SERVER, process_writers  # bench/ is no package


def shard_database(n: int) -> str:
    return f"ledger_shard_{n}"


def ensure_databases(count: int) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for n in range(count):
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (shard_database(n),)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{shard_database(n)}"')


def drop_schema(n: int, schema: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/{shard_database(n)}", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def aggregate_rate(shards: int, writers: int, commands: int, per_shard: int = 1) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(shards * per_shard)
    results = context.Queue()
    schema = f"s_{uuid.uuid4().hex[:12]}"
    urls = [f"{PG_SERVER}/{shard_database(n)}?schema={schema}" for n in range(shards)]
    for url in urls:  # set up once, so that the processes of a shard only open it
        from adapters.bootstrap import open_ledger

        open_ledger(url).close()
    # Each process as `bench/concurrency.py` runs one of a cell's (group commit, as serve does).
    processes = [
        context.Process(target=process_writers, args=(url, True, writers, commands // per_shard, start, results, p))
        for url in urls
        for p in range(per_shard)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    for n in range(shards):
        drop_schema(n, schema)
    done = sum(len(latencies) for latencies, _, _ in outcomes)
    return float(done / (max(end for _, _, end in outcomes) - min(began for _, began, _ in outcomes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--commands", type=int, default=800, help="commands per shard")
    parser.add_argument("--writers", type=int, default=4, help="writer threads per shard process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1, help="writer processes per shard (same database)")
    args = parser.parse_args()
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    ensure_databases(max(args.shards))
    rates: dict[int, list[float]] = {n: [] for n in args.shards}
    for _ in range(args.rounds):
        for shards in args.shards:
            rates[shards].append(aggregate_rate(shards, args.writers, args.commands, args.processes))
    one = statistics.median(rates[args.shards[0]])
    print(
        f"sharding by database (PostgreSQL; {args.processes} process(es) per shard, {args.writers} writers each, "
        "group commit; medians)"
    )
    for shards in args.shards:
        rate = statistics.median(rates[shards])
        print(f"  {shards} shard(s): {rate:8.0f} commands/s aggregate, {rate / one:5.2f}x {args.shards[0]} shard(s)")


if __name__ == "__main__":
    main()
