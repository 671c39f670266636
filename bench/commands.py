"""Commands through the processor and the service vs the same events saved by a bare
Application vs raw sqlite3.

Run: .venv/bin/python bench/commands.py [--n 2000] [--rounds 5] [--chunk 20] [--db-dir DIR] [--unaudited]
     [--backend sqlite|postgresql]

Each round builds four fresh SQLite files in one folder (with --backend postgresql, four
fresh schemas of one database on the server `bench/concurrency.py` uses) and runs, in
chunks taken in a fresh random order each time so that a shared machine's drift hits all
alike:
- processor: the same commands through the action processors, as the CLI and the HTTP
  API run them (permission check, service, audit record in the same append, metrics);
- service: N create + N modify commands through KeyPairResourcePolicyService
  (action validation, load, decide, save with metadata stamping);
- bare: the same aggregates and events saved by a plain eventsourcing Application
  on the same persistence module and settings (2N saves, no loads);
- raw: 2N single-row INSERT + COMMIT with sqlite3 on a WAL database (psycopg on PostgreSQL);
- with --unaudited, also the processor path with no audit record at all (permission
  check and metrics only): the ceiling of any change to how a success is recorded (carrying
  its audit fields on the action's own events would still write and build them).
Medians over the rounds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from concurrency import (  # bench/ is no package
    PG_DATABASE,
    PG_SERVER,
    drop_schemas,
    fresh_url,
    postgres_ready,
    raw_events_db,
)
from eventsourcing.application import Application

from adapters.bootstrap import open_ledger
from adapters.monitors import StoreEntityDomains
from adapters.processors import Processors
from domain.actions import ActionTriggerMeta, ActionValidator
from domain.actions.permissions import PermissionValidator
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)

SLOTS = {"cpu": "8", "mem": "16g"}


class ServicePath:
    """N create + N modify commands through the policy service."""

    def __init__(self, folder: str, backend: str = "sqlite") -> None:
        url = f"sqlite:///{folder}/{type(self).__name__}.db" if backend == "sqlite" else fresh_url(backend, folder)
        self.ledger = open_ledger(url)
        self.service = self.ledger.services.keypair_resource_policy
        self.loop = asyncio.new_event_loop()  # one loop: starting one per chunk is harness cost

    def run(self, first: int, count: int) -> None:
        async def commands() -> None:
            for i in range(first, first + count):
                creator = KeyPairResourcePolicyCreator(name=f"p{i}", total_resource_slots=SLOTS)
                await self.service.create_keypair_resource_policy(CreateKeyPairResourcePolicyAction(creator=creator))
                modify = ModifyKeyPairResourcePolicyAction(name=f"p{i}", modifier={"max_concurrent_sessions": 10})
                await self.service.modify_keypair_resource_policy(modify)

        self.loop.run_until_complete(commands())

    def close(self) -> None:
        self.loop.close()
        self.ledger.close()


class ProcessorPath(ServicePath):
    """The same commands through the processors, as a superadmin."""

    def __init__(self, folder: str, backend: str = "sqlite") -> None:
        super().__init__(folder, backend)
        self.processors = self.ledger.processors.keypair_resource_policy
        self.meta = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")

    def run(self, first: int, count: int) -> None:
        async def commands() -> None:
            create, modify = (
                self.processors.create_keypair_resource_policy,
                self.processors.modify_keypair_resource_policy,
            )
            for i in range(first, first + count):
                creator = KeyPairResourcePolicyCreator(name=f"p{i}", total_resource_slots=SLOTS)
                await create.wait_for_complete(CreateKeyPairResourcePolicyAction(creator=creator), self.meta)
                change = ModifyKeyPairResourcePolicyAction(name=f"p{i}", modifier={"max_concurrent_sessions": 10})
                await modify.wait_for_complete(change, self.meta)

        self.loop.run_until_complete(commands())


class UnauditedPath(ProcessorPath):
    """The processor path without the audit monitor: no record appended, success or not."""

    def __init__(self, folder: str, backend: str = "sqlite") -> None:
        super().__init__(folder, backend)
        ledger = self.ledger
        ledger.app.record_with_events = None  # set by the audit monitor the ledger wired
        validators: list[ActionValidator] = [PermissionValidator(StoreEntityDomains(ledger.app))]
        self.processors = Processors(ledger.services, validators, [ledger.metrics]).keypair_resource_policy


class BareApplication:
    """The same aggregates and events saved by a plain Application, same module and settings."""

    def __init__(self, folder: str, backend: str = "sqlite") -> None:
        if backend == "sqlite":
            env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": f"{folder}/bare.db"}
            env["SQLITE_LOCK_TIMEOUT"] = "30"
        else:
            server = urlsplit(PG_SERVER)
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": PG_DATABASE,
                "POSTGRES_HOST": server.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(server.port or 5432),
                "POSTGRES_USER": server.username or "postgres",
                "POSTGRES_PASSWORD": server.password or "",
                "POSTGRES_SCHEMA": new_schema(),
                "CREATE_TABLE": "y",
            }
        self.app: Application[uuid.UUID] = Application(env=env)
        self.fields = KeyPairResourcePolicyCreator(name="x", total_resource_slots=SLOTS).fields_json()

    def run(self, first: int, count: int) -> None:
        for i in range(first, first + count):
            policy = KeyPairResourcePolicy.create(f"p{i}", self.fields)
            self.app.save(policy)
            policy.modify({"max_concurrent_sessions": 10})
            self.app.save(policy)

    def close(self) -> None:
        self.app.close()


class RawSqlite:
    """Single-row INSERT + COMMIT with sqlite3 on a WAL database, two rows per pair."""

    def __init__(self, folder: str) -> None:
        self.conn = raw_events_db(f"{folder}/raw.db")
        self.state = os.urandom(600)

    def run(self, first: int, count: int) -> None:
        for i in range(2 * first, 2 * (first + count)):
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (f"p{i // 2}", i % 2 + 1, "topic", self.state))
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    """Single-row INSERT + COMMIT with psycopg, two rows per pair, in a schema of its own."""

    def __init__(self, folder: str) -> None:
        schema = new_schema()
        self.conn = psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}")
        self.table = f'"{schema}".events'
        self.conn.execute(
            f"CREATE TABLE {self.table} (id TEXT, version INTEGER, topic TEXT, state BYTEA, PRIMARY KEY (id, version))"
        )
        self.conn.commit()
        self.state = os.urandom(600)

    def run(self, first: int, count: int) -> None:
        for i in range(2 * first, 2 * (first + count)):
            self.conn.execute(
                f"INSERT INTO {self.table} VALUES (%s, %s, %s, %s)", (f"p{i // 2}", i % 2 + 1, "topic", self.state)
            )
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def new_schema() -> str:
    """A fresh schema named as `bench/concurrency.py` names its own (its cleanup drops them)."""
    name = f"b_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name


def measure_round(
    folder: str, n: int, chunk: int, unaudited: bool = False, backend: str = "sqlite"
) -> dict[str, float]:
    """Runs the paths in chunks, so drift on a shared machine hits all alike."""
    paths: dict[str, Any] = {
        "processor": ProcessorPath(folder, backend),
        "service": ServicePath(folder, backend),
        "bare": BareApplication(folder, backend),
        "raw": RawSqlite(folder) if backend == "sqlite" else RawPostgres(folder),
    }
    if unaudited:
        paths["unaudited"] = UnauditedPath(folder, backend)
    for path in paths.values():
        path.run(n, chunk)  # one untimed chunk each, past the timed names: first calls cost more
    spent = dict.fromkeys(paths, 0.0)
    order = list(paths)
    shuffle = random.Random(n).shuffle
    for first in range(0, n, chunk):
        # A fresh order per chunk: rotating one order would keep each path right behind the
        # same other one (the service behind the processor, the bare behind the service),
        # and the writes a path leaves behind are not the same for all.
        shuffle(order)
        for name in order:
            began = time.perf_counter()
            paths[name].run(first, min(chunk, n - first))
            spent[name] += time.perf_counter() - began
    for path in paths.values():
        path.close()
    return {name: 2 * n / seconds for name, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="policies per round (each is create + modify)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=20, help="pairs per chunk")
    parser.add_argument("--db-dir", default=None, help="where to put the databases (default: a temp dir)")
    parser.add_argument("--unaudited", action="store_true", help="also the processor path with no audit record")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if args.backend == "postgresql":
        # A throwaway master key: a PostgreSQL ledger needs one.
        os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
        if not postgres_ready():
            sys.exit(1)
    rates: dict[str, list[float]] = {"processor": [], "service": [], "bare": [], "raw": []}
    if args.unaudited:
        rates["unaudited"] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
            measured = measure_round(folder, args.n, args.chunk, args.unaudited, args.backend)
            for name, rate in measured.items():
                rates[name].append(rate)
        if args.backend == "postgresql":
            drop_schemas()
    med = {name: statistics.median(values) for name, values in rates.items()}
    # Ratios are taken within each round (its paths ran interleaved), then the median.
    against_bare = {"processor": "goal >= 0.70", "service": "goal >= 0.70"}
    if args.unaudited:
        against_bare["unaudited"] = "no audit record: the ceiling"
    pairs = [(path, "bare") for path in against_bare] + [("bare", "raw"), ("service", "raw")]
    ratio = {
        pair: statistics.median(a / b for a, b in zip(rates[pair[0]], rates[pair[1]], strict=True)) for pair in pairs
    }
    print(f"commands on {args.backend} (create+modify pairs: {args.n}, rounds: {args.rounds}, medians)")
    print(f"  processor path      {med['processor']:10.0f} commands/s")
    print(f"  service path        {med['service']:10.0f} commands/s")
    print(f"  bare Application    {med['bare']:10.0f} saves/s")
    print(f"  raw {'sqlite3' if args.backend == 'sqlite' else 'psycopg'} commits {med['raw']:10.0f} commits/s")
    for path, label in against_bare.items():
        rounds = " ".join(f"{a / b:.2f}" for a, b in zip(rates[path], rates["bare"], strict=True))
        print(f"  {path + ' / bare':19} {ratio[path, 'bare']:10.2f}x   ({label}; per round: {rounds})")
    print(f"  bare / raw          {ratio['bare', 'raw']:10.2f}x")
    print(f"  service / raw       {ratio['service', 'raw']:10.2f}x")


if __name__ == "__main__":
    main()
