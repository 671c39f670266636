"""Following the event store, so read models stay current for other processes.

The follower catches up, then waits for new events. On PostgreSQL the library NOTIFYs the
events table's channel in every insert transaction, so a LISTEN wakes the follower as
soon as a command commits; the wait is bounded by the poll interval all the same, because
a notification can be lost (a dropped connection, a writer that does not notify), and a
failed listening connection is reopened. On SQLite there are no notifications: it polls.

LISTEN is issued before the first catch-up, so nothing committed in between is missed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

from eventsourcing.persistence import PersistenceError

from adapters.bootstrap import Ledger
from adapters.store import StoreConfig
from domain.errors import ReadModelVersionMismatch, StoreUnavailable, UnknownEventType
from projections.status import describe_stall, ways_out

RETIRED_CHUNKS_PER_WAKE = 5


class Stopping(Protocol):
    """Where a follower may be stopped (`adapters.cli.app.Stop`): a signal is acted on
    between two batches and during the wait for the next poll, never inside a database call."""

    def check(self) -> None:
        """Raises the interrupt that came, if one did."""

    def idle(self) -> AbstractContextManager[None]:
        """Open while the follower waits with no database work in flight."""


class Wakeup(Protocol):
    def wait(self, timeout: float) -> None:
        """Returns when new events may have been stored, or after `timeout` seconds."""


class Polling:
    def wait(self, timeout: float) -> None:
        time.sleep(timeout)


class Listening:
    """LISTEN on the events channel over a dedicated autocommit connection."""

    def __init__(self, config: StoreConfig, channel: str) -> None:
        self.config = config
        self.channel = channel
        self._conn: Any = None

    def listen(self) -> None:
        from psycopg import sql

        self._conn = self.config.connect_postgres()
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))

    def wait(self, timeout: float) -> None:
        import psycopg

        try:
            if self._conn is None:
                self.listen()
                return  # events may have come while nobody listened: catch up now
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
            for _ in self._conn.notifies(timeout=0):
                pass  # one catch-up serves every notification already queued
        except psycopg.Error as exc:
            _warn(f"listening connection failed, polling until it is back: {exc}")
            self.close()
            time.sleep(timeout)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


@contextmanager
def wakeup_for(ledger: Ledger) -> Iterator[Wakeup]:
    if ledger.config.kind != "postgresql":
        yield Polling()
        return
    listening = Listening(ledger.config, ledger.app.recorder.channel_name)  # type: ignore[attr-defined]
    listening.listen()
    try:
        yield listening
    finally:
        listening.close()


def follow(
    ledger: Ledger,
    poll_interval: float,
    *,
    once: bool = False,
    on_position: Callable[[int], None] | None = None,
    stop: Stopping | None = None,
) -> int:
    """Keeps every projection caught up until interrupted (or once, with `once`); returns
    the last position reached. With `stop`, an interrupt is raised only between two batches
    and while waiting for the next poll. Errors of an unavailable database are reported and retried
    after the poll interval; a version replaced by newer code, or an event of a type only
    newer code knows, ends the follower. A
    projection whose handler fails stalls (the runner records it) with one warning here,
    and the follower goes on with the others; the stalled one is looked at again only
    when new events come (a skip is one), so it neither dies nor spins on it."""
    position = 0
    warned: set[tuple[str, int]] = set()

    def between(_position: int, _head: int) -> None:  # called before each batch
        if stop is not None:
            stop.check()

    with wakeup_for(ledger) as wakeup:
        while True:
            try:
                position = ledger.runner.catch_up(progress=between)
            except (ReadModelVersionMismatch, UnknownEventType):  # newer code's: no retry gets past it
                raise
            except (StoreUnavailable, PersistenceError) as exc:
                if once:
                    raise _unavailable(exc) from exc
                _warn(f"catch-up failed, retrying in {poll_interval}s: {exc}")
            else:
                _warn_of_stalls(ledger, warned)
                if on_position is not None:
                    on_position(position)
                _drop_some_retired_tables(ledger)
            if once:
                return position
            with nullcontext() if stop is None else stop.idle():
                wakeup.wait(poll_interval)


def _warn_of_stalls(ledger: Ledger, warned: set[tuple[str, int]]) -> None:
    """One warning per stall (a read model and the position it stopped at), naming the
    operator's ways out as a query's refusal does: the follower's log is where a stall is
    seen first, and it only said that the others go on."""
    active = {key for _version, key in ledger.runner.active.values()}
    for key, stall in ledger.runner.stalled.items():
        if (key, stall.position) not in warned:
            warned.add((key, stall.position))
            # The active version is mended by a forced rebuild; a pending version or a forced
            # rebuild in progress by resuming its rebuild.
            rebuild = f"rebuild {'--force ' if key in active else ''}{stall.stable_name}"
            _warn(
                f"read model {stall.stable_name} {describe_stall(stall)}; the other read models go on: "
                f"{ways_out(stall, f'`ledger projections {rebuild}`')}"
            )


def _drop_some_retired_tables(ledger: Ledger) -> None:
    """A few chunks of a replaced version's tables per wake: the tables go in the
    background of following, which a whole collection would hold up for minutes."""
    try:
        ledger.runner.drop_retired_tables(max_chunks=RETIRED_CHUNKS_PER_WAKE)
    except StoreUnavailable as exc:
        _warn(f"dropping replaced read-model tables failed, retrying later: {exc}")


def _unavailable(exc: Exception) -> StoreUnavailable:
    return exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"event store read failed: {exc}")


def _warn(message: str) -> None:
    print(f"warning: {' '.join(message.split())}", file=sys.stderr, flush=True)
