"""The domain routes over HTTP: CRUD with ETag and If-Match, who reads which domain (404
and filtered lists otherwise), who may write, problems."""

from __future__ import annotations

from adapters.http.routes.common import Page
from adapters.http.routes.domains import DomainModified, DomainOut
from tests.adapters.http.api import FOREIGN, HOME, Api

BASE = "/v1/domains"


def test_create_read_modify_delete(api: Api) -> None:
    body = {"name": "gamma", "total_resource_slots": {"cpu": 8}, "allowed_keypair_resource_policies": ["default"]}
    created = api.post(BASE, body)
    assert created.status_code == 201, created.text
    DomainOut.model_validate(created.json())
    assert set(created.json()) == set(DomainOut.model_fields)
    assert created.json()["total_resource_slots"] == {"cpu": "8"} and created.json()["is_active"] is True
    assert created.json()["allowed_keypair_resource_policies"] == ["default"]
    assert created.headers["ETag"] == '"1"' and int(created.headers["Ledger-Position"]) > 0
    got = api.get(f"{BASE}/gamma")
    assert got.status_code == 200 and got.json() == created.json() and got.headers["ETag"] == '"1"'
    changed = api.patch(f"{BASE}/gamma", {"is_active": False, "description": "third"}, **{"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    DomainModified.model_validate(changed.json())
    assert changed.json()["changed"] is True and changed.json()["domain"]["is_active"] is False
    assert changed.headers["ETag"] == '"2"'
    same = api.patch(f"{BASE}/gamma", {"is_active": False})
    assert same.json()["changed"] is False and same.headers["ETag"] == '"2"'
    assert api.patch(f"{BASE}/gamma", {"is_active": True}, **{"If-Match": '"1"'}).status_code == 412
    deleted = api.delete(f"{BASE}/gamma", **{"If-Match": '"2"'})
    assert deleted.status_code == 200 and deleted.headers["ETag"] == '"3"'
    assert api.get(f"{BASE}/gamma").status_code == 404
    history = api.get(f"{BASE}/gamma/history").json()
    assert [e["event"] for e in history] == ["Created", "Modified", "Deleted"]
    assert api.get(f"{BASE}/gamma/state", params={"version": 1}).json()["fields"]["is_active"] is True
    diff = api.get(f"{BASE}/gamma/diff", params={"from": 1, "to": 2}).json()
    assert diff["is_active"] == {"old": True, "new": False}


def test_who_reads_which_domain(api: Api) -> None:
    everything = {d["name"] for d in api.get(BASE).json()["items"]}
    assert {HOME, FOREIGN} <= everything
    seen = {
        "superadmin": everything,
        "admin": {HOME},
        "user": set(),
        "service": set(),
        "foreign_admin": {FOREIGN},
    }
    for role, visible in seen.items():
        listed = api.get(BASE, role=role).json()
        Page[DomainOut].model_validate(listed)
        assert {d["name"] for d in listed["items"]} == visible, role
        for name in (HOME, FOREIGN):
            expected = 200 if name in visible else 404
            for suffix in ("", "/history", "/state"):
                answer = api.get(f"{BASE}/{name}{suffix}", role=role)
                assert answer.status_code == expected, (role, name, suffix, answer.text)
            if expected == 404:  # exactly what an unknown domain gets
                unknown = api.get(f"{BASE}/nowhere", role=role).json()
                assert api.get(f"{BASE}/{name}", role=role).json()["code"] == unknown["code"]


def test_lists_filter_and_page(api: Api) -> None:
    api.patch(f"{BASE}/{FOREIGN}", {"is_active": False})
    assert [d["name"] for d in api.get(BASE, params={"active": False}).json()["items"]] == [FOREIGN]
    assert [d["name"] for d in api.get(BASE, params={"name_prefix": "al"}).json()["items"]] == [HOME]
    first = api.get(BASE, params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_after"] == first["items"][0]["name"]
    rest = api.get(BASE, params={"after": first["next_after"]}).json()
    assert first["next_after"] not in {d["name"] for d in rest["items"]}
    # An admin's page holds their own domain only while the filters leave it in.
    assert [d["name"] for d in api.get(BASE, role="admin", params={"active": True}).json()["items"]] == [HOME]
    for params in ({"active": False}, {"name_prefix": "be"}, {"after": HOME}):
        assert api.get(BASE, role="admin", params=params).json() == {"items": [], "next_after": None}, params


def test_only_a_superadmin_writes_domains(api: Api) -> None:
    for role in ("admin", "user", "service", "foreign_admin"):
        refused = api.patch(f"{BASE}/{HOME}", {"description": "mine"}, role=role)
        assert refused.status_code == 403 and refused.json()["code"] == "permission_forbidden", role
        assert api.delete(f"{BASE}/{HOME}", role=role).status_code == 403
        assert api.post(BASE, {"name": f"new-{role}"}, role=role).status_code == 403
    assert api.get(f"{BASE}/{HOME}").json()["description"] is None
    in_use = api.delete(f"{BASE}/{HOME}")  # it holds users
    assert in_use.status_code == 409 and in_use.json()["code"] == "domain_delete_not_empty"


def test_bad_input_names_the_field(api: Api) -> None:
    for field, bad in {
        "name": {"name": ""},
        "is_active": {"name": "d", "is_active": "maybe"},
        "total_resource_slots.cpu": {"name": "d", "total_resource_slots": {"cpu": "lots"}},
        "allowed_keypair_resource_policies": {"name": "d", "allowed_keypair_resource_policies": "default"},
        "warp": {"name": "d", "warp": 1},
    }.items():
        answer = api.post(BASE, bad)
        assert answer.status_code == 400 and answer.json()["field"] == field, (field, answer.text)
    renamed = api.patch(f"{BASE}/{HOME}", {"name": "other"})
    assert renamed.status_code == 400 and renamed.json()["field"] == "name"
    assert api.post(BASE, {"name": HOME}).status_code == 409


def test_idempotent_create_replays_the_first_response(api: Api) -> None:
    key = {"Idempotency-Key": "create-domain-1"}
    first = api.post(BASE, {"name": "gamma"}, **key)
    again = api.post(BASE, {"name": "gamma"}, **key)
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get(f"{BASE}/gamma/history").json()) == 1
    other = api.post(BASE, {"name": "delta"}, **key)
    assert other.status_code == 422 and api.get(f"{BASE}/delta").status_code == 404


def test_an_admin_past_the_domains_grants_is_refused_naming_the_field(api: Api) -> None:
    """These 403s said the field only inside `detail`: a client had no `field` to show
    beside the input it came from."""
    api.post("/v1/keypair-resource-policies", {"name": "gold"})
    grants = {"allowed_keypair_resource_policies": ["default"], "total_resource_slots": {"cpu": 4}}
    assert api.patch(f"{BASE}/{HOME}", grants).status_code == 200
    body = {"access_key": "AKGOLD", "user_id": str(api.users["user"]), "resource_policy": "gold"}
    policy = api.post("/v1/keypairs", body, role="admin")
    assert policy.status_code == 403 and policy.json()["code"] == "domain_assign_policy_policy_not_allowed"
    assert policy.json()["field"] == "resource_policy"
    group = api.post("/v1/groups", {"name": "big", "domain_name": HOME, "total_resource_slots": {"cpu": 8}}, "admin")
    assert group.status_code == 403 and group.json()["code"] == "group_set_slots_above_domain"
    assert group.json()["field"] == "total_resource_slots.cpu"
