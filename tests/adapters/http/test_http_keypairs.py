"""The keypair routes over HTTP: CRUD with ETag and If-Match, the effective policy, who
reads which keypair (404 and filtered lists otherwise), who may write, problems."""

from __future__ import annotations

from adapters.http.routes.common import Page
from adapters.http.routes.keypairs import EffectivePolicyOut, KeyPairModified, KeyPairOut
from tests.adapters.http.api import FOREIGN, HOME, Api, shaped

BASE = "/v1/keypairs"
ROLES = ("superadmin", "admin", "user", "service", "foreign_admin")


def _keypairs(api: Api) -> dict[str, str]:
    """One keypair owned by the `user` and one by the `admin` of alpha, one in beta."""
    owners = {"AK-USER": (api.users["user"], HOME), "AK-ADMIN": (api.users["admin"], HOME)}
    owners["AK-BETA"] = (api.foreign_user, FOREIGN)
    for access_key, (owner, domain) in owners.items():
        body = {"access_key": access_key, "user_id": str(owner), "domain_name": domain}
        created = api.post(BASE, body)
        assert created.status_code == 201, created.text
    return {access_key: str(owner) for access_key, (owner, _) in owners.items()}


def test_create_read_modify_delete(api: Api) -> None:
    api.post("/v1/keypair-resource-policies", {"name": "base"})
    api.post("/v1/keypair-resource-policies", {"name": "gpu", "fallback_policy": "base"})
    body = {"access_key": "AK1", "user_id": str(api.users["user"]), "resource_policy": "gpu"}
    created = api.post(BASE, body, role="admin")  # the domain defaults to the caller's
    assert created.status_code == 201, created.text
    assert created.json() == {**body, "domain_name": HOME}
    shaped(KeyPairOut, created.json())
    assert created.headers["ETag"] == '"1"' and int(created.headers["Ledger-Position"]) > 0
    got = api.get(f"{BASE}/AK1")
    assert got.status_code == 200 and got.json() == created.json() and got.headers["ETag"] == '"1"'
    effective = api.get(f"{BASE}/AK1/effective-policy").json()
    assert effective["name"] == "gpu" and effective["source"] == "keypair" and effective["version"] >= 1
    assert effective["fallback"]["name"] == "base"
    shaped(EffectivePolicyOut, effective)
    unassigned = api.patch(f"{BASE}/AK1", {"resource_policy": None}, **{"If-Match": '"1"'})
    assert unassigned.status_code == 200, unassigned.text
    assert unassigned.json() == {"keypair": {**created.json(), "resource_policy": None}, "changed": True}
    assert unassigned.headers["ETag"] == '"2"'
    shaped(KeyPairModified, unassigned.json())
    same = api.patch(f"{BASE}/AK1", {"resource_policy": None})
    assert same.json()["changed"] is False and same.headers["ETag"] == '"2"'
    assert api.get(f"{BASE}/AK1/effective-policy").json()["source"] == "system"
    assert api.patch(f"{BASE}/AK1", {"resource_policy": "gpu"}, **{"If-Match": '"1"'}).status_code == 412
    deleted = api.delete(f"{BASE}/AK1", **{"If-Match": '"2"'})
    assert deleted.status_code == 200 and deleted.headers["ETag"] == '"3"'
    assert api.get(f"{BASE}/AK1").status_code == 404
    assert api.get(f"{BASE}/AK1/effective-policy").status_code == 404
    history = api.get(f"{BASE}/AK1/history").json()
    assert [e["event"] for e in history] == ["Created", "Modified", "Deleted"]
    assert api.get(f"{BASE}/AK1/state", params={"version": 1}).json()["fields"]["resource_policy"] == "gpu"
    diff = api.get(f"{BASE}/AK1/diff", params={"from": 1, "to": 2}).json()
    assert diff == {"resource_policy": {"old": "gpu", "new": None}}


def test_who_reads_which_keypair(api: Api) -> None:
    owners = _keypairs(api)
    seen = {
        "superadmin": {"AK-ADMIN", "AK-BETA", "AK-USER"},
        "admin": {"AK-ADMIN", "AK-USER"},
        "user": {"AK-USER"},
        "service": set(),
        "foreign_admin": {"AK-BETA"},
    }
    for role in ROLES:
        listed = api.get(BASE, role=role).json()
        shaped(Page[KeyPairOut], listed)
        assert {k["access_key"] for k in listed["items"]} == seen[role], role
        for access_key in owners:
            expected = 200 if access_key in seen[role] else 404
            for suffix in ("", "/effective-policy", "/history", "/state"):
                answer = api.get(f"{BASE}/{access_key}{suffix}", role=role)
                assert answer.status_code == expected, (role, access_key, suffix, answer.text)
            if expected == 404:  # exactly what an unknown keypair gets: nothing names its domain
                unknown = api.get(f"{BASE}/AK-NONE", role=role).json()
                hidden = api.get(f"{BASE}/{access_key}", role=role).json()
                assert hidden["code"] == unknown["code"] and FOREIGN not in hidden["detail"]


def test_lists_filter_within_what_the_caller_sees(api: Api) -> None:
    owners = _keypairs(api)
    by_owner = api.get(BASE, params={"owner": owners["AK-BETA"]}).json()
    assert [k["access_key"] for k in by_owner["items"]] == ["AK-BETA"]
    by_domain = api.get(BASE, params={"domain_name": HOME}).json()
    assert [k["access_key"] for k in by_domain["items"]] == ["AK-ADMIN", "AK-USER"]
    by_policy = api.get(BASE, params={"resource_policy": "default"}).json()
    assert by_policy["items"] == []
    # A filter outside what the caller may see finds nothing (not an error, not more).
    assert api.get(BASE, role="admin", params={"domain_name": FOREIGN}).json()["items"] == []
    assert api.get(BASE, role="user", params={"owner": owners["AK-ADMIN"]}).json()["items"] == []
    mine = api.get(BASE, role="user", params={"owner": owners["AK-USER"]}).json()
    assert [k["access_key"] for k in mine["items"]] == ["AK-USER"]
    first = api.get(BASE, params={"limit": 2}).json()
    assert [k["access_key"] for k in first["items"]] == ["AK-ADMIN", "AK-BETA"] and first["next_after"] == "AK-BETA"
    rest = api.get(BASE, params={"limit": 2, "after": "AK-BETA"}).json()
    assert [k["access_key"] for k in rest["items"]] == ["AK-USER"] and rest["next_after"] is None
    position = api.delete(f"{BASE}/AK-ADMIN").headers["Ledger-Position"]
    after_delete = api.get(BASE, params={"min_position": position}).json()
    assert [k["access_key"] for k in after_delete["items"]] == ["AK-BETA", "AK-USER"]


def test_who_may_write_keypairs(api: Api) -> None:
    _keypairs(api)
    for role in ("user", "service"):
        refused = api.patch(f"{BASE}/AK-USER", {"resource_policy": None}, role=role)
        assert refused.status_code == 403 and refused.json()["code"] == "permission_forbidden", role
        assert api.delete(f"{BASE}/AK-USER", role=role).status_code == 403
    mine = {"access_key": "AK-MINE", "user_id": str(api.users["user"])}
    assert api.post(BASE, mine, role="user").status_code == 403
    # A foreign admin's write on an alpha keypair is answered as one on an unknown keypair.
    unknown = api.delete(f"{BASE}/AK-NONE", role="foreign_admin").json()
    for attempt in (
        api.patch(f"{BASE}/AK-USER", {"resource_policy": None}, role="foreign_admin"),
        api.delete(f"{BASE}/AK-USER", role="foreign_admin"),
    ):
        assert attempt.status_code == 404 and HOME not in attempt.text, attempt.text
        assert attempt.json()["code"] == unknown["code"]
    # Creating into another domain names only the domain the caller gave.
    into_alpha = api.post(BASE, {**mine, "domain_name": HOME}, role="foreign_admin")
    assert into_alpha.status_code == 403
    assert api.get(f"{BASE}/AK-USER").json()["resource_policy"] is None
    assert api.delete(f"{BASE}/AK-USER", role="admin").status_code == 200


def test_bad_input_names_the_field(api: Api) -> None:
    owner = str(api.users["user"])
    cases = {
        "access_key": {"access_key": "has space", "user_id": owner},
        "user_id": {"access_key": "AK", "user_id": "not-a-uuid"},
        "warp": {"access_key": "AK", "user_id": owner, "warp": 1},
        "body": [{"access_key": "AK", "user_id": owner}],
    }
    for field, bad in cases.items():
        answer = api.post(BASE, bad)
        assert answer.status_code == 400 and answer.json()["field"] == field, (field, answer.text)
    api.post(BASE, {"access_key": "AK", "user_id": owner})
    renamed = api.patch(f"{BASE}/AK", {"access_key": "AK2"})
    assert renamed.status_code == 400 and renamed.json()["field"] == "access_key"
    unknown_policy = api.patch(f"{BASE}/AK", {"resource_policy": "nope"})
    assert unknown_policy.status_code == 404, unknown_policy.text
    owner_filter = api.get(BASE, params={"owner": "nope"})
    assert owner_filter.status_code == 400 and owner_filter.json()["field"] == "owner"


def test_idempotent_create_replays_the_first_response(api: Api) -> None:
    key = {"Idempotency-Key": "create-ak-1"}
    body = {"access_key": "AK", "user_id": str(api.users["user"])}
    first = api.post(BASE, body, **key)
    again = api.post(BASE, body, **key)
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get(f"{BASE}/AK/history").json()) == 1
    other = api.post(BASE, {**body, "access_key": "AK2"}, **key)
    assert other.status_code == 422 and api.get(f"{BASE}/AK2").status_code == 404


def test_an_access_key_created_again_for_another_user_keeps_its_past_from_the_new_owner(api: Api) -> None:
    """A user read every incarnation of a keypair they own now: once an access key held by
    another user of the domain was deleted and created again for them, its history, state
    and diff showed the former owner's keypair (their user id, their policy)."""
    former = {"access_key": "AK-AGAIN", "user_id": str(api.users["admin"]), "domain_name": HOME}
    assert api.post(BASE, {**former, "resource_policy": "default"}).status_code == 201
    assert api.delete(f"{BASE}/AK-AGAIN").status_code == 200
    assert api.post(BASE, {**former, "user_id": str(api.users["user"])}).status_code == 201
    everything = api.get(f"{BASE}/AK-AGAIN/history").json()
    assert [e["event"] for e in everything] == ["Created", "Deleted", "Recreated"]
    mine = api.get(f"{BASE}/AK-AGAIN/history", role="user")
    assert mine.status_code == 200 and [e["event"] for e in mine.json()] == ["Recreated"], mine.text
    assert str(api.users["admin"]) not in mine.text
    assert api.get(f"{BASE}/AK-AGAIN/state", params={"version": 1}, role="user").status_code == 404
    assert api.get(f"{BASE}/AK-AGAIN/state", params={"version": 3}, role="user").status_code == 200
    assert api.get(f"{BASE}/AK-AGAIN/diff", params={"from": 1, "to": 3}, role="user").status_code == 404
    # The domain's admin reads both incarnations: both were in their domain.
    assert len(api.get(f"{BASE}/AK-AGAIN/history", role="admin").json()) == 3


def test_a_history_page_holds_only_what_the_caller_may_read_and_never_stops_short(api: Api) -> None:
    """`/history?limit=` pages with `Ledger-Next-After`; a user's page skips the former
    owner's incarnation without coming back short or naming its positions."""
    former = {"access_key": "AK-PAGED", "user_id": str(api.users["admin"]), "domain_name": HOME}
    assert api.post("/v1/keypair-resource-policies", {"name": "alt"}).status_code == 201
    assert api.post(BASE, {**former, "resource_policy": "default"}).status_code == 201
    for policy in ("alt", "default", "alt"):
        assert api.patch(f"{BASE}/AK-PAGED", {"resource_policy": policy}).status_code == 200
    assert api.delete(f"{BASE}/AK-PAGED").status_code == 200
    assert api.post(BASE, {**former, "user_id": str(api.users["user"])}).status_code == 201
    assert api.patch(f"{BASE}/AK-PAGED", {"resource_policy": "alt"}).status_code == 200
    for role in ("superadmin", "admin", "user"):
        whole = api.get(f"{BASE}/AK-PAGED/history", role=role).json()
        for newest_first in (False, True):
            read = api.history_by_pages(f"{BASE}/AK-PAGED/history", role, newest_first)
            assert read == (whole[::-1] if newest_first else whole), (role, newest_first)
    mine = api.get(f"{BASE}/AK-PAGED/history", role="user").json()
    assert [e["event"] for e in mine] == ["Recreated", "Modified"]
    first = api.get(f"{BASE}/AK-PAGED/history", params={"limit": 1}, role="user")
    assert first.json() == mine[:1] and first.headers["Ledger-Next-After"] == str(mine[0]["position"])
    assert "Ledger-Next-After" not in api.get(f"{BASE}/AK-PAGED/history", params={"limit": 2}, role="user").headers
    # Past the end: an empty page; an unknown key stays a 404, a bad cursor a 400.
    past = api.get(f"{BASE}/AK-PAGED/history", params={"after": mine[-1]["position"]}, role="user")
    assert past.status_code == 200 and past.json() == []
    assert api.get(f"{BASE}/NOPE/history", params={"after": 1}).status_code == 404
    assert api.get(f"{BASE}/AK-PAGED/history", params={"after": -1}).status_code == 400
