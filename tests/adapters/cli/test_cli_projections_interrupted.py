"""`ledger projections rebuild` stopped midway (SIGTERM from a service manager, Ctrl-C at a
terminal), and `projections status` of the forced rebuild it left: the operator is told
what is unfinished and which command finishes it, on both backends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from adapters.bootstrap import open_ledger
from adapters.cli.app import Terminated, between_batches
from tests.adapters.cli.helpers import ROOT, as_json, ok
from tests.projections.commands import write_workload


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
        head = write_workload(opened, kernels=1500)
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
