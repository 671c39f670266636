"""Writers of one SQLite file in several processes take turns in the kernel, not in SQLite.

A process that finds the file's write lock taken waits in SQLite's busy handler, which
sleeps 1, 2, 5, 10 ... up to 100 ms between tries: an append holds the lock for well under
a millisecond, so a waiting process mostly sleeps past the moment it could have written.
Measured here (`bench/concurrency.py`, policy creates with group commit): two processes
of one writer each wrote at 0.95-1.0x one process's rate, and two processes of 8 writers
at 1.4-1.6x. Waiting instead on an exclusive `flock` of a file beside the database
(`<db>-lock`), which the kernel hands over the moment its holder lets go, gave 1.3-1.4x
and 1.9-2.1x.

The lock only orders the ledger's own appends; SQLite's lock still guards the file. So
anything that keeps it from being taken (a folder where the file cannot be made, a FIFO
or anything else but a regular file at its path, a wait past the timeout) leaves the
append to SQLite's lock, as before. A process that dies holding it loses it with its file
descriptor.

`flock` has no timeout: a wait that does not succeed at once blocks in a thread of its
own, and an append that stops waiting leaves that thread to give the lock back as soon
as it gets it (or hand it to the process's next append, which waits on that same thread:
never two blocked `flock` calls on one descriptor, whose unlock would release the other's).
Once an append has waited a whole timeout, the next ones wait on that same holder only
briefly before going on to SQLite's lock, until it lets go.

A forked child opens the file again: the descriptor it inherits shares the parent's open
file, on which its `flock` would succeed while the parent holds the lock and its unlock
would free the parent's; and a wait of the parent's goes on in a thread the child has not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import threading
import weakref

log = logging.getLogger(__name__)

STUCK_AFTER = 1.0  # seconds: a holder that outlasts a whole wait this long is stuck
AFTER_A_STUCK_HOLDER = 0.05  # seconds an append then waits on it before going on to SQLite's lock


_LOCKS: weakref.WeakSet[FileWriteLock] = weakref.WeakSet()  # this process's, for a forked child


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Wait:
    """One blocked `flock` of this process and whether an append still wants its result."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.locked = False
        self.wanted = True
        self.timed_out = False  # an append waited its whole timeout on it: the holder is stuck


class FileWriteLock:
    """An exclusive `flock` on `path`, taken by one thread of the process at a time (the
    caller serialises its appends; this only orders processes)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._unusable = False  # the file could not be opened: appends go without it
        self._closed = False
        self._guard = threading.Lock()
        self._waiting: _Wait | None = None
        _LOCKS.add(self)

    def acquire(self, timeout: float) -> bool:
        """Whether the lock was taken within `timeout` seconds (False: go without it)."""
        with self._guard:
            fd = self._descriptor()
            if fd is None:
                return False
            wait = self._waiting
            if wait is None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
                except OSError as exc:
                    return self._give_up(exc)
                wait = _Wait()
                thread = threading.Thread(target=self._block, args=(fd, wait), name="ledger-write-lock", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # out of threads: no wait to join, now or later
                    log.warning("appends to the ledger go without %s this time (%s)", self._path, exc)
                    return False
                self._waiting = wait
            elif wait.timed_out:
                # The holder kept it past a whole timeout (a process stopped, say): until it
                # lets go, appends wait for it only briefly, then go on to SQLite's lock,
                # rather than each waiting as long again.
                timeout = min(timeout, AFTER_A_STUCK_HOLDER)
            wait.wanted = True
        interrupted = True  # by an exception (KeyboardInterrupt): no append gets the lock
        try:
            wait.done.wait(timeout)
            interrupted = False
        finally:
            with self._guard:
                if wait.done.is_set():
                    self._waiting = None
                    taken = wait.locked
                    if taken and interrupted and self._fd is not None:
                        fcntl.flock(self._fd, fcntl.LOCK_UN)
                else:
                    wait.wanted = False  # its thread gives the lock back when it gets it
                    # A holder that outlasts a wait of a second or more is stuck; a short wait
                    # (a caller's own choice) says nothing of it.
                    wait.timed_out = wait.timed_out or (not interrupted and timeout >= STUCK_AFTER)
                    taken = False
        return taken

    def release(self) -> None:
        with self._guard:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            if self._waiting is None:
                self._close_descriptor()
            # else the waiting thread closes it once its flock returns: closing it under
            # a blocked call could let a new file take its number before that call unlocks.

    def _forked(self) -> None:
        """In a forked child: drops the parent's descriptor (the parent keeps its lock: the
        open file is the parent's too) and its wait; the next append opens the file anew."""
        self._guard = threading.Lock()  # a parent's thread may have held it at the fork
        self._waiting = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _block(self, fd: int, wait: _Wait) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        with self._guard:
            if wait.wanted and not self._closed:
                wait.locked = locked
                wait.done.set()  # the waiting append takes it
                return
            self._waiting = None
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if self._closed:
                self._close_descriptor()

    def _descriptor(self) -> int | None:
        if self._fd is None and not self._unusable and not self._closed:
            # Read-only is enough for flock, and lets another user who writes the ledger lock
            # it too. Not blocking: opening a FIFO found there would wait for a writer for good.
            flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            try:
                self._fd = os.open(self._path, flags, 0o644)
                if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file")
            except OSError as exc:
                self._give_up(exc)
        return self._fd

    def _give_up(self, exc: OSError) -> bool:
        log.info("appends to the ledger go without %s (%s): SQLite's own lock orders them", self._path, exc)
        self._unusable = True
        self._close_descriptor()
        return False

    def _close_descriptor(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
