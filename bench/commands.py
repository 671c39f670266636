"""Commands through the service vs the same events saved by a bare Application vs raw sqlite3.

Run: .venv/bin/python bench/commands.py [--n 2000] [--rounds 3] [--db-dir DIR]

Each round builds three fresh SQLite files in one folder and measures, side by side:
- service: N create + N modify commands through KeyPairResourcePolicyService
  (action validation, load, decide, save with metadata stamping);
- bare: the same aggregates and events saved by a plain eventsourcing Application
  on the same persistence module and settings (2N saves, no loads);
- raw: 2N single-row INSERT + COMMIT with sqlite3 on a WAL database.
The rounds are interleaved and medians are printed, because this machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.application import Application

from adapters.bootstrap import open_ledger
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)

SLOTS = {"cpu": "8", "mem": "16g"}


def service_path(folder: str, n: int) -> float:
    with open_ledger(f"sqlite:///{folder}/service.db") as ledger:
        service = ledger.services.keypair_resource_policy

        async def run() -> None:
            for i in range(n):
                creator = KeyPairResourcePolicyCreator(name=f"p{i}", total_resource_slots=SLOTS)
                await service.create_keypair_resource_policy(CreateKeyPairResourcePolicyAction(creator=creator))
                modify = ModifyKeyPairResourcePolicyAction(name=f"p{i}", modifier={"max_concurrent_sessions": 10})
                await service.modify_keypair_resource_policy(modify)

        began = time.perf_counter()
        asyncio.run(run())
        return time.perf_counter() - began


def bare_application(folder: str, n: int) -> float:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": f"{folder}/bare.db",
        "SQLITE_LOCK_TIMEOUT": "30",
    }
    fields = KeyPairResourcePolicyCreator(name="x", total_resource_slots=SLOTS).fields_json()
    app: Application = Application(env=env)
    began = time.perf_counter()
    for i in range(n):
        policy = KeyPairResourcePolicy.create(f"p{i}", fields)
        app.save(policy)
        policy.modify({"max_concurrent_sessions": 10})
        app.save(policy)
    elapsed = time.perf_counter() - began
    app.close()
    return elapsed


def raw_sqlite(folder: str, n: int) -> float:
    conn = sqlite3.connect(f"{folder}/raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (id TEXT, version INTEGER, topic TEXT, state BLOB, PRIMARY KEY (id, version))")
    state = os.urandom(600)
    began = time.perf_counter()
    for i in range(2 * n):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (f"p{i // 2}", i % 2 + 1, "topic", state))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="policies per round (each is create + modify)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-dir", default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"service": [], "bare": [], "raw": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
            for name, measure in (("service", service_path), ("bare", bare_application), ("raw", raw_sqlite)):
                rates[name].append(2 * args.n / measure(folder, args.n))
    med = {name: statistics.median(values) for name, values in rates.items()}
    print(f"commands (create+modify pairs: {args.n}, rounds: {args.rounds}, medians)")
    print(f"  service path        {med['service']:10.0f} commands/s")
    print(f"  bare Application    {med['bare']:10.0f} saves/s")
    print(f"  raw sqlite3 commits {med['raw']:10.0f} commits/s")
    print(f"  service / bare      {med['service'] / med['bare']:10.2f}x   (goal >= 0.70)")
    print(f"  bare / raw          {med['bare'] / med['raw']:10.2f}x")
    print(f"  service / raw       {med['service'] / med['raw']:10.2f}x")


if __name__ == "__main__":
    main()
