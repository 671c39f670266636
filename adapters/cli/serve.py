"""`ledger serve`: the HTTP API under uvicorn (issue 13).

Each worker process opens the ledger itself (`--db`, else $LEDGER_DATABASE_URL), so
several workers, and several `ledger serve` processes, share one PostgreSQL ledger
(or one SQLite file on one machine) and answer as one service.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.cli.app import Terminated, state_of

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

URL_VARIABLE = "LEDGER_DATABASE_URL"  # adapters.store.config's, without loading the store at start-up
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
BACKLOG = 2048  # uvicorn's default --backlog


class LogLevel(enum.Enum):
    """uvicorn's log levels (`uvicorn.config.LOG_LEVELS`, spelled here so that declaring the
    option loads no uvicorn; a test keeps the two equal): any other was uvicorn's KeyError,
    an `internal error`, once the server was starting."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", metavar="ADDRESS", help="Address to listen on (a name: each address it resolves to)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="TCP port (0: any free one).")
    ] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            max=64,
            help="Number of worker processes (N), each opening the ledger with its own connections.",
        ),
    ] = 1,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            case_sensitive=False,
            help="uvicorn's log level: critical, error, warning, info, debug or trace.",
        ),
    ] = LogLevel.INFO,
) -> None:
    """Serve the HTTP API: every request needs a bearer token (`ledger token issue`).

    OpenAPI at /openapi.json and /docs; /healthz, /readyz and /metrics for operators."""
    import uvicorn

    if not host.strip():  # uvicorn reads "" as every interface: `--host "$UNSET"` would expose the API
        raise typer.BadParameter("the address is empty (0.0.0.0 listens on every interface)", param_hint="'--host'")
    state = state_of(ctx)
    if state.db is not None:
        os.environ[URL_VARIABLE] = state.db  # the workers are new processes: they read it there
    _check_settings(state.db)
    with ExitStack() as held:
        sockets = [held.enter_context(sock) for sock in _listening(host, port)]  # closed when serving ends
        held.enter_context(_metrics_shared_by(workers))
        config = uvicorn.Config(
            "adapters.http.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level.value,
            timeout_graceful_shutdown=10,
        )
        _serve(config, sockets)


def _listening(host: str, port: int) -> list[socket.socket]:
    """The listening sockets, bound here and held (no other process can take the port
    between a check and uvicorn's bind), as uvicorn binds one for several workers. uvicorn
    bound it itself: a port in use or an address not of this machine was its log line and
    exit 3; here it is one usage error naming the option at fault.

    A name is bound at every address it resolves to, on one port: `localhost` is both
    127.0.0.1 and ::1 where the machine says so, and a client that tries ::1 first (Node
    does) was refused where uvicorn bound the first address only."""
    addresses = _addresses(host, port)
    for attempt in range(_PORT_ATTEMPTS):
        sockets: list[socket.socket] = []
        try:
            for family, address in addresses:
                if sockets:  # the others on the first one's port (`--port 0`: the one it took)
                    address = (address[0], sockets[0].getsockname()[1], *address[2:])
                try:
                    sockets.append(_bound(family, address, several=len(addresses) > 1))
                except OSError as exc:
                    if sockets and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        continue  # the name has an address of a family this machine cannot bind
                    raise
            return sockets
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if port == 0 and sockets and exc.errno == errno.EADDRINUSE and attempt < _PORT_ATTEMPTS - 1:
                continue  # the port the first address took is taken at another: pick again
            option = "--port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host"
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise typer.BadParameter(
                f"cannot listen on {where}: {exc.strerror or exc}", param_hint=f"'{option}'"
            ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


_PORT_ATTEMPTS = 5


def _addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    """Where to listen: an address as given (as uvicorn's Config.bind_socket takes it), or
    every address a name resolves to, once each, in the resolver's order."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    try:
        found = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except OSError:
        # Not resolved: bound as given, so that the error is the one binding it says.
        return [(socket.AF_INET, (host, port))]
    addresses: list[tuple[socket.AddressFamily, tuple[str, int]]] = []
    for family, _, _, _, address in found:
        if family in (socket.AF_INET, socket.AF_INET6) and all(address[0] != a[0] for _, a in addresses):
            addresses.append((family, (str(address[0]), port)))
    return addresses or [(socket.AF_INET, (host, port))]


def _bound(family: socket.AddressFamily, address: tuple[str, int], several: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
        if several and family == socket.AF_INET6:
            # Beside an IPv4 socket on the same port: this one takes IPv6 alone.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # listening, the port is held even from another SO_REUSEADDR bind
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # handed to the workers, as uvicorn's own
    return sock


def _serve(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    """uvicorn.run's serving, on the sockets bound here: its supervisor hands them to each
    worker; one worker serves in this process. A server that did not start exits 3, as
    uvicorn.run's."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    for sock in sockets:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
        # uvicorn says it when it binds (`--port 0`: which port it took); it does not bind here.
        logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port)
    if config.workers > 1:
        from adapters.http.app import SUPERVISOR_VARIABLE

        os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())  # the workers stop once this process is gone
        try:
            Multiprocess(config, sockets=sockets).run()
        finally:
            del os.environ[SUPERVISOR_VARIABLE]
        return
    server = uvicorn.Server(config)
    # As uvicorn.run: Ctrl-C is how a server is stopped, and so is SIGTERM (as with --workers
    # N, where uvicorn's supervisor exits 0): uvicorn shuts down gracefully, then raises the
    # signal again for the handler it found, which for SIGTERM was the default one, death.
    previous = signal.signal(signal.SIGTERM, _sigterm_raises)
    try:
        with suppress(KeyboardInterrupt):
            server.run(sockets=sockets)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise typer.Exit(STARTUP_FAILURE)


def _sigterm_raises(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def _metrics_shared_by(workers: int) -> Iterator[None]:
    """Several workers keep their metrics in one folder of prometheus_client's multiprocess
    mode, so that `/metrics`, answered by whichever worker takes the scrape, sums them all
    (one worker's own counts would swing between scrapes, which Prometheus reads as
    counter resets). The folder is the run's own, made empty and removed after; one the
    operator set in PROMETHEUS_MULTIPROC_DIR is theirs and left as it is. The variable is
    read when a worker first imports prometheus_client, so it is set before they start."""
    if workers == 1 or MULTIPROCESS_VARIABLE in os.environ:
        yield
        return
    _remove_orphaned_metrics_folders(tempfile.gettempdir())
    folder = tempfile.mkdtemp(prefix=f"{METRICS_FOLDER_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROCESS_VARIABLE] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_VARIABLE]
        shutil.rmtree(folder, ignore_errors=True)


METRICS_FOLDER_PREFIX = "ledger-metrics-"


def _remove_orphaned_metrics_folders(parent: str) -> None:
    """The metrics folders of servers that are gone: one killed with -9 (or by the OOM
    killer) never ran the removal above. Each folder is named after its server's pid; a
    folder whose server still runs, or named otherwise, is left alone."""
    with suppress(OSError):  # an unreadable temporary folder: nothing to tidy
        for entry in os.scandir(parent):
            pid, _, _rest = entry.name.removeprefix(METRICS_FOLDER_PREFIX).partition("-")
            if entry.name.startswith(METRICS_FOLDER_PREFIX) and pid.isdigit() and not _running(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _check_settings(url: str | None) -> None:
    """Opens the ledger once as each worker will, so that what a worker would refuse at
    start (a missing or wrong master key, a bad URL or LEDGER_TIMEZONE, another
    application's file, a bad LEDGER_HTTP_THREADS) is one error line and exit 1: uvicorn
    reports a failed start as a traceback of each worker and exits 3."""
    from adapters.bootstrap import open_ledger
    from adapters.http.app import http_threads
    from domain.errors import InvalidAPIParameters

    http_threads()
    _check_metrics_folder()
    with open_ledger(url) as ledger:  # None: $LEDGER_DATABASE_URL, whose refusal names the variable
        if ledger.config.kind == "sqlite" and ledger.config.sqlite_path is None:
            # Each worker would hold a ledger of its own, gone when it stops, and no
            # `ledger token issue` (another process) could reach it to make a bearer token.
            raise InvalidAPIParameters(
                "serve needs a ledger that outlives this process: an in-memory ledger would be each "
                "worker's own, and no bearer token could be issued for it; give a file or a PostgreSQL URL",
                field="url",
            )


def _check_metrics_folder() -> None:
    """The operator's PROMETHEUS_MULTIPROC_DIR must be a folder the server can write to:
    prometheus_client opens its files there at a metric's first use, so a missing one
    (a typo, a tmpfs not mounted) let the server start, then logged a traceback on every
    request and answered /metrics with 500."""
    from domain.errors import ConfigurationError

    folder = os.environ.get(MULTIPROCESS_VARIABLE)
    if folder is None:
        return
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"{MULTIPROCESS_VARIABLE}: {folder!r} is not a folder this process can write to "
            "(the metrics of every worker are kept there): make it, or unset the variable"
        )
