"""`/v1/audit` and `/v1/verify` over HTTP: the CLI's filters, the paging cursor in both
orders, who reads which rows (an admin only their domain's), and the chain walk."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.adapters.http.api import Api

POLICIES = "/v1/keypair-resource-policies"


def _ops(response: Any) -> list[tuple[str, str | None, str]]:
    assert response.status_code == 200, response.text
    return [(e["operation"], e["entity_id"], e["status"]) for e in response.json()["items"]]


def _some_actions(api: Api) -> None:
    assert api.post(POLICIES, {"name": "p1"}).status_code == 201
    assert api.post(POLICIES, {"name": "p2"}).status_code == 201
    assert api.patch(f"{POLICIES}/p1", {"idle_timeout": 60}).status_code == 200
    assert api.post(POLICIES, {"name": "p1"}).status_code == 409  # recorded as an error


def test_filters_as_the_cli_offers_them(api: Api) -> None:
    _some_actions(api)
    kind = {"entity_type": "keypair_resource_policy"}
    newest = _ops(api.get("/v1/audit", params={**kind, "entity_id": "p1"}))
    assert newest == [("create", "p1", "error"), ("modify", "p1", "success"), ("create", "p1", "success")]
    oldest = _ops(api.get("/v1/audit", params={**kind, "entity_id": "p1", "oldest_first": True}))
    assert oldest == newest[::-1]
    assert _ops(api.get("/v1/audit", params={**kind, "operation": "modify"})) == [("modify", "p1", "success")]
    assert _ops(api.get("/v1/audit", params={**kind, "status": "error"})) == [("create", "p1", "error")]
    mine = api.get("/v1/audit", params={**kind, "actor": str(api.users["superadmin"])}).json()["items"]
    assert len(mine) == 4 and {e["triggered_by"] for e in mine} == {str(api.users["superadmin"])}
    assert _ops(api.get("/v1/audit", params={**kind, "actor": str(api.users["admin"])})) == []
    # since is inclusive, until exclusive: the window of the modify alone.
    entries = api.get("/v1/audit", params={**kind, "oldest_first": True}).json()["items"]
    window = {"since": entries[2]["started_at"], "until": entries[3]["started_at"]}
    if entries[2]["started_at"] != entries[3]["started_at"]:
        assert _ops(api.get("/v1/audit", params={**kind, **window})) == [("modify", "p1", "success")]
    backwards = api.get("/v1/audit", params={"since": "2030-01-02", "until": "2030-01-01"})
    assert backwards.status_code == 400 and backwards.json()["field"] == "since"
    assert api.get("/v1/audit", params={"since": "yesterday"}).json()["field"] == "since"
    assert api.get("/v1/audit", params={"status": "fine"}).status_code == 400
    assert api.get("/v1/audit", params={"entity_type": "spaceship"}).status_code == 400


def test_the_cursor_pages_through_the_trail_in_either_order(api: Api) -> None:
    _some_actions(api)
    for order in ({}, {"oldest_first": True}):
        whole = api.get("/v1/audit", params=order).json()
        assert whole["next_after"] is None and len(whole["items"]) > 5
        seen: list[int] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {**order, "limit": 2, **({} if after is None else {"after": after})}
            got = api.get("/v1/audit", params=params).json()
            assert len(got["items"]) <= 2
            seen.extend(e["position"] for e in got["items"])
            after = got["next_after"]
            if after is None:
                break
        assert seen == [e["position"] for e in whole["items"]]
    assert api.get("/v1/audit", params={"after": "x1"}).json()["field"] == "after"
    # A position no entry holds is refused: an empty page would say the trail ends there.
    unknown = api.get("/v1/audit", params={"after": "999999999"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "after", unknown.text
    # The last entry's position is a cursor past which nothing follows: the end, not an error.
    last = whole["items"][-1]["position"]
    assert api.get("/v1/audit", params={"oldest_first": True, "after": last}).json() == {
        "items": [],
        "next_after": None,
    }


def test_an_admin_reads_the_rows_that_concern_their_domain(api: Api) -> None:
    """Rows were chosen by the actor's domain: an admin of the superadmin's home domain read
    the superadmin's actions in every domain (personal values in their inputs included),
    and a foreign domain's admin not those on their own users. An admin's refusal on a
    foreign entity concerns that entity's domain, so the admin's own view tells it from an
    unknown one no better than the 404 does."""

    def new_rows(role: str) -> list[tuple[str, str | None, str]]:
        rows = api.get("/v1/audit", role=role).json()["items"]
        return [(e["operation"], e["entity_id"], e["status"]) for e in rows if e["position"] > setup]

    setup = api.get("/v1/audit").json()["items"][0]["position"]  # the fixture's users and tokens
    _some_actions(api)  # policies: in no domain, the superadmin's rows
    foreign_user, unknown_user = str(uuid.uuid4()), str(uuid.uuid4())
    made = api.post("/v1/users", {"user_id": foreign_user, "domain_name": "beta", "email": "m@beta.org"})
    assert made.status_code == 201, made.text
    home_group = api.post("/v1/groups", {"name": "g", "domain_name": "alpha"})
    assert home_group.status_code == 201, home_group.text
    for user in (foreign_user, unknown_user):
        assert api.patch(f"/v1/users/{user}", {"full_name": "x"}, role="admin").status_code == 404
    everything = api.get("/v1/audit").json()["items"]
    assert new_rows("admin") == [("create", home_group.json()["id"], "success")]
    assert new_rows("foreign_admin") == [
        ("modify", foreign_user, "denied"),  # the alpha admin's attempt on a beta user
        ("create", foreign_user, "success"),  # the superadmin's, whose home is alpha
    ]
    beta = api.get("/v1/audit", role="foreign_admin").json()["items"]
    assert beta[1]["spec"]["creator"]["email"] == "m@beta.org" and beta[1]["domain_name"] == "alpha"
    # Policies and the refusal on the unknown user concern no domain: the superadmin's alone.
    assert ("modify", unknown_user, "error") in [(e["operation"], e["entity_id"], e["status"]) for e in everything]
    # The domain filter holds together with the others and with the cursor.
    assert api.get("/v1/audit", role="foreign_admin", params={"entity_id": "p1"}).json()["items"] == []
    paged = api.get("/v1/audit", role="foreign_admin", params={"limit": 1}).json()
    assert [e["entity_id"] for e in paged["items"]] == [foreign_user] and paged["next_after"] is not None
    for role in ("user", "service"):
        assert api.get("/v1/audit", role=role).json() == {"items": [], "next_after": None}


def test_an_entity_id_is_found_in_any_case_of_its_uuid(api: Api) -> None:
    group = api.post("/v1/groups", {"name": "g", "domain_name": "alpha"}).json()["id"]
    for given in (group, group.upper()):
        assert _ops(api.get("/v1/audit", params={"entity_id": given})) == [("create", group, "success")]
    actor = api.get("/v1/audit", params={"entity_id": group}).json()["items"][0]["triggered_by"]
    for given in (actor, actor.upper()):
        assert ("create", group, "success") in _ops(api.get("/v1/audit", params={"actor": given}))


def test_min_position_reads_the_write_it_waited_for(api: Api) -> None:
    created = api.post(POLICIES, {"name": "fresh"})
    position = created.headers["Ledger-Position"]
    got = api.get("/v1/audit", params={"entity_id": "fresh", "min_position": position}).json()["items"]
    assert [e["operation"] for e in got] == ["create"]


def test_verify_reports_the_intact_chain_to_a_superadmin_only(api: Api) -> None:
    _some_actions(api)
    report = api.get("/v1/verify")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["ok"] is True and body["first_bad"] is None and body["checked"] > 0
    assert body["checked"] <= body["head_position"] and len(body["head_hash"]) == 64
    kept = f"{body['head_position']}:{body['head_hash']}"
    assert api.get("/v1/verify", params={"expect_head": kept}).json()["ok"] is True
    wrong = f"{body['head_position']}:{'0' * 64}"
    assert api.get("/v1/verify", params={"expect_head": wrong}).json()["ok"] is False
    assert api.get("/v1/verify", params={"expect_head": "12"}).json()["field"] == "expect_head"
    # No event is at position 0: refused, not reported as a rewritten chain.
    zero = api.get("/v1/verify", params={"expect_head": f"0:{body['head_hash']}"})
    assert (zero.status_code, zero.json()["field"]) == (400, "expect_head"), zero.text
    for role in ("admin", "user", "service", "foreign_admin"):
        hidden = api.get("/v1/verify", role=role)
        assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"


def test_a_plus_sent_unencoded_in_a_query_time_is_named_as_the_cause(api: Api) -> None:
    """`?at=2025-01-01T00:00:00+09:00` as typed reaches the server as `... 09:00` (a `+` in
    a query is a space): the refusal quoted the space, leaving the platform to guess why
    a valid time was not one. It now says how to send the `+`; a `%2B` is read as it is."""
    hint = "a '+' in a URL query reads as a space: send it as %2B"
    for path in (
        "/v1/keypair-resource-policies/default/state?at=2100-01-01T00:00:00+09:00",
        "/v1/audit?since=2025-01-01T00:00:00+00:00",
        "/v1/sessions/due?now=2025-01-01T00:00:00+00:00",
    ):
        refused = api.client.get(path, headers=api.as_("superadmin"))
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].endswith(f"({hint})"), refused.text
    encoded = api.get("/v1/keypair-resource-policies/default/state?at=2100-01-01T00:00:00%2B09:00")
    assert encoded.status_code == 200, encoded.text
    other = api.client.get("/v1/audit?since=garbage", headers=api.as_("superadmin"))
    assert hint not in other.json()["detail"]


def test_an_admins_cursor_of_another_domains_entry_is_refused_as_an_unknown_one(api: Api) -> None:
    # The page is placed by the cursor entry's start time: another domain's entry as a
    # cursor told an admin when that action ran among theirs. It is an unknown cursor now,
    # refused with the very answer an unknown one gets.
    made = api.post("/v1/users", {"user_id": str(uuid.uuid4()), "domain_name": "beta", "email": "m@beta.org"})
    assert made.status_code == 201, made.text
    assert api.post("/v1/groups", {"name": "g", "domain_name": "alpha"}).status_code == 201
    foreign = api.get("/v1/audit", role="foreign_admin").json()["items"][0]["position"]
    assert foreign not in [e["position"] for e in api.get("/v1/audit", role="admin").json()["items"]]
    for order in ({}, {"oldest_first": True}):
        answers = [api.get("/v1/audit", role="admin", params={**order, "after": p}) for p in (foreign, 10**15)]
        assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
        assert answers[0].json() == answers[1].json() and answers[0].json()["field"] == "after", order
    # Their own entry as a cursor still pages, and a superadmin's any entry.
    own = api.get("/v1/audit", role="admin").json()["items"][0]["position"]
    assert api.get("/v1/audit", role="admin", params={"after": own}).json()["items"]
    assert api.get("/v1/audit", params={"after": foreign}).json()["items"]


def test_an_admin_reads_nothing_of_another_domains_facts_in_a_batch_that_concerns_both(api: Api) -> None:
    """The platform reports the facts of every domain in one batch. Its record concerns each
    domain it touched, and an admin read it whole: the other domain's endpoint (its id,
    group and name) in the input and as the record's label, and found the batch by that
    endpoint's id, telling them it exists. A batch that concerns another domain too is
    shown without its input and label, and is not found by an entity id."""
    groups = {
        domain: api.post("/v1/groups", {"name": "g", "domain_name": domain}).json()["id"]
        for domain in ("alpha", "beta")
    }
    endpoints = {domain: str(uuid.uuid4()) for domain in groups}
    facts = [
        {"fact": "create_endpoint", "endpoint_id": endpoints[d], "group_id": groups[d], "name": f"secret-of-{d}"}
        for d in ("beta", "alpha")
    ]
    assert api.post("/v1/workload/facts", facts, role="service").status_code == 200
    for role, other in (("admin", "beta"), ("foreign_admin", "alpha")):
        batches = api.get("/v1/audit", role=role, params={"operation": "record_batch"}).json()["items"]
        assert len(batches) == 1, role  # it concerns their domain: they see it was recorded
        shown = json.dumps(batches[0])
        assert endpoints[other] not in shown and groups[other] not in shown and f"secret-of-{other}" not in shown
        for found in (endpoints[other], f"endpoint:{endpoints[other]}"):
            assert api.get("/v1/audit", role=role, params={"entity_id": found}).json()["items"] == [], found
    whole = api.get("/v1/audit", params={"operation": "record_batch"}).json()["items"][0]
    assert len(whole["spec"]["actions"]) == 2  # the superadmin reads it whole
    assert (
        api.get("/v1/audit", params={"entity_id": endpoints["beta"]}).json()["items"][0]["position"]
        == whole["position"]
    )
