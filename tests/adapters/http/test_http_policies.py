"""The policy routes over HTTP (the template of every resource's tests): CRUD, problems,
ETag and If-Match, Idempotency-Key, who may read, and the actor taken from the token."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from adapters.http import calls
from adapters.http.routes.common import DEFAULT_PAGE
from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction
from domain.user import ModifyUserAction
from tests.adapters.http.api import Api, root_run
from tests.policies import create

BASE = "/v1/keypair-resource-policies"


def test_create_read_modify_delete(api: Api) -> None:
    created = api.post(BASE, {"name": "gpu", "total_resource_slots": {"cpu": 4, "mem": "8g"}})
    assert created.status_code == 201, created.text
    assert created.json()["total_resource_slots"] == {"cpu": "4", "mem": "8589934592"}
    assert created.headers["ETag"] == '"1"' and int(created.headers["Ledger-Position"]) > 0
    got = api.get(f"{BASE}/gpu")
    assert got.status_code == 200 and got.json() == created.json() and got.headers["ETag"] == '"1"'
    changed = api.patch(f"{BASE}/gpu", {"max_concurrent_sessions": 3}, **{"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.json()["changed"] is True
    assert changed.headers["ETag"] == '"2"'
    same = api.patch(f"{BASE}/gpu", {"max_concurrent_sessions": 3})
    assert same.json()["changed"] is False and same.headers["ETag"] == '"2"'
    assert api.get(BASE).json()["items"][-1]["name"] == "gpu"
    deleted = api.delete(f"{BASE}/gpu", **{"If-Match": '"2"'})
    assert deleted.status_code == 200 and deleted.headers["ETag"] == '"3"'
    assert api.get(f"{BASE}/gpu").status_code == 404
    history = api.get(f"{BASE}/gpu/history").json()
    assert [e["event"] for e in history] == ["Created", "Modified", "Deleted"]
    assert api.get(f"{BASE}/gpu/state", params={"version": 1}).json()["fields"]["max_concurrent_sessions"] == 30
    diff = api.get(f"{BASE}/gpu/diff", params={"from": 1, "to": 2}).json()
    assert diff == {"max_concurrent_sessions": {"old": 30, "new": 3}}


def test_the_actor_comes_from_the_token(api: Api) -> None:
    api.post(BASE, {"name": "mine"}, **{"X-Request-ID": "req-42"})
    entry = api.get(f"{BASE}/mine/history").json()[0]
    assert entry["actor"]["user_id"] == str(api.users["superadmin"]) and entry["actor"]["role"] == "superadmin"
    assert entry["request_id"] == "req-42"
    audit = api.ledger.queries.audit_log(entity_id="mine")
    assert audit[-1].triggered_by == str(api.users["superadmin"]) and audit[-1].role == "superadmin"


def test_stale_if_match_is_412_and_changes_nothing(api: Api) -> None:
    api.post(BASE, {"name": "p"})
    api.patch(f"{BASE}/p", {"idle_timeout": 60})
    stale = api.patch(f"{BASE}/p", {"idle_timeout": 90}, **{"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["code"] == "ledger_precondition_failed"
    assert stale.headers["content-type"] == "application/problem+json"
    assert api.get(f"{BASE}/p").json()["idle_timeout"] == 60
    assert api.delete(f"{BASE}/p", **{"If-Match": '"7"'}).status_code == 412
    bad = api.delete(f"{BASE}/p", **{"If-Match": "seven"})
    assert bad.status_code == 400 and bad.json()["field"] == "If-Match"


def test_a_stale_if_match_is_412_before_the_methods_own_refusal(api: Api) -> None:
    """A delete of a policy in use with a stale If-Match answered the in-use 409: the
    precondition is evaluated before the method (RFC 9110 13.2.2), so the client learns its
    copy is stale first. With a current tag the in-use refusal stands."""
    api.post(BASE, {"name": "held"})
    api.post("/v1/keypairs", {"access_key": "AKHELD", "user_id": str(api.users["user"]), "resource_policy": "held"})
    tag = api.patch(f"{BASE}/held", {"idle_timeout": 60}).headers["ETag"]
    stale = api.delete(f"{BASE}/held", **{"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["code"] == "ledger_precondition_failed", stale.text
    current = api.delete(f"{BASE}/held", **{"If-Match": tag})
    assert current.status_code == 409 and current.json()["code"] != "ledger_precondition_failed", current.text
    assert api.get(f"{BASE}/held").status_code == 200


def test_if_match_holds_when_any_tag_of_its_list_is_current(api: Api) -> None:
    """`If-Match: "1", "2"` (or the tags on two header lines) holds when any of them is the
    current version (RFC 9110 13.1.1); only the first was read, so a change whose current
    version a client named second was refused 412."""
    api.post(BASE, {"name": "listed"})
    api.patch(f"{BASE}/listed", {"idle_timeout": 60})  # version 2
    listed = api.patch(f"{BASE}/listed", {"idle_timeout": 70}, **{"If-Match": '"1", "2"'})
    assert listed.status_code == 200 and listed.headers["ETag"] == '"3"', listed.text
    lines = [("Authorization", api.as_("superadmin")["Authorization"]), ("If-Match", '"1"'), ("If-Match", '"3"')]
    two_lines = api.client.patch(f"{BASE}/listed", json={"idle_timeout": 80}, headers=lines)
    assert two_lines.status_code == 200 and two_lines.headers["ETag"] == '"4"', two_lines.text
    stale = api.patch(f"{BASE}/listed", {"idle_timeout": 90}, **{"If-Match": '"2", "3"'})
    assert stale.status_code == 412 and "version 4 is" in stale.json()["detail"], stale.text
    assert api.get(f"{BASE}/listed").json()["idle_timeout"] == 80
    unchanged = api.patch(f"{BASE}/listed", {"idle_timeout": 80}, **{"If-Match": '"9", "4"'})
    assert unchanged.status_code == 200 and unchanged.json()["changed"] is False, unchanged.text
    many = ", ".join(f'"{n}"' for n in range(10, 3000))
    long_list = api.patch(f"{BASE}/listed", {"idle_timeout": 90}, **{"If-Match": many})
    assert long_list.status_code == 412 and len(long_list.content) < 1024, long_list.text[:300]
    bad = api.delete(f"{BASE}/listed", **{"If-Match": '"4", seven'})
    assert bad.status_code == 400 and bad.json()["field"] == "If-Match", bad.text
    assert api.get(f"{BASE}/listed").status_code == 200


def test_a_reads_etag_is_never_newer_than_its_body(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read's ETag was the store's version taken after the read model gave the body: a
    write landing between them tagged the old body with the new version, and a change
    made on that body with `If-Match` overwrote the write its sender never saw. A write
    is made right after each body is read here; the tag names the body's version, so
    the change is 412 and the write stays."""
    queries = api.ledger.queries
    api.post(BASE, {"name": "raced", "idle_timeout": 10})
    user = str(api.users["user"])
    reads = {
        "keypair_resource_policy": (
            "keypair_resource_policy",
            "modify_keypair_resource_policy",
            ModifyKeyPairResourcePolicyAction(name="raced", modifier={"idle_timeout": 20}),
        ),
        "user": ("user", "modify_user", ModifyUserAction(user_id=user, modifier={"full_name": "Raced"})),
    }
    for query, (service, method, write) in reads.items():
        read = getattr(queries, query)

        def racing(*args: object, read: object = read, service: str = service, method: str = method,
                   write: object = write) -> object:  # fmt: skip
            found = read(*args)  # type: ignore[operator]
            root_run(api.ledger, service, method, write)  # another client's write, just after
            return found

        monkeypatch.setattr(queries, query, racing)
    policy = api.get(f"{BASE}/raced")
    assert policy.json()["idle_timeout"] == 10 and policy.headers["ETag"] == '"1"', policy.headers
    person = api.get(f"/v1/users/{user}")
    assert person.json()["full_name"] is None, person.text
    monkeypatch.undo()
    lost = api.patch(f"{BASE}/raced", {"max_concurrent_sessions": 2}, **{"If-Match": policy.headers["ETag"]})
    assert lost.status_code == 412, lost.text
    assert api.get(f"{BASE}/raced").json()["idle_timeout"] == 20
    lost = api.patch(f"/v1/users/{user}", {"email": "x@example.org"}, **{"If-Match": person.headers["ETag"]})
    assert lost.status_code == 412, lost.text
    assert api.get(f"/v1/users/{user}").json()["full_name"] == "Raced"


def test_a_no_op_changes_etag_is_the_version_it_answers(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change that stored nothing (`changed: false`) was tagged with the version read
    from the store after the command: a write landing in between tagged the answered
    body with its version, and a later If-Match change made on that body overwrote it."""
    api.post(BASE, {"name": "noop", "idle_timeout": 10})
    run = calls.Call.run
    other = ModifyKeyPairResourcePolicyAction(name="noop", modifier={"idle_timeout": 20})

    def racing(self: calls.Call, processor: Any, action: Any) -> Any:
        result = run(self, processor, action)
        # Another client's write, on a thread of its own (outside this request's scope).
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                root_run, api.ledger, "keypair_resource_policy", "modify_keypair_resource_policy", other
            ).result()
        return result

    monkeypatch.setattr(calls.Call, "run", racing)
    same = api.patch(f"{BASE}/noop", {"idle_timeout": 10})
    monkeypatch.undo()
    assert same.json()["changed"] is False and same.json()["keypair_resource_policy"]["idle_timeout"] == 10
    assert same.headers["ETag"] == '"1"', same.headers
    lost = api.patch(f"{BASE}/noop", {"max_concurrent_sessions": 2}, **{"If-Match": same.headers["ETag"]})
    assert lost.status_code == 412, lost.text
    assert api.get(f"{BASE}/noop").json()["idle_timeout"] == 20


def test_idempotency_key_replays_the_first_response(api: Api) -> None:
    key = {"Idempotency-Key": "create-p-1"}
    first = api.post(BASE, {"name": "p", "idle_timeout": 5}, **key)
    again = api.post(BASE, {"idle_timeout": 5, "name": "p"}, **key)  # same JSON, other key order
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get(f"{BASE}/p/history").json()) == 1
    other = api.post(BASE, {"name": "q"}, **key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    assert api.get(f"{BASE}/q").status_code == 404


def test_problems_name_the_field_and_code(api: Api) -> None:
    unknown = api.post(BASE, {"name": "p", "warp": 1})
    assert unknown.status_code == 400 and unknown.json()["field"] == "warp"
    wrong = api.post(BASE, {"name": "p", "max_concurrent_sessions": "many"})
    assert wrong.status_code == 400 and wrong.json()["field"] == "max_concurrent_sessions"
    dup = api.post(BASE, {"name": "default"})
    assert dup.status_code == 409 and dup.json()["code"] == "keypair_resource_policy_create_duplicate_name"
    broken = api.client.post(BASE, content=b"{not json", headers=api.as_("superadmin"))
    assert broken.status_code == 400 and broken.json()["field"] == "body"
    nan = api.client.post(BASE, content=b'{"name": "n", "idle_timeout": NaN}', headers=api.as_("superadmin"))
    assert nan.status_code == 400
    assert api.get(BASE, params={"limit": 0}).status_code == 400


def test_a_problem_lists_every_refused_field_when_there_are_several(api: Api) -> None:
    both = api.post(BASE, {"name": "p", "max_concurrent_sessions": -1, "idle_timeout": "x", "warp": 1})
    problem = both.json()
    assert both.status_code == 400 and problem["field"] == "max_concurrent_sessions", both.text
    assert problem["detail"] == "max_concurrent_sessions: must be at least 0, got -1"
    assert [each["field"] for each in problem["errors"]] == ["max_concurrent_sessions", "idle_timeout", "warp"]
    assert problem["errors"][2] == {"field": "warp", "reason": "unknown field"}
    one = api.patch(f"{BASE}/default", {"idle_timeout": -1})
    assert one.status_code == 400 and "errors" not in one.json(), one.text
    queries = api.get(BASE, params={"limit": -1, "after": "x" * 10_000})
    assert queries.status_code == 400 and [each["field"] for each in queries.json()["errors"]] == ["limit", "after"]
    assert api.get(f"{BASE}/p").status_code == 404


def test_a_version_below_1_is_named_by_its_query_parameter(api: Api) -> None:
    """`diff?from=0` named the field `version` (the query's), not the parameter sent."""
    api.post(BASE, {"name": "p"})
    api.patch(f"{BASE}/p", {"idle_timeout": 60})
    for params, field in (({"from": 0, "to": 2}, "from"), ({"from": 1, "to": 0}, "to")):
        bad = api.get(f"{BASE}/p/diff", params=params)
        assert bad.status_code == 400 and bad.json()["code"] == "ledger_invalid_parameters", bad.text
        assert bad.json()["field"] == field and "at least 1" in bad.json()["detail"], bad.text
    assert api.get(f"{BASE}/p/state", params={"version": 0}).json()["field"] == "version"


def test_state_refusals_are_worded_as_the_cli_words_them(api: Api) -> None:
    """The same question answered differently over HTTP and by `ledger policy show`: a
    moment before the policy said `did not exist then` (the CLI: `did not exist at T`),
    and a time with a version `give at or version` (the CLI: `give a time or a version`)."""
    api.post(BASE, {"name": "p"})
    early = api.get(f"{BASE}/p/state", params={"at": "2000-01-01T00:00:00Z"})
    assert early.status_code == 404 and early.json()["code"] == "keypair_resource_policy_not_found", early.text
    assert early.json()["detail"] == "keypair resource policy 'p' did not exist at 2000-01-01T00:00:00Z"
    both = api.get(f"{BASE}/p/state", params={"at": "2000-01-01T00:00:00Z", "version": 1})
    assert both.status_code == 400 and both.json()["field"] == "at", both.text
    assert both.json()["detail"] == "at: give a time or a version, not both"
    # A time refused is named before the pair is judged, as the CLI reads --at first.
    bad = api.get(f"{BASE}/p/state", params={"at": "soon", "version": 1})
    assert bad.status_code == 400 and bad.json()["detail"] == "at: 'soon' is not an ISO 8601 time", bad.text


def test_a_version_or_position_is_bounded_as_the_cli_and_diff_bound_it(api: Api) -> None:
    """`state?version=` and `history?after=` stopped at 2**62 (`must be at most
    4611686018427387904`) where `diff?from=` and the CLI's `--version`, `--after` take any
    int64: a version past the last is not found, one past int64 is refused naming int64."""
    api.post(BASE, {"name": "p"})
    past = api.get(f"{BASE}/p/state", params={"version": 2**62 + 1})
    assert past.status_code == 404 and "has no version 4611686018427387905" in past.json()["detail"], past.text
    assert api.get(f"{BASE}/p/history", params={"after": 2**62 + 1}).json() == []
    for path, field in ((f"{BASE}/p/state?version=", "version"), (f"{BASE}/p/history?after=", "after")):
        over = api.get(f"{path}{2**63}")
        assert over.status_code == 400 and over.json()["field"] == field, over.text
        assert over.json()["detail"] == f"{field}: must be at most {2**63 - 1}", over.text
    assert api.get(f"{BASE}/p/diff", params={"from": 1, "to": 2**63}).json()["detail"] == (
        f"to: must be at most {2**63 - 1}"
    )


def test_a_read_whose_min_position_is_not_reached_is_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "MAX_WAIT", 0.1)  # the wait is 5 s: what matters is its answer
    for path in (BASE, f"{BASE}/default", f"{BASE}/default/history", "/v1/domains"):
        behind = api.get(path, params={"min_position": 2**62})
        assert behind.status_code == 503 and behind.json()["code"] == "ledger_read_model_behind", path
        assert behind.headers["Retry-After"] == "1", path


def test_state_and_diff_wait_for_min_position_before_deciding_visibility(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # They took no min_position (accepted as every read's, and not waited for): a caller
    # who waited for their write still got an answer from read models without it.
    monkeypatch.setattr(calls, "MAX_WAIT", 0.1)
    for path, params in (
        (f"{BASE}/default/state", {}),
        (f"{BASE}/default/diff", {"from": "1", "to": "1"}),
        ("/v1/groups/00000000-0000-0000-0000-000000000001/state", {}),
        ("/v1/groups/00000000-0000-0000-0000-000000000001/history", {}),
    ):
        for role in ("superadmin", "admin"):
            behind = api.get(path, role, params={**params, "min_position": 2**62})
            assert behind.status_code == 503, (path, role, behind.text)
            assert behind.json()["code"] == "ledger_read_model_behind", behind.text


def test_authentication_problems(api: Api) -> None:
    missing = api.client.get(BASE)
    assert missing.status_code == 401 and missing.json()["code"] == "token_authenticate_missing"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = api.client.get(BASE, headers={"Authorization": "Bearer plp_nope"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "token_authenticate_unknown"
    assert "plp_nope" not in unknown.text


def test_who_may_write_and_read_policies(api: Api) -> None:
    refused = api.post(BASE, {"name": "p"}, role="admin")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_forbidden"
    assert api.get(f"{BASE}/default", role="admin").status_code == 200
    for role in ("user", "service"):
        assert api.get(f"{BASE}/default", role=role).status_code == 404
        assert api.get(BASE, role=role).json() == {"items": [], "next_after": None}


def test_paging(api: Api) -> None:
    for name in ("a1", "a2", "a3"):
        api.post(BASE, {"name": name})
    first = api.get(BASE, params={"name_prefix": "a", "limit": 2}).json()
    assert [p["name"] for p in first["items"]] == ["a1", "a2"] and first["next_after"] == "a2"
    rest = api.get(BASE, params={"name_prefix": "a", "limit": 2, "after": "a2"}).json()
    assert [p["name"] for p in rest["items"]] == ["a3"] and rest["next_after"] is None


def test_a_ledger_served_by_a_second_app_keeps_one_set_of_http_metrics(api: Api) -> None:
    from fastapi.testclient import TestClient

    from adapters.http import create_app

    api.get(BASE)
    with TestClient(create_app(ledger=api.ledger)) as second:
        second.get(BASE, headers=api.as_("superadmin"))
        text = second.get("/metrics", headers=api.as_("superadmin")).text
    assert 'ledger_http_requests_total{method="GET",route="/v1/keypair-resource-policies",status="200"} 2.0' in text


def test_the_document_and_its_pages_are_counted_under_their_own_routes(api: Api) -> None:
    """/openapi.json and /docs answered 200 but were counted as route "unmatched", with the
    404s; a path no route matches still is."""
    for path in ("/openapi.json", "/docs", "/no-such-path"):
        api.client.get(path)
    text = api.get("/metrics").text
    for route, status in (("/openapi.json", 200), ("/docs", 200), ("unmatched", 404)):
        assert f'ledger_http_requests_total{{method="GET",route="{route}",status="{status}"}} 1.0' in text, route


def test_the_metrics_are_read_with_a_superadmins_or_the_platforms_token(api: Api) -> None:
    """/metrics answered anyone: its labels name every domain that has acted."""
    api.post(BASE, {"name": "p"})
    anonymous = api.client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "token_authenticate_missing"
    for role, status in (("superadmin", 200), ("service", 200), ("admin", 403), ("user", 403)):
        got = api.get("/metrics", role=role)
        assert got.status_code == status, (role, got.text)
    assert "backendai_action_count" in api.get("/metrics").text


def test_a_key_holding_a_slash_or_a_percent_is_reached_encoded(api: Api) -> None:
    """A policy named 'pol/x' was created (201) and every route to it answered 404: the
    server splits the decoded path at the slash its client encoded as %2F."""
    from urllib.parse import quote

    for name in ("pol/x", "a%2Fb", "50%", "/lead/"):
        path = f"{BASE}/{quote(name, safe='')}"
        assert api.post(BASE, {"name": name}).status_code == 201, name
        got = api.get(path)
        assert got.status_code == 200 and got.json()["name"] == name, (name, got.text)
        changed = api.patch(path, {"max_concurrent_sessions": 3})
        assert changed.status_code == 200, changed.text
        assert [e["event"] for e in api.get(f"{path}/history").json()] == ["Created", "Modified"]
        assert api.get(f"{path}/state", params={"version": 1}).json()["fields"]["max_concurrent_sessions"] == 30
        assert api.get(f"{path}/diff", params={"from": 1, "to": 2}).json() == {
            "max_concurrent_sessions": {"old": 30, "new": 3}
        }
        assert api.delete(path).status_code == 200
    # Unencoded, a slash still separates segments: nothing is reached by accident.
    assert api.post(BASE, {"name": "pol"}).status_code == 201
    assert api.get(f"{BASE}/pol/x").status_code == 404
    # The same for a domain's name (keypairs' access keys take the same parameter type).
    assert api.post("/v1/domains", {"name": "dom/x"}).status_code == 201
    assert api.get("/v1/domains/dom%2Fx").json()["name"] == "dom/x"
    assert [e["event"] for e in api.get("/v1/domains/dom%2Fx/history").json()] == ["Created"]


def test_a_list_without_a_limit_answers_one_page_of_the_default_size(api: Api) -> None:
    """Without `limit` a list answered every item (a platform's kernels: 12 MB), past
    the 10,000 a limit may ask for; it answers a page of DEFAULT_PAGE with its cursor."""
    for number in range(DEFAULT_PAGE + 5):
        create(api.ledger, f"p{number:03}")
    first = api.get(BASE).json()
    assert len(first["items"]) == DEFAULT_PAGE and first["next_after"] == first["items"][-1]["name"]
    rest = api.get(BASE, params={"after": first["next_after"]}).json()
    names = [p["name"] for p in first["items"] + rest["items"]]
    assert rest["next_after"] is None and names == sorted(["default", *(f"p{n:03}" for n in range(DEFAULT_PAGE + 5))])
    assert api.get(BASE, params={"limit": 10_001}).status_code == 400
    assert len(api.get(BASE, params={"limit": 10_000}).json()["items"]) == DEFAULT_PAGE + 6


def test_if_match_on_a_create_is_412_and_creates_nothing(api: Api) -> None:
    """A create's `If-Match` (listed in the OpenAPI document) was ignored and the policy made;
    with no current version, the condition is false (RFC 9110 13.1.1): 412, nothing stored.
    A refusal the request meets without the condition (403 here) still comes first."""
    for tag in ('"1"', "*"):
        refused = api.post(BASE, {"name": "fresh"}, **{"If-Match": tag})
        assert refused.status_code == 412, refused.text
        assert refused.json()["code"] == "ledger_precondition_failed"
        assert refused.headers["content-type"] == "application/problem+json"
        assert "no current version" in refused.json()["detail"]
        assert api.get(f"{BASE}/fresh").status_code == 404
    assert api.post(BASE, {"name": "fresh"}, "user", **{"If-Match": '"1"'}).status_code == 403
    bad = api.post(BASE, {"name": "fresh"}, **{"If-Match": "seven"})
    assert bad.status_code == 400 and bad.json()["field"] == "If-Match"
    assert api.post(BASE, {"name": "fresh"}).status_code == 201


@pytest.mark.parametrize("name", [".", ".."])
def test_a_dot_segment_name_is_refused_naming_the_field(api: Api, name: str) -> None:
    """A policy (domain, keypair) named `..` was made, then `/v1/keypair-resource-policies/..`
    was the collection: the entity could not be read, changed or deleted by its URL."""
    for path, body, field in (
        (BASE, {"name": name}, "name"),
        ("/v1/domains", {"name": name}, "name"),
        (
            "/v1/keypairs",
            {"access_key": name, "user_id": str(api.users["user"]), "domain_name": "default"},
            "access_key",
        ),
    ):
        refused = api.post(path, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == field and "path segment" in refused.json()["detail"]
    assert api.get(BASE, params={"name_prefix": "."}).json()["items"] == []


def test_a_deprecated_field_is_stored_with_a_warning_header(api: Api) -> None:
    # seed 001 (2.5): max_vfolder_size is stored, with a deprecation warning; the CLI
    # printed one, HTTP answered as if the field were like any other
    created = api.post(BASE, {"name": "old", "max_quota_scope_size": 10})
    assert created.status_code == 201 and created.json()["max_quota_scope_size"] == 10
    assert "max_quota_scope_size: deprecated" in created.headers["Warning"]
    changed = api.patch(f"{BASE}/old", {"max_vfolder_size": 1000000})
    assert changed.status_code == 200 and changed.json()["keypair_resource_policy"]["max_vfolder_size"] == 1000000
    assert changed.headers["Warning"].startswith('299 - "max_vfolder_size: deprecated')
    assert "Warning" not in api.patch(f"{BASE}/old", {"max_concurrent_sessions": 3}).headers
