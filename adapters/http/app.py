"""The HTTP API: `create_app(url)` returns the ASGI app over one ledger (issue 13).

Every route is a plain (sync) function, so FastAPI runs it on a worker thread: the store
and the read models are synchronous and never run on the event loop. The worker threads
are as many as the connection pools hold (`LEDGER_HTTP_THREADS`, default 15: the event
store's PostgreSQL pool and SQLAlchemy's read-model pool both open at most 5 + 10), so
requests queue for a thread rather than for a connection inside one.
"""

from __future__ import annotations

import copy
import gc
import os
import signal
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, ClassVar

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders

from adapters.bootstrap import Ledger, group_commit_wanted, open_ledger
from adapters.http import problems, schema
from adapters.http.auth import REQUEST_ID_HEADER, authenticate_request, caller_request_id, presented_token
from adapters.http.calls import UNTAGGED
from adapters.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from adapters.http.idempotency import MAX_KEY_LENGTH, REFUSED, IdempotentResponses
from adapters.http.methods import HeadAsGet
from adapters.http.paths import EncodedSlashes
from adapters.http.routes import ROUTERS
from adapters.http.times import LedgerJSONResponse
from domain.errors import ConfigurationError, InsufficientPermission, LedgerError

DEFAULT_THREADS = 15
API_PREFIX = "/v1"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app(
    url: str | None = None,
    *,
    ledger: Ledger | None = None,
    timezone: str | None = None,
    group_commit: bool | None = None,
    server_process: bool = False,
) -> FastAPI:
    """The API over the ledger at `url` (default: $LEDGER_DATABASE_URL, else the SQLite
    file), opened when the app starts and closed when it stops; or over `ledger`, which
    the caller keeps and closes. A ledger it opens commits concurrent requests' appends
    together (`group_commit`, default: $LEDGER_GROUP_COMMIT, else on). `server_process`:
    the process is this app's alone (`ledger serve`), so it may tune process-wide
    settings (the garbage collector, see `_settle_heap`)."""
    grouped = group_commit_wanted(True) if group_commit is None else group_commit

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = http_threads()
        opened = (
            ledger
            if ledger is not None
            else await anyio.to_thread.run_sync(lambda: open_ledger(url, timezone, group_commit=grouped))
        )
        app.state.ledger = opened
        app.state.idempotent_responses = await anyio.to_thread.run_sync(
            lambda: IdempotentResponses(opened.read_models, opened.app.erased_after)
        )
        app.state.http_metrics = _HttpMetrics.of(opened)
        if server_process:
            _settle_heap()
        try:
            yield
        finally:
            if ledger is None:
                opened.close()

    app = FastAPI(
        title="policy-ledger",
        version="1",
        summary="An event-sourced ledger of compute resource policies, keypairs, users, domains and groups.",
        lifespan=lifespan,
        default_response_class=LedgerJSONResponse,
    )
    problems.install(app)
    app.router.routes.extend(_API.routes)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["operations"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["operations"], responses=problems.responses(503))
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["operations"],
        response_class=PlainTextResponse,
        responses=problems.responses(400, 401, 403),
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(HeadAsGet)  # innermost: the metrics still see HEAD
    app.add_middleware(_MeasuredRequests)
    app.add_middleware(EncodedSlashes)  # added last: it runs first, before routing
    return app


def _api_routes() -> APIRouter:
    api = APIRouter(default_response_class=LedgerJSONResponse)
    for router in ROUTERS:
        api.include_router(router, prefix=API_PREFIX)
    return api


# The /v1 routes, included once per process and shared by every app: FastAPI derives an
# included route's handler (its parameters' validators) on the first request that reaches
# it and keeps it in the inclusion, ~0.3 s per app of work that depends on the code alone.
_API = _api_routes()

METRICS = "metrics"  # the READS resource of /metrics


def healthz() -> dict[str, str]:
    """The process is up (it says nothing of the store: see /readyz)."""
    return {"status": "ok"}


def readyz(request: Request) -> JSONResponse:
    """The store answers, and how far behind each read model is (events not yet applied)."""
    ledger: Ledger = request.app.state.ledger
    try:
        # A master key rotated away by another process refuses nearly every read and write
        # of this one (personal values no longer open): it is not ready until restarted.
        ledger.app.keys.confirm_master()
        statuses = ledger.runner.status()
    except ConfigurationError as exc:
        return problems.problem(503, exc.code, exc.message)
    except LedgerError as exc:
        return problems.ledger_problem(exc)
    except Exception as exc:  # the store's driver: unreachable is not ready
        return problems.problem(503, "ledger_unavailable", f"event store unreachable: {type(exc).__name__}")
    # `lag`: the read models this server keeps current. Others in the database (another
    # time zone's usage model) catch up only when a process of theirs reads them: their
    # lag grows meanwhile, and a monitor alerting on `lag` must not take it for this one's.
    kept = {projection.stable_name for projection in ledger.runner.projections}
    lag = {s.name: s.lag for s in statuses if s.name in kept}
    on_demand = {s.name: s.lag for s in statuses if s.name not in kept}
    stalled = {s.name: s.stall.position for s in statuses if s.stall is not None}
    head = statuses[0].head if statuses else 0
    return JSONResponse({"status": "ready", "head": head, "lag": lag, "on_demand_lag": on_demand, "stalled": stalled})


def metrics(request: Request, presented: Annotated[str, Depends(presented_token)]) -> PlainTextResponse:
    """Prometheus exposition: this process's action metrics and HTTP request metrics, for a
    superadmin's or the platform's token (their labels name every domain that acted)."""
    caller = authenticate_request(request, presented)
    if caller.scope(METRICS) is None:
        raise InsufficientPermission(actor=f"role {caller.role.value}", operation="read", entity="the metrics")
    ledger: Ledger = request.app.state.ledger
    return PlainTextResponse(ledger.metrics.exposition(every_process=True), media_type="text/plain; version=0.0.4")


class _HttpMetrics:
    """The HTTP metrics of one registry: registered once, however many apps a ledger serves."""

    _of: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, _HttpMetrics]] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, ledger: Ledger) -> _HttpMetrics:
        registry = ledger.metrics.registry
        found = cls._of.get(registry)
        if found is None:
            found = cls._of[registry] = cls(registry)
        return found

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status")
        self.count = Counter("ledger_http_requests", "HTTP requests answered", labels, registry=registry)
        self.duration = Histogram(
            "ledger_http_request_duration_sec", "HTTP request duration, in seconds", labels, registry=registry
        )


class _MeasuredRequests:
    """Counts and times every request by its route template (never its raw path: ids would
    make a label per entity), and answers `X-Request-ID` once the caller is known: the id
    given, or the one the ledger made, which every event and the audit record of the
    request carry (a platform that sent none finds its request's record by it; a refusal's
    answer carries it too). An Idempotency-Key replay keeps the first request's, whose
    events they are. A 500 is answered outside this (Starlette's error middleware):
    `on_unexpected` names it."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                request_id = caller_request_id(scope.get("state", {}))
                headers = MutableHeaders(scope=message)
                if request_id is not None and REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            measured = getattr(getattr(scope.get("app"), "state", None), "http_metrics", None)
            if measured is not None:
                # A route of an included router knows its path without the router's prefix.
                path = getattr(scope.get("route"), "path", None) or _plain_route_path(scope)
                prefix = API_PREFIX if scope["path"].startswith(API_PREFIX + "/") else ""
                route = "unmatched" if path is None else f"{prefix}{path}"
                labels = (scope["method"], route, str(status))
                measured.count.labels(*labels).inc()
                measured.duration.labels(*labels).observe(time.perf_counter() - began)


def _plain_route_path(scope: Scope) -> str | None:
    """The template of a matched route FastAPI does not name in the scope (the document and
    its pages: `/openapi.json`, `/docs`), found by its endpoint; None when nothing matched."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    for route in getattr(scope.get("app"), "routes", ()):
        if getattr(route, "endpoint", None) is endpoint:
            path: str | None = getattr(route, "path", None)
            return path
    return None


def http_threads() -> int:
    raw = os.environ.get("LEDGER_HTTP_THREADS", str(DEFAULT_THREADS))
    if not raw.isdigit() or not 1 <= int(raw) <= 1024:
        raise ConfigurationError(f"LEDGER_HTTP_THREADS: expected a number of threads from 1 to 1024, got {raw!r:.40}")
    return int(raw)


# The document follows from the code alone (every app `create_app` makes has the same
# routes), and building it takes ~0.6 s: a process builds it once, and each app gets a
# copy of its own, as FastAPI would have built it.
_DOCUMENT: list[dict[str, Any]] = []


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        if not _DOCUMENT:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.components)
            _no_validation_errors(document)
            _server_errors(document)
            _headers(document)
            _DOCUMENT.append(document)
        app.openapi_schema = orjson.loads(orjson.dumps(_DOCUMENT[0]))  # JSON already: a deep copy, fast
    return app.openapi_schema


_VALIDATION_ERROR = {"$ref": "#/components/schemas/HTTPValidationError"}


def _no_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 `HTTPValidationError` on every operation with parameters,
    which this API never sends: an invalid path, query or body value is a 400 problem
    (`problems.install`). The document says what is sent."""
    for operations in document["paths"].values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            generated = answers.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
            if generated == _VALIDATION_ERROR:
                del answers["422"]
                answers.setdefault("400", problems.responses(400)[400])
    for name in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(name, None)


def _server_errors(document: dict[str, Any]) -> None:
    """Any route of the API reads stored events, and one that no longer decodes (altered or
    cut behind the ledger's back) is a 500 `ledger_damaged_event` pointing to `ledger
    verify`, which no retry mends; anything unexpected is a 500 `ledger_internal`. Both
    are problem documents, listed on every operation so that a client expects the shape."""
    answer = problems.responses(500)[500]
    answer["description"] = (
        "A stored event cannot be read (code `ledger_damaged_event`: run `ledger verify`, which names it; "
        "a retry does not mend it), or an unexpected error (`ledger_internal`, logged by the server)."
    )
    for path, operations in document["paths"].items():
        if path.startswith(API_PREFIX + "/"):
            for operation in operations.values():
                operation.get("responses", {}).setdefault("500", copy.deepcopy(answer))


def _header(name: str, description: str, **string: Any) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string", **string}}  # fmt: skip


# The headers the routes read from the request itself (`adapters/http/calls.py`), so that
# FastAPI does not see them: documented here, for a client generated from the document.
_REQUEST_ID = _header(REQUEST_ID_HEADER, "Stored on every event the request appends (default: a new UUID).",
                      maxLength=256)  # fmt: skip
_IF_MATCH = _header(
    "If-Match",
    'The version the change is for, as an `ETag` gave it ("7"; of a list, "7", "8", any): 412 when not current.',
)
_IDEMPOTENCY_KEY = _header(
    IDEMPOTENCY_HEADER,
    "A retry with the same key and body gets the first response (Idempotent-Replayed: true), never a second effect.",
    minLength=1,
    maxLength=MAX_KEY_LENGTH,
)
_ANSWER_HEADERS = {
    REQUEST_ID_HEADER: {
        "description": "The request's id, as given or made: its events' and audit record's.",
        "schema": {"type": "string"},
    },
    "ETag": {"description": "The entity's version after the command.", "schema": {"type": "string"}},
    "Ledger-Position": {
        "description": "The position of the command's last event: a read's `min_position`.",
        "schema": {"type": "string"},
    },
}

_LOCATION = {"description": "The path of the resource the request created.", "schema": {"type": "string"}}


def _headers(document: dict[str, Any]) -> None:
    """A write (an operation documenting 412) takes `X-Request-ID` and `If-Match`, a POST
    one `Idempotency-Key` too (unless it refuses one), and its answers carry `ETag` (unless
    it names no one entity) and `Ledger-Position` (a create's, `Location` too)."""
    for operations in document["paths"].values():
        for method, operation in operations.items():
            refuses_key = operation.pop(REFUSED, False)
            untagged = operation.pop(UNTAGGED, False)
            answers = operation.get("responses", {})
            if "412" not in answers:
                continue
            parameters = operation.setdefault("parameters", [])
            parameters += [copy.deepcopy(_REQUEST_ID), copy.deepcopy(_IF_MATCH)]
            if method == "post" and not refuses_key:
                parameters.append(copy.deepcopy(_IDEMPOTENCY_KEY))
            for status, answer in answers.items():
                if status.startswith("2"):
                    answer["headers"] = copy.deepcopy(_ANSWER_HEADERS)
                    if untagged:
                        del answer["headers"]["ETag"]
                if status == "201":
                    answer["headers"]["Location"] = copy.deepcopy(_LOCATION)


def app_from_environment() -> FastAPI:
    """The app `ledger serve` runs in each worker: the ledger at $LEDGER_DATABASE_URL."""
    _stop_when_orphaned(os.environ.get(SUPERVISOR_VARIABLE))
    return create_app(os.environ.get("LEDGER_DATABASE_URL"), server_process=True)


# The pid of `ledger serve --workers N`, which its workers watch (set by adapters.cli.serve).
SUPERVISOR_VARIABLE = "LEDGER_SERVE_SUPERVISOR"
ORPHAN_CHECK_SECONDS = 0.5


def _stop_when_orphaned(supervisor: str | None) -> None:
    """In a worker of `--workers N`: SIGTERM to itself (uvicorn's graceful stop) once its
    supervisor is gone. uvicorn's workers do not notice it: after a `kill -9` of the server
    (or the OOM killer) they went on serving the code they had loaded, for good, and held
    the port, so the restarted server could not listen."""
    if supervisor is None:
        return  # not a worker of `--workers N` (one-process serving, another ASGI server)
    # A worker whose supervisor died while it was still starting (a loaded machine) is
    # orphaned already: the watch below stops it at once instead of never.

    def watch() -> None:
        while str(os.getppid()) == supervisor:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ledger-orphan-watch", daemon=True).start()


GC_YOUNG_THRESHOLD = 10_000


def _settle_heap() -> None:
    """Once the ledger is open: everything allocated so far (modules, schemas, routes, the
    ledger's tables and caches) lives as long as the process, so it is moved out of the
    collector's reach (`gc.freeze`), and young collections run less often. Measured with
    16 HTTP clients on one worker (bench/http_api.py): full collections walking that heap
    stalled every thread, p99 91 ms; settled, p99 36-43 ms. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    _threshold, older, oldest = gc.get_threshold()
    gc.set_threshold(max(_threshold, GC_YOUNG_THRESHOLD), older, oldest)
