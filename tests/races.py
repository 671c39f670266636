"""Deterministic races: commands decide on the same state, then the store orders them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from adapters.bootstrap import Ledger

Command = Callable[[], Any]


def decide_together(
    ledger: Ledger, commands: list[Command], order: Sequence[int] | None = None
) -> list[BaseException | None]:
    """Runs the commands in threads. Each one's first save waits until every command has
    decided, then the first saves go in `order` (commands[order[0]] first); retries run
    freely. Every command decides on the same state; the store settles who wins."""
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

    outcomes: list[BaseException | None] = [None] * len(commands)

    def run(index: int) -> None:
        mine.index, mine.waited = index, False
        try:
            commands[index]()
        except BaseException as exc:  # recorded and asserted on by the caller
            outcomes[index] = exc

    ledger.app.save = save_in_turn  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(commands))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        del ledger.app.save
    return outcomes
