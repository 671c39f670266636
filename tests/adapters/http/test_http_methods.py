"""Methods as RFC 9110 has them: a 405's `Allow` names every method of the resource, HEAD
is answered wherever GET is (same status and headers, no body), and the OpenAPI document
describes the refusals the API sends (400 problems), not FastAPI's 422 it never sends."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.bootstrap import open_ledger
from adapters.http import create_app
from tests.adapters.http.api import HOME, Api, api_over

POLICIES = "/v1/keypair-resource-policies"
PROBLEM = "application/problem+json"


def _allow(answer: Any) -> list[str]:
    return [method.strip() for method in answer.headers["Allow"].split(",")]


def test_a_405_allows_every_method_of_the_resource(api: Api) -> None:
    expected = {
        "/v1/domains": ["GET", "HEAD", "POST"],
        f"{POLICIES}/default": ["GET", "HEAD", "PATCH", "DELETE"],
        f"{POLICIES}/gpu%2Fa100": ["GET", "HEAD", "PATCH", "DELETE"],  # an encoded slash routes as one key
        "/healthz": ["GET", "HEAD"],
        "/v1/workload/facts": ["POST"],
    }
    for path, methods in expected.items():
        refused = api.client.put(path, headers=api.as_("superadmin"))
        assert refused.status_code == 405, (path, refused.text)
        assert refused.headers["content-type"] == PROBLEM and refused.json()["code"] == "ledger_method_not_allowed"
        assert _allow(refused) == methods, path
    head_of_post_only = api.client.head("/v1/workload/facts", headers=api.as_("superadmin"))
    assert head_of_post_only.status_code == 405 and _allow(head_of_post_only) == ["POST"]


def test_head_answers_as_get_without_the_body(api: Api) -> None:
    assert api.post(POLICIES, {"name": "gpu"}).status_code == 201
    for path in ("/healthz", "/v1/domains", f"{POLICIES}/gpu", f"{POLICIES}/gpu/history", f"{POLICIES}/nope"):
        got = api.client.get(path, headers=api.as_("superadmin"))
        head = api.client.head(path, headers=api.as_("superadmin"))
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        for header in ("content-type", "content-length", "etag"):
            assert head.headers.get(header) == got.headers.get(header), (path, header)
    assert api.client.head(POLICIES).status_code == 401  # as GET: the token is still asked for


def test_every_get_operation_takes_head(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    checked = 0
    for template, operations in document["paths"].items():
        if "get" not in operations:
            continue
        path = re.sub(r"\{([^}]+)\}", lambda m: str(uuid.uuid4()) if m[1].endswith("_id") else HOME, template)
        path = path.replace("/month/" + HOME, "/month/202401")
        head = api.client.head(path, headers=api.as_("superadmin"))
        assert head.status_code != 405 and head.content == b"", (template, head.status_code)
        checked += 1
    assert checked >= 30


def test_the_document_describes_400_problems_not_422_validation_errors(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(document)
    assert "ValidationError" not in document["components"]["schemas"]
    parameterised = 0
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            if "422" in answers:  # a write's own 422 (an Idempotency-Key reused): a problem
                assert list(answers["422"]["content"]) == [PROBLEM], (method, template)
            if operation.get("parameters") or "requestBody" in operation:
                assert list(answers["400"]["content"]) == [PROBLEM], (method, template)
                parameterised += 1
    assert parameterised >= 60
    read = document["paths"]["/v1/domains"]["get"]["responses"]
    assert "422" not in read and "400" in read


def test_the_document_lists_the_headers_the_routes_read_and_answer(api: Api) -> None:
    """The routes read If-Match, Idempotency-Key and X-Request-ID from the request itself, and
    the document listed none of them (nor the ETag and Ledger-Position answers): a client
    generated from it could not send them."""
    paths = api.client.get("/openapi.json").json()["paths"]

    def headers(template: str, method: str) -> set[str]:
        return {p["name"] for p in paths[template][method].get("parameters", []) if p["in"] == "header"}

    create = "/v1/keypair-resource-policies"
    assert headers(create, "post") == {"If-Match", "Idempotency-Key", "X-Request-ID"}
    assert headers(f"{create}/{{name}}", "patch") == {"If-Match", "X-Request-ID"}
    assert headers(create, "get") == set()  # a read appends nothing
    answered = paths[create]["post"]["responses"]["201"]["headers"]
    assert set(answered) == {"ETag", "Ledger-Position", "Location", "X-Request-ID"}
    key = next(p for p in paths[create]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 255} and key["required"] is False


def test_the_document_offers_idempotency_key_only_where_a_post_takes_it(api: Api) -> None:
    """POST /v1/tokens refuses an Idempotency-Key (the answer holds a token never stored to
    replay), yet its documented parameters offered one with the promise of a replay: a
    client generated from the document sent it and met a 400."""
    paths = api.client.get("/openapi.json").json()["paths"]
    checked = 0
    for template, operations in paths.items():
        post = operations.get("post")
        if post is None or "412" not in post["responses"]:
            continue
        offered = any(p["name"] == "Idempotency-Key" for p in post.get("parameters", []))
        path = re.sub(r"\{[^}]+\}", lambda m: str(uuid.uuid4()) if m.group(0).endswith("_id}") else "x", template)
        headers = api.as_("superadmin", **{"Idempotency-Key": f"offered-{uuid.uuid4()}"})
        answer = api.client.post(path, json={}, headers=headers)
        refused = answer.status_code == 400 and answer.json().get("field") == "Idempotency-Key"
        assert offered != refused, (template, offered, answer.text)
        assert not any(name.startswith("x-") for name in post), template  # the route's mark is not shown
        checked += 1
    assert checked >= 10


def test_every_app_serves_its_own_copy_of_one_document() -> None:
    """A process builds the document once: each app still gets a copy of its own, so what
    one caller does to its copy reaches no other app."""
    first, second = create_app("sqlite:///:memory:"), create_app("sqlite:///:memory:")
    document = first.openapi()
    assert document == second.openapi() and document is not second.openapi()
    assert document is first.openapi()  # an app keeps its copy, as FastAPI's own does
    document["paths"].clear()
    assert second.openapi()["paths"] and create_app("sqlite:///:memory:").openapi() == second.openapi()


def test_two_apps_of_one_process_serve_their_own_ledgers(tmp_path: Path) -> None:
    """The apps share their route definitions (built once per process), never a ledger, a
    response or a metric."""
    with (
        open_ledger(f"sqlite:///{tmp_path / 'a.db'}") as first_ledger,
        open_ledger(f"sqlite:///{tmp_path / 'b.db'}") as second_ledger,
        api_over(first_ledger) as first,
        api_over(second_ledger) as second,
    ):
        created = first.post("/v1/domains", {"name": "only-in-a"})
        assert created.status_code == 201, created.text
        assert first.get("/v1/domains/only-in-a").status_code == 200
        assert second.get("/v1/domains/only-in-a").status_code == 404
        assert second.post("/v1/domains", {"name": "only-in-b"}).status_code == 201
        assert first.get("/v1/domains/only-in-b").status_code == 404
        counted = 'ledger_http_requests_total{method="POST",route="/v1/domains",status="201"} 1.0'
        for api in (first, second):
            assert counted in api.get("/metrics").text


def test_a_commands_answer_is_as_compact_as_a_reads(api: Api) -> None:
    """Every JSON answer of the API in one form: a command's had a space after each `:`
    and `,`, a read's none."""
    created = api.post("/v1/keypair-resource-policies", {"name": "compact"})
    read = api.get("/v1/keypair-resource-policies/compact")
    for answer in (created, read):
        assert answer.status_code in (200, 201), answer.text
        assert answer.text == json.dumps(answer.json(), separators=(",", ":")), answer.text


def test_a_create_answers_where_the_created_resource_is(api: Api) -> None:
    """Every 201 named no `Location`: RFC 9110 then takes the request's own URI (the
    collection) for the created resource, so a platform following it read the list. Each
    create names its resource's path (a key percent-encoded as a segment), and a replay of
    it with the same Idempotency-Key names it again."""
    user = str(uuid.uuid4())
    session = str(uuid.uuid4())
    creates = [
        ("/v1/keypair-resource-policies", {"name": "gpu/a100", "total_resource_slots": {"cpu": "8"}}),
        ("/v1/domains", {"name": "gamma"}),
        ("/v1/users", {"user_id": user, "domain_name": "alpha"}),
        ("/v1/keypairs", {"access_key": "AK/LOC", "user_id": user, "resource_policy": "gpu/a100"}),
        ("/v1/groups", {"name": "located", "domain_name": "alpha"}),
        ("/v1/tokens", {"user_id": user, "role": "user", "domain_name": "alpha"}),
    ]
    located = {}
    for path, payload in creates:
        answer = api.post(path, payload, **({} if path == "/v1/tokens" else {"Idempotency-Key": f"at-{path}"}))
        assert answer.status_code == 201, answer.text
        located[path] = answer.headers.get("Location")
        assert located[path] is not None and located[path].startswith(path + "/"), (path, located[path])
        read = api.get(located[path])
        assert read.status_code == 200 and read.headers["ETag"] == answer.headers["ETag"], (path, read.text)
        if path != "/v1/tokens":
            again = api.post(path, payload, **{"Idempotency-Key": f"at-{path}"})
            assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == located[path]
    assert located["/v1/keypair-resource-policies"] == "/v1/keypair-resource-policies/gpu%2Fa100"
    assert located["/v1/keypairs"] == "/v1/keypairs/AK%2FLOC"
    assert located["/v1/users"] == f"/v1/users/{user}"
    group = located["/v1/groups"]
    pending = {"session_id": session, "access_key": "AK/LOC", "group_id": group.rsplit("/", 1)[1]}
    enqueued = api.post("/v1/sessions", {**pending, "requested_slots": {"cpu": "1"}}, role="service")
    assert enqueued.status_code == 201, enqueued.text
    assert enqueued.headers.get("Location") == f"/v1/sessions/{session}"
    paths = api.client.get("/openapi.json").json()["paths"]
    for path, _payload in [*creates, ("/v1/sessions", None)]:
        assert "Location" in paths[path]["post"]["responses"]["201"]["headers"], path


def test_the_document_lists_the_etag_a_read_of_one_entity_answers(api: Api) -> None:
    """A read of one entity answers `ETag` (what a later If-Match names), yet the document
    listed it on no read: a client generated from it had no way to the tag before a change."""
    paths = api.client.get("/openapi.json").json()["paths"]
    tagged = {template for template, operations in paths.items() if "ETag" in _read_headers(operations)}
    assert tagged == {
        "/v1/keypair-resource-policies/{name}",
        "/v1/keypairs/{access_key}",
        "/v1/users/{user_id}",
        "/v1/domains/{name}",
        "/v1/groups/{group_id}",
        "/v1/sessions/{session_id}",
        "/v1/kernels/{kernel_id}",
        "/v1/vfolders/{vfolder_id}",
        "/v1/endpoints/{endpoint_id}",
        "/v1/tokens/{token_id}",
    }
    for path in ("/v1/keypair-resource-policies/default", "/v1/domains/alpha", f"/v1/users/{api.users['user']}"):
        assert api.get(path).headers.get("ETag") is not None, path
    assert api.get("/v1/domains").headers.get("ETag") is None  # a list is no one entity


def _read_headers(operations: dict[str, Any]) -> dict[str, Any]:
    get = operations.get("get", {})
    return dict(get.get("responses", {}).get("200", {}).get("headers", {}))


def test_an_answer_names_the_request_id_its_events_and_audit_record_carry(api: Api) -> None:
    """A platform that sent no X-Request-ID had no way to learn the id the ledger made for
    its request, which its events and audit record carry; a refusal's neither."""
    created = api.post("/v1/keypair-resource-policies", {"name": "rid"})
    made = created.headers["X-Request-ID"]
    assert str(uuid.UUID(made)) == made
    given = api.post("/v1/keypair-resource-policies", {"name": "rid"}, **{"X-Request-ID": "platform-42"})
    assert given.status_code == 409 and given.headers["X-Request-ID"] == "platform-42"
    trail = {entry.request_id: entry.status for entry in api.ledger.queries.audit_log(entity_id="rid")}
    assert trail == {made: "success", "platform-42": "error"}
    read = api.get("/v1/keypair-resource-policies/rid")
    assert uuid.UUID(read.headers["X-Request-ID"])  # a read's too, though it stores nothing
    assert "X-Request-ID" not in api.client.get("/v1/keypair-resource-policies").headers  # no token: no caller


def test_a_replay_and_a_500_name_the_request_id_of_the_record_and_the_log(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A replay named the retry's own fresh id, which no event carries (the first request's
    do); a 500, answered outside the middleware that names it, named none, nor its log."""
    key = {"Idempotency-Key": "rid-key"}
    first = api.post("/v1/keypair-resource-policies", {"name": "rid2"}, **key)
    again = api.post("/v1/keypair-resource-policies", {"name": "rid2"}, **key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["X-Request-ID"] == first.headers["X-Request-ID"]
    assert {e.request_id for e in api.ledger.queries.audit_log(entity_id="rid2")} == {first.headers["X-Request-ID"]}

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.ledger.queries, "keypair_resource_policies", broken)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    answer = client.get("/v1/keypair-resource-policies", headers=api.as_("superadmin", **{"X-Request-ID": "p-7"}))
    assert answer.status_code == 500 and answer.json()["code"] == "ledger_internal"
    assert answer.headers["X-Request-ID"] == "p-7" and "(request p-7)" in caplog.text


def test_a_refused_query_or_path_value_is_answered_after_the_token_is_read(api: Api) -> None:
    """FastAPI checks a query's or path's value (`limit=0`, a session id past 64 characters)
    before the route reads the token: an unknown token was answered 400 for the value, not
    401, and a known caller's 400 named no X-Request-ID (the README lists only an unknown
    route, a 405 and a body that is not JSON as answered before the token is read)."""
    refused = ("/v1/keypair-resource-policies?limit=0", "/v1/sessions/" + "x" * 70)
    for path in refused:
        unknown = api.client.get(path, headers={"Authorization": "Bearer plp_unknown"})
        assert unknown.status_code == 401, (path, unknown.text)
        assert unknown.json()["code"] == "token_authenticate_unknown"
        known = api.client.get(path, headers=api.as_("superadmin", **{"X-Request-ID": "p-400"}))
        assert known.status_code == 400 and known.json()["code"] == "ledger_invalid_parameters", known.text
        assert known.headers["X-Request-ID"] == "p-400", path


def test_the_document_promises_an_etag_only_where_a_write_answers_one(api: Api) -> None:
    """A batch of workload facts names no one entity, so its answer has no ETag (and an
    If-Match on it is 412), yet the document listed ETag among its answer's headers."""
    facts = api.client.get("/openapi.json").json()["paths"]["/v1/workload/facts"]["post"]
    assert set(facts["responses"]["200"]["headers"]) == {"Ledger-Position", "X-Request-ID"}
    vfolder = {"fact": "create_vfolder", "vfolder_id": str(uuid.uuid4()), "name": "v", "host": "local"}
    group = api.post("/v1/groups", {"name": "etagless", "domain_name": "alpha"}).json()["id"]
    answer = api.post("/v1/workload/facts", {**vfolder, "group_id": group}, role="service")
    assert answer.status_code == 200, answer.text
    assert "ETag" not in answer.headers
    assert all(name in answer.headers for name in facts["responses"]["200"]["headers"]), answer.headers


def test_the_document_names_the_headers_of_a_503_and_a_401(api: Api) -> None:
    """Every 503 answers `Retry-After` and every 401 `WWW-Authenticate`, yet the document's
    503 and 401 answers listed no header: a client generated from it would not read them
    (the 503's header is checked where each 503 is caused, test_http_readiness.py and others)."""
    paths = api.client.get("/openapi.json").json()["paths"]
    documented = 0
    for operations in paths.values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if "503" in answers:
                assert "Retry-After" in answers["503"].get("headers", {}), operation["operationId"]
                documented += 1
            if "401" in answers:
                assert "WWW-Authenticate" in answers["401"].get("headers", {}), operation["operationId"]
    assert documented >= 40
    unknown = api.client.get(POLICIES, headers={"Authorization": "Bearer plp_unknown"})
    assert unknown.status_code == 401 and unknown.headers["WWW-Authenticate"].startswith("Bearer")
