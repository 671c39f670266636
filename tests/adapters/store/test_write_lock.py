"""The file lock that orders the appends of several processes to one SQLite ledger
(adapters/store/write_lock.py): taken and given back, handed to a waiter, never kept by an
append that stopped waiting, lost with a killed holder, and left out when it cannot be made.
Two locks on one path in one process behave as two processes' (each has its own open file)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.bootstrap import open_ledger
from adapters.store.write_lock import FileWriteLock
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator

ADMIN = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")


def create(ledger_url: str, name: str) -> None:
    with open_ledger(ledger_url) as ledger:
        process = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
        action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
        asyncio.run(process.wait_for_complete(action, ADMIN))


def forked(body: Callable[[], bool]) -> Callable[[], bool | None]:
    """Runs `body` in a forked child of this process at once; the returned call waits (30 s
    at most) for its answer: None if it raised or did not answer in time."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        try:
            os.write(write, b"1" if body() else b"0")
        finally:
            os._exit(0)
    os.close(write)

    def answer() -> bool | None:
        try:
            ready, _, _ = select.select([read], [], [], 30.0)
            got = os.read(read, 1) if ready else b""
            return {b"1": True, b"0": False}.get(got)
        finally:
            os.close(read)
            if not ready:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    return answer


def hold_in_another_process(path: str) -> subprocess.Popen[str]:
    """A process that holds the lock at `path` until it is killed."""
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, path], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_one_holder_at_a_time_and_a_waiter_gets_it_when_released(tmp_path: Path) -> None:
    path = str(tmp_path / "db-lock")
    first, second = FileWriteLock(path), FileWriteLock(path)
    assert first.acquire(1.0)
    assert not second.acquire(0.05)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.acquire(30.0)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and got == []  # still waiting while the first holds it
    first.release()
    waiter.join(30.0)
    assert got == [True]
    assert not first.acquire(0.05)
    second.release()
    assert first.acquire(1.0)
    first.release()
    first.close()
    second.close()


def test_a_wait_given_up_gives_the_lock_back_when_it_comes(tmp_path: Path) -> None:
    path = str(tmp_path / "db-lock")
    holder, quitter, third = FileWriteLock(path), FileWriteLock(path), FileWriteLock(path)
    assert holder.acquire(1.0)
    assert not quitter.acquire(0.05)  # its flock goes on waiting in a thread of its own
    holder.release()
    # That thread gets the lock, finds nobody wanting it and lets it go: a third taker
    # gets it (it would time out if the lock were kept for the append that gave up).
    assert third.acquire(30.0)
    third.release()
    assert quitter.acquire(30.0)  # and the one that gave up can take it again
    quitter.release()
    for lock in (holder, quitter, third):
        lock.close()


def test_closing_while_a_wait_is_blocked_frees_the_lock_and_the_descriptor(tmp_path: Path) -> None:
    path = str(tmp_path / "db-lock")
    holder, closed, other = FileWriteLock(path), FileWriteLock(path), FileWriteLock(path)
    assert holder.acquire(1.0)
    assert not closed.acquire(0.05)
    closed.close()
    assert not closed.acquire(0.05)  # a closed lock is never taken
    holder.release()
    assert other.acquire(30.0)  # the blocked flock of the closed lock did not keep it
    other.release()
    for _ in range(300):  # its thread closes the descriptor once its flock returned
        if closed._fd is None:
            break
        threading.Event().wait(0.01)
    assert closed._fd is None
    holder.close()
    other.close()


def test_a_killed_holder_loses_the_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "db-lock")
    child = hold_in_another_process(path)
    try:
        lock = FileWriteLock(path)
        assert not lock.acquire(0.1)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert lock.acquire(30.0)
    lock.release()
    lock.close()


def test_a_lock_file_that_cannot_be_opened_leaves_appends_to_sqlite(tmp_path: Path) -> None:
    (tmp_path / "ledger.db-lock").mkdir()  # a folder where the lock file would be
    lock = FileWriteLock(str(tmp_path / "ledger.db-lock"))
    assert not lock.acquire(1.0)
    lock.close()
    url = f"sqlite:///{tmp_path}/ledger.db"
    create(url, "written-without-the-lock")
    with open_ledger(url) as ledger:
        assert ledger.queries.keypair_resource_policy("written-without-the-lock").name == "written-without-the-lock"


def test_a_ledger_append_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    create(url, "first")  # the file and its tables exist: the next append is only an append
    other = FileWriteLock(f"{tmp_path}/ledger.db-lock")  # another process's, as far as the ledger can tell
    assert other.acquire(1.0)
    done = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            create(url, "second")
        except BaseException as exc:  # the test looks at it
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=append)
    thread.start()
    assert not done.wait(1.0)  # a lone command takes milliseconds: it is waiting for the lock
    other.release()
    assert done.wait(30.0) and errors == []
    thread.join()
    other.close()
    with open_ledger(url) as ledger:
        assert ledger.queries.keypair_resource_policy("second").name == "second"
    assert os.path.exists(f"{tmp_path}/ledger.db-lock")


def test_a_fifo_at_the_lock_path_leaves_appends_to_sqlite_instead_of_blocking(tmp_path: Path) -> None:
    # Opening a FIFO to read blocks until something opens it to write: the append that
    # opened the lock file would wait there for good, holding the process's writer.
    url = f"sqlite:///{tmp_path}/ledger.db"
    create(url, "first")
    os.remove(f"{tmp_path}/ledger.db-lock")
    os.mkfifo(f"{tmp_path}/ledger.db-lock")
    done = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            create(url, "written-beside-a-fifo")
        except BaseException as exc:  # the test looks at it
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=append, daemon=True)
    thread.start()
    try:
        assert done.wait(20.0), "the append is stuck opening the lock path"
    finally:
        if not done.is_set():  # a writer end lets the stuck open return
            os.close(os.open(f"{tmp_path}/ledger.db-lock", os.O_WRONLY | os.O_NONBLOCK))
            thread.join(30.0)
    assert errors == []
    with open_ledger(url) as ledger:
        assert ledger.queries.keypair_resource_policy("written-beside-a-fifo") is not None


def test_a_forked_child_neither_shares_nor_frees_its_parents_lock(tmp_path: Path) -> None:
    # A child inherits the descriptor, and with it the open file that holds the lock: on
    # it, the child's flock would succeed at once and its unlock free the parent's lock.
    path = str(tmp_path / "db-lock")
    lock = FileWriteLock(path)
    assert lock.acquire(1.0)

    def child() -> bool:
        taken = lock.acquire(0.2)
        if taken:
            lock.release()
        return taken

    assert forked(child)() is False
    other = FileWriteLock(path)
    assert not other.acquire(0.1)  # the parent still holds it
    lock.release()
    assert other.acquire(1.0)
    other.release()
    lock.close()
    other.close()


def test_a_child_forked_during_a_wait_takes_the_lock_once_it_is_free(tmp_path: Path) -> None:
    # The thread that waits on the parent's flock is not in the child: joining that wait,
    # each append of the child would wait out its whole timeout.
    path = str(tmp_path / "db-lock")
    holder = hold_in_another_process(path)
    lock = FileWriteLock(path)
    try:
        assert not lock.acquire(0.05)  # its flock goes on waiting in a thread of the parent

        def child() -> bool:
            began = time.monotonic()
            taken = lock.acquire(20.0)
            return taken and time.monotonic() - began < 10.0

        answer = forked(child)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert answer() is True
    assert lock.acquire(30.0)
    lock.release()
    lock.close()


def test_a_wait_whose_thread_did_not_start_leaves_that_append_and_the_next_to_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Out of threads, the wait that had no thread to block in stayed the process's wait:
    # the append failed, and every later one joined it and waited out its whole timeout.
    path = str(tmp_path / "db-lock")
    holder, lock = FileWriteLock(path), FileWriteLock(path)
    assert holder.acquire(1.0)

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        assert not lock.acquire(0.05)  # goes without the lock, as past a timeout
    holder.release()
    began = time.monotonic()
    assert lock.acquire(10.0)
    assert time.monotonic() - began < 5.0
    lock.release()
    holder.close()
    lock.close()


class Interrupted(Exception):
    """Raised by a signal handler in the middle of a wait (as KeyboardInterrupt is)."""


def test_a_wait_interrupted_by_an_exception_does_not_keep_the_lock(tmp_path: Path) -> None:
    # The wait's thread took the lock for an append that was no longer there, and kept it
    # (through `close` too) until the process's next append: other processes waited.
    path = str(tmp_path / "db-lock")
    holder = hold_in_another_process(path)
    lock, other = FileWriteLock(path), FileWriteLock(path)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            lock.acquire(30.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert other.acquire(10.0)  # the interrupted wait's thread gave it back
    other.release()
    lock.close()
    assert other.acquire(1.0)
    other.release()
    other.close()


def test_after_a_whole_timeout_on_a_stuck_holder_the_next_appends_do_not_wait_as_long(tmp_path: Path) -> None:
    """A holder stopped with the lock (SIGSTOP, a debugger) made each append of the others
    wait the whole timeout in turn, though SQLite's own lock was free for them."""
    path = str(tmp_path / "db-lock")
    stuck, lock = FileWriteLock(path), FileWriteLock(path)
    assert stuck.acquire(1.0)
    assert not lock.acquire(1.0)  # the first append waits its whole timeout
    began = time.monotonic()
    assert not lock.acquire(60.0)  # the next ones go on to SQLite's lock at once
    assert not lock.acquire(60.0)
    assert time.monotonic() - began < 30.0
    stuck.release()
    assert lock.acquire(30.0)  # once it lets go, the lock is taken as before
    lock.release()
    stuck.close()
    lock.close()
