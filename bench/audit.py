"""The auditor's paths on a large ledger: verify, the audit log of one entity, time travel.

Run: .venv/bin/python bench/audit.py [--events 1000000] [--db URL] [--versions 20]

Builds (SQLite file in a temporary folder unless --db names an empty ledger) about N events:
- 100,000 audit records over 1,000 entities (saved in batches, as the audit monitor would
  one by one);
- one keypair resource policy modified 100,000 times (a snapshot every 100 events);
- kernels and groups up to N (as bench/rebuild.py builds them).
Then, in one process:
1. `verify` (hash chain walk) against the bare read-and-decode of the same events, each run
   twice, interleaved, the faster run counting; prints events/s and the ratio (goal >= 0.5);
2. `queries.audit_log(entity_type, entity_id)` for random entities: median of 50 (goal < 20 ms);
3. reading the 100,000-event stream at --versions random versions (new flag, default 20),
   drawn once and used by every side, each side timed as the median over that one list:
   `queries.state_at` (goal < 10 ms); the application's repository with snapshots; a
   repository on the same events without snapshots (it replays up to 100,000 events per
   read, hence the modest default); prints the without / with snapshots ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.application import Repository
from rebuild import build, read_and_decode  # bench/ is no package

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import verify
from domain.audit import AuditRecord
from domain.keypair_resource_policy import KeyPairResourcePolicy
from tests.policies import create

AUDIT_RECORDS = 100_000
AUDITED_ENTITIES = 1_000
LONG_STREAM = 100_000
T0 = datetime(2024, 10, 1, tzinfo=UTC)


def audit_records(ledger: Ledger) -> list[str]:
    entities = [str(uuid.UUID(int=5 * 10**12 + i)) for i in range(AUDITED_ENTITIES)]
    for first in range(0, AUDIT_RECORDS, 1000):
        records = []
        for n in range(first, first + 1000):
            started = T0 + timedelta(seconds=n)
            entry = {
                "action_id": str(uuid.uuid4()),
                "entity_type": "group",
                "operation": "modify",
                "entity_id": entities[n % AUDITED_ENTITIES],
                "status": "success" if n % 7 else "denied",
                "description": "success",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(milliseconds=2)).isoformat(),
                "duration": 0.002,
                "error_code": None,
                "request_id": f"req-{n}",
                "triggered_by": str(uuid.UUID(int=n % 50)),
                "access_key": f"AK{n % 50}",
                "role": "admin",
                "domain_name": "default",
                "spec": {"group_id": entities[n % AUDITED_ENTITIES], "modifier": {"description": f"d{n}"}},
            }
            records.append(AuditRecord.record(entry))
        ledger.app.save(*records)
    return entities


def long_stream(ledger: Ledger) -> None:
    create(ledger, "long", idle_timeout=0)
    stream = KeyPairResourcePolicy.id_for("long")
    policy: KeyPairResourcePolicy = ledger.app.repository.get(stream)
    for first in range(1, LONG_STREAM, 100):  # one save per 100 events: a snapshot each
        for i in range(first, min(first + 100, LONG_STREAM)):
            policy.modify({"idle_timeout": i})
        ledger.app.save(policy)


def median_ms(call: Callable[..., object], args_list: Sequence[tuple[Any, ...]]) -> float:
    times = []
    for args in args_list:
        began = time.perf_counter()
        call(*args)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", help="an empty ledger URL; default: a SQLite file in a temporary folder")
    parser.add_argument("--versions", type=int, default=20, help="random versions read by every state_at side")
    args = parser.parse_args()
    if args.versions < 1:
        parser.error("--versions must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{folder}/audit.db"
        with open_ledger(url) as ledger:
            began = time.perf_counter()
            entities = audit_records(ledger)
            long_stream(ledger)
            total = build(ledger, args.events)
            print(f"built {total:,} events in {time.perf_counter() - began:.1f}s ({ledger.config.kind})")
            began = time.perf_counter()
            ledger.runner.catch_up()
            print(f"projections caught up in {time.perf_counter() - began:.1f}s")

            verify_s, decode_s = [], []
            for _ in range(2):
                began = time.perf_counter()
                report = verify(ledger.app.recorder)
                verify_s.append(time.perf_counter() - began)
                assert report.ok and report.checked == total, report
                decode_s.append(read_and_decode(ledger, 2000))
            v, d = min(verify_s), min(decode_s)
            print(f"verify:        {v:6.2f}s, {total / v:10,.0f} events/s  (head {report.head_hash[:16]}...)")
            print(f"read+decode:   {d:6.2f}s, {total / d:10,.0f} events/s")
            print(f"verify / decode ratio: {d / v:.2f} (goal >= 0.5)")

            rng = random.Random(7)
            asks = [("group", rng.choice(entities)) for _ in range(50)]
            found = len(ledger.queries.audit_log(*asks[0]))
            audit_ms = median_ms(ledger.queries.audit_log, asks)
            print(f"audit_log(one entity, {found} rows): median {audit_ms:.2f} ms (goal < 20 ms)")

            policy = "keypair_resource_policy"
            stream = KeyPairResourcePolicy.id_for("long")
            # One list of versions, drawn once: every side reads exactly these.
            versions = [rng.randint(1, LONG_STREAM) for _ in range(args.versions)]
            state_at = median_ms(lambda v: ledger.queries.state_at(policy, "long", version=v), [(v,) for v in versions])
            snapshots = ledger.app.repository  # the snapshot store the ledger reads through
            with_snapshots = median_ms(lambda v: snapshots.get(stream, version=v), [(v,) for v in versions])
            bare = Repository(ledger.app.events)  # the same events, no snapshot store
            without = median_ms(lambda v: bare.get(stream, version=v), [(v,) for v in versions])
            first = ledger.queries.state_at(policy, "long", version=1).recorded_at  # type: ignore[union-attr]
            last = ledger.queries.state_at(policy, "long").recorded_at  # type: ignore[union-attr]
            span = (last - first).total_seconds()
            moments = [(policy, "long", first + timedelta(seconds=rng.uniform(0, span))) for _ in range(20)]
            by_time = median_ms(ledger.queries.state_at, moments)
            print(f"reading a {LONG_STREAM:,}-event stream at the same {len(versions)} random versions (medians):")
            print(f"  queries.state_at            {state_at:10.2f} ms   (goal < 10 ms)")
            print(f"  repository, snapshots       {with_snapshots:10.2f} ms")
            print(f"  repository, no snapshots    {without:10.2f} ms")
            print(f"  no snapshots / snapshots    {without / with_snapshots:10.0f}x")
            print(f"  state_at by time (binary search, {len(moments)} moments) {by_time:.2f} ms")


if __name__ == "__main__":
    main()
