"""Group commit (issue 15): concurrent appends of one process share one transaction.

Each caller of `GroupCommit.insert` queues its events and waits. One of them, the
leader, takes everything queued, appends it in one transaction (one lock, one fsync, one
chain read) and wakes each caller with its own notification ids; while it commits, new
callers queue up behind it, and the first of them leads the next batch. A caller returns
only once its own events are committed, so an acknowledged command is a stored one.

A conflict must not fail the others: two requests of one batch appending the same stream
version are told apart before writing (the later one gets the library's IntegrityError,
which the store turns into a retry on fresh state), and when the merged transaction fails
for any other reason (a stale decision against stored events, say) each request of that
batch is appended alone, so each gets exactly its own outcome; except when the store
itself fails (a server that does not answer, a file locked past the busy timeout), which
fails the whole batch at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.store.config import ServerUnreachable

Insert = Callable[[Sequence[StoredEvent], dict[str, Any]], Sequence[int] | None]
"""Appends events in one transaction (with the recorder's keyword arguments): their
notification ids in order."""

MAX_BATCH_EVENTS: Final = 5000  # one transaction stays bounded whatever the load
_MERGEABLE: Final = frozenset({"erase", "keys"})  # keyword arguments a batch can combine (and tracking=None)


class _Request:
    __slots__ = ("error", "events", "finished", "ids", "kwargs", "lead", "wake")

    def __init__(self, events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> None:
        self.events = events
        self.kwargs = kwargs
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.lead = False
        self.wake = threading.Event()

    def finish(self, ids: Sequence[int] | None = None, error: BaseException | None = None) -> None:
        self.ids, self.error, self.finished = ids, error, True
        self.wake.set()


class GroupCommit:
    """Batches concurrent `insert` calls into shared transactions (see the module)."""

    def __init__(self, insert: Insert) -> None:
        self._insert = insert
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False
        self.batches = 0  # transactions the merged appends took (for tests and metrics)
        self.requests = 0

    def insert(self, events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> Sequence[int] | None:
        request = _Request(events, kwargs)
        with self._lock:
            self._queue.append(request)
            if not self._busy:
                self._busy = request.lead = True
        if not request.lead:
            request.wake.wait()  # finished by a leader, or made the next leader
        if not request.finished:
            self._lead()
        if request.error is not None:
            raise request.error
        return request.ids

    def _lead(self) -> None:
        with self._lock:
            batch: list[_Request] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].events) <= MAX_BATCH_EVENTS):
                request = self._queue.pop(0)
                batch.append(request)
                size += len(request.events)
        try:
            self._commit(batch)
        except BaseException as exc:  # never leave a caller waiting
            for request in batch:
                if not request.finished:
                    request.finish(error=exc)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._busy = False

    def _commit(self, batch: list[_Request]) -> None:
        self.batches += 1
        self.requests += len(batch)
        together, alone = _split(batch)
        if len(together) == 1:
            alone.insert(0, together.pop())
        if together:
            events = [event for request in together for event in request.events]
            kwargs = _merged(together)
            try:
                ids = self._insert(events, kwargs)
            except Exception as exc:
                if _every_request_would_fail(exc):
                    _fail(batch, exc)
                    return
                alone = together + alone  # each on its own: each gets its own outcome
            else:
                _share(together, ids)
        for request in alone:
            if request.finished:
                continue
            try:
                request.finish(ids=self._insert(request.events, request.kwargs))
            except Exception as exc:
                if _every_request_would_fail(exc):
                    _fail(alone, exc)
                    return
                request.finish(error=exc)


def _every_request_would_fail(error: Exception) -> bool:
    """Whether `error` is about the store, not the requests: a server that does not answer,
    or a SQLite file another process kept locked past the busy timeout. Each request alone
    would wait as long again for the same outcome (with sixteen waiting, the last one 80 s
    on PostgreSQL, eight minutes on SQLite)."""
    if isinstance(error, ServerUnreachable):
        return True
    cause = error.__cause__
    return (
        isinstance(error, OperationalError)
        and isinstance(cause, sqlite3.OperationalError)
        and (cause.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    )


def _fail(requests: list[_Request], error: Exception) -> None:
    """Fails the requests not finished yet with the store's error."""
    for request in requests:
        if not request.finished:
            request.finish(error=error)


def _split(batch: list[_Request]) -> tuple[list[_Request], list[_Request]]:
    """(mergeable, to append alone). A request appending a stream version an earlier one
    of the batch appends is refused outright (it decided on the state before that one);
    one with keyword arguments a batch cannot combine goes alone."""
    together: list[_Request] = []
    alone: list[_Request] = []
    taken: set[tuple[Any, int]] = set()
    for request in batch:
        versions = {(event.originator_id, event.originator_version) for event in request.events}
        if versions & taken:
            request.finish(error=IntegrityError("a request of the same batch appends this stream version"))
            continue
        taken |= versions
        mergeable = all(
            key in _MERGEABLE or (key == "tracking" and value is None) for key, value in request.kwargs.items()
        )
        (together if mergeable else alone).append(request)
    return together, alone


def _merged(requests: list[_Request]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"tracking": None}  # what the library passes for an application's own events
    erase = [subject for request in requests for subject in request.kwargs.get("erase") or ()]
    if erase:
        kwargs["erase"] = erase
        kwargs["keys"] = next(r.kwargs["keys"] for r in requests if r.kwargs.get("erase"))
    return kwargs


def _share(requests: list[_Request], ids: Sequence[int] | None) -> None:
    at = 0
    for request in requests:
        count = len(request.events)
        request.finish(ids=None if ids is None else list(ids[at : at + count]))
        at += count
