"""`ledger serve`: the HTTP API under uvicorn (issue 13).

Each worker process opens the ledger itself (`--db`, else $LEDGER_DATABASE_URL), so
several workers, and several `ledger serve` processes, share one PostgreSQL ledger
(or one SQLite file on one machine) and answer as one service.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from adapters.cli.app import state_of

URL_VARIABLE = "LEDGER_DATABASE_URL"  # adapters.store.config's, without loading the store at start-up


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
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
        str, typer.Option("--log-level", metavar="LEVEL", help="uvicorn's log level: warning, info, debug.")
    ] = "info",
) -> None:
    """Serve the HTTP API: every request needs a bearer token (`ledger token issue`).

    OpenAPI at /openapi.json and /docs; /healthz, /readyz and /metrics for operators."""
    import uvicorn

    state = state_of(ctx)
    if state.db is not None:
        os.environ[URL_VARIABLE] = state.db  # the workers are new processes: they read it there
    _check_settings(state.db)
    uvicorn.run(
        "adapters.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=10,
    )


def _check_settings(url: str | None) -> None:
    """Opens the ledger once as each worker will, so that what a worker would refuse at
    start (a missing or wrong master key, a bad URL or LEDGER_TIMEZONE, another
    application's file, a bad LEDGER_HTTP_THREADS) is one error line and exit 1: uvicorn
    reports a failed start as a traceback of each worker and exits 3."""
    from adapters.bootstrap import open_ledger
    from adapters.http.app import http_threads

    http_threads()
    with open_ledger(url):  # None: $LEDGER_DATABASE_URL, whose refusal names the variable
        pass
