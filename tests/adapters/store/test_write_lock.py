"""The file lock that orders the appends of several processes to one SQLite ledger
(adapters/store/write_lock.py): taken and given back, handed to a waiter, never kept by an
append that stopped waiting, lost with a killed holder, and left out when it cannot be made.
Two locks on one path in one process behave as two processes' (each has its own open file)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

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
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, path], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
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
