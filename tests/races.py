"""Deterministic races: commands decide on the same state, then the store orders them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from adapters.bootstrap import Ledger

Command = Callable[[], Any]
JOIN_TIMEOUT = 60.0  # seconds for every command together, retries included


class StillRunning(AssertionError):
    """A command's thread outlived the join timeout: its outcome is unknown, not a success."""


def decide_together(
    ledger: Ledger, commands: list[Command], order: Sequence[int] | None = None, timeout: float = JOIN_TIMEOUT
) -> list[BaseException | None]:
    """Runs the commands in threads. Each one's first save waits until every command has
    decided, then the first saves go in `order` (commands[order[0]] first); retries run
    freely. Every command decides on the same state; the store settles who wins.

    Raises `StillRunning` if a command has not finished `timeout` seconds after they
    started (a hung command is a failure, never an outcome of None)."""
    barrier = threading.Barrier(len(commands), timeout=30)
    saved = [threading.Event() for _ in commands]  # by rank in `order`
    rank_of = {index: rank for rank, index in enumerate(order if order is not None else range(len(commands)))}
    mine = threading.local()
    real_save = ledger.app.save

    def save_in_turn(*args: Any, **kwargs: Any) -> Any:
        if getattr(mine, "waited", True):
            return real_save(*args, **kwargs)
        mine.waited = True
        barrier.wait()
        rank = rank_of[mine.index]
        if rank > 0:
            assert saved[rank - 1].wait(timeout=30), "the previous save never finished"
        try:
            return real_save(*args, **kwargs)
        finally:
            saved[rank].set()

    def prepare(index: int) -> None:
        mine.index, mine.waited = index, False

    ledger.app.save = save_in_turn  # type: ignore[method-assign]
    try:
        return _in_threads(commands, prepare, timeout)
    finally:
        del ledger.app.save


def all_at_once(commands: list[Command], timeout: float = JOIN_TIMEOUT) -> list[BaseException | None]:
    """Runs the commands in threads released together, with no other coordination (the
    free-running races: only invariants are asserted on their outcomes). Raises
    `StillRunning` if a command has not finished `timeout` seconds after they started."""
    start = threading.Barrier(len(commands), timeout=30)
    return _in_threads(commands, lambda _index: start.wait(), timeout)


def _in_threads(commands: list[Command], prepare: Callable[[int], Any], timeout: float) -> list[BaseException | None]:
    """Each command in its own thread, after `prepare(index)` there; the outcome of each
    (None or what it raised) once all are done, or `StillRunning`."""
    outcomes: list[BaseException | None] = [None] * len(commands)

    def run(index: int) -> None:
        try:
            prepare(index)
            commands[index]()
        except BaseException as exc:  # recorded and asserted on by the caller
            outcomes[index] = exc

    # Daemons: a hung command must not keep the test run from exiting.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [index for index, thread in enumerate(threads) if thread.is_alive()]
    if stuck:
        raise StillRunning(
            f"commands {stuck} of {len(commands)} still running {timeout:g} s after they started "
            f"(outcomes so far: {outcomes})"
        )
    return outcomes
