"""`ledger projections rebuild` stopped midway (SIGTERM from a service manager, Ctrl-C at a
terminal), and `projections status` of the forced rebuild it left: the operator is told
what is unfinished and which command finishes it, on both backends. The follower,
`projections run`, stopped the same ways, mid catch-up or waiting for its next poll."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from adapters.bootstrap import open_ledger
from adapters.cli.app import Terminated, between_batches
from tests.adapters.cli.helpers import ROOT, as_json, ok
from tests.projections.commands import write_workload
from tests.projections.readmodels import old_code


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_waits_for_the_rebuilds_next_batch(signum: int, raised: type[BaseException]) -> None:
    """Raised where it landed, an interrupt inside a driver's call left PostgreSQL's
    connection busy ("another command is already in progress"), and the cleanup's error
    replaced it (exit 1, not 143): the signal is recorded and raised between batches; a
    second one stops at once. Outside, the handlers are as they were."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with between_batches() as stop:
        stop.check()  # nothing came
        signal.raise_signal(signum)  # the handler runs here, in the main thread: it only records
        with pytest.raises(raised):
            stop.check()
        with pytest.raises(raised):
            signal.raise_signal(signum)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_stops_a_wait_with_nothing_in_flight_at_once(signum: int, raised: type[BaseException]) -> None:
    """A follower waiting for its next poll (a minute, an hour) has no database call to
    protect: a signal that came before the wait stops it on entry, one during it at once,
    where recorded it would wait out the whole interval. Outside the wait it is recorded."""
    with between_batches() as stop, stop.idle(), pytest.raises(raised):
        signal.raise_signal(signum)
    with between_batches() as stop:
        signal.raise_signal(signum)  # recorded only
        with pytest.raises(raised), stop.idle():
            pass


def follower(url: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "adapters.cli", "--db", url, "projections", "run", *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_model_positions(url: str) -> list[int]:
    return [s["position"] or 0 for s in as_json(url, "projections", "status")]


def stop_when(child: subprocess.Popen[str], ready: Callable[[], bool], signum: int) -> tuple[str, str]:
    """Sends `signum` to the child once `ready()`; its stdout and stderr once it exited."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert child.poll() is None and time.monotonic() < deadline, "the follower made no progress"
            time.sleep(0.01)
        child.send_signal(signum)
        return child.communicate(timeout=30)  # a follower that waited out its poll interval fails here
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


STOPS = pytest.mark.parametrize(
    ("signum", "exit_code", "how"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")]
)


@pytest.mark.slow
@STOPS
@pytest.mark.parametrize("once", [False, True], ids=["following", "once"])
def test_a_follower_stopped_mid_catch_up_stops_between_batches_and_says_where(
    ledger_url: str, signum: int, exit_code: int, how: str, once: bool
) -> None:
    """The follower took SIGTERM or Ctrl-C wherever it landed, at times inside psycopg's
    call, leaving PostgreSQL's connection busy ("another command is already in progress"):
    it stops after the batch in flight and says where the read models stand; a later run
    goes on from there. Stopping is how a follower ends (exit 0, as `serve`); a `--once`
    catch-up cut short is unfinished work (exit 143 or 130, as a rebuild)."""
    with open_ledger(ledger_url) as opened:
        head = write_workload(opened, kernels=300)
    child = follower(ledger_url, "--batch-size", "5", *(["--once"] if once else ["--poll-interval", "60"]))
    out, err = stop_when(child, lambda: max(read_model_positions(ledger_url)) > 0, signum)
    assert "Traceback" not in err
    left = min(read_model_positions(ledger_url))
    if once:
        assert (child.returncode, out) == (exit_code, ""), err
        stopped = f"error: interrupted: catch-up stopped by {how} with the read models at position {left}"
        assert err.splitlines()[-1] == stopped
    else:
        assert (child.returncode, out) == (0, f"read models at position {left}\n"), err
        assert err.splitlines()[-1] == f"follower stopped by {how}"
    assert 0 <= left < head  # stopped midway, not at the end of the catch-up
    assert as_json(ledger_url, "projections", "run", "--once") == {"position": head}


@pytest.mark.slow
@STOPS
def test_a_follower_waiting_for_its_next_poll_stops_at_once(
    ledger_url: str, signum: int, exit_code: int, how: str
) -> None:
    """Caught up, the follower waits up to its poll interval (a minute here): the signal
    stops it there, not once the minute is out."""
    with open_ledger(ledger_url) as opened:
        head = write_workload(opened, kernels=5)
    child = follower(ledger_url, "--poll-interval", "60")
    out, err = stop_when(child, lambda: min(read_model_positions(ledger_url)) == head, signum)
    assert (child.returncode, out) == (0, f"read models at position {head}\n"), err
    assert err.splitlines()[-1] == f"follower stopped by {how}"


def pending_positions(url: str) -> list[int]:
    return [s["pending_position"] or 0 for s in as_json(url, "projections", "status") if s["pending_version"]]


@pytest.mark.slow
def test_a_catch_up_building_new_versions_says_where_they_stand_when_stopped(ledger_url: str) -> None:
    """A follower of new code builds the pending versions; stopped midway it said the read
    models were at the head (the versions still served, long caught up), while the versions
    it was building stood far behind it: the operator read the work as done."""
    with old_code(), open_ledger(ledger_url) as old:
        head = write_workload(old, kernels=300)
        old.runner.catch_up()
    child = follower(ledger_url, "--batch-size", "5", "--once")
    _, err = stop_when(child, lambda: max(pending_positions(ledger_url), default=0) > 0, signal.SIGINT)
    left = min(pending_positions(ledger_url))
    assert 0 < left < head  # stopped midway
    assert (
        err.splitlines()[-1]
        == f"error: interrupted: catch-up stopped by Ctrl-C with the read models at position {left}"
    )


def history_rebuild_position(url: str) -> int | None:
    (found,) = [s for s in as_json(url, "projections", "status") if s["name"] == "history"]
    position: int | None = found["rebuild_position"]
    return position


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code", "how"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")]
)
def test_a_rebuild_stopped_by_a_signal_says_what_it_left_and_how_to_finish_it(
    ledger_url: str, signum: int, exit_code: int, how: str
) -> None:
    """SIGTERM ended a forced rebuild with a bare exit 143 and nothing on stderr; Ctrl-C
    with `stopped by Ctrl-C`: neither said the rebuild was unfinished or how to finish it."""
    with open_ledger(ledger_url) as opened:
        head = write_workload(opened, kernels=600)
        opened.runner.catch_up()
    command = [sys.executable, "-m", "adapters.cli", "--db", ledger_url, "projections", "rebuild"]
    child = subprocess.Popen(
        [*command, "--force", "history", "--batch-size", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (history_rebuild_position(ledger_url) or 0) > 0:  # its first batch committed
            assert child.poll() is None and time.monotonic() < deadline, "the rebuild made no progress"
            time.sleep(0.01)
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert (child.returncode, out) == (exit_code, ""), err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"error: interrupted: rebuild stopped by {how} with 1 read model unfinished (history), still served "
        "from the tables they had; run `ledger projections rebuild history` again to finish: "
        "it resumes where it stopped"
    )
    left = history_rebuild_position(ledger_url)
    assert left is not None and 0 < left < head  # stopped midway, not finished
    done = as_json(ledger_url, "projections", "rebuild", "history")  # as it says
    assert done["forced"] == ["history"] and history_rebuild_position(ledger_url) is None


def test_status_says_what_finishes_a_forced_rebuild_nothing_runs(ledger_url: str) -> None:
    """A forced rebuild a killed run left showed as `rebuild at N`, read as work in
    progress: only `projections rebuild` moves one, and nothing records whether one runs."""
    with open_ledger(ledger_url) as opened:
        opened.runner.force([opened.projections.history])  # a `rebuild --force history` killed at once
    lines = ok(ledger_url, "projections", "status").stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("│ history ")]
    assert "│ unfinished forced rebuild at 0 │" in row
    assert lines[-1] == (
        "An unfinished forced rebuild moves only while `ledger projections rebuild` runs, and nothing records "
        "whether one runs now: if none does, `ledger projections rebuild history` finishes it where it stopped "
        "(reads stay on the active version meanwhile)."
    )
    assert as_json(ledger_url, "projections", "rebuild", "history")["forced"] == ["history"]
    assert "unfinished" not in ok(ledger_url, "projections", "status").stdout


def test_status_says_the_one_command_that_finishes_several_forced_rebuilds(ledger_url: str) -> None:
    """Several left by a killed `rebuild --force` were told to `ledger projections rebuild
    [NAME]`: brackets to type, or a name to pick, when the bare command finishes them all."""
    with open_ledger(ledger_url) as opened:
        opened.runner.force([opened.projections.history, opened.projections.audit])
    last = ok(ledger_url, "projections", "status").stdout.splitlines()[-1]
    assert "[NAME]" not in last
    assert "if none does, `ledger projections rebuild` finishes them where they stopped (audit, history; " in last
    assert sorted(as_json(ledger_url, "projections", "rebuild")["forced"]) == ["audit", "history"]
    assert "unfinished" not in ok(ledger_url, "projections", "status").stdout
