"""A real `ledger serve` process for tests and benchmarks (not a test module).

`serving(url)` starts `ledger --db URL serve` on a free loopback port, waits for /healthz
and stops it afterwards; `Server.kill()` is `kill -9`, `Server.restart()` starts it again
on the same URL and port. Tokens come from the ledger opened in-process
(`tokens_for(url)`), as an operator with database access would issue them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from adapters.bootstrap import Ledger, open_ledger
from tests.adapters.http.api import populate

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for a server to answer /healthz (PostgreSQL setup included)


ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick; uvicorn sets SO_REUSEADDR,
    so a port left in TIME_WAIT by a killed server can be bound again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ledger_command() -> list[str]:
    """The `ledger` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "ledger"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "adapters.cli"]


@dataclass
class Server:
    """One `ledger serve` process group (the serve process and, with --workers N, its workers)."""

    url: str
    port: int = field(default_factory=free_port)
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    # The server's output, for the error when it fails to start; closed by `close`.
    log: IO[bytes] = field(default_factory=lambda: tempfile.TemporaryFile(prefix="ledger-serve-"))  # noqa: SIM115

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Starts the process and returns once it answers /healthz."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Starts the process without waiting for it (see `wait_ready`)."""
        args = [*ledger_command(), "--db", self.url, "serve", "--host", HOST, "--port", str(self.port)]
        args += ["--workers", str(self.workers), "--log-level", "warning"]
        # This checkout's code, whichever checkout the environment's package was installed from.
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        # Its own session: stopping it reaches the workers too, and nothing else.
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.process is not None, "not launched"
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"ledger serve exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ledger serve did not answer /healthz within {timeout:g} s:\n{self.output()}")

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def kill(self) -> None:
        """`kill -9` of the serving process (with one worker it is the server itself)."""
        assert self.process is not None, "not started"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._signal_group(signal.SIGKILL)  # workers of a killed supervisor, if any

    def stop(self, timeout: float = 15.0) -> None:
        """A graceful stop (SIGTERM), then SIGKILL for whatever is left of the group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._signal_group(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)  # the group this Server started (its own session)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def close(self) -> None:
        self.stop()
        self.log.close()


@contextmanager
def serving(url: str, *, workers: int = 1) -> Iterator[Server]:
    """A started server over the ledger at `url`, stopped afterwards."""
    with serving_many(url, 1, workers=workers) as servers:
        yield servers[0]


@contextmanager
def serving_many(url: str, count: int, *, workers: int = 1) -> Iterator[list[Server]]:
    """`count` servers over the one ledger at `url`, started side by side."""
    servers = [Server(url, workers=workers) for _ in range(count)]
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.close()


@dataclass(frozen=True)
class Tokens:
    users: dict[str, uuid.UUID]
    tokens: dict[str, str]

    def headers(self, role: str = "superadmin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}


def tokens_for(ledger: Ledger) -> Tokens:
    """The harness's domains, users and a token per role (tests/adapters/http/api.py)."""
    users, tokens, _ = populate(ledger)
    return Tokens(users, tokens)


@contextmanager
def populated(url: str) -> Iterator[tuple[Ledger, Tokens]]:
    """The ledger at `url` opened in-process, with the harness's users and tokens."""
    with open_ledger(url) as ledger:
        yield ledger, tokens_for(ledger)
