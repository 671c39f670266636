"""Catching projections up in several processes at once.

A rebuild decodes every event and applies it; one process does that on one core. The
projections are independent (each has its own tables and tracking row), so they are
shared out between processes (`projections.projection.split`, by each one's `cost`): this
process catches up the first share, a spawned worker each other one. Every worker is an
ordinary runner, so everything the engine guarantees holds for each share: batches are
exactly-once, a killed worker's share resumes from its tracking row, and each pending
version is switched in only by this process's last catch-up of all of them (events stored
meanwhile), once every share has caught up: old code refuses every read as soon as one of
its versions is replaced, so one switched early took its reads down for the rest of the
rebuild.

A worker stops at its next batch if this process is gone, so killing a rebuild does not
leave workers behind for long; what they committed is kept and the next rebuild resumes.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Sequence
from typing import Any

from adapters.bootstrap import Ledger, projection_runner
from adapters.store import StoreConfig
from domain.errors import LedgerError, StoreUnavailable
from projections.projection import Projection, split
from projections.runner import Progress

# Below this many events to apply, starting a process (a second or so of imports and
# connections) costs more than sharing the work saves.
PARALLEL_FROM = 50_000


def workers_for(ledger: Ledger, chosen: Sequence[Projection], workers: int | None) -> int:
    """How many processes to use: `workers` if given, else one per core for a large
    catch-up; always one for a private in-memory database, which no other process sees."""
    if ledger.read_models.is_memory:
        return 1
    if workers is not None:
        return max(1, workers)
    head = ledger.app.recorder.max_notification_id() or 0
    stored = ledger.runner.stored_positions()
    behind = max((head - stored.get(p.storage_name, 0) for p in chosen), default=0)
    return cores() if behind >= PARALLEL_FROM else 1


def cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def catch_up(
    ledger: Ledger,
    chosen: Sequence[Projection],
    workers: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Brings the chosen projections up to date (and activates pending versions), sharing
    them out between `workers` processes (see `workers_for`); returns the position reached."""
    runner = ledger.runner
    shares = split(chosen, workers_for(ledger, chosen, workers))
    if len(shares) <= 1:
        return runner.catch_up(chosen, progress)
    context = multiprocessing.get_context("spawn")  # no inherited connections or locks
    errors: Any = context.Queue()
    processes = [
        context.Process(
            target=_worker,
            args=(
                ledger.config,
                ledger.timezone,
                [p.storage_name for p in share],
                runner.batch_size,
                os.getpid(),
                errors,
            ),
            daemon=True,
        )
        for share in shares[1:]
    ]
    keys = [p.storage_name for p in chosen]

    def overall(_position: int, head: int) -> None:
        if progress is not None:
            stored = runner.stored_positions()
            # (a forced rebuild a worker swapped in has no tracking row of its own any more)
            progress(min(min(stored.get(key, head) for key in keys), head), head)

    for process in processes:
        process.start()
    try:
        # Nothing is switched in until every share has caught up (the last catch-up below):
        # old code refuses every read once one of its versions is replaced.
        runner.catch_up(shares[0], overall, activate=False)
        head = ledger.app.recorder.max_notification_id() or 0
        while any(process.is_alive() for process in processes):
            for process in processes:
                process.join(timeout=0.2)
            overall(0, head)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # interrupted: a batch in flight rolls back
                process.join()
    failed = [
        _failure(process, errors, share)
        for process, share in zip(processes, shares[1:], strict=True)
        if process.exitcode != 0
    ]
    if failed:
        # What the workers committed is kept: the operator's next step is the same command.
        raise StoreUnavailable(
            "rebuild worker failed: " + "; ".join(failed) + "; run `ledger projections rebuild` again: "
            "it resumes where it stopped"
        )
    runner.refresh()
    return runner.catch_up(chosen, progress)


def _failure(process: Any, errors: Any, share: Sequence[Projection]) -> str:
    """Why a worker failed: its own report, else how it ended, naming the read models it
    was building (a bare `exit code -9` said neither what was left nor what to do)."""
    try:
        return str(errors.get(timeout=1))
    except queue.Empty:
        code = process.exitcode
        ended = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"{', '.join(p.stable_name for p in share)}: {ended}"


def _worker(config: StoreConfig, timezone: str, keys: list[str], batch_size: int, parent: int, errors: Any) -> None:
    def stop_if_orphaned(_position: int, _head: int) -> None:
        if os.getppid() != parent:
            raise SystemExit(3)

    try:
        with projection_runner(config, timezone) as runner:
            runner.batch_size = batch_size
            # A forced rebuild's projection is built with its generation's tables (`builds`).
            candidates = [*runner.projections, *runner.builds()]
            # A projection that stalls is recorded as stalled and the worker ends normally:
            # the parent reports it.
            # The parent switches the versions in once every share has caught up.
            runner.catch_up([p for p in candidates if p.storage_name in keys], stop_if_orphaned, activate=False)
    except LedgerError as exc:
        errors.put(f"{', '.join(keys)}: {exc}")
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
        raise SystemExit(130) from None
