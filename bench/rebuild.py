"""Rebuild of every projection vs the bare read-and-decode of the same events.

Run: .venv/bin/python bench/rebuild.py [--events 1000000] [--batch 2000] [--workers N] [--db URL] [--profile]

1. Builds a ledger of about N events (SQLite file in a temporary folder unless --db names an
   empty ledger): policies and groups through the services, then kernels (started, one stats
   report, terminated, each also recorded on its group's stream) saved in batches of many
   aggregates through `ledger.app.save`, as a bulk import would.
2. Reads and decodes every event (`recorder.select_notifications` in batches plus
   `mapper.to_domain_event`): the floor any rebuild pays. Run before and after the rebuild;
   the faster run counts (the ratio is then the least flattering).
3. Rebuilds every projection from position 0 into a fresh read-model database (a second
   SQLite file beside the first, or a fresh PostgreSQL schema), which is the work a version
   bump does: in this process alone (`ProjectionRunner.catch_up` over empty tables), then
   again into another fresh database the way `ledger projections rebuild` does it, the
   projections shared out between --workers processes (default: one per core).

Prints events/s of each and its ratio to read+decode. Goal: >= 50,000 events/s, ratio >= 0.4.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import sqlite3
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.rebuild import catch_up as shared_catch_up
from adapters.rebuild import cores
from domain.group import CreateGroupAction, Group
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from domain.values import UserUpdateMode
from domain.workload import Kernel, StartKernelAction
from projections.database import ReadModelDatabase
from projections.projection import Projection
from projections.registry import build_projections
from projections.runner import ProjectionRunner

T0 = datetime(2024, 10, 1, tzinfo=UTC)
SLOTS = {"cpu": "2", "mem": "4g", "cuda.shares": "0.5"}
EVENTS_PER_KERNEL = 5  # Created, StatsReported, Terminated + KernelStarted, KernelEnded on the group
KERNELS_PER_SAVE = 200


def build(ledger: Ledger, events: int) -> int:
    """About `events` events; returns how many were stored."""
    loop = asyncio.new_event_loop()
    policies = ledger.services.keypair_resource_policy
    for i in range(max(1, events // 20_000)):
        name = f"bench-{i}"
        loop.run_until_complete(
            policies.create_keypair_resource_policy(
                CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
            )
        )
        for sessions in (4, 8):
            modifier = {"max_concurrent_sessions": sessions}
            loop.run_until_complete(
                policies.modify_keypair_resource_policy(ModifyKeyPairResourcePolicyAction(name=name, modifier=modifier))
            )
    groups = []
    for i in range(max(1, events // 5_000)):
        created = loop.run_until_complete(
            ledger.services.group.create_group(CreateGroupAction(input={"name": f"g{i}", "domain_name": "default"}))
        )
        group: Group = ledger.app.repository.get(created.data.id)
        group.update_members(UserUpdateMode.ADD, [str(uuid.UUID(int=i * 10 + u)) for u in range(5)])
        ledger.app.save(group)
        groups.append(group)
    loop.close()
    template = _kernel_fields(groups[0].id)
    stored = ledger.app.recorder.max_notification_id() or 0
    n = 0
    while stored < events:
        group = groups[n % len(groups)]
        count = max(1, min(KERNELS_PER_SAVE, (events - stored) // EVENTS_PER_KERNEL))
        ledger.app.save(group, *_kernels(group, template, n, count))
        n += count
        stored += count * EVENTS_PER_KERNEL
    return ledger.app.recorder.max_notification_id() or 0


def _kernel_fields(group_id: uuid.UUID) -> dict[str, Any]:
    return StartKernelAction(
        kernel_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        session_name="s",
        group_id=group_id,
        domain_name="default",
        user_id=uuid.uuid4(),
        access_key="AKBENCH",
        occupied_slots=SLOTS,
        started_at=T0,
        image="python:3.11",
        agent="agent-1",
    ).kernel_fields()


def _kernels(group: Group, template: dict[str, Any], first: int, count: int) -> list[Kernel]:
    kernels = []
    for i in range(first, first + count):
        started = T0 + timedelta(minutes=7 * i)
        fields = {**template, "group_id": str(group.id), "session_name": f"s{i}", "started_at": started.isoformat()}
        kernel = Kernel.create(str(uuid.UUID(int=10**12 + i)), fields)
        group.start_kernel(kernel.key, [])
        kernel.report_stats({"reported_at": started.isoformat(), "cpu_used": "1.5", "mem_used": 1 << 30})
        kernel.terminate((started + timedelta(hours=3)).isoformat(), "TERMINATED")
        group.end_kernel(kernel.key)
        kernels.append(kernel)
    return kernels


def read_and_decode(ledger: Ledger, batch: int) -> float:
    recorder, mapper = ledger.app.recorder, ledger.app.mapper
    began = time.perf_counter()
    position = 0
    while True:
        notifications = recorder.select_notifications(start=position, limit=batch, inclusive_of_start=False)
        if not notifications:
            return time.perf_counter() - began
        for notification in notifications:
            mapper.to_domain_event(notification)
        position = notifications[-1].id


def fresh_read_models(ledger: Ledger, folder: str, name: str) -> tuple[str, dict[str, Any]]:
    """The URL and connect arguments of an empty read-model database."""
    if ledger.config.kind == "sqlite":
        path = f"{folder}/{name}.db"
        with closing(sqlite3.connect(path)) as conn:  # WAL, as the ledger's own file (the library sets it)
            conn.execute("PRAGMA journal_mode=WAL")
        return f"sqlite:///{path}", {"timeout": 30}
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    connect_args = {"options": f"-csearch_path={schema}"}
    read_models = ReadModelDatabase(ledger.config.read_model_url, connect_args)
    with read_models.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    read_models.close()
    MADE_SCHEMAS.append(schema)
    return ledger.config.read_model_url, connect_args


MADE_SCHEMAS: list[str] = []  # the read-model schemas made on PostgreSQL, dropped at the end


def drop_made_schemas(ledger: Ledger) -> None:
    read_models = ReadModelDatabase(ledger.config.read_model_url, {})
    with read_models.engine.begin() as conn:
        for schema in MADE_SCHEMAS:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    read_models.close()
    MADE_SCHEMAS.clear()


def timed(projections: list[Projection], spent: dict[str, float]) -> None:
    """Adds each projection's time in `apply_batch` to `spent` (one clock read per batch)."""
    for projection in projections:
        apply_batch = projection.apply_batch

        def apply(conn: Any, batch: Any, apply_batch: Any = apply_batch, name: str = projection.name) -> None:
            began = time.perf_counter()
            apply_batch(conn, batch)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

        projection.apply_batch = apply  # type: ignore[method-assign]


def rebuild(ledger: Ledger, folder: str, batch: int, profile: bool, spent: dict[str, float]) -> float:
    read_models = ReadModelDatabase(*fresh_read_models(ledger, folder, "rebuilt"))
    projections = build_projections(sa.MetaData(), ledger.timezone).all()
    timed(projections, spent)
    runner = ProjectionRunner(read_models, ledger.app.recorder, ledger.app.mapper, projections, batch_size=batch)
    runner.setup()
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    runner.catch_up()
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - began
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    read_models.close()
    return elapsed


def shared_rebuild(ledger: Ledger, folder: str, batch: int, workers: int) -> float:
    """The product's rebuild (`ledger projections rebuild`): projections shared between processes."""
    url, connect_args = fresh_read_models(ledger, folder, "shared")
    config = dataclasses.replace(ledger.config, read_model_url=url, connect_args=connect_args)
    with Ledger(config, ledger.timezone, build_pending=False) as target:
        target.runner.batch_size = batch
        began = time.perf_counter()
        shared_catch_up(target, target.runner.projections, workers)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000, help="notifications per batch (rebuild and decode)")
    parser.add_argument("--db", help="an empty ledger URL; default: a SQLite file in a temporary folder")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the rebuild")
    parser.add_argument("--workers", type=int, default=cores(), help="processes of the shared rebuild")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-rebuild-") as folder,
        open_ledger(args.db or f"sqlite:///{folder}/ledger.db") as ledger,
    ):
        began = time.perf_counter()
        events = build(ledger, args.events)
        built = time.perf_counter() - began
        print(f"built {events} events in {built:.1f}s ({events / built:,.0f} events/s), {ledger.config.kind}")
        try:
            decode = read_and_decode(ledger, args.batch)
            spent: dict[str, float] = {}
            rebuilt = rebuild(ledger, folder, args.batch, args.profile, spent)
            decode = min(decode, read_and_decode(ledger, args.batch))
            shared = shared_rebuild(ledger, folder, args.batch, args.workers)
            decode = min(decode, read_and_decode(ledger, args.batch))
        finally:
            if MADE_SCHEMAS:
                drop_made_schemas(ledger)
    print(f"read+decode: {decode:.2f}s, {events / decode:,.0f} events/s")
    print(f"rebuild, one process: {rebuilt:.2f}s, {events / rebuilt:,.0f} events/s (batch {args.batch})")
    shares = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]))
    print(f"  applying batches: {shares}; reading, decoding, tracking: {rebuilt - sum(spent.values()):.2f}s")
    print(f"rebuild, {args.workers} processes: {shared:.2f}s, {events / shared:,.0f} events/s")
    print(f"ratio rebuild/decode: one process {decode / rebuilt:.2f}, {args.workers} processes {decode / shared:.2f}")
    print("goals: ratio >= 0.4, rebuild >= 50,000 events/s")


if __name__ == "__main__":
    main()
