"""Workload facts: the service vs a bare Application, and bulk import vs raw batched inserts.

Run: .venv/bin/python bench/workload.py [--kernels 2000] [--bulk-kernels 20000] [--batch 500] [--rounds 3]

Part 1, one fact per command (interleaved in chunks, medians of per-round ratios):
- service: StartKernelAction + TerminateKernelAction through WorkloadService (validation,
  load of the group, kernel and group events saved together);
- bare: the same Kernel and Group events saved by a plain eventsourcing Application on
  the same persistence module and settings (one save per fact).
Part 2, bulk import: start + terminate facts recorded with WorkloadService.record_batch in
batches (validation included), against the same events saved per batch by a bare
Application (no validation: the library's own ceiling), and raw sqlite3 `executemany` of
the same number of rows in transactions of the same size on a WAL database: --batch kernels
make 4 x --batch events per record_batch (kernel created + group kernel started, kernel
terminated + group kernel ended), all in one transaction, so the raw side commits
4 x --batch rows per transaction (EVENTS_PER_KERNEL); the batch size of each side is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from concurrency import raw_events_db  # bench/ is no package
from eventsourcing.application import Application

from adapters.bootstrap import open_ledger
from domain.group import CreateGroupAction, Group
from domain.workload import Kernel, StartKernelAction, TerminateKernelAction

T0 = datetime(2024, 10, 1, tzinfo=UTC)
SLOTS = {"cpu": "2", "mem": "4g", "cuda.shares": "0.5"}
# Events one started and terminated kernel appends: Kernel.Created, Group.KernelStarted,
# Kernel.Terminated, Group.KernelEnded (record_batch and the bare bulk save them in one append).
EVENTS_PER_KERNEL = 4


def start(group_id: uuid.UUID, kernel_id: uuid.UUID, i: int) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=kernel_id,
        session_id=kernel_id,
        session_name=f"s{i}",
        group_id=group_id,
        domain_name="default",
        user_id=group_id,
        access_key="AKBENCH",
        occupied_slots=SLOTS,
        started_at=T0 + timedelta(minutes=i),
        image="python:3.11",
        agent="agent-1",
    )


def terminate(kernel_id: uuid.UUID, i: int) -> TerminateKernelAction:
    return TerminateKernelAction(kernel_id=kernel_id, terminated_at=T0 + timedelta(minutes=i, seconds=30))


class ServicePath:
    def __init__(self, folder: str, name: str = "service") -> None:
        self.ledger = open_ledger(f"sqlite:///{folder}/{name}.db")
        self.loop = asyncio.new_event_loop()
        created = self.loop.run_until_complete(
            self.ledger.services.group.create_group(
                CreateGroupAction(input={"name": "bench", "domain_name": "default"})
            )
        )
        self.group_id = created.data.id
        self.service = self.ledger.services.workload

    def run(self, first: int, count: int) -> None:
        async def facts() -> None:
            for i in range(first, first + count):
                kernel_id = uuid.UUID(int=i + 1)
                await self.service.start_kernel(start(self.group_id, kernel_id, i))
                await self.service.terminate_kernel(terminate(kernel_id, i))

        self.loop.run_until_complete(facts())

    def bulk(self, kernels: int, batch: int) -> None:
        async def facts() -> None:
            for first in range(0, kernels, batch):
                ids = [uuid.UUID(int=i + 1) for i in range(first, min(first + batch, kernels))]
                actions: list[Any] = [start(self.group_id, k, first + n) for n, k in enumerate(ids)]
                actions += [terminate(k, first + n) for n, k in enumerate(ids)]
                await self.service.record_batch(actions)

        self.loop.run_until_complete(facts())

    def close(self) -> None:
        self.loop.close()
        self.ledger.close()


class BareApplication:
    def __init__(self, folder: str) -> None:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": f"{folder}/bare.db"}
        self.app: Application[uuid.UUID] = Application(env={**env, "SQLITE_LOCK_TIMEOUT": "30"})
        self.group_id = uuid.uuid4()
        fields = CreateGroupAction(input={"name": "bench", "domain_name": "default"}).input.fields_json()
        self.group = Group.create(str(self.group_id), fields)
        self.app.save(self.group)

    def run(self, first: int, count: int) -> None:
        template = start(self.group_id, uuid.UUID(int=1), 0).kernel_fields()  # no validation per fact
        for i in range(first, first + count):
            kernel_id = uuid.UUID(int=i + 1)
            fields = {**template, "session_name": f"s{i}", "started_at": (T0 + timedelta(minutes=i)).isoformat()}
            kernel = Kernel.create(str(kernel_id), fields)
            self.group.start_kernel(kernel.key, [])
            self.app.save(kernel, self.group)
            kernel.terminate((T0 + timedelta(minutes=i, seconds=30)).isoformat(), "TERMINATED")
            self.group.end_kernel(kernel.key)
            self.app.save(kernel, self.group)

    def bulk(self, kernels: int, batch: int) -> None:
        """The same events as record_batch, built without validation and saved per batch."""
        fields = start(self.group_id, uuid.UUID(int=1), 0).kernel_fields()
        for first in range(0, kernels, batch):
            batch_kernels = []
            for i in range(first, min(first + batch, kernels)):
                kernel = Kernel.create(str(uuid.UUID(int=10**9 + i)), fields)
                self.group.start_kernel(kernel.key, [])
                batch_kernels.append(kernel)
            for kernel in batch_kernels:
                kernel.terminate(T0.isoformat(), "TERMINATED")
                self.group.end_kernel(kernel.key)
            self.app.save(self.group, *batch_kernels)

    def close(self) -> None:
        self.app.close()


class RawBatches:
    """Raw batched sqlite3 inserts: each `batch` call one transaction of `rows` rows, so a
    bench can time them whole (`raw_batched`) or interleave them with its own batches."""

    def __init__(self, folder: str) -> None:
        self.conn = raw_events_db(f"{folder}/raw.db")
        self.state = os.urandom(700)

    def batch(self, first: int, rows: int) -> None:
        state = self.state
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            ((f"k{i // 2}", i % 2 + 1, "topic", state) for i in range(first, first + rows)),
        )
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def raw_batched(folder: str, rows: int, batch: int) -> float:
    raw = RawBatches(folder)
    began = time.perf_counter()
    for first in range(0, rows, batch):
        raw.batch(first, min(batch, rows - first))
    elapsed = time.perf_counter() - began
    raw.close()
    return elapsed


def facts_round(folder: str, kernels: int, chunk: int) -> dict[str, float]:
    paths: dict[str, Any] = {"service": ServicePath(folder), "bare": BareApplication(folder)}
    for path in paths.values():
        # One untimed chunk each, on ids past the timed ones: first calls cost more on
        # both sides, and not alike (small runs read up to 0.04 higher without this).
        path.run(kernels, chunk)
    spent = interleaved(paths, kernels, chunk)
    return {name: 2 * kernels / seconds for name, seconds in spent.items()}  # facts/s


def interleaved(paths: dict[str, Any], total: int, chunk: int) -> dict[str, float]:
    """Seconds each path's `run` spends on `total` items in chunks, the order rotated per
    chunk so that a shared machine's drift hits all alike; the paths are closed after."""
    spent = dict.fromkeys(paths, 0.0)
    order = list(paths)
    for first in range(0, total, chunk):
        order = order[1:] + order[:1]
        for name in order:
            began = time.perf_counter()
            paths[name].run(first, min(chunk, total - first))
            spent[name] += time.perf_counter() - began
    for path in paths.values():
        path.close()
    return spent


def bulk_round(folder: str, kernels: int, batch: int) -> dict[str, float]:
    events = EVENTS_PER_KERNEL * kernels
    rates = {}
    for name, path in (("bulk", ServicePath(folder, "bulk")), ("bare", BareApplication(folder))):
        began = time.perf_counter()
        path.bulk(kernels, batch)
        rates[name] = events / (time.perf_counter() - began)
        path.close()
    rates["raw"] = events / raw_batched(
        folder, events, EVENTS_PER_KERNEL * batch
    )  # rows per commit = events per append
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=2000, help="kernels started and terminated one by one")
    parser.add_argument("--bulk-kernels", type=int, default=20000, help="kernels in the bulk import")
    parser.add_argument("--batch", type=int, default=500, help="kernels per bulk batch (4 events each)")
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    facts: dict[str, list[float]] = {"service": [], "bare": []}
    bulk: dict[str, list[float]] = {"bulk": [], "bare": [], "raw": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            for name, rate in facts_round(folder, args.kernels, args.chunk).items():
                facts[name].append(rate)
            for name, rate in bulk_round(folder, args.bulk_kernels, args.batch).items():
                bulk[name].append(rate)
    ratio = statistics.median(s / b for s, b in zip(facts["service"], facts["bare"], strict=True))
    bulk_ratio = statistics.median(s / r for s, r in zip(bulk["bulk"], bulk["raw"], strict=True))
    bare_ratio = statistics.median(b / r for b, r in zip(bulk["bare"], bulk["raw"], strict=True))
    print(f"workload facts ({args.kernels} kernels started+terminated, rounds: {args.rounds}, medians)")
    print(f"  service path             {statistics.median(facts['service']):10.0f} facts/s")
    print(f"  bare Application         {statistics.median(facts['bare']):10.0f} facts/s")
    print(f"  service / bare           {ratio:10.2f}x")
    per_commit = EVENTS_PER_KERNEL * min(args.batch, args.bulk_kernels)  # the full batches' size
    print(f"bulk import ({args.bulk_kernels} kernels = {EVENTS_PER_KERNEL * args.bulk_kernels} events)")
    recorded, bare, raw = (statistics.median(bulk[name]) for name in ("bulk", "bare", "raw"))
    print(f"  record_batch             {recorded:10.0f} events/s   ({per_commit} events per append)")
    print(f"  bare Application batched {bare:10.0f} events/s   ({per_commit} events per save; no validation)")
    print(f"  raw batched sqlite3      {raw:10.0f} rows/s     ({per_commit} rows per commit)")
    print(f"  bulk / raw               {bulk_ratio:10.2f}x   (goal >= 0.30)")
    print(f"  bare batched / raw       {bare_ratio:10.2f}x   (the library's own ceiling for these events)")


if __name__ == "__main__":
    main()
