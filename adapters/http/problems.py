"""Errors as RFC 9457 problem documents (`application/problem+json`).

Every refusal carries the domain error's `code` and its status from the error hierarchy;
a field-level refusal names the field. Nothing from a library reaches a client: request
parsing errors become the ledger's own `ledger_invalid_parameters`, anything unexpected a
bare `ledger_internal` (the traceback goes to the log, not the client).
"""

from __future__ import annotations

import copy
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.http.auth import REQUEST_ID_HEADER, authenticate_request, caller_request_id, token_of
from adapters.http.calls import LedgerRoute
from adapters.http.methods import allowed_methods
from domain.entity import entity_not_found
from domain.errors import (
    AuthenticationFailed,
    ForeignEntity,
    IdempotentRequestApplied,
    InvalidAPIParameters,
    LedgerError,
    MissingToken,
    ObjectNotFound,
)
from domain.shown import shown

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = 1


class Refusal(BaseModel):
    """One refused field of an input."""

    field: str | None
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem document, with the ledger's error code."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    # What a refusal weighed, as members a platform can act on (not only in `detail`): the
    # limit, its scope and whose it is (quota_exceeded), or the host and the permission
    # no level grants (vfolder_host_not_allowed).
    limit: str | None = None
    scope: str | None = None
    scope_id: str | None = None
    host: str | None = None
    permission: str | None = None
    # Every refused field when an input has more than one (the first is `field`), so a
    # client mends them all at once.
    errors: list[Refusal] | None = None


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    weighed: dict[str, str] | None = None,
    errors: list[Refusal] | None = None,
) -> JSONResponse:
    if status == 503:
        # Every 503 is worth retrying (the store, a stalled or a lagging read model, as the
        # README promises): said here, so that no new 503 can be left without it.
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    body = Problem(
        type=f"urn:policy-ledger:error:{code}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=code,
        field=field,
        errors=errors,
        **(weighed or {}),
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM)


def ledger_problem(exc: LedgerError) -> JSONResponse:
    if isinstance(exc, ForeignEntity):
        # Exactly what an unknown entity gets: whether it exists is not the caller's to learn.
        exc = not_found(exc.entity_type, exc.entity_id)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationFailed | MissingToken):
        headers["WWW-Authenticate"] = 'Bearer realm="policy-ledger"'
    status = exc.status if 400 <= exc.status < 600 else 500
    errors = None
    if isinstance(exc, InvalidAPIParameters) and exc.others:
        errors = [Refusal(field=each.field, reason=each.reason) for each in exc.every()]
    return problem(
        status, exc.code, exc.message, field=exc.field, headers=headers, weighed=exc.weighed(), errors=errors
    )


def _refusal(error: Any) -> LedgerError:
    """One of FastAPI's request validation errors as the ledger's own: a domain parser's
    refusal of a path or query value as it is, else pydantic's message under the field."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, LedgerError):
        return cause
    where = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "header", "body")]
    reason = _in_ledger_words(error) or str(error.get("msg", "is invalid"))
    return InvalidAPIParameters(reason, field=".".join(where)[:120] or None)


def _in_ledger_words(error: Any) -> str | None:
    """A query or path value's refusal as the ledger's parsers word the same refusal of a
    body's value (`must be at least 1, got 0`), not pydantic's (`Input should be greater
    than or equal to 1`); None for a kind not worded here."""
    kind, ctx, given = error.get("type"), error.get("ctx") or {}, error.get("input")
    got = f", got {given}" if isinstance(given, str) and len(given) <= 20 and given.lstrip("-").isdigit() else ""
    words = {
        "missing": "is required",
        "int_parsing": f"expected an integer, got {shown(given)}",
        "int_from_float": f"expected an integer, got {shown(given)}",
        "bool_parsing": f"expected true or false, got {shown(given)}",
        "uuid_parsing": f"{shown(given)} is not a UUID",
        "greater_than_equal": f"must be at least {ctx.get('ge')}{got}",
        "greater_than": f"must be more than {ctx.get('gt')}{got}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "string_too_short": f"must be at least {ctx.get('min_length')} characters",
        "literal_error": f"{shown(given)} is not one of {ctx.get('expected')}",
        "enum": f"{shown(given)} is not one of {ctx.get('expected')}",
    }
    return words.get(kind) if isinstance(kind, str) else None


def not_found(entity_type: str, entity_id: str) -> ObjectNotFound:
    """The routes' not-found: the domain's own error for the entity, in the same words."""
    return entity_not_found(entity_type, entity_id)


PLUS_HINT = "a '+' in a URL query reads as a space: send it as %2B"


def _plus_explained(request: Request, exc: LedgerError) -> LedgerError:
    """A refused query value that was typed with a `+` (a time's offset, as a time is
    written) reached the route with a space there; the refusal says so, else the platform
    is left to wonder why `...T00:00:00+09:00` is no time."""
    field = exc.field if isinstance(exc, InvalidAPIParameters) else None
    if field is None or PLUS_HINT in exc.message:
        return exc
    for pair in request.url.query.split("&"):
        name, _, value = pair.partition("=")
        if "+" in value and unquote_plus(name) == field:
            exc.message = f"{exc.message} ({PLUS_HINT})"
            break
    return exc


def install(app: FastAPI) -> None:
    """Registers the handlers that turn every error into a problem document."""

    async def on_ledger_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerError)
        if isinstance(exc, IdempotentRequestApplied):
            return problem(exc.status, exc.code, exc.message)
        return ledger_problem(_plus_explained(request, exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if isinstance(request.scope.get("route"), LedgerRoute):
            # FastAPI checks a query's and a path's values before the route reads the token:
            # read it first, so an unknown token is a 401 and a caller's 400 names its request id.
            try:
                await run_in_threadpool(authenticate_request, request, await token_of(request))
            except LedgerError as refused:
                return ledger_problem(refused)
        refusals = [_refusal(error) for error in exc.errors()[: InvalidAPIParameters.MOST_NAMED]]
        if len(refusals) < 2 or not isinstance(refusals[0], InvalidAPIParameters):
            return ledger_problem(
                _plus_explained(request, refusals[0]) if refusals else InvalidAPIParameters("is invalid")
            )
        return ledger_problem(InvalidAPIParameters.joined(r for r in refusals if isinstance(r, InvalidAPIParameters)))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "ledger_route_not_found", 405: "ledger_method_not_allowed"}.get(exc.status_code, "ledger_http")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # the router names only the first route matching the path
            headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        return problem(exc.status_code, code, str(exc.detail), headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Answered by Starlette's outermost middleware, past the one naming the request id.
        request_id = caller_request_id(request.scope.get("state", {}))
        log.error("unexpected error on %s %s (request %s)", request.method, request.url.path, request_id, exc_info=exc)
        headers = None if request_id is None else {REQUEST_ID_HEADER: request_id}
        return problem(500, "ledger_internal", "internal error (logged by the server)", headers=headers)

    app.add_exception_handler(LedgerError, on_ledger_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of the problems a route may answer with, with the
    headers that come with a status (`problem` sends Retry-After on every 503)."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM: {"schema": Problem.model_json_schema()}},
            **({"headers": copy.deepcopy(_STATUS_HEADERS[status])} if status in _STATUS_HEADERS else {}),
        }
        for status in statuses
    }


_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The scheme to send: Bearer.", "schema": {"type": "string"}}},
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying: every 503 is worth retrying.",
            "schema": {"type": "string"},
        }
    },
}
