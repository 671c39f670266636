"""Every time the API writes has one form, UTC as `...Z`: single reads, write answers,
lists, history, state, diff, audit, tokens and sessions alike (they wrote `+00:00` or `Z`
depending on the route). The usage reports are the actions' own results, shaped as
Backend.AI writes them (`2025-01-01 00:00:00+00:00`), and are left out."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.adapters.http.api import HOME, Api

TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def _times(data: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string of `data` that reads as a time, with where it is."""
    if isinstance(data, dict):
        return [found for key, value in data.items() for found in _times(value, f"{where}.{key}")]
    if isinstance(data, list):
        return [found for i, value in enumerate(data) for found in _times(value, f"{where}[{i}]")]
    return [(where, data)] if isinstance(data, str) and TIME.match(data) else []


def _drive(api: Api) -> list[tuple[str, Any]]:
    """A platform's day over HTTP; every JSON answer, by request."""
    answers: list[tuple[str, Any]] = []

    def call(method: str, path: str, json: Any = None, role: str = "superadmin", **params: Any) -> Any:
        answer = api.client.request(method, path, json=json, params=params or None, headers=api.as_(role))
        assert answer.status_code < 300, (method, path, answer.text)
        answers.append((f"{method} {path}", answer.json()))
        return answer.json()

    call("POST", "/v1/domains", {"name": "times"})
    call("GET", "/v1/domains/times")
    call("PATCH", "/v1/domains/times", {"description": "d"})
    call("GET", "/v1/domains", limit=2)
    group_id = call("POST", "/v1/groups", {"name": "g", "domain_name": HOME})["id"]
    call("GET", f"/v1/groups/{group_id}")
    call("PATCH", f"/v1/groups/{group_id}", {"description": "hello"})
    call("GET", "/v1/groups")
    user_id = str(uuid.uuid4())
    call("POST", "/v1/users", {"user_id": user_id, "domain_name": HOME, "email": "t@example.org"})
    call("GET", f"/v1/users/{user_id}")
    call("PATCH", f"/v1/users/{user_id}", {"full_name": "T"})
    call("GET", "/v1/users")
    call("POST", "/v1/keypair-resource-policies", {"name": "p", "total_resource_slots": {"cpu": 4}, "idle_timeout": 30})
    call("GET", "/v1/keypair-resource-policies/p")
    call("PATCH", "/v1/keypair-resource-policies/p", {"max_concurrent_sessions": 3})
    call("GET", "/v1/keypair-resource-policies")
    keypair = {"access_key": "AKTIMES", "user_id": user_id, "domain_name": HOME, "resource_policy": "p"}
    call("POST", "/v1/keypairs", keypair)
    call("GET", "/v1/keypairs/AKTIMES/effective-policy")
    session_id = str(uuid.uuid4())
    enqueue = {"session_id": session_id, "access_key": "AKTIMES", "group_id": group_id, "requested_slots": {"cpu": 1}}
    call("POST", "/v1/sessions", enqueue, role="service")
    call("POST", f"/v1/sessions/{session_id}/schedule", role="service")
    # A time in the past (no later than the start: recorded as nothing, but audited as
    # given): one far ahead of the ledger's clock is refused.
    call("POST", f"/v1/sessions/{session_id}/activity", {"at": "2000-01-01T09:00:00+09:00"}, role="service")
    call("GET", f"/v1/sessions/{session_id}")
    call("GET", "/v1/sessions")
    call("GET", "/v1/sessions/due", now="2200-01-01T00:00:00Z")
    call("POST", f"/v1/sessions/{session_id}/terminate", {"reason": "done"}, role="service")
    call("GET", f"/v1/sessions/{session_id}/state")
    token = call("POST", "/v1/tokens", {"user_id": user_id, "role": "user", "domain_name": HOME, "expires_in": "1d"})
    call("GET", f"/v1/tokens/{token['token_id']}")
    call("POST", f"/v1/tokens/{token['token_id']}/revoke")
    call("GET", "/v1/tokens", all=True)
    for path in (f"/v1/sessions/{session_id}", f"/v1/groups/{group_id}", f"/v1/users/{user_id}"):
        call("GET", f"{path}/history")
        call("GET", f"{path}/state", at="2200-01-01T00:00:00Z")
        call("GET", f"{path}/diff", **{"from": "1", "to": "2"})
    call("POST", f"/v1/users/{user_id}/erase", {"reason": "asked"})
    call("GET", "/v1/audit", limit=500)
    return answers


def test_every_time_is_written_in_one_form(api: Api) -> None:
    answers = _drive(api)
    found = [(request, where, text) for request, body in answers for where, text in _times(body)]
    assert len({request for request, _, _ in found}) >= 25  # the walk reached the routes that write times
    other = [each for each in found if not Z.fullmatch(each[2])]
    assert other == []
    # The activity's time as its caller gave it (+09:00), in the audit trail's input: in UTC.
    assert ("GET /v1/audit", "2000-01-01T00:00:00Z") in {
        (request, text) for request, where, text in found if where.endswith(".spec.at")
    }


def test_a_text_that_reads_as_a_time_is_sent_as_stored(api: Api) -> None:
    text = "2025-01-01T00:00:00+00:00"
    created = api.post("/v1/domains", {"name": "texts", "description": text})
    assert created.status_code == 201, created.text
    assert created.json()["description"] == text
    assert api.get("/v1/domains/texts").json()["description"] == text
    history = api.get("/v1/domains/texts/history").json()
    assert history[0]["changes"]["description"]["new"] == text
