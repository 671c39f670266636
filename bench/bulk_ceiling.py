"""The bulk import's ceiling (issue 15): its stored events built directly vs raw batched inserts.

Run: .venv/bin/python bench/bulk_ceiling.py [--bulk-kernels 4000] [--batch 250] [--rounds 3] [--fine] [--lean]
     .venv/bin/python bench/bulk_ceiling.py --check [--batch 250] [--lean]

A measured upper bound, not a path the ledger uses. For the facts of bench/workload.py's
bulk part (start + terminate of N kernels in one group; --batch kernels make 4 x --batch
events per append, as `record_batch` appends them), this stores the very rows
`record_batch` stores, built straight from the facts with none of the library's aggregate
or DomainEvent objects, and keeps only the work the ledger cannot drop for any event.
Timed per stage:
  validation  the StartKernelAction / TerminateKernelAction (pydantic), kernel_fields(),
              the group's checks (active, same domain) and Kernel.terminate's checks
  lookups     the one query per batch for the sessions the kernels name (as record_batch
              asks); here they name none, as in bench/workload.py
  build       the states of Kernel.Created, Group.KernelStarted, Kernel.Terminated and
              Group.KernelEnded (a timestamp per event, the action context's stamp)
  seal        user_id, access_key and session_name of Kernel.Created under the group's key
  encode      orjson, as the ledger's transcoder writes these states
  chain       the sha256 links (adapters.store.chain.link)
  insert      one executemany per table in one transaction, on the ledger's own connection
  snapshot    the group's snapshot (it crosses a snapshot interval every batch), written
              after the commit as the ledger writes it
Each round compares events/s with bench/workload.py's `raw_batched` (the same number of
rows, 4 x --batch per transaction, on a WAL database), each side in a fresh folder, their
order swapped every round; with --fine the two alternate batch by batch instead (the order
flipped every batch). --lean hashes the links inline (the header packed here rather than
through `link`) and writes the group's snapshot in the append's own transaction (one
commit per batch, not two): neither is what the ledger does. Printed: medians over the
rounds of both rates and of the per-round ratio, the time per event of each stage over
all rounds, and raw's time per row. The ratio is the ceiling of a bulk import that builds
its stored events directly and keeps validation, sealing and the chain: set it beside
bench/workload.py's `record_batch / raw` (issue 15's goal: >= 0.30) and `bare batched / raw`.

--check records 500 kernels with `record_batch` and with this path into two fresh ledgers
and compares what they store, event by event: streams, versions, topics, the opened states
(bar timestamps and action ids) and the key order of the stored JSON. It prints how many
events differ (0 when the two agree), whether both chains verify, and the group and last
kernel as read back (snapshots opened). When the ledger's event layout changes, --check
shows the drift, and the figures above mean nothing until this path follows it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from workload import (  # bench/ is no package
    EVENTS_PER_KERNEL,
    RawBatches,
    ServicePath,
    raw_batched,
    start,
    terminate,
)

from adapters.bootstrap import open_ledger
from adapters.store.application import LedgerApplication
from adapters.store.chain import _HEADER, ChainedSQLiteRecorder, link, verify
from adapters.store.keys import SNAPSHOT_SUBJECT
from adapters.store.sealing import _ENCODER, MARK, _b64
from adapters.store.streams import existing_streams
from domain.actions.context import SYSTEM
from domain.errors import InvalidAPIParameters, KernelAlreadyTerminated
from domain.group import CreateGroupAction, Group
from domain.personal import path_text
from domain.session.aggregate import Session
from domain.sharedmap import plain_state
from domain.values import ENDED_STATUSES
from domain.workload import Kernel
from domain.workload.aggregate import KERNEL_FIELDS_PERSONAL, MAX_KERNEL_SPAN

KERNEL_CREATED = get_topic(Kernel.Created)
KERNEL_TERMINATED = get_topic(Kernel.Terminated)
KERNEL_TOPIC = get_topic(Kernel)
GROUP_STARTED = get_topic(Group.KernelStarted)
GROUP_ENDED = get_topic(Group.KernelEnded)
TOPIC_BYTES = {t: t.encode() for t in (KERNEL_CREATED, KERNEL_TERMINATED, GROUP_STARTED, GROUP_ENDED)}
# The associated data of a sealed value is the subject, a newline and the value's path.
PATHS = {name: b"\n" + path_text(("fields", name)).encode() for name in KERNEL_FIELDS_PERSONAL}
SNAPSHOT_INSERT = "INSERT INTO stored_snapshots VALUES (?,?,?,?)"
STAGES = ("validation", "lookups", "build", "seal", "encode", "chain", "insert", "snapshot")
CHECK_KERNELS = 500
Row = tuple[str, int, str, dict[str, Any]]  # stream id (hex), version, topic, state


def timestamp(at: datetime) -> dict[str, str]:
    """A datetime as the ledger's transcoder stores it."""
    return {"_type_": "datetime_iso", "_data_": at.isoformat()}


class DirectPath:
    def __init__(self, folder: str, name: str = "direct", lean: bool = False) -> None:
        self.ledger = open_ledger(f"sqlite:///{folder}/{name}.db")
        self.app: LedgerApplication = self.ledger.app
        self.lean = lean
        loop = asyncio.new_event_loop()
        created = loop.run_until_complete(
            self.ledger.services.group.create_group(
                CreateGroupAction(input={"name": "bench", "domain_name": "default"})
            )
        )
        loop.close()
        self.group_id = created.data.id
        self.subject = f"group:{self.group_id}"
        self.aead = AESGCM(self.app.keys.ensure((self.subject,))[self.subject])
        group = self.app.get(self.group_id, Group)
        assert group is not None
        self.group = group.clone()  # brought up to date by every batch's snapshot
        self.spent: dict[str, float] = defaultdict(float)
        # Made before any batch: --lean takes the snapshot inside its append's transaction,
        # where making the key would open another write transaction.
        self.app.keys.ensure((SNAPSHOT_SUBJECT,))
        snapshots = self.app.snapshots
        assert snapshots is not None
        self.snapshots = snapshots
        recorder = self.app.recorder
        assert isinstance(recorder, ChainedSQLiteRecorder)  # its chain's SQL and writer are used directly
        self.recorder = recorder
        self.insert_events = self.recorder.insert_events_statement
        self.insert_links = self.recorder.chain_sql.insert
        self.last_link = self.recorder.chain_sql.last

    def bulk(self, kernels: int, batch: int, first_id: int = 0) -> None:
        for first in range(0, kernels, batch):
            self.batch(first_id + first, min(batch, kernels - first))

    def batch(self, first: int, count: int) -> None:
        spent = self.spent
        group = self.group

        t0 = time.perf_counter()
        ids = [uuid.UUID(int=i + 1) for i in range(first, first + count)]
        starts = [start(self.group_id, k, first + n) for n, k in enumerate(ids)]
        ends = [terminate(k, first + n) for n, k in enumerate(ids)]
        group.require_active()
        domain = group.fields["domain_name"]
        facts = []
        for started, ended in zip(starts, ends, strict=True):
            if started.domain_name != domain:
                raise InvalidAPIParameters("domain", field="domain_name")
            fields = started.kernel_fields()
            if fields["status"] in ENDED_STATUSES:
                raise KernelAlreadyTerminated("ended")
            terminated_at = ended.terminated_at.isoformat()
            span = datetime.fromisoformat(terminated_at) - datetime.fromisoformat(fields["started_at"])
            if span < timedelta(0) or span > MAX_KERNEL_SPAN:
                raise InvalidAPIParameters("span", field="terminated_at")
            facts.append((started.kernel_id, fields, terminated_at, ended.status))
        t1 = time.perf_counter()
        spent["validation"] += t1 - t0

        sessions = existing_streams(self.recorder, {Session.id_for(str(a.session_id)) for a in starts})
        # A kernel of a session the ledger admitted is attached to it; this path does not do
        # that, and the bench's kernels name no such session.
        assert not sessions
        t2 = time.perf_counter()
        spent["lookups"] += t2 - t1

        # The states with the keys, in the order, the ledger's mapper stores them.
        meta = dataclasses.replace(SYSTEM, action_id=str(uuid.uuid4()), entity_type="kernel", operation="start").stamp()
        now = datetime.now
        version = group.version
        group_hex = self.group_id.hex
        started_rows: list[Row] = []
        ended_rows: list[Row] = []
        created_rows: list[Row] = []
        terminated_rows: list[Row] = []
        for kernel_id, fields, _, _ in facts:
            key = str(kernel_id)
            created_rows.append(
                (
                    kernel_id.hex,
                    1,
                    KERNEL_CREATED,
                    {
                        "timestamp": timestamp(now(UTC)),
                        "originator_topic": KERNEL_TOPIC,
                        "key": key,
                        "fields": fields,
                        "meta": meta,
                    },
                )
            )
            version += 1
            started_rows.append(
                (
                    group_hex,
                    version,
                    GROUP_STARTED,
                    {"timestamp": timestamp(now(UTC)), "kernel_id": key, "mounts": fields["mounts"], "meta": meta},
                )
            )
        for kernel_id, _, terminated_at, status in facts:
            key = str(kernel_id)
            terminated_rows.append(
                (
                    kernel_id.hex,
                    2,
                    KERNEL_TERMINATED,
                    {"timestamp": timestamp(now(UTC)), "terminated_at": terminated_at, "status": status, "meta": meta},
                )
            )
            version += 1
            ended_rows.append(
                (group_hex, version, GROUP_ENDED, {"timestamp": timestamp(now(UTC)), "kernel_id": key, "meta": meta})
            )
        # The ledger's order: the group's events, then each kernel's two.
        kernel_rows = [row for pair in zip(created_rows, terminated_rows, strict=True) for row in pair]
        rows = started_rows + ended_rows + kernel_rows
        last_group_row = ended_rows[-1]
        t3 = time.perf_counter()
        spent["build"] += t3 - t2

        # Sealed in a copy of the fields: the clear ones stay as the facts hold them.
        aead = self.aead
        subject = self.subject
        subject_bytes = subject.encode()
        nonces = os.urandom(12 * len(KERNEL_FIELDS_PERSONAL) * len(created_rows))
        at = 0
        for _, _, _, state in created_rows:
            sealed = dict(state["fields"])
            for name in KERNEL_FIELDS_PERSONAL:
                value = sealed[name]
                if value is None:
                    continue
                nonce = nonces[at : at + 12]
                at += 12
                cipher = aead.encrypt(nonce, _ENCODER.encode(value).encode(), subject_bytes + PATHS[name])
                sealed[name] = {MARK: 1, "s": subject, "n": _b64(nonce), "c": _b64(cipher)}
            state["fields"] = sealed
        t4 = time.perf_counter()
        spent["seal"] += t4 - t3

        dumps = orjson.dumps
        params = [(stream, v, topic, dumps(state)) for stream, v, topic, state in rows]
        streams: list[bytes] = []
        if self.lean:
            group_bytes = self.group_id.bytes
            streams = [group_bytes] * (len(started_rows) + len(ended_rows))
            streams += [k.bytes for k, *_ in facts for _ in (1, 2)]
        t5 = time.perf_counter()
        spent["encode"] += t5 - t4

        chain = snap = 0.0
        with self.recorder.datastore.transaction(commit=True) as curs:
            curs.executemany(self.insert_events, params)
            curs.execute("SELECT last_insert_rowid()")
            last = curs.fetchone()[0]
            c0 = time.perf_counter()
            curs.execute(self.last_link)
            head = curs.fetchone()
            previous = bytes(head[1])
            position = last - len(params)
            # One writer, and the chain's head read in the same transaction: this batch's
            # rowids follow it, as the ledger's own append takes them.
            assert head[0] == position
            links = []
            if self.lean:
                pack, sha = _HEADER.pack, hashlib.sha256
                for (_, v, topic, encoded), stream_bytes in zip(params, streams, strict=True):
                    position += 1
                    topic_bytes = TOPIC_BYTES[topic]
                    header = pack(position, stream_bytes, v, len(topic_bytes))
                    previous = sha(previous + header + topic_bytes + encoded).digest()
                    links.append((position, previous))
            else:
                for stream, v, topic, encoded in params:
                    position += 1
                    previous = link(previous, position, stream, v, topic, encoded)
                    links.append((position, previous))
            chain = time.perf_counter() - c0
            curs.executemany(self.insert_links, links)
            if self.lean:
                s0 = time.perf_counter()
                curs.execute(SNAPSHOT_INSERT, self.snapshot_row(version, last_group_row))
                snap = time.perf_counter() - s0
        t6 = time.perf_counter()
        spent["chain"] += chain
        spent["insert"] += t6 - t5 - chain - snap
        if self.lean:
            spent["snapshot"] += snap
            return

        self.snapshots.put([self.group_snapshot(version, last_group_row)])
        spent["snapshot"] += time.perf_counter() - t6

    def group_snapshot(self, version: int, last: Row) -> Snapshot:
        """The group's snapshot after the batch whose last group event is `last`."""
        group = self.group
        group.version = version
        group.modified_on = datetime.fromisoformat(last[3]["timestamp"]["_data_"])
        snapshot = Group.Snapshot.take(group)
        plain_state(snapshot.state)
        return snapshot

    def snapshot_row(self, version: int, last: Row) -> tuple[str, int, str, bytes]:
        stored = self.app.mapper.to_stored_event(self.group_snapshot(version, last))
        return (self.group_id.hex, stored.originator_version, stored.topic, stored.state)

    def close(self) -> None:
        self.ledger.close()


def warmed(folder: str, batch: int, lean: bool) -> DirectPath:
    """A direct path that has recorded one untimed batch, on ids past the timed ones: first
    calls cost more."""
    path = DirectPath(folder, lean=lean)
    path.bulk(batch, batch, first_id=10**8)
    path.spent.clear()
    return path


def whole_round(folder: str, kernels: int, batch: int, lean: bool, r: int) -> tuple[float, float, dict[str, float]]:
    """Seconds of each side over all the kernels, one after the other (the order swapped
    every round), and the direct path's seconds per stage."""
    path = warmed(folder, batch, lean)
    direct_s = raw_s = 0.0
    for side in ("direct", "raw") if r % 2 == 0 else ("raw", "direct"):
        if side == "direct":
            began = time.perf_counter()
            path.bulk(kernels, batch)
            direct_s = time.perf_counter() - began
        else:
            raw_s = raw_batched(folder, EVENTS_PER_KERNEL * kernels, EVENTS_PER_KERNEL * batch)
    spent = dict(path.spent)
    path.close()
    return direct_s, raw_s, spent


def fine_round(folder: str, kernels: int, batch: int, lean: bool, r: int) -> tuple[float, float, dict[str, float]]:
    """Seconds of each side, alternating batch by batch (the order flipped every batch),
    and the direct path's seconds per stage."""
    path = warmed(folder, batch, lean)
    raw = RawBatches(folder)
    raw.batch(10**8, EVENTS_PER_KERNEL * batch)
    direct_s = raw_s = 0.0
    for n, first in enumerate(range(0, kernels, batch)):
        count = min(batch, kernels - first)
        for side in ("direct", "raw") if (n + r) % 2 == 0 else ("raw", "direct"):
            began = time.perf_counter()
            if side == "direct":
                path.batch(first, count)
                direct_s += time.perf_counter() - began
            else:
                raw.batch(EVENTS_PER_KERNEL * first, EVENTS_PER_KERNEL * count)
                raw_s += time.perf_counter() - began
    spent = dict(path.spent)
    path.close()
    raw.close()
    return direct_s, raw_s, spent


def stored_rows(app: LedgerApplication, group_id: uuid.UUID, after: int) -> list[tuple[Any, ...]]:
    """The events stored past position `after`, each as what --check compares: stream (the
    group's as G), version, topic, the opened state without its timestamp and action id,
    and the key order of the stored JSON (of the fields too, where there are fields)."""
    out = []
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid > ? ORDER BY rowid",
            (after,),
        )
        for stream, version, topic, raw_state in curs.fetchall():
            raw = bytes(raw_state)
            event = app.mapper.to_domain_event(StoredEvent(uuid.UUID(stream), version, topic, raw))
            state = dict(vars(event))
            state.pop("timestamp")
            state["meta"] = {k: v for k, v in state["meta"].items() if k != "action_id"}
            stored = orjson.loads(raw)
            layout: list[Any] = list(stored)
            if "fields" in state:
                layout.append(list(stored["fields"]))
            text = str(state).replace(str(group_id), "G")
            out.append((stream.replace(group_id.hex, "G"), version, topic, text, str(layout)))
    return out


def check(folder: str, kernels: int, batch: int, lean: bool) -> None:
    """What record_batch stores vs what the direct path stores, event by event; the chains
    verify; the aggregates read back."""
    service = ServicePath(folder, "service")
    service_app: LedgerApplication = service.ledger.app
    service_setup = service_app.recorder.max_notification_id() or 0
    service.bulk(kernels, batch)
    direct = DirectPath(folder, lean=lean)
    direct_setup = direct.app.recorder.max_notification_id() or 0
    direct.bulk(kernels, batch)

    a = stored_rows(service_app, service.group_id, service_setup)
    b = stored_rows(direct.app, direct.group_id, direct_setup)
    print(f"check: {len(a)} events by record_batch, {len(b)} direct")
    diffs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    print(f"check: {len(diffs)} differ")
    for x, y in diffs[:3]:
        print("  service", x)
        print("  direct ", y)
    print("check: chain", verify(direct.app).ok, "/ service chain", verify(service_app).ok)
    for name, app, group_id in (("service", service_app, service.group_id), ("direct", direct.app, direct.group_id)):
        app.cache.clear()
        assert app.snapshots is not None
        snapshots = app.snapshots.recorder.select_events(group_id)
        for stored in snapshots:
            app.mapper.to_domain_event(stored)  # raises UntrustedSnapshot on a bad tag
        group = app.get(group_id, Group)
        kernel = app.get(uuid.UUID(int=kernels), Kernel)
        assert group is not None and kernel is not None
        print(
            f"check: {name}: group v{group.version} kernels={len(group.kernels)}; kernel v{kernel.version} "
            f"status={kernel.fields['status']} user_id={kernel.fields['user_id'] == str(group_id)} "
            f"session_name={kernel.fields['session_name']} snapshots={len(snapshots)}"
        )
    service.close()
    direct.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk-kernels", type=int, default=4000, help="kernels in the bulk import")
    parser.add_argument("--batch", type=int, default=250, help="kernels per batch (4 events each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--check", action="store_true", help=f"compare with record_batch's events ({CHECK_KERNELS} kernels), no timing"
    )
    parser.add_argument("--fine", action="store_true", help="alternate with raw batch by batch")
    parser.add_argument("--lean", action="store_true", help="chain hashed inline, snapshot in the append")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as folder:
            check(folder, CHECK_KERNELS, args.batch, args.lean)
        return
    kernels: int = args.bulk_kernels
    batch: int = args.batch
    rounds: int = args.rounds
    events = EVENTS_PER_KERNEL * kernels
    ratios: list[float] = []
    direct_rates: list[float] = []
    raw_rates: list[float] = []
    totals: dict[str, float] = defaultdict(float)
    run_round = fine_round if args.fine else whole_round
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            direct_s, raw_s, spent = run_round(folder, kernels, batch, args.lean, r)
        for stage, seconds in spent.items():
            totals[stage] += seconds
        direct_rate, raw_rate = events / direct_s, events / raw_s
        direct_rates.append(direct_rate)
        raw_rates.append(raw_rate)
        ratios.append(direct_rate / raw_rate)
        print(
            f"round {r + 1}: direct {direct_rate:8.0f} events/s  raw {raw_rate:8.0f} rows/s  "
            f"direct/raw {direct_rate / raw_rate:.3f}" + ("  (batch by batch)" if args.fine else "")
        )
    print(f"direct stored-event path  {statistics.median(direct_rates):8.0f} events/s (median)")
    print(f"raw batched sqlite3       {statistics.median(raw_rates):8.0f} rows/s (median)")
    print(f"direct / raw              {statistics.median(ratios):8.3f}x (median of per-round ratios)")
    total_events = events * rounds
    whole = sum(totals.values())
    print("per event, all rounds (microseconds, share of the staged time):")
    for stage in STAGES:
        print(f"  {stage:11s} {1e6 * totals[stage] / total_events:7.2f} us  {100 * totals[stage] / whole:5.1f} %")
    print(f"  {'total':11s} {1e6 * whole / total_events:7.2f} us")
    print(f"  raw insert  {1e6 / statistics.median(raw_rates):7.2f} us per row (median round)")


if __name__ == "__main__":
    main()
