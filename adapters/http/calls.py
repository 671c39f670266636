"""One request's way into the ledger: actions run as its caller, with HTTP's semantics.

`Call.command` is the one write path every route takes: `If-Match` (412 when stale),
`Idempotency-Key` on POST (the first response again, never a second effect), then `ETag`
and `Ledger-Position` on the answer. `Call.wait_for` is read-your-writes across
processes: a read that names `min_position` waits until the read models reach it.
Everything here runs in a worker thread (sync routes): the store is synchronous.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import threading
import time
import types
import typing
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from adapters.bootstrap import Ledger
from adapters.http.auth import (
    REQUEST_ID_HEADER,
    Caller,
    authenticate_request,
    ledger_of,
    presented_token,
    single_header,
)
from adapters.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from adapters.http.idempotency import IdempotentResponses, StoredResponse, request_hash
from adapters.http.times import LedgerJSONResponse
from adapters.json_times import utc_z
from adapters.store.scope import IdempotencyClaim, WriteScope, no_current_version, stale, write_scope
from domain.actions import ActionProcessor, BaseAction, BaseActionResult
from domain.entity import Entity
from domain.errors import InvalidAPIParameters, LedgerError, ReadModelBehind, RequestTooLarge
from domain.idempotency import IdempotentRequest
from domain.parsers import INT64_MAX, Parser, json_float, parse_bool, parse_int

R = TypeVar("R", bound=BaseActionResult)
T = TypeVar("T")

POSITION_HEADER = "Ledger-Position"
MAX_WAIT = 5.0  # seconds a read waits for `min_position`
_loops = threading.local()


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Runs an action's coroutine to its end on this worker thread's own event loop (the
    services are coroutines for the processor's sake; they never wait on I/O themselves)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None:
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


class Call:
    """One request. `authenticate` runs first on the route's worker thread (`LedgerRoute`):
    the token's stream is read there, not on the event loop nor on a thread of its own."""

    def __init__(self, request: Request, presented: str) -> None:
        self.request = request
        self._presented = presented
        self._caller: Caller | None = None
        self.ledger: Ledger = ledger_of(request)

    def authenticate(self) -> Caller:
        if self._caller is None:
            caller = authenticate_request(self.request, self._presented)
            # Asked once the caller is known, as a query's parameters are.
            for name in (REQUEST_ID_HEADER, IDEMPOTENCY_HEADER):
                single_header(self.request, name)
            self._caller = caller
        return self._caller

    @property
    def caller(self) -> Caller:
        if self._caller is None:
            raise RuntimeError("the request was not authenticated: its route must be a LedgerRoute")
        return self._caller

    def run(self, processor: ActionProcessor[Any, R], action: BaseAction) -> R:
        """Runs `action` as the caller (no HTTP semantics: queries that are actions)."""
        return run_coroutine(processor.wait_for_complete(action, self.caller.meta))

    def command(
        self,
        processor: ActionProcessor[Any, R],
        action: BaseAction | Callable[[], BaseAction],
        render: Callable[[R], Any],
        *,
        status: int = 200,
        entity: uuid.UUID | Callable[[R], uuid.UUID | None] | None = None,
        body: Any = None,
        warning: Callable[[Any], str | None] | None = None,
        created: Callable[[R], str] | None = None,
    ) -> Response:
        """Runs a command and answers `render(result)` with `status`, `ETag` (the version of
        `entity` after the command) and `Ledger-Position`; `warning(action)`, if any, is sent
        as a `Warning: 299` header (a deprecated field given); `created(result)`, the key of
        the resource a create made, as `Location` (its path under the collection posted to)."""
        method = self.request.method
        tagged = entity if isinstance(entity, uuid.UUID) else None
        expected, absent = self._if_match(tagged)
        claim, responses = self._claim(method, body)
        if claim is not None:
            first = self._first_response(responses, claim, self._recorded(claim))
            if first is not None:
                return _replayed(first)
        built = action() if callable(action) else action
        # Read before the command: an erasure committed after this may be in its response.
        before = self._head() if claim is not None else 0
        scope = WriteScope(expected=expected, idempotency=claim, tagged=tagged, absent=absent)
        try:
            with write_scope(scope):
                result = self.run(processor, built)
        except LedgerError as refused:
            # A twin request with this key committed first: the refusal this one met (the
            # record's conflict, or "duplicate name" from the twin's own effect) is not the
            # answer; the twin's response is.
            recorded = None if claim is None or claim.applied else self._recorded(claim)
            if claim is None or recorded is None:
                if refused.status not in _BEFORE_PRECONDITIONS:
                    # A precondition is evaluated before the method (RFC 9110 13.2.2): a stale
                    # If-Match on a delete of a policy in use is 412, not the in-use 409.
                    _check_unwritten(scope)
                raise
            first = self._first_response(responses, claim, recorded)
            assert first is not None  # a record exists: replay answers or raises
            return _replayed(first)
        if claim is not None and not claim.applied:
            # It appended nothing, so no record of its own met a twin's: a twin that committed
            # after this request checked the key (a schedule then finds the session RUNNING)
            # gave the first response, which this one must replay, not its own no-op answer.
            recorded = self._recorded(claim)
            if recorded is not None:
                first = self._first_response(responses, claim, recorded)
                assert first is not None  # a record exists: replay answers or raises
                return _replayed(first)
        _check_unwritten(scope)
        headers = {POSITION_HEADER: str(scope.position if scope.position is not None else self._head())}
        # Stored with the answer: a replay names the first request's id, its events'.
        headers[REQUEST_ID_HEADER] = str(self.caller.meta.request_id)
        note = None if warning is None else warning(built)
        if note is not None:
            # RFC 7234's warn-text is a quoted-string: quotes inside escaped, ASCII only.
            headers["Warning"] = "299 - " + json.dumps(note)
        if created is not None:
            # Without it, RFC 9110 (15.3.2) takes the collection posted to for what was created.
            headers["Location"] = f"{self.request.url.path.rstrip('/')}/{quote(created(result), safe='')}"
        entity_id = entity(result) if callable(entity) else entity
        if entity_id is not None:
            # Appended: the version it reached; else the one the command read and answers
            # with (read again afterwards, a later write's version would tag this body).
            version = scope.versions.get(entity_id, scope.loaded.get(entity_id))
            if version is None:
                version = self.version_of(entity_id)
            if version is not None:
                headers["ETag"] = entity_tag(version)
        # Compact, as every other answer of the API is rendered (Starlette's JSONResponse).
        body = utc_z(jsonable_encoder(render(result)))
        content = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        if claim is not None:
            responses.store(claim.key, claim.request_hash, StoredResponse(status, headers, content), before)
        return Response(content, status_code=status, headers=headers, media_type="application/json")

    def version_before(self, entity_id: Callable[[], uuid.UUID | None]) -> int | None:
        """The entity's version for a read's `ETag`, taken before the read model answers the
        body: the tag is then never newer than the body. Taken after, a write landing
        between the two reads gave a tag for a state the client never saw, and its
        If-Match let a change made on the older body overwrite that write."""
        try:
            stream = entity_id()
        except (ValueError, LedgerError):
            return None  # a malformed id: the read that follows refuses or misses it
        return None if stream is None else self.version_of(stream)

    def entity_response(self, data: Any, version: int | None) -> Response:
        """A read of one entity, with `version` (`version_before`) as `ETag` (for a later If-Match)."""
        headers = {} if version is None else {"ETag": entity_tag(version)}
        return json_response(data, headers=headers)

    def _claim(self, method: str, body: Any) -> tuple[IdempotencyClaim | None, IdempotentResponses]:
        responses: IdempotentResponses = self.request.app.state.idempotent_responses
        raw = self.request.headers.get(IDEMPOTENCY_HEADER)
        if raw is None or method != "POST":
            return None, responses
        key = responses.key_for(self.caller.identity, raw)
        path = self.request.url.path
        query = self.request.query_params.multi_items()
        return IdempotencyClaim(key, request_hash(method, path, body, query), method, path), responses

    def _first_response(
        self, responses: IdempotentResponses, claim: IdempotencyClaim, recorded: IdempotentRequest | None
    ) -> StoredResponse | None:
        # A stored response may hold values erased since: an erasure's clearing of them
        # that failed after it committed must have passed before one is served (else 503).
        self.ledger.app.finish_erasures()
        return responses.replay(claim.key, claim.request_hash, recorded)

    def _recorded(self, claim: IdempotencyClaim) -> IdempotentRequest | None:
        # Another process's erasure destroyed the key sealing request hashes: this one's
        # cached copy would open the recorded hash (a guess at an erased value tested by
        # 422 or not) and seal this request's own under the destroyed key.
        self.ledger.app.meet_erasures()
        found = self.ledger.app.get(claim.stream, Entity)
        return found if isinstance(found, IdempotentRequest) else None

    def _if_match(self, entity_id: uuid.UUID | None) -> tuple[dict[uuid.UUID, frozenset[int]], bool]:
        """The versions `If-Match` names for the command's entity (any of them may be the
        current one, RFC 9110 13.1.1), and whether one was sent for a command naming no
        existing entity (a create): no current version can match it, so it fails. Checked
        inside the command, after its permission check (so a caller learns nothing of an
        entity it may not see): on the aggregate it appends to, or, when it appends
        nothing, on the one it read (`_check_unwritten`). `*` asks only that the entity
        exist, which the command checks."""
        # Header lines given more than once are one list (RFC 9110 5.3).
        lines = self.request.headers.getlist("If-Match")
        raw = ", ".join(line.strip() for line in lines)
        if not lines:
            return {}, False
        versions = frozenset() if raw == "*" else parse_etag(raw)  # a malformed tag is 400 on every write
        if entity_id is None:
            return {}, True
        return ({} if raw == "*" else {entity_id: versions}), False

    def version_of(self, entity_id: uuid.UUID) -> int | None:
        """The entity's current version, read from the store (not a cached copy)."""
        found = self.ledger.app.get(entity_id, Entity)
        return None if found is None else found.version

    def _head(self) -> int:
        return self.ledger.app.recorder.max_notification_id() or 0

    def wait_for(self, min_position: int | None) -> None:
        """Returns once the read models have applied every event up to `min_position`
        (waiting at most 5 s, then 503 with Retry-After)."""
        if min_position is None:
            return
        deadline = time.monotonic() + MAX_WAIT
        while True:
            reached = self.ledger.runner.catch_up()
            if reached >= min_position:
                return
            if time.monotonic() >= deadline:
                raise ReadModelBehind(
                    f"min_position: the read models reached {reached}, not {min_position}, within {MAX_WAIT:g} s"
                )
            time.sleep(0.05)


# Refusals a request meets before its content is processed, which stand whatever its
# preconditions (RFC 9110 13.2.1); a 412 there would also tell a caller who may not see
# an entity that it exists.
_BEFORE_PRECONDITIONS = frozenset({401, 403, 404})


def _check_unwritten(scope: WriteScope) -> None:
    """A command that appended nothing to an entity `If-Match` named (a change to what it
    already held) still answers 412 when the version it read is not the one named. The
    version read is confirmed: a decision that writes nothing runs on fresh reads. An
    `If-Match` sent with a create fails even when the create appended nothing."""
    if scope.absent:
        raise no_current_version()
    for entity_id, expected in scope.expected.items():
        if entity_id in scope.versions:
            continue  # appended: checked before the append (`WriteScope.check`)
        read = scope.loaded.get(entity_id)
        if read is not None and read not in expected:
            raise stale(expected, read)


# An operation's `openapi_extra` member saying that its answer carries no `ETag` (a
# command of no one entity: a batch of workload facts): removed when the document is built.
UNTAGGED = "x-answer-untagged"


def entity_tag(version: int) -> str:
    """`"7"` for version 7: an entity tag is a quoted string (RFC 9110)."""
    return json.dumps(str(version))


def parse_etag(raw: str) -> frozenset[int]:
    """The versions of an `If-Match` list of entity tags: `"7"` (or weak `W/"7"`), or
    several, `"7", "8"`. Each one is read: a list that took only its first refused a
    change whose current version was named later in it."""
    versions = set()
    for each in raw.split(","):
        tag = each.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if not tag.isascii() or not tag.isdigit() or len(tag) > 18:
            raise InvalidAPIParameters('expected an entity tag like "7" (from an ETag header)', field="If-Match")
        versions.add(int(tag))
    return frozenset(versions)


def _replayed(first: StoredResponse) -> Response:
    headers = {**first.headers, "Idempotent-Replayed": "true"}
    return Response(first.body, status_code=first.status, headers=headers, media_type="application/json")


async def current_call(request: Request, presented: Annotated[str, Depends(presented_token)]) -> Call:
    # Async and without I/O: FastAPI runs it on the event loop, sparing a thread hop per request.
    return Call(request, presented)


class LedgerRoute(APIRoute):
    """A route whose endpoint authenticates its `Call` first, on the endpoint's own worker
    thread (the token read is I/O; one thread hop per request, not two), then refuses a
    query parameter the route does not take."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        known: dict[str, bool] = {}  # query parameter -> whether it takes many values
        forms: dict[str, Parser] = {}  # an integer or boolean query parameter -> the domain's parser of it
        super().__init__(path, _authenticating(endpoint, known, forms), **kwargs)
        known.update(_query_names(self.dependant))
        forms.update(_query_forms(self.dependant))
        if self.methods is not None and self.methods & {"GET", "HEAD"}:
            known.setdefault(READ_POSITION, False)  # read-your-writes asked of every read, as the README says


READ_POSITION = "min_position"


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """The query parameters a route and its dependencies read, as a client names them, and
    whether each takes many values (a list)."""
    names = {param.alias: _takes_many(param.field_info.annotation) for param in dependant.query_params}
    for inner in dependant.dependencies:
        names.update(_query_names(inner))
    return names


def _query_forms(dependant: Dependant) -> dict[str, Parser]:
    """The integer and boolean query parameters of a route and its dependencies, each with
    the domain's parser of its kind (what a body's and the CLI's values go through)."""
    forms = {param.alias: form for param in dependant.query_params if (form := _form(param.field_info.annotation))}
    for inner in dependant.dependencies:
        forms.update(_query_forms(inner))
    return forms


def _form(annotation: Any) -> Parser | None:
    kinds = (
        set(typing.get_args(annotation)) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else set()
    )
    kinds = kinds or {annotation}
    if bool in kinds:
        return parse_bool
    if int in kinds:
        return _integer_form
    return None


def _integer_form(raw: Any, field: str) -> int:
    """The form of an integer as the domain reads one (its bounds are the route's): FastAPI
    also took `1.0` and `1_0` (as 10)."""
    return parse_int(raw, field, minimum=-INT64_MAX)


def _takes_many(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_takes_many(each) for each in typing.get_args(annotation))
    return origin in (list, set, frozenset, tuple)


def _only_known_parameters(request: Request, known: dict[str, bool], forms: dict[str, Parser]) -> None:
    """A body's unknown field is refused; so is a query's: ignored, a typo of a filter
    (`?stauts=PENDING`) answered every session as if they were the filtered ones. A value
    given twice to a parameter that takes one was read as the last, which a platform took
    for both (`?status=PENDING&status=RUNNING`). An integer or boolean is read in the
    domain's forms only: FastAPI's own took `limit=1.0`, `limit=1_0` (10) and `yes`, `on`,
    `1`, `t` for true, which a body's value and the CLI refuse."""
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        form = forms.get(name)
        if form is not None:
            form(value, name)
        if name not in known:
            taken = ", ".join(sorted(known)) or "none"
            raise InvalidAPIParameters(f"is not a parameter of this route (it takes: {taken})", field=name[:120])
        if name in seen and not known[name]:
            raise InvalidAPIParameters("given more than once: it takes one value", field=name)
        seen.add(name)


def _authenticating(
    endpoint: Callable[..., Any], known: dict[str, bool], forms: dict[str, Parser]
) -> Callable[..., Any]:
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    # Resolved annotations: FastAPI would resolve strings in this module's globals, not the route's.
    resolved = signature.replace(
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()],
        return_annotation=hints.get("return", signature.return_annotation),
    )

    @functools.wraps(endpoint)
    def authenticated(*args: Any, **kwargs: Any) -> Any:
        for value in kwargs.values():
            if isinstance(value, Call):
                value.authenticate()
                _only_known_parameters(value.request, known, forms)
        return endpoint(*args, **kwargs)

    authenticated.__signature__ = resolved  # type: ignore[attr-defined]
    return authenticated


CallDep = Annotated[Call, Depends(current_call)]


MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest request body the API reads (a batch of ~40,000 workload facts): a client,
even one whose token is not yet checked (that happens on the worker thread, after the
body is read), cannot make the server hold more than this in memory."""


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"is {declared} bytes, more than {MAX_BODY_BYTES}", field="body")
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body declares no length: counted as it comes
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge(f"is more than {MAX_BODY_BYTES} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The request's JSON body (parsed here, validated by the domain's models)."""
    raw = await _bounded_body(request)
    if not raw:
        raise InvalidAPIParameters("a JSON body is required", field="body")
    repeated: list[bool] = []
    try:
        parsed = json.loads(
            raw, parse_constant=_no_constant, parse_float=json_float, object_pairs_hook=_members(repeated)
        )
    except RecursionError:  # valid JSON the parser cannot go into: not a syntax error to look for
        raise InvalidAPIParameters(
            "is nested too deeply (arrays and objects within each other)", field="body"
        ) from None
    except ValueError:
        raise InvalidAPIParameters("is not valid JSON", field="body") from None
    if repeated:
        try:
            where = _repeated_member(parsed)
        except RecursionError:  # nested as deep as the parser allows: named as the whole body
            where = "body"
        raise InvalidAPIParameters("given twice in one object", field=where)
    if not isinstance(parsed, dict) and _object_only(request):
        # Else the domain model would refuse it in pydantic's words, naming its own argument.
        raise InvalidAPIParameters("expected a JSON object", field="body")
    return parsed


class _Repeated(dict[str, Any]):
    """A JSON object that gave the member `repeated` more than once."""

    repeated = ""


MAX_FIELD_NAME = 120  # characters of a repeated member's path named back (a key may be a megabyte)


def _members(repeated: list[bool]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """`json.loads`'s object hook: JSON leaves a repeated member's meaning open and Python
    keeps the last, so `{"cpu": 1, "cpu": 2}` stored 2 (the CLI refuses a slot given twice)
    and bodies read otherwise by a proxy shared one idempotency hash. The object is marked
    (and `repeated` told) to be refused once parsed, naming where."""

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) == len(pairs):
            return found
        marked = _Repeated(found)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked.repeated = key
                break
            seen.add(key)
        repeated.append(True)
        return marked

    return members


def _repeated_member(data: Any, where: str = "") -> str | None:
    """The path of the first repeated member (`a.b`, `[2].name`), bounded in length."""
    if isinstance(data, _Repeated):
        path = f"{where}.{data.repeated}" if where else data.repeated
        return path if len(path) <= MAX_FIELD_NAME else path[:MAX_FIELD_NAME] + "..."
    inner: Any = ()
    if isinstance(data, dict):
        inner = ((f"{where}.{key}" if where else key, value) for key, value in data.items())
    elif isinstance(data, list):
        inner = ((f"{where}[{index}]", value) for index, value in enumerate(data))
    for path, value in inner:
        found = _repeated_member(value, path)
        if found is not None:
            return found
    return None


def _object_only(request: Request) -> bool:
    """Whether the route's documented body is one object (not `body(..., batch=True)`)."""
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    return "$ref" in schema or schema.get("type") == "object"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


Body = Annotated[Any, Depends(json_body)]


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return LedgerJSONResponse(jsonable_encoder(data), status_code=status, headers=headers)
