"""Schedule decisions (the start gate) vs a bare `modify` command, on one SQLite ledger.

Run: .venv/bin/python bench/admission.py [--sessions 10000] [--keypairs 1000] [--groups 100]
     [--decisions 2000] [--hot 5000] [--chunk 50] [--db-dir DIR]

The ledger holds `--sessions` admitted (RUNNING) sessions spread over `--keypairs`
keypairs and `--groups` groups in the domain `default`, built in bulk (sessions and their
usage streams saved through `ledger.app.save`, many aggregates per save, as a bulk import
does) rather than one command per session. Then, in alternating chunks so that a shared
machine's drift hits both alike:
- schedule: `schedule_session` of a pending session (enqueued beforehand, not timed)
  of a keypair that already holds its share of running sessions: resolve the effective
  policy, read the keypair's, group's and domain's usage, decide, append the admission to
  the session and the three usage streams in one save;
- modify: `modify_keypair_resource_policy` of one policy (load, diff, save one event).
Printed: decisions/s, modify/s, their ratio (goal >= 0.5), p50/p99 latency of a decision
(goal p99 < 10 ms). Then the same p99 for a keypair holding `--hot` running sessions: warm
(the write path's aggregate cache holds its usage: the decision reads none of its sessions'
events) and with its usage dropped from the cache before each decision (read from the
store: a snapshot and the events after it, never the whole stream).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.bootstrap import Ledger, open_ledger
from domain.group import CreateGroupAction
from domain.keypair import KeyPair
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, ModifyKeyPairResourcePolicyAction
from domain.session import (
    EnqueueSessionAction,
    ScheduleSessionAction,
    Scope,
    ScopeUsage,
    Session,
    SessionService,
    SessionStatus,
    usage_id,
)

POLICY = "bench"
MODIFIED = "bench-modify"  # the bare command's policy: no session's
DOMAIN = "default"
SLOTS = {"cpu": "1", "mem": "1073741824"}
SAVE_CHUNK = 500  # sessions per bulk save


def build(ledger: Ledger, plan: list[tuple[int, list[str]]], groups: list[uuid.UUID], user: str) -> None:
    """For each (count, keypairs) of `plan`, `count` RUNNING sessions round-robin over
    those keypairs and the groups, with every scope's usage holding them, saved in bulk."""
    usages: dict[tuple[Scope, str], ScopeUsage] = {}

    def usage(scope: Scope, scope_id: str) -> ScopeUsage:
        found = usages.get((scope, scope_id))
        if found is None:
            found = usages[(scope, scope_id)] = ScopeUsage.open(scope, scope_id)
        return found

    policy_ref = {"name": POLICY, "source": "keypair", "version": 1}
    batch: list[Session] = []
    every = [(i, keypairs) for sessions, keypairs in plan for i in range(sessions)]
    for i, keypairs in every:
        key, access_key, group_id = str(uuid.uuid4()), keypairs[i % len(keypairs)], str(groups[i % len(groups)])
        fields = {
            "access_key": access_key,
            "user_id": user,
            "group_id": group_id,
            "domain_name": DOMAIN,
            "requested_slots": SLOTS,
            "cluster_size": 1,
            "mounts": [],
            "status": SessionStatus.PENDING.value,
            "enqueued_under": policy_ref,
            "decisions": 0,
        }
        session = Session.create(key, fields)
        session.admit(policy_ref, [])
        batch.append(session)
        for scope, scope_id in ((Scope.KEYPAIR, access_key), (Scope.GROUP, group_id), (Scope.DOMAIN, DOMAIN)):
            usage(scope, scope_id).start(key, SLOTS)
        if len(batch) == SAVE_CHUNK:
            ledger.app.save(*batch)
            batch = []
    ledger.app.save(*batch)
    ledger.app.save(*usages.values())


def world(ledger: Ledger, keypairs: int, groups: int) -> tuple[list[str], list[uuid.UUID], str]:
    policy = {"name": POLICY, "max_concurrent_sessions": 0, "total_resource_slots": {"cpu": "1000000"}}
    policy["default_for_unspecified"] = "UNLIMITED"
    for creator in (policy, {"name": MODIFIED}):
        asyncio.run(
            ledger.services.keypair_resource_policy.create_keypair_resource_policy(
                CreateKeyPairResourcePolicyAction(creator=creator)
            )
        )
    user = str(uuid.uuid4())
    access_keys = [f"AKBENCH{i:05d}" for i in range(keypairs)]
    fields = {"user_id": user, "domain_name": DOMAIN, "resource_policy": POLICY}
    ledger.app.save(*(KeyPair.create(ak, fields) for ak in access_keys))
    group_ids = []
    for i in range(groups):
        action = CreateGroupAction(input={"name": f"g{i}", "domain_name": DOMAIN})
        group_ids.append(asyncio.run(ledger.services.group.create_group(action)).data.id)
    return access_keys, group_ids, user


def enqueue(
    service: SessionService, loop: asyncio.AbstractEventLoop, targets: list[tuple[str, uuid.UUID]]
) -> list[uuid.UUID]:
    sids = []
    for access_key, group_id in targets:
        sid = uuid.uuid4()
        action = EnqueueSessionAction(session_id=sid, access_key=access_key, group_id=group_id, requested_slots=SLOTS)
        loop.run_until_complete(service.enqueue_session(action))
        sids.append(sid)
    return sids


def timed_schedules(
    ledger: Ledger,
    service: SessionService,
    loop: asyncio.AbstractEventLoop,
    sids: list[uuid.UUID],
    *,
    cold: uuid.UUID | None = None,
) -> list[float]:
    """Each decision's latency; `cold`: a stream dropped from the aggregate cache before
    each decision (read from the store: its snapshot and the events after it)."""
    latencies = []
    for sid in sids:
        if cold is not None:
            ledger.app.cache.drop(cold)
        start = time.perf_counter()
        result = loop.run_until_complete(service.schedule_session(ScheduleSessionAction(session_id=sid)))
        latencies.append(time.perf_counter() - start)
        assert result.admitted, result.reasons
    return latencies


def figures(latencies: list[float]) -> str:
    return f"p50 {percentile(latencies, 50) * 1000:.2f} ms   p99 {percentile(latencies, 99) * 1000:.2f} ms"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--keypairs", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--hot", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--db-dir", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="admission-", dir=args.db_dir) as folder:
        ledger = open_ledger(f"sqlite:///{folder}/ledger.db")
        try:
            run(ledger, args)
        finally:
            ledger.close()


def run(ledger: Ledger, args: Any) -> None:
    started = time.perf_counter()
    keypairs, groups, user = world(ledger, args.keypairs, args.groups)
    hot = "AKBENCHHOT"
    ledger.app.save(KeyPair.create(hot, {"user_id": user, "domain_name": DOMAIN, "resource_policy": POLICY}))
    build(ledger, [(args.sessions, keypairs), (args.hot, [hot])], groups, user)
    print(
        f"ledger: {args.sessions:,} running sessions over {args.keypairs:,} keypairs and {args.groups} groups, "
        f"+ {args.hot:,} on one keypair (built in {time.perf_counter() - started:.1f} s)"
    )

    service = ledger.services.session
    policies = ledger.services.keypair_resource_policy
    loop = asyncio.new_event_loop()
    # Warm-up, untimed: a scheduler runs for long, so the usage of every group and of the
    # domain is in its aggregate cache; the first decision on each loads it (the domain's
    # holds every running session: a snapshot and the events after it).
    warming = [(keypairs[-1 - i % len(keypairs)], groups[i]) for i in range(len(groups))]
    timed_schedules(ledger, service, loop, enqueue(service, loop, warming))
    loop.run_until_complete(policies.modify_keypair_resource_policy(_modify(0)))
    targets = [(keypairs[i % len(keypairs)], groups[i % len(groups)]) for i in range(args.decisions)]
    sids = enqueue(service, loop, targets)

    decisions: list[float] = []
    modifies: list[float] = []
    schedule_time = modify_time = 0.0
    for first in range(0, args.decisions, args.chunk):
        chunk = sids[first : first + args.chunk]
        t0 = time.perf_counter()
        decisions += timed_schedules(ledger, service, loop, chunk)
        t1 = time.perf_counter()
        for i in range(first, first + len(chunk)):
            m0 = time.perf_counter()
            loop.run_until_complete(policies.modify_keypair_resource_policy(_modify(i + 1)))
            modifies.append(time.perf_counter() - m0)
        t2 = time.perf_counter()
        schedule_time += t1 - t0
        modify_time += t2 - t1

    rate, modify_rate = len(decisions) / schedule_time, len(modifies) / modify_time
    print(f"schedule decisions ({len(decisions):,}, chunks of {args.chunk} alternating with modify)")
    print(f"  schedule                  {rate:8.0f} decisions/s")
    print(f"  modify (bare command)     {modify_rate:8.0f} commands/s")
    print(f"  schedule / modify         {rate / modify_rate:8.2f}x   (goal >= 0.5)")
    print(f"  schedule latency          {figures(decisions)}   (goal: p99 < 10 ms)")
    print(f"  modify latency            {figures(modifies)}")

    count = min(args.decisions, 1000)
    hot_sids = enqueue(service, loop, [(hot, groups[i % len(groups)]) for i in range(2 * count)])
    warm = timed_schedules(ledger, service, loop, hot_sids[:count])
    cold = timed_schedules(ledger, service, loop, hot_sids[count:], cold=usage_id(Scope.KEYPAIR, hot))
    held = len(service.usage(Scope.KEYPAIR, hot).running)
    print(f"one keypair holding {args.hot:,}+ running sessions ({held:,} at the end), {count} decisions each")
    print(f"  its usage in the cache    {figures(warm)}")
    print(f"  its usage read each time  {figures(cold)}   (a snapshot and up to 1000 events after it)")
    loop.close()


def _modify(i: int) -> ModifyKeyPairResourcePolicyAction:
    return ModifyKeyPairResourcePolicyAction(name=MODIFIED, modifier={"idle_timeout": 3600 + i})


if __name__ == "__main__":
    main()
