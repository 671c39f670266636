"""Real processes: a follower keeps read models current for others (woken by NOTIFY on
PostgreSQL, polling on SQLite, and polling when a notification is lost), and a follower
or a rebuild killed with SIGKILL at a random moment leaves read models that, once the
work is run again, equal a clean rebuild row by row: every event applied exactly once.

The random moment comes from a seeded `random.Random`: the seed is printed (shown with a
failing test's output) and named in the kill's assertion messages, and
LEDGER_TEST_KILL_SEED=N runs the tests with that seed (the same delay before the kill;
the processes' own timing still varies)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.store import parse_url
from projections.database import ReadModelDatabase
from projections.history import HistoryProjection
from projections.registry import build_projections
from projections.runner import ProjectionRunner
from projections.tracking import tables_of
from projections.usage import UsageProjection
from tests.projections.commands import run, write_workload
from tests.projections.readmodels import clean_rebuild, dump, old_code

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HISTORY = HistoryProjection.version


def ledger_command(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "adapters.cli", "--db", url, *args]


@contextmanager
def process(url: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A `ledger` process; SIGKILLed if the test leaves it running."""
    child = subprocess.Popen(
        ledger_command(url, *args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)


def finish(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(ledger_command(url, *args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@contextmanager
def read_models(url: str) -> Iterator[ReadModelDatabase]:
    """The read-model database, opened without a ledger (which would set tables up)."""
    config = parse_url(url)
    opened = ReadModelDatabase(config.read_model_url, config.connect_args)
    try:
        yield opened
    finally:
        opened.close()


def positions(db: ReadModelDatabase) -> dict[str, int]:
    with db.connect() as conn:
        return {r.projection: r.position for r in conn.execute(sa.select(ProjectionRunner.tracking))}


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def policy_names(ledger: Ledger) -> set[str]:
    """The policies read model as it is: no catch-up by this process."""
    rows = ledger.projections.policies.rows
    with ledger.read_models.connect() as conn:
        return set(conn.execute(sa.select(rows.c.key)).scalars())


def caught_up(db: ReadModelDatabase, keys: list[str], head: int) -> Callable[[], bool]:
    return lambda: all(positions(db).get(k, -1) >= head for k in keys)


# The follower


def test_a_follower_keeps_read_models_current_for_other_processes(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger, read_models(ledger_url) as db:
        keys = [p.versioned_name for p in ledger.projections.all()]
        with process(ledger_url, "projections", "run", "--poll-interval", "0.1") as follower:
            for i in range(5):
                run(ledger, ("policy", f"p{i}", i))
            head = ledger.app.recorder.max_notification_id() or 0
            wait_until(caught_up(db, keys, head), 60, "the follower to catch up")
            assert policy_names(ledger) == {"default", *(f"p{i}" for i in range(5))}
            follower.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert f"read models at position {head}" in out
        assert err.splitlines()[-1] == "follower stopped by SIGTERM"


def test_on_postgresql_a_notification_wakes_the_follower(postgres_url: str) -> None:
    with open_ledger(postgres_url) as ledger, read_models(postgres_url) as db:
        keys = [p.versioned_name for p in ledger.projections.all()]
        # Polling once a minute: within the test's few seconds only a notification wakes it.
        with process(postgres_url, "projections", "run", "--poll-interval", "60"):
            head = ledger.app.recorder.max_notification_id() or 0
            wait_until(caught_up(db, keys, head), 60, "the first catch-up")  # it listens from before that
            for i in range(3):
                run(ledger, ("policy", f"p{i}", i))
                head = ledger.app.recorder.max_notification_id() or 0
                wait_until(caught_up(db, keys, head), 5, "a notification to wake the follower")
        assert {"p0", "p1", "p2"} <= policy_names(ledger)


def test_on_postgresql_a_lost_notification_does_not_stall_the_follower(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ledger(postgres_url) as ledger, read_models(postgres_url) as db:
        keys = [p.versioned_name for p in ledger.projections.all()]
        with process(postgres_url, "projections", "run", "--poll-interval", "0.3"):
            wait_until(caught_up(db, keys, ledger.app.recorder.max_notification_id() or 0), 60, "the first catch-up")
            # This writer's notifications are lost: the poll interval bounds the delay.
            monkeypatch.setattr(ledger.app.recorder, "_notify_channel", lambda _cursor: None)
            run(ledger, ("policy", "unannounced", 1))
            head = ledger.app.recorder.max_notification_id() or 0
            wait_until(caught_up(db, keys, head), 10, "the polling fallback")
        assert "unannounced" in policy_names(ledger)


# Killed at a random moment

SEED_VARIABLE = "LEDGER_TEST_KILL_SEED"


@pytest.fixture
def kill_seed() -> int:
    """The seed of this test's random kill: LEDGER_TEST_KILL_SEED if set, else a fresh one,
    printed so that a failing test's output says how to replay it."""
    raw = os.environ.get(SEED_VARIABLE)
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    print(f"random kill seed {seed} (replay: {SEED_VARIABLE}={seed})")
    return seed


def kill_after_progress(child: subprocess.Popen[str], db: ReadModelDatabase, key: str, head: int, seed: int) -> int:
    """SIGKILLs the process at a moment drawn from `seed` after its first batch; returns the
    position `key` had reached."""
    delay = random.Random(seed).uniform(0, 0.2)
    replay = f"(kill seed {seed}: {SEED_VARIABLE}={seed}; killed {delay:.3f} s after the first batch)"
    wait_until(lambda: positions(db).get(key, 0) > 0, 60, f"{key} to make progress {replay}")
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    reached = positions(db)[key]
    assert 0 < reached < head, f"killed too late to test anything: {key} at {reached} of {head} {replay}"
    return reached


def test_a_follower_killed_mid_catch_up_applies_every_event_exactly_once(ledger_url: str, kill_seed: int) -> None:
    with open_ledger(ledger_url) as ledger, read_models(ledger_url) as db:
        head = write_workload(ledger, kernels=600)  # no query: the read models are all behind
        with process(ledger_url, "projections", "run", "--batch-size", "7", "--poll-interval", "0.1") as follower:
            kill_after_progress(follower, db, ledger.projections.history.versioned_name, head, kill_seed)
        finish(ledger_url, "projections", "run", "--once")
        assert set(positions(db).values()) == {head}
        assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)


def test_a_rebuild_killed_at_a_random_moment_resumes_and_equals_a_clean_rebuild(
    ledger_url: str, kill_seed: int
) -> None:
    with old_code(), open_ledger(ledger_url) as old:
        head = write_workload(old, kernels=600)
        old.runner.catch_up()  # old code's read models are current
        old_keys = [p.versioned_name for p in old.projections.all()]
    with read_models(ledger_url) as db:
        with process(ledger_url, "projections", "rebuild", "--batch-size", "7") as rebuild:
            reached = kill_after_progress(rebuild, db, f"history_v{HISTORY}", head, kill_seed)
        with db.connect() as conn:
            versions = {r.name: r.version for r in conn.execute(sa.select(ProjectionRunner.versions))}
        assert versions["history"] == HISTORY - 1  # killed before the switch: old code still reads it
        assert positions(db)[f"history_v{HISTORY - 1}"] == head
        done = finish(ledger_url, "projections", "rebuild")
        assert "rebuilt" in done.stdout and f"history v{HISTORY}" in done.stdout
    with open_ledger(ledger_url) as ledger:
        assert ledger.runner.pending() == []
        assert ledger.runner.positions[ledger.projections.history.versioned_name] >= reached
        ledger.runner.catch_up()
        assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)
        with ledger.read_models.connect() as conn:
            assert [t for key in old_keys for t in tables_of(conn, key)] == []
            assert not {r.projection for r in conn.execute(sa.select(ProjectionRunner.tracking))} & set(old_keys)


# A rebuild shared between processes


def child_pids(pid: int) -> set[int]:
    """The processes `pid` started (Linux's /proc lists each thread's children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def wait_for_children(pid: int) -> set[int]:
    found: set[int] = set()

    def started() -> bool:
        found.update(child_pids(pid))
        return bool(found)

    wait_until(started, 60, "the rebuild to start its worker")
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_rebuild_shared_between_processes_equals_a_clean_rebuild(ledger_url: str) -> None:
    with old_code(), open_ledger(ledger_url) as old:
        write_workload(old, kernels=300)
        old.runner.catch_up()
    done = finish(ledger_url, "--json", "projections", "rebuild", "--workers", "3", "--batch-size", "50")
    assert set(json.loads(done.stdout)["rebuilt"]) == {p.stable_name for p in old.projections.all()}
    with open_ledger(ledger_url) as ledger:
        assert ledger.runner.pending() == []
        assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)


def test_a_rebuild_whose_worker_was_killed_says_what_it_left_and_what_to_do(ledger_url: str) -> None:
    """A worker killed (the OOM killer, an operator) failed the rebuild with `rebuild worker
    failed: exit code -9`: neither which read models were left behind nor what to do."""
    with old_code(), open_ledger(ledger_url) as old:
        head = write_workload(old, kernels=600)
        old.runner.catch_up()
    with read_models(ledger_url) as db:
        with process(ledger_url, "projections", "rebuild", "--workers", "2", "--batch-size", "7") as rebuild:
            usage = f"usage_v{UsageProjection.version}_utc"  # in the worker's share
            wait_until(lambda: positions(db).get(usage, 0) > 0, 60, "the worker to make progress")
            (worker,) = [pid for pid in child_pids(rebuild.pid) if b"spawn_main" in cmdline(pid)]
            os.kill(worker, signal.SIGKILL)
            _, stderr = rebuild.communicate(timeout=120)
        assert positions(db)[usage] < head
    assert rebuild.returncode == 1
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: ledger_unavailable: rebuild worker failed: "), line
    assert "usage_utc" in line.split(": killed by signal 9")[0], line
    assert line.endswith("run `ledger projections rebuild` again: it resumes where it stopped"), line
    finish(ledger_url, "projections", "rebuild", "--workers", "2")
    with open_ledger(ledger_url) as ledger:
        assert ledger.runner.pending() == []
        ledger.runner.catch_up()
        assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def test_a_shared_rebuild_killed_at_a_random_moment_resumes_and_leaves_no_worker_behind(
    ledger_url: str, kill_seed: int
) -> None:
    with old_code(), open_ledger(ledger_url) as old:
        head = write_workload(old, kernels=600)
        old.runner.catch_up()
    with read_models(ledger_url) as db:
        with process(ledger_url, "projections", "rebuild", "--workers", "2", "--batch-size", "7") as rebuild:
            # This process rebuilds history, a worker it started the rest: kill this one
            # while the worker is busy, which must then stop by itself.
            workers = wait_for_children(rebuild.pid)
            usage = f"usage_v{UsageProjection.version}_utc"
            reached = kill_after_progress(rebuild, db, usage, head, kill_seed)
        wait_until(lambda: not any(alive(pid) for pid in workers), 30, "the orphaned workers to stop")
        # Stopped, not finished: it saw its parent gone at its next batch.
        assert positions(db)[usage] < head, f"the worker went on from {reached} to the end"
        finish(ledger_url, "projections", "rebuild", "--workers", "2")
    with open_ledger(ledger_url) as ledger:
        assert ledger.runner.pending() == []
        ledger.runner.catch_up()
        assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)


def active_versions(db: ReadModelDatabase) -> dict[str, int]:
    with db.connect() as conn:
        return {r.name: r.version for r in conn.execute(sa.select(ProjectionRunner.versions))}


def test_a_shared_rebuild_switches_no_read_model_before_every_one_has_caught_up(ledger_url: str) -> None:
    """A worker activated its share of the new versions when that share had caught up: from
    then on old code refused every read (its servers answered 503 on every route) while the
    rest of the rebuild went on for minutes, and new code could not serve before it ended."""
    with old_code(), open_ledger(ledger_url) as old:
        head = write_workload(old, kernels=600)
        old.runner.catch_up()
    new = [p.storage_name for p in build_projections(sa.MetaData(), "UTC").all()]
    with read_models(ledger_url) as db:
        before = active_versions(db)
        behind_at_the_first_switch = None
        with process(ledger_url, "projections", "rebuild", "--workers", "2", "--batch-size", "7") as rebuild:
            while rebuild.poll() is None and behind_at_the_first_switch is None:
                if active_versions(db) != before:  # positions only grow: read after the switch seen
                    reached = positions(db)
                    behind_at_the_first_switch = {key: reached[key] for key in new if reached[key] < head}
                time.sleep(0.005)
            _, stderr = rebuild.communicate(timeout=120)
        assert rebuild.returncode == 0, stderr
        assert {name: version + 1 for name, version in before.items()} == active_versions(db)
    assert behind_at_the_first_switch == {}
