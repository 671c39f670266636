"""Follow lag on PostgreSQL: from a command's commit to its read-model row being visible.

Run: .venv/bin/python bench/follow_lag.py [--commands 300] [--db postgresql://...?schema=NAME]

A follower process (`ledger projections run`, polling only every --poll-interval seconds,
so a fast answer comes from LISTEN/NOTIFY) keeps the read models current. This process
creates policies one at a time through the service, a random 5-30 ms apart; after each
command returns (its transaction has committed) it polls the policies read model on its own
connection every 0.5 ms, never catching up itself, until the row is there. Prints p50, p90,
p99 and max of those delays. Goal: p99 < 100 ms.

Percentiles are inclusive (statistics.quantiles, method="inclusive": interpolated between
observed delays, so never above the max). --commands must be at least 100 (MIN_SAMPLES):
below that a p99 is only the max, or an extrapolation past it, and the script refuses.

Default location: a fresh schema in the test database (`ledger_test` on
LEDGER_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432), dropped afterwards;
the test database is created first if the server does not have it yet.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
from projections.runner import ProjectionRunner

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE = "ledger_test"
CREATE_LOCK = 0x6C6564676572  # the advisory lock tests/conftest.py takes to create TEST_DATABASE
MIN_SAMPLES = 100  # the fewest delays for which a p99 is more than the largest one
SERVER = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def ensure_test_database() -> None:
    """Creates the test database as tests/conftest.py does (under its lock), if missing."""
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))  # released with the connection
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{TEST_DATABASE}"')


def create(ledger: Ledger, name: str) -> None:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
    asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(action))


def wait_for_follower(ledger: Ledger, conn: sa.Connection, timeout: float = 60) -> None:
    head = ledger.app.recorder.max_notification_id() or 0
    tracking = ProjectionRunner.tracking
    deadline = time.monotonic() + timeout
    while True:
        rows = conn.execute(sa.select(tracking.c.position)).scalars().all()
        conn.rollback()  # a fresh snapshot on the next read
        if rows and min(rows) >= head:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the follower did not catch up")
        time.sleep(0.05)


def measure(ledger: Ledger, commands: int) -> list[float]:
    rows = ledger.projections.policies.rows
    visible = sa.select(rows.c.key).where(rows.c.key == sa.bindparam("name"))
    lags = []
    with ledger.read_models.engine.connect() as conn:
        wait_for_follower(ledger, conn)
        for i in range(commands):
            name = f"lag-{i}"
            create(ledger, name)
            committed = time.perf_counter()
            while conn.execute(visible, {"name": name}).first() is None:
                conn.rollback()
                time.sleep(0.0005)
            lags.append(time.perf_counter() - committed)
            conn.rollback()
            time.sleep(random.uniform(0.005, 0.03))
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300, help=f"timed commands, at least {MIN_SAMPLES}")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the follower's polling fallback")
    parser.add_argument("--db", help="a PostgreSQL ledger URL; default: a fresh schema, dropped afterwards")
    args = parser.parse_args()
    if args.commands < MIN_SAMPLES:
        parser.error(f"--commands must be at least {MIN_SAMPLES} for a p99 to mean anything (got {args.commands})")
    # A PostgreSQL ledger needs a master key (docs/ERASURE.md); a benchmark's is throwaway.
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    schema = None
    url = args.db
    if url is None:
        ensure_test_database()
        schema = f"bench_lag_{uuid.uuid4().hex[:8]}"
        url = f"{SERVER}/{TEST_DATABASE}?schema={schema}"
    try:
        with open_ledger(url) as ledger:
            command = [sys.executable, "-m", "adapters.cli", "--db", url, "projections", "run"]
            follower = subprocess.Popen([*command, "--poll-interval", str(args.poll_interval)], cwd=ROOT)
            try:
                lags = measure(ledger, args.commands)
            finally:
                follower.terminate()
                follower.wait(timeout=30)
    finally:
        if schema is not None:
            with psycopg.connect(f"{SERVER}/{TEST_DATABASE}", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    ms = sorted(lag * 1000 for lag in lags)
    # Inclusive: the default "exclusive" method extrapolates past the max on a small sample.
    p = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"{len(ms)} commands, follower polling every {args.poll_interval}s")
    print(f"commit -> visible: p50 {p[49]:.1f} ms, p90 {p[89]:.1f} ms, p99 {p[98]:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"goal p99 < 100 ms: {'met' if p[98] < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
