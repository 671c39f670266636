"""The user routes over HTTP: CRUD with ETag and If-Match, who reads which user (404 and
filtered lists otherwise), who may write, problems."""

from __future__ import annotations

import uuid

from adapters.http.routes.common import Page
from adapters.http.routes.users import UserModified, UserOut
from tests.adapters.http.api import FOREIGN, HOME, Api, issue

BASE = "/v1/users"


def test_create_read_modify_delete(api: Api) -> None:
    new = str(uuid.uuid4())
    created = api.post(BASE, {"user_id": new, "domain_name": HOME, "email": "n@example.org"}, role="admin")
    assert created.status_code == 201, created.text
    UserOut.model_validate(created.json())
    assert set(created.json()) == set(UserOut.model_fields)
    assert created.json()["user_id"] == new and created.json()["email"] == "n@example.org"
    assert created.headers["ETag"] == '"1"' and int(created.headers["Ledger-Position"]) > 0
    got = api.get(f"{BASE}/{new}")
    assert got.status_code == 200 and got.json() == created.json() and got.headers["ETag"] == '"1"'
    assert api.get(f"{BASE}/{new.upper()}").json() == created.json()  # the same UUID, written otherwise
    changed = api.patch(f"{BASE}/{new}", {"full_name": "New One", "email": None}, **{"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    UserModified.model_validate(changed.json())
    assert changed.json()["changed"] is True and changed.json()["user"]["email"] is None
    assert changed.headers["ETag"] == '"2"'
    same = api.patch(f"{BASE}/{new}", {"full_name": "New One"})
    assert same.json()["changed"] is False and same.headers["ETag"] == '"2"'
    assert api.patch(f"{BASE}/{new}", {"full_name": "x"}, **{"If-Match": '"1"'}).status_code == 412
    deleted = api.delete(f"{BASE}/{new}", **{"If-Match": '"2"'})
    assert deleted.status_code == 200 and deleted.headers["ETag"] == '"3"'
    assert api.get(f"{BASE}/{new}").status_code == 404
    history = api.get(f"{BASE}/{new}/history").json()
    assert [e["event"] for e in history] == ["Created", "Modified", "Deleted"]
    assert api.get(f"{BASE}/{new}/state", params={"version": 1}).json()["fields"]["email"] == "n@example.org"
    diff = api.get(f"{BASE}/{new}/diff", params={"from": 1, "to": 2}).json()
    assert diff["full_name"] == {"old": None, "new": "New One"}


def test_who_reads_which_user(api: Api) -> None:
    home = {str(u) for u in api.users.values()}
    foreign = str(api.foreign_user)
    seen = {
        "superadmin": home | {foreign},
        "admin": home,
        "user": {str(api.users["user"])},
        "service": set(),
        "foreign_admin": {foreign},
    }
    for role, visible in seen.items():
        listed = api.get(BASE, role=role).json()
        Page[UserOut].model_validate(listed)
        assert {u["user_id"] for u in listed["items"]} == visible, role
        for user_id in home | {foreign}:
            expected = 200 if user_id in visible else 404
            for suffix in ("", "/history", "/state"):
                answer = api.get(f"{BASE}/{user_id}{suffix}", role=role)
                assert answer.status_code == expected, (role, user_id, suffix, answer.text)
            if expected == 404:  # exactly what an unknown user gets
                unknown = api.get(f"{BASE}/{uuid.uuid4()}", role=role).json()
                assert api.get(f"{BASE}/{user_id}", role=role).json()["code"] == unknown["code"]


def test_lists_filter_within_what_the_caller_sees(api: Api) -> None:
    me = str(api.users["user"])
    assert api.get(BASE, role="admin", params={"domain_name": FOREIGN}).json()["items"] == []
    assert api.get(BASE, role="user", params={"domain_name": FOREIGN}).json()["items"] == []
    assert [u["user_id"] for u in api.get(BASE, role="user", params={"domain_name": HOME}).json()["items"]] == [me]
    assert api.get(BASE, role="user", params={"after": me}).json() == {"items": [], "next_after": None}
    beta = api.get(BASE, params={"domain_name": FOREIGN}).json()["items"]
    assert [u["user_id"] for u in beta] == [str(api.foreign_user)]
    ordered = sorted(str(u) for u in api.users.values())
    first = api.get(BASE, role="admin", params={"limit": 3}).json()
    assert [u["user_id"] for u in first["items"]] == ordered[:3] and first["next_after"] == ordered[2]
    rest = api.get(BASE, role="admin", params={"limit": 3, "after": ordered[2]}).json()
    assert [u["user_id"] for u in rest["items"]] == ordered[3:] and rest["next_after"] is None
    bad = api.get(BASE, params={"after": "nope"})
    assert bad.status_code == 400 and bad.json()["field"] == "after"


def test_who_may_write_users(api: Api) -> None:
    target = str(api.users["user"])
    for role in ("user", "service"):
        refused = api.patch(f"{BASE}/{target}", {"full_name": "x"}, role=role)
        assert refused.status_code == 403 and refused.json()["code"] == "permission_forbidden", role
        assert api.delete(f"{BASE}/{target}", role=role).status_code == 403
        assert api.post(BASE, {"user_id": str(uuid.uuid4()), "domain_name": HOME}, role=role).status_code == 403
    # A foreign admin's write on an alpha user is answered as one on an unknown user.
    unknown = api.delete(f"{BASE}/{uuid.uuid4()}", role="foreign_admin").json()
    for attempt in (
        api.patch(f"{BASE}/{target}", {"full_name": "x"}, role="foreign_admin"),
        api.delete(f"{BASE}/{target}", role="foreign_admin"),
    ):
        assert attempt.status_code == 404 and HOME not in attempt.text, attempt.text
        assert attempt.json()["code"] == unknown["code"]
    into_alpha = api.post(BASE, {"user_id": str(uuid.uuid4()), "domain_name": HOME}, role="foreign_admin")
    assert into_alpha.status_code == 403
    assert api.get(f"{BASE}/{target}").json()["full_name"] is None
    assert api.patch(f"{BASE}/{target}", {"full_name": "x"}, role="admin").json()["changed"] is True


def test_bad_input_names_the_field(api: Api) -> None:
    fine = {"user_id": str(uuid.uuid4()), "domain_name": HOME}
    for field, bad in {
        "user_id": {**fine, "user_id": "nope"},
        "email": {**fine, "email": "no-at-sign"},
        "warp": {**fine, "warp": 1},
    }.items():
        answer = api.post(BASE, bad)
        assert answer.status_code == 400 and answer.json()["field"] == field, (field, answer.text)
    moved = api.patch(f"{BASE}/{api.users['user']}", {"domain_name": FOREIGN})
    assert moved.status_code == 400 and moved.json()["field"] == "domain_name"
    path = api.get(f"{BASE}/not-a-uuid")
    assert path.status_code == 400 and path.json()["field"] == "user_id"
    assert api.post(BASE, {**fine, "domain_name": "nowhere"}).status_code == 404


def test_idempotent_create_replays_the_first_response(api: Api) -> None:
    key = {"Idempotency-Key": "create-user-1"}
    body = {"user_id": str(uuid.uuid4()), "domain_name": HOME}
    first = api.post(BASE, body, **key)
    again = api.post(BASE, body, **key)
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get(f"{BASE}/{body['user_id']}/history").json()) == 1
    other = api.post(BASE, {**body, "user_id": str(uuid.uuid4())}, **key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_another_token_of_the_same_user_does_not_replay_its_response(api: Api) -> None:
    """Keys were scoped by user id alone: the same key from a user-role token of the
    superadmin's own user replayed the superadmin's 201, where that token is refused."""
    lesser = issue(api.ledger, api.users["superadmin"], "user", HOME, name="second")
    key = {"Idempotency-Key": "create-domain-1"}
    body = {"name": "zz"}
    assert api.post("/v1/domains", body, **key).status_code == 201
    replayed = api.client.post("/v1/domains", json=body, headers={"Authorization": f"Bearer {lesser}", **key})
    assert replayed.status_code == 403 and "Idempotent-Replayed" not in replayed.headers


def test_history_routes_take_a_user_id_in_any_case(api: Api) -> None:
    upper = str(api.users["user"]).upper()
    assert api.get(f"/v1/users/{upper}/history").status_code == 200
    assert api.get(f"/v1/users/{upper}/state", params={"version": 1}).status_code == 200
    bad = api.get("/v1/users/not-a-uuid/history")
    assert bad.status_code == 400 and bad.json()["field"] == "user_id"


def test_erase_a_user(api: Api) -> None:
    from adapters.http.routes.users import UserErased
    from domain.personal import ERASED

    new = str(uuid.uuid4())
    body = {"user_id": new, "domain_name": HOME, "email": "erase.me@example.org", "full_name": "Erase Me"}
    assert api.post(BASE, body).status_code == 201
    erase = {"reason": "asked to be forgotten", "accept_clear_history": False}
    for role in ("admin", "user", "service", "foreign_admin"):
        refused = api.post(f"{BASE}/{new}/erase", erase, role=role)
        assert refused.status_code == 403 and refused.json()["code"] == "permission_forbidden", role
    assert api.get(f"{BASE}/{new}/state").json()["fields"]["email"] == "erase.me@example.org"
    erased = api.post(f"{BASE}/{new}/erase", erase, **{"If-Match": '"1"'})
    assert erased.status_code == 200, erased.text
    UserErased.model_validate(erased.json())
    assert erased.json()["user"]["email"] == ERASED and erased.json()["user"]["full_name"] == ERASED
    assert erased.json()["clear_values"] == 0 and erased.headers["ETag"] == '"2"'
    state = api.get(f"{BASE}/{new}/state").json()
    assert state["fields"]["email"] == ERASED and state["fields"]["full_name"] == ERASED
    history = api.get(f"{BASE}/{new}/history").json()
    assert [e["event"] for e in history] == ["Created", "Erased"]
    assert history[0]["changes"]["email"]["new"] == ERASED and "erase.me" not in str(history)
    assert history[1]["details"]["reason"] == "asked to be forgotten"
    assert history[1]["details"]["requested_by"] == str(api.users["superadmin"])
    diff = api.get(f"{BASE}/{new}/diff", params={"from": 1, "to": 2}).json()
    assert "Erase Me" not in str(diff)
    assert api.ledger.app.keys.key(f"user:{new}") is None


def test_erase_an_id_whose_create_was_refused(api: Api) -> None:
    """No user came of the create, but its email was sealed under the id's key: the
    erasure destroys that key and answers without a user."""
    from adapters.http.routes.users import UserErased
    from domain.personal import ERASED

    new = str(uuid.uuid4())
    body = {"user_id": new, "domain_name": "no-such-domain", "email": "refused@example.org"}
    assert api.post(BASE, body).status_code == 404
    assert api.post(f"{BASE}/{new}/erase", {"reason": "r"}, role="admin").status_code == 403
    erased = api.post(f"{BASE}/{new}/erase", {"reason": "asked to be forgotten"})
    assert erased.status_code == 200, erased.text
    UserErased.model_validate(erased.json())
    assert erased.json() == {"user": None, "clear_values": 0}
    assert api.ledger.app.keys.key(f"user:{new}") is None
    (record,) = api.ledger.queries.audit_log(entity_type="user", entity_id=new, operation="create")
    assert record.spec["creator"]["email"] == ERASED


def test_erase_refusals_name_the_field(api: Api) -> None:
    target = f"{BASE}/{api.users['user']}/erase"
    for field, bad in {
        "reason": {},
        "accept_clear_history": {"reason": "r", "accept_clear_history": "maybe"},
        "user_id": {"reason": "r", "user_id": str(uuid.uuid4())},
        "body": ["reason"],
    }.items():
        answer = api.post(target, bad)
        assert answer.status_code == 400 and answer.json()["field"] == field, (field, answer.text)
    unknown = api.post(f"{BASE}/{uuid.uuid4()}/erase", {"reason": "r"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "user_not_found"
    assert api.ledger.app.keys.key(f"user:{api.users['user']}") is not None


def test_an_id_created_again_in_another_domain_keeps_its_past_from_the_new_domains_admin(api: Api) -> None:
    """Visibility was judged on the id's current incarnation only: once a beta user's id was
    deleted and created again in alpha, alpha's admin read the beta incarnation's history,
    state and diff, email and full name in clear."""
    user_id = str(uuid.uuid4())
    before = {"user_id": user_id, "domain_name": "beta", "email": "old@beta.org", "full_name": "Old Owner"}
    assert api.post(BASE, before).status_code == 201
    assert api.delete(f"{BASE}/{user_id}").status_code == 200
    assert api.post(BASE, {"user_id": user_id, "domain_name": "alpha", "email": "new@alpha.org"}).status_code == 201
    everything = api.get(f"{BASE}/{user_id}/history").json()
    assert [e["event"] for e in everything] == ["Created", "Deleted", "Recreated"]
    mine = api.get(f"{BASE}/{user_id}/history", role="admin")
    assert mine.status_code == 200 and [e["event"] for e in mine.json()] == ["Recreated"], mine.text
    assert "old@beta.org" not in mine.text
    assert api.get(f"{BASE}/{user_id}/state", params={"version": 1}, role="admin").status_code == 404
    assert api.get(f"{BASE}/{user_id}/state", params={"version": 3}, role="admin").status_code == 200
    assert api.get(f"{BASE}/{user_id}/diff", params={"from": 1, "to": 3}, role="admin").status_code == 404
    assert api.get(f"{BASE}/{user_id}/state", params={"version": 1}).json()["fields"]["email"] == "old@beta.org"
