"""Hostile and malformed requests (issue 13): wrong JSON types, unknown fields, bodies that
are not one object, empty bodies, megabyte strings, control characters in names, NaN and
Infinity, huge integers, over-long path parameters and query parameters of the wrong type.

Every one is a 400 `application/problem+json` with code `ledger_invalid_parameters` and a
`field` naming what was wrong; nothing is stored (no event, no audit row); no 5xx, and no
library's words or traceback reach the client. The body, path and query cases that need no
knowledge of a route run over every operation the OpenAPI document has at run time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.http import calls
from tests.adapters.http.api import HOME, Api

POLICIES = "/v1/keypair-resource-policies"
PROBLEM = "application/problem+json"
INVALID = "ledger_invalid_parameters"
LIBRARY_WORDS = ("pydantic", "ValidationError", "Traceback", "starlette", "fastapi", 'File "')
# A JSON caller sent null, a number, an object: Python's names for them (NoneType, dict) are no answer.
PYTHON_TYPE_NAMES = re.compile(r"\b(?:got|not) (?:NoneType|dict|tuple|bool|int|float|str|list|bytes|Decimal)\b")
MEGABYTE = "x" * 1_000_000
SMALL_ANSWER = 4096  # bytes: a refusal never echoes a megabyte back
HUGE = 2**70
CONTROL = ("a\x00b", "a\nb", "a\tb", "a\x1bb", "a\x7fb", "a\u200bb", "a\u202eb")

# (label, method, path, JSON body, the field the refusal must name); one ledger for all.
Field = str | Callable[[str], bool]  # the name, or a test of it (for names made of input)
Case = tuple[str, str, str, Any, Field]


def _stored(api: Api) -> tuple[int, int]:
    """What a refusal must leave alone: the event store's head and the audit trail."""
    api.ledger.runner.catch_up()
    head = api.ledger.app.recorder.max_notification_id() or 0
    return head, len(api.ledger.queries.audit_log())


def _assert_refused(answer: Any, field: Field, label: str) -> None:
    """A 400 problem naming `field` (or a field `field(name)` accepts), in the ledger's words."""
    text = answer.text
    assert answer.status_code == 400, f"{label}: {answer.status_code} {text[:300]}"
    assert answer.headers["content-type"] == PROBLEM, label
    problem = answer.json()
    assert problem["code"] == INVALID and problem["status"] == 400, f"{label}: {text[:300]}"
    named = problem.get("field")
    assert named is not None, f"{label}: no field in {text[:300]}"
    if callable(field):
        assert field(named), f"{label}: field {named!r}"
    else:
        assert named == field, f"{label}: field {named!r}, expected {field!r}"
    assert len(answer.content) < SMALL_ANSWER, f"{label}: {len(answer.content)} bytes"
    for word in LIBRARY_WORDS:
        assert word.lower() not in text.lower(), f"{label}: {word!r} in {text[:300]}"
    assert not PYTHON_TYPE_NAMES.search(problem["detail"]), f"{label}: {problem['detail']}"


def _send(api: Api, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return api.client.request(method, path, json=body, headers=api.as_("superadmin"), **kwargs)


def _send_raw(api: Api, method: str, path: str, content: bytes) -> Any:
    headers = api.as_("superadmin", **{"Content-Type": "application/json"})
    return api.client.request(method, path, content=content, headers=headers)


def _run(api: Api, cases: list[Case]) -> None:
    before = _stored(api)
    for label, method, path, body, field in cases:
        _assert_refused(_send(api, method, path, body), field, label)
    assert _stored(api) == before


def _operations(api: Api) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) for every operation the document has now."""
    document = api.client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def _params(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


def _filled(path: str, value: Callable[[str], str] | None = None) -> str:
    """The path with each parameter given a well-formed value (or `value(name)`)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if value is not None:
            return value(name)
        if name.endswith("_id"):
            return str(uuid.uuid4())
        return "2026-01" if name == "month" else "default"

    return re.sub(r"\{([^}]+)\}", one, path)


def _object_body(operation: dict[str, Any]) -> bool:
    """Whether the documented request body is exactly one JSON object."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return "$ref" in content.get("schema", {})


def _schema_types(parameter: dict[str, Any]) -> set[str]:
    schema = parameter.get("schema", {})
    types = {schema["type"]} if "type" in schema else set()
    return types | {option.get("type", "") for option in schema.get("anyOf", [])}


def test_policy_fields_of_the_wrong_type(api: Api) -> None:
    one = f"{POLICIES}/default"
    default = api.get(one).json()
    _run(
        api,
        [
            ("name int", "POST", POLICIES, {"name": 5}, "name"),
            ("name null", "POST", POLICIES, {"name": None}, "name"),
            ("name list", "POST", POLICIES, {"name": ["p"]}, "name"),
            (
                "sessions string",
                "POST",
                POLICIES,
                {"name": "p", "max_concurrent_sessions": "many"},
                "max_concurrent_sessions",
            ),
            (
                "sessions bool",
                "POST",
                POLICIES,
                {"name": "p", "max_concurrent_sessions": True},
                "max_concurrent_sessions",
            ),
            (
                "sessions float",
                "POST",
                POLICIES,
                {"name": "p", "max_concurrent_sessions": 1.5},
                "max_concurrent_sessions",
            ),
            (
                "sessions negative",
                "POST",
                POLICIES,
                {"name": "p", "max_concurrent_sessions": -1},
                "max_concurrent_sessions",
            ),
            ("slots string", "POST", POLICIES, {"name": "p", "total_resource_slots": "x"}, "total_resource_slots"),
            ("slots list", "POST", POLICIES, {"name": "p", "total_resource_slots": [1]}, "total_resource_slots"),
            (
                "slot list",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {"cpu": [1]}},
                "total_resource_slots.cpu",
            ),
            (
                "slot object",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {"cpu": {}}},
                "total_resource_slots.cpu",
            ),
            # (a list of hosts is accepted: each gets every permission)
            ("hosts string", "POST", POLICIES, {"name": "p", "allowed_vfolder_hosts": "h"}, "allowed_vfolder_hosts"),
            ("hosts int", "POST", POLICIES, {"name": "p", "allowed_vfolder_hosts": 5}, "allowed_vfolder_hosts"),
            (
                "host string",
                "POST",
                POLICIES,
                {"name": "p", "allowed_vfolder_hosts": {"h": "rw"}},
                "allowed_vfolder_hosts.h",
            ),
            ("default int", "POST", POLICIES, {"name": "p", "default_for_unspecified": 3}, "default_for_unspecified"),
            ("idle object", "PATCH", one, {"idle_timeout": {}}, "idle_timeout"),
            ("idle string", "PATCH", one, {"idle_timeout": "soon"}, "idle_timeout"),
            ("lifetime bool", "PATCH", one, {"max_session_lifetime": False}, "max_session_lifetime"),
            ("sftp null", "PATCH", one, {"max_concurrent_sftp_sessions": None}, "max_concurrent_sftp_sessions"),
            ("slots list", "PATCH", one, {"total_resource_slots": [1]}, "total_resource_slots"),
            ("fallback int", "PATCH", one, {"fallback_policy": 7}, "fallback_policy"),
        ],
    )
    assert api.get(f"{POLICIES}/p").status_code == 404
    assert api.get(one).json() == default


def test_other_resources_fields_of_the_wrong_type(api: Api) -> None:
    user = f"/v1/users/{api.users['user']}"
    _run(
        api,
        [
            ("domain name int", "POST", "/v1/domains", {"name": 5}, "name"),
            ("domain description int", "PATCH", f"/v1/domains/{HOME}", {"description": 5}, "description"),
            ("user id int", "POST", "/v1/users", {"user_id": 5, "domain_name": HOME}, "user_id"),
            ("user email int", "PATCH", user, {"email": 5}, "email"),
            (
                "group slots string",
                "POST",
                "/v1/groups",
                {"name": "g", "domain_name": HOME, "total_resource_slots": "x"},
                "total_resource_slots",
            ),
        ],
    )


def test_unknown_fields(api: Api) -> None:
    new_user = {"user_id": str(uuid.uuid4()), "domain_name": HOME}
    new_keypair = {"access_key": "AKNEGATIVE000001", "user_id": str(api.users["user"])}
    _run(
        api,
        [
            ("policy create", "POST", POLICIES, {"name": "p", "warp": 1}, "warp"),
            ("policy modify", "PATCH", f"{POLICIES}/default", {"warp": 1}, "warp"),
            ("policy rename", "PATCH", f"{POLICIES}/default", {"name": "other"}, "name"),
            ("policy nested-looking", "PATCH", f"{POLICIES}/default", {"idle_timeout.x": 1}, "idle_timeout.x"),
            ("domain create", "POST", "/v1/domains", {"name": "d", "warp": 1}, "warp"),
            ("domain modify", "PATCH", f"/v1/domains/{HOME}", {"warp": 1}, "warp"),
            ("user create", "POST", "/v1/users", {**new_user, "warp": 1}, "warp"),
            ("user modify", "PATCH", f"/v1/users/{api.users['user']}", {"warp": 1}, "warp"),
            ("group create", "POST", "/v1/groups", {"name": "g", "domain_name": HOME, "warp": 1}, "warp"),
            ("keypair create", "POST", "/v1/keypairs", {**new_keypair, "warp": 1}, "warp"),
            # An unknown key is the client's text: named, but never echoed a megabyte long.
            (
                "megabyte key",
                "POST",
                POLICIES,
                {"name": "p", MEGABYTE: 1},
                lambda f: f.startswith("xxx") and len(f) <= 120,
            ),
        ],
    )


def test_huge_values(api: Api) -> None:
    one = f"{POLICIES}/default"
    _run(
        api,
        [
            ("megabyte name", "POST", POLICIES, {"name": MEGABYTE}, "name"),
            (
                "megabyte quantity",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {"cpu": MEGABYTE}},
                "total_resource_slots.cpu",
            ),
            (
                "megabyte slot name",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {MEGABYTE: 1}},
                lambda f: f.startswith("total_resource_slots."),
            ),
            (
                "megabyte host",
                "POST",
                POLICIES,
                {"name": "p", "allowed_vfolder_hosts": {MEGABYTE: []}},
                lambda f: f.startswith("allowed_vfolder_hosts"),
            ),
            (
                "megabyte permission",
                "POST",
                POLICIES,
                {"name": "p", "allowed_vfolder_hosts": {"h": [MEGABYTE]}},
                "allowed_vfolder_hosts.h",
            ),
            ("megabyte fallback", "PATCH", one, {"fallback_policy": MEGABYTE}, "fallback_policy"),
            ("megabyte description", "POST", "/v1/domains", {"name": "d", "description": MEGABYTE}, "description"),
            (
                "megabyte email",
                "POST",
                "/v1/users",
                {"user_id": str(uuid.uuid4()), "domain_name": HOME, "email": MEGABYTE},
                "email",
            ),
            ("megabyte group", "POST", "/v1/groups", {"name": MEGABYTE, "domain_name": HOME}, "name"),
            (
                "2**70 sessions",
                "POST",
                POLICIES,
                {"name": "p", "max_concurrent_sessions": HUGE},
                "max_concurrent_sessions",
            ),
            (
                "2**70 quantity",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {"cpu": HUGE}},
                "total_resource_slots.cpu",
            ),
            ("-2**70 vfolders", "POST", POLICIES, {"name": "p", "max_vfolder_count": -HUGE}, "max_vfolder_count"),
            ("2**70 idle", "PATCH", one, {"idle_timeout": HUGE}, "idle_timeout"),
            ("2**70 pending", "PATCH", one, {"max_pending_session_count": HUGE}, "max_pending_session_count"),
        ],
    )
    before = _stored(api)
    overflow = _send_raw(api, "POST", POLICIES, b'{"name": "p", "idle_timeout": 1e400}')
    _assert_refused(overflow, "idle_timeout", "1e400")
    assert _stored(api) == before


def test_a_number_too_large_for_a_float_is_refused_not_read_as_unlimited(api: Api) -> None:
    """1e400 overflows a float to inf, which a slot limit reads as "unlimited": it must be
    refused as too large, naming the slot, as 1e16 and the text "1e400" are."""
    before = _stored(api)
    one = f"{POLICIES}/default"
    cases = [
        (POLICIES, b'{"name": "p", "total_resource_slots": {"cpu": 1e400}}', "total_resource_slots.cpu"),
        (POLICIES, b'{"name": "p", "total_resource_slots": {"mem": 1e400}}', "total_resource_slots.mem"),
        (POLICIES, b'{"name": "p", "max_pending_session_resource_slots": {"cpu": 1E+400}}', None),
        (POLICIES, b'{"name": "p", "total_resource_slots": {"cpu": -1e400}}', "total_resource_slots.cpu"),
        (POLICIES, b'{"name": "p", "total_resource_slots": {"cpu": 1' + b"0" * 400 + b".0}}", None),
        (one, b'{"total_resource_slots": {"cpu": 1e400}}', "total_resource_slots.cpu"),
        ("/v1/domains", b'{"name": "d", "total_resource_slots": {"cpu": 1e400}}', "total_resource_slots.cpu"),
        (
            "/v1/groups",
            b'{"name": "g", "domain_name": "alpha", "total_resource_slots": {"cpu": 1e400}}',
            "total_resource_slots.cpu",
        ),
    ]
    for path, content, field in cases:
        method = "PATCH" if path.endswith("/default") else "POST"
        for extra in ({}, {"Idempotency-Key": "overflow"}):  # the key's hash reads the body too
            headers = api.as_("superadmin", **{"Content-Type": "application/json", **extra})
            answer = api.client.request(method, path, content=content, headers=headers)
            label = content.decode()[:80]
            expected = field or (lambda f: f.endswith("resource_slots.cpu"))
            _assert_refused(answer, expected, label)
            assert "too large" in answer.json()["detail"] or "negative" in answer.json()["detail"], label
    beyond = _send_raw(api, "POST", POLICIES, b'{"name": "p", "idle_timeout": 1e999999999999999999999}')
    _assert_refused(beyond, "body", "an exponent beyond any range")
    assert _stored(api) == before


def test_a_number_too_small_for_a_float_is_refused_not_read_as_zero(api: Api) -> None:
    """1e-400 underflows a float to 0.0, which an integer limit took as 0 (for a session's
    lifetime, the idle timeout and concurrent sessions: unlimited) and a slot as nothing:
    a non-zero number is refused as one, as 1.5 and cpu=1e-300 are."""
    before = _stored(api)
    cases = [
        (b'{"name": "p", "max_session_lifetime": 1e-400}', "max_session_lifetime", "expected an integer"),
        (b'{"name": "p", "idle_timeout": -1E-400}', "idle_timeout", "expected an integer"),
        (b'{"name": "p", "total_resource_slots": {"cpu": 1e-400}}', "total_resource_slots.cpu", "rounds to 0"),
        (b'{"name": "p", "total_resource_slots": {"mem": 1e-400}}', "total_resource_slots.mem", ""),
    ]
    for content, field, reason in cases:
        refused = _send_raw(api, "POST", POLICIES, content)
        _assert_refused(refused, field, content.decode())
        assert reason in refused.json()["detail"], refused.text
    assert _stored(api) == before
    zero = _send_raw(api, "POST", POLICIES, b'{"name": "zero", "idle_timeout": 0e-400, "max_session_lifetime": 0.0}')
    assert zero.status_code == 201 and zero.json()["idle_timeout"] == 0, zero.text


def test_null_is_named_null_not_none(api: Api) -> None:
    """`got None` was Python's word for the JSON `null` a caller sent (`got null` elsewhere)."""
    refused = api.post(POLICIES, {"name": "p", "max_concurrent_sessions": None})
    _assert_refused(refused, "max_concurrent_sessions", "null")
    assert refused.json()["detail"] == "max_concurrent_sessions: expected an integer, got null"


def test_control_characters_in_names(api: Api) -> None:
    cases: list[Case] = []
    for text in CONTROL:
        shown = repr(text)
        cases += [
            (f"policy {shown}", "POST", POLICIES, {"name": text}, "name"),
            (f"fallback {shown}", "PATCH", f"{POLICIES}/default", {"fallback_policy": text}, "fallback_policy"),
            (f"domain {shown}", "POST", "/v1/domains", {"name": text}, "name"),
            (f"group {shown}", "POST", "/v1/groups", {"name": text, "domain_name": HOME}, "name"),
            (
                f"slot {shown}",
                "POST",
                POLICIES,
                {"name": "p", "total_resource_slots": {text: 1}},
                lambda f: f.startswith("total_resource_slots."),
            ),
        ]
    cases.append(("description NUL", "PATCH", f"/v1/domains/{HOME}", {"description": "a\x00b"}, "description"))
    _run(api, cases)
    assert [p["name"] for p in api.get(POLICIES).json()["items"]] == ["default"]


def test_lone_surrogates_in_keys_and_slot_names(api: Api) -> None:
    """JSON may escape a lone surrogate (`"\\ud800"`), which no UTF-8 text holds: refused as
    any unknown key or slot is, the field named with the surrogate escaped, in the ledger's
    words (once: library wording, naming the model or `creator`, or a 500 for a fact)."""
    user = api.users["user"]
    slot = b'"total_resource_slots": {"\\udfff": "1"}'
    key = b'"\\ud800": 1'
    cases = [
        ("POST", POLICIES, b'{"name": "p", ' + slot + b"}", r"total_resource_slots.\udfff"),
        ("PATCH", f"{POLICIES}/default", b"{" + slot + b"}", r"total_resource_slots.\udfff"),
        ("POST", POLICIES, b'{"name": "p", ' + key + b"}", r"\ud800"),
        ("POST", "/v1/domains", b'{"name": "d", ' + slot + b"}", r"total_resource_slots.\udfff"),
        ("POST", "/v1/groups", b'{"name": "g", "domain_name": "alpha", ' + slot + b"}", r"total_resource_slots.\udfff"),
        ("POST", "/v1/groups", b'{"name": "g", "domain_name": "alpha", ' + key + b"}", r"\ud800"),
        ("POST", "/v1/keypairs", b'{"access_key": "AK1", "user_id": "%s", %s}' % (str(user).encode(), key), r"\ud800"),
        ("POST", "/v1/workload/facts", b'{"fact": "start_kernel", ' + key + b"}", r"\ud800"),
        ("POST", "/v1/workload/facts", b'[{"fact": "start_kernel", ' + key + b"}]", r"[0].\ud800"),
    ]
    before = _stored(api)
    for method, path, content, field in cases:
        answer = _send_raw(api, method, path, content)
        label = f"{method} {path} {content.decode()[:60]}"
        _assert_refused(answer, field, label)
        detail = answer.json()["detail"]
        assert "unknown slot" in detail or detail.endswith(": unknown field"), f"{label}: {detail}"
        assert "codec" not in detail and "Input should be" not in detail, f"{label}: {detail}"
    assert _stored(api) == before


def test_bodies_that_are_not_one_object(api: Api) -> None:
    """Every operation documented to take one JSON object, sent anything else."""
    before = _stored(api)
    bodies = {"array": b'[{"name": "p"}]', "string": b'"p"', "number": b"5", "null": b"null", "empty": b""}
    checked = 0
    for method, template, operation in _operations(api):
        if not _object_body(operation):
            continue
        path = _filled(template)
        for label, content in bodies.items():
            _assert_refused(_send_raw(api, method, path, content), "body", f"{method} {template} {label}")
        checked += 1
    assert checked >= 4  # the policy routes' create and modify at least
    assert _stored(api) == before


def test_json_constants_nan_and_infinity(api: Api) -> None:
    before = _stored(api)
    for method, template, operation in _operations(api):
        if "requestBody" not in operation:
            continue
        path = _filled(template)
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            content = b'{"name": "p", "idle_timeout": ' + constant + b"}"
            _assert_refused(_send_raw(api, method, path, content), "body", f"{method} {template} {constant!r}")
            batch = b"[" + content + b"]"
            _assert_refused(_send_raw(api, method, path, batch), "body", f"{method} {template} [{constant!r}]")
    assert _stored(api) == before


def test_a_member_given_twice_is_refused_not_read_as_the_last(api: Api) -> None:
    """JSON leaves a repeated member's meaning open (RFC 8259): Python kept the last, so
    `{"cpu": 1, "cpu": 2}` stored 2 where the CLI refuses a slot given twice, and two bodies
    a proxy reads differently shared one idempotency hash. It is refused, naming where."""
    before = _stored(api)
    cases = {
        b'{"name": "p", "name": "q"}': "name",
        b'{"name": "p", "total_resource_slots": {"cpu": 1, "cpu": 2}}': "total_resource_slots.cpu",
        b'{"name": "p", "allowed_vfolder_hosts": {"local": [], "nfs": [], "local": ["mount-in-session"]}}': (
            "allowed_vfolder_hosts.local"
        ),
    }
    for content, field in cases.items():
        refused = _send_raw(api, "POST", POLICIES, content)
        _assert_refused(refused, field, content.decode())
        assert "given twice" in refused.json()["detail"], refused.text
    fact = b'{"fact": "create_endpoint", "endpoint_id": "%s", "group_id": "%s", "name": "e", "name": "f"}' % (
        str(uuid.uuid4()).encode(),
        str(uuid.uuid4()).encode(),
    )
    _assert_refused(_send_raw(api, "POST", "/v1/workload/facts", b"[" + fact + b"]"), "[0].name", "batch")
    assert _stored(api) == before


def test_a_body_nested_past_the_parser_is_refused_as_such_not_as_invalid_json(api: Api) -> None:
    """Valid JSON nested deeper than the parser goes was called "not valid JSON": the
    platform that sent it looked for a syntax error that is not there."""
    before = _stored(api)
    for content in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"name": "p", "total_resource_slots": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
    ):
        refused = _send_raw(api, "POST", POLICIES, content)
        _assert_refused(refused, "body", "deep")
        assert refused.json()["detail"] == "body: is nested too deeply (arrays and objects within each other)"
    assert _send_raw(api, "POST", POLICIES, b"{").json()["detail"] == "body: is not valid JSON"
    assert _stored(api) == before


def test_an_unknown_query_parameter_is_refused_not_ignored(api: Api) -> None:
    """A body's unknown field is refused; a query's was ignored, so a platform's typo of a
    filter (`?stauts=PENDING`) read every session as if filtered. Every read route now
    refuses one, naming it; a read route's `min_position` is known to all of them."""
    checked = 0
    given = {"from": "1", "to": "1", "start_date": "20240101", "end_date": "20240102", "group_id": str(uuid.uuid4())}
    for method, template, operation in _operations(api):
        if method != "GET" or not template.startswith("/v1/"):
            continue
        path = _filled(template)
        required = {p["name"]: given[p["name"]] for p in _params(operation, "query") if p.get("required")}
        typo = {**required, "stauts": "PENDING"}
        refused = api.client.get(path, params=typo, headers=api.as_("superadmin"))
        _assert_refused(refused, "stauts", f"GET {template}")
        assert "not a parameter" in refused.json()["detail"], refused.text
        for role in ("superadmin", "user"):
            known = api.client.get(path, params={**required, "min_position": 0}, headers=api.as_(role))
            assert known.status_code != 400 or known.json()["field"] != "min_position", (template, known.text)
        checked += 1
    assert checked >= 30
    before = _stored(api)
    typo = api.client.post(
        f"/v1/groups/{uuid.uuid4()}/purge", params={"accept_clear_histroy": "true"}, headers=api.as_("superadmin")
    )
    _assert_refused(typo, "accept_clear_histroy", "purge")
    assert _stored(api) == before
    unauthenticated = api.client.get("/v1/sessions", params={"stauts": "PENDING"})
    assert unauthenticated.status_code == 401  # who is calling is asked first


def test_every_read_documents_and_waits_for_min_position(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """`/v1/tokens/{token_id}` and `/v1/verify` took `min_position` (known to every read) but
    neither documented nor waited for it: a position far past the head answered 200 there,
    503 everywhere else, and a client generated from the document could not send it."""
    monkeypatch.setattr(calls, "MAX_WAIT", 0.05)  # the wait is 5 s: what matters is its answer
    given = {"from": "1", "to": "1", "start_date": "20240101", "end_date": "20240102", "group_id": str(uuid.uuid4())}
    checked = 0
    for method, template, operation in _operations(api):
        if method != "GET" or not template.startswith("/v1/"):
            continue
        assert "min_position" in {p["name"] for p in _params(operation, "query")}, template
        required = {p["name"]: given[p["name"]] for p in _params(operation, "query") if p.get("required")}
        path = _filled(template).replace("/2026-01", "/202601")  # a month as the route takes it
        behind = api.client.get(path, params={**required, "min_position": 2**62}, headers=api.as_("superadmin"))
        assert behind.status_code == 503, (template, behind.text)
        assert behind.json()["code"] == "ledger_read_model_behind", (template, behind.text)
        checked += 1
    assert checked >= 30


def test_a_query_parameter_given_twice_is_refused_unless_it_takes_many(api: Api) -> None:
    """`?status=PENDING&status=RUNNING` read as RUNNING alone (the last), which a platform
    took for both; a parameter that takes one value is refused when given twice. One that
    takes many (usage's `group_id`) still takes each."""
    twice = api.client.get(
        "/v1/sessions", params=[("status", "PENDING"), ("status", "RUNNING")], headers=api.as_("superadmin")
    )
    _assert_refused(twice, "status", "status twice")
    assert "given more than once" in twice.json()["detail"]
    limit = api.client.get(POLICIES, params=[("limit", "1"), ("limit", "1")], headers=api.as_("superadmin"))
    _assert_refused(limit, "limit", "limit twice, even alike")
    groups = [("group_id", str(uuid.uuid4())), ("group_id", str(uuid.uuid4()))]
    many = api.client.get("/v1/usage/month/202401", params=groups, headers=api.as_("superadmin"))
    assert many.status_code == 200, many.text


@pytest.mark.parametrize(
    ("path", "name", "raw"),
    [
        (POLICIES, "limit", "1.0"),
        (POLICIES, "limit", "1_0"),  # FastAPI read it as 10
        ("/v1/groups", "min_position", "0.0"),
        (f"{POLICIES}/default/state", "version", "1.0"),
        ("/v1/groups", "active", "1"),
        ("/v1/groups", "active", "yes"),
        ("/v1/groups", "active", "off"),
        (f"{POLICIES}/default/history", "newest_first", "t"),
        ("/v1/tokens", "all", "0"),
    ],
)
def test_an_integer_or_boolean_query_value_is_read_in_the_domains_forms_only(
    api: Api, path: str, name: str, raw: str
) -> None:
    """FastAPI read `limit=1.0` as 1, `limit=1_0` as 10 and `yes`, `on`, `1`, `t` (and
    their opposites) as booleans, forms a body's value and the CLI refuse."""
    answer = api.client.get(path, params={name: raw}, headers=api.as_("superadmin"))
    _assert_refused(answer, name, f"{name}={raw}")
    kind = "true or false" if name in ("active", "newest_first", "all") else "an integer"
    assert answer.json()["detail"] == f"{name}: expected {kind}, got {raw!r}", answer.text


def test_the_documented_integer_and_boolean_query_forms_stay_accepted(api: Api) -> None:
    for params in ({"limit": "2"}, {"limit": " 2"}, {"limit": "+2"}, {"active": "true"}, {"active": "False"}):
        answer = api.client.get("/v1/groups", params=params, headers=api.as_("superadmin"))
        assert answer.status_code == 200, (params, answer.text)
    history = api.client.get(f"{POLICIES}/default/history", params={"newest_first": "TRUE", "limit": "1"},
                             headers=api.as_("superadmin"))  # fmt: skip
    assert history.status_code == 200, history.text


def test_path_parameters_that_are_too_long(api: Api) -> None:
    before = _stored(api)
    checked = 0
    for method, template, operation in _operations(api):
        names = {p["name"] for p in _params(operation, "path")}
        if not names:
            continue
        path = _filled(template, lambda name: "x" * 5000)
        body: Any = {} if "requestBody" in operation else None
        _assert_refused(_send(api, method, path, body), names.__contains__, f"{method} {template}")
        checked += 1
    assert checked >= 6  # the policy routes' get, modify, delete, history, state and diff at least
    assert _stored(api) == before


def test_query_parameters_of_the_wrong_type(api: Api) -> None:
    before = _stored(api)
    wrong = {"integer": ["many", "1.5", str(HUGE), "-1e3"], "boolean": ["maybe", "2"]}
    checked = 0
    for method, template, operation in _operations(api):
        query = _params(operation, "query")
        required = {p["name"]: "1" for p in query if p.get("required")}
        path = _filled(template)
        body: Any = {} if "requestBody" in operation else None
        for parameter in query:
            for kind in _schema_types(parameter) & set(wrong):
                for value in wrong[kind]:
                    params = {**required, parameter["name"]: value}
                    label = f"{method} {template}?{parameter['name']}={value[:20]}"
                    _assert_refused(_send(api, method, path, body, params=params), parameter["name"], label)
                    checked += 1
    assert checked >= 8  # limit and min_position on the policy routes at least
    assert _stored(api) == before


def test_a_body_past_the_bound_is_refused_before_it_is_read_whole(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """413 whether the body declares its length or comes chunked, and whether or not its
    token is good (tokens are checked after the body is read: the bound is what keeps an
    anonymous client from making the server hold a body of any size)."""
    monkeypatch.setattr(calls, "MAX_BODY_BYTES", 1000)
    before = _stored(api)
    big = b'{"name": "p", "pad": "' + b"x" * 2000 + b'"}'

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(big), 100):
            yield big[start : start + 100]

    headers = api.as_("superadmin", **{"Content-Type": "application/json"})
    bogus = {"Authorization": "Bearer not-a-token", "Content-Type": "application/json"}
    for label, answer in (
        ("declared", api.client.post(POLICIES, content=big, headers=headers)),
        ("chunked", api.client.post(POLICIES, content=chunked(), headers=headers)),
        ("bogus token", api.client.post(POLICIES, content=big, headers=bogus)),
    ):
        assert answer.status_code == 413, f"{label}: {answer.status_code} {answer.text[:200]}"
        assert answer.headers["content-type"] == PROBLEM, label
        problem = answer.json()
        assert problem["code"] == "ledger_request_too_large" and problem["field"] == "body", problem
    # At the bound exactly, the body is read and judged as usual.
    fits = b'{"name": "fits", "pad": "' + b"x" * (1000 - 27) + b'"}'
    assert len(fits) == 1000
    _assert_refused(_send_raw(api, "POST", POLICIES, fits), "pad", "at the bound")
    assert _stored(api)[0] == before[0]


def test_query_and_path_refusals_are_in_the_ledgers_words(api: Api) -> None:
    """A query or path value FastAPI's own checks refuse was described in pydantic's words
    (`Input should be greater than or equal to 1`, `unable to interpret input`), where the
    same value in a body is described in the ledger's (`must be at least 1, got 0`)."""
    cases = {
        f"{POLICIES}?limit=0": ("limit", "must be at least 1, got 0"),
        f"{POLICIES}?limit=20000": ("limit", "must be at most 10000"),
        f"{POLICIES}?limit=many": ("limit", "expected an integer, got 'many'"),
        f"{POLICIES}/default/state?version=0": ("version", "must be at least 1, got 0"),
        "/v1/domains?active=maybe": ("active", "expected true or false, got 'maybe'"),
        "/v1/usage/period?start_date=20240101": ("end_date", "is required"),
        "/v1/audit?entity_type=spaceship": ("entity_type", "'spaceship' is not one of "),
        f"{POLICIES}?name_prefix=" + "x" * 300: ("name_prefix", "must be at most 256 characters"),
    }
    for path, (field, reason) in cases.items():
        refused = api.get(path)
        _assert_refused(refused, field, path[:60])
        assert refused.json()["detail"].startswith(f"{field}: {reason}"), refused.text
        assert "Input should" not in refused.text and "unable to" not in refused.text, refused.text


def test_a_taken_key_is_a_409_naming_the_field_that_carries_it(api: Api) -> None:
    """A create refused because its key is taken names the input to change, as every other
    refusal of one input does; the message names the entity, and only the refusals' audit
    records are stored."""
    user = str(api.users["user"])
    group = api.post("/v1/groups", {"name": "taken", "domain_name": HOME})
    assert group.status_code == 201, group.text
    assert api.post("/v1/keypairs", {"access_key": "AK-TAKEN", "user_id": user}).status_code == 201
    endpoint = {"fact": "create_endpoint", "endpoint_id": str(uuid.uuid4()), "group_id": group.json()["id"]}
    assert api.post("/v1/workload/facts", {**endpoint, "name": "e"}, role="service").status_code == 200
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        (POLICIES, {"name": "default"}, "keypair_resource_policy_create_duplicate_name", "name"),
        ("/v1/domains", {"name": HOME}, "domain_create_duplicate_name", "name"),
        ("/v1/users", {"user_id": user, "domain_name": HOME}, "user_create_duplicate_id", "user_id"),
        ("/v1/groups", {"name": "taken", "domain_name": HOME}, "group_create_duplicate_name", "name"),
        (
            "/v1/keypairs",
            {"access_key": "AK-TAKEN", "user_id": user},
            "keypair_create_duplicate_access_key",
            "access_key",
        ),
        ("/v1/workload/facts", {**endpoint, "name": "e2"}, "workload_duplicate_id", "endpoint_id"),
    ]
    before = _stored(api)
    for path, body, code, field in cases:
        answer = api.post(path, body, role="service" if "workload" in path else "superadmin")
        assert answer.status_code == 409 and answer.headers["content-type"] == PROBLEM, f"{path}: {answer.text}"
        problem = answer.json()
        assert (problem["code"], problem.get("field")) == (code, field), f"{path}: {answer.text}"
        assert not problem["detail"].startswith(f"{field}:"), problem  # the entity is named, not the field twice
    stored = api.ledger.app.recorder.select_notifications(before[0] + 1, 100)  # PostgreSQL's ids may skip
    assert all(event.topic.endswith(":AuditRecord.Recorded") for event in stored), [e.topic for e in stored]
    assert len(stored) == len(cases)  # one audit record per refusal, nothing else
