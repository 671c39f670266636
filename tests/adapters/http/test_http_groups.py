"""The group routes over HTTP: CRUD, members through PATCH, purge, If-Match, idempotent
create, who reads which groups, foreign writes, and problems naming the field."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from adapters.http.app import create_app
from adapters.http.routes.groups import GroupChange, GroupOut
from domain.workload import StartKernelAction
from tests.adapters.http.api import FOREIGN, HOME, Api, root_run

BASE = "/v1/groups"


def _create(api: Api, name: str, domain: str = HOME, role: str = "superadmin", **fields: object) -> str:
    created = api.post(BASE, {"name": name, "domain_name": domain, **fields}, role=role)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_create_read_modify_delete(api: Api) -> None:
    created = api.post(BASE, {"name": "team", "domain_name": HOME, "total_resource_slots": {"cpu": 4}})
    assert created.status_code == 201, created.text
    group = created.json()
    gid = group["id"]
    assert uuid.UUID(gid) and group["total_resource_slots"] == {"cpu": "4"} and group["is_active"] is True
    assert group["type"] == "general" and group["dotfiles"] == "" and group["resource_policy"] == "default"
    assert created.headers["ETag"] == '"1"' and int(created.headers["Ledger-Position"]) > 0
    got = api.get(f"{BASE}/{gid}")
    assert got.status_code == 200 and got.json() == group and got.headers["ETag"] == '"1"'
    changed = api.patch(f"{BASE}/{gid}", {"description": "the team"}, **{"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.json()["changed"] is True and changed.json()["group"]["description"] == "the team"
    assert changed.headers["ETag"] == '"2"'
    same = api.patch(f"{BASE}/{gid}", {"description": "the team"})
    assert same.json()["changed"] is False and same.headers["ETag"] == '"2"'
    GroupOut.model_validate(group)  # the documented model, field for field
    GroupChange.model_validate(same.json())
    deleted = api.delete(f"{BASE}/{gid}", **{"If-Match": '"2"'})
    assert deleted.status_code == 200 and deleted.json()["description"] == "the team"
    assert api.get(f"{BASE}/{gid}").json()["is_active"] is False  # soft-deleted: still there
    history = api.get(f"{BASE}/{gid}/history").json()
    assert [e["event"] for e in history][:2] == ["Created", "Modified"] and len(history) == 3
    assert api.get(f"{BASE}/{gid}/state", params={"version": 1}).json()["fields"]["description"] is None
    diff = api.get(f"{BASE}/{gid}/diff", params={"from": 1, "to": 2}).json()
    assert diff == {"description": {"old": None, "new": "the team"}}


def test_members_are_added_and_removed_through_patch(api: Api) -> None:
    gid = _create(api, "team")
    user, admin = str(api.users["user"]), str(api.users["admin"])
    added = api.patch(f"{BASE}/{gid}", {"user_update_mode": "add", "user_uuids": [user, admin], "description": "d"})
    assert added.status_code == 200, added.text
    assert added.json()["group"]["description"] == "d"
    assert api.get(f"{BASE}/{gid}/members").json() == sorted([user, admin])
    removed = api.patch(f"{BASE}/{gid}", {"user_update_mode": "remove", "user_uuids": [admin]})
    assert removed.status_code == 200 and removed.json()["changed"] is True
    assert api.get(f"{BASE}/{gid}/members").json() == [user]
    alone = api.patch(f"{BASE}/{gid}", {"user_uuids": [admin]})
    assert alone.status_code == 400 and alone.json()["field"] == "user_update_mode"
    mode = api.patch(f"{BASE}/{gid}", {"user_update_mode": "merge", "user_uuids": [admin]})
    assert mode.status_code == 400 and mode.json()["field"] == "user_update_mode"
    foreigner = api.patch(f"{BASE}/{gid}", {"user_update_mode": "add", "user_uuids": [str(api.foreign_user)]})
    assert foreigner.status_code in (400, 404) and foreigner.json()["field"] == "user_uuids"
    assert api.get(f"{BASE}/{gid}/members").json() == [user]


def test_purge_removes_the_group_and_is_refused_while_a_kernel_runs(api: Api) -> None:
    gid = _create(api, "busy")
    kernel = StartKernelAction(
        kernel_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        session_name="s",
        group_id=gid,
        domain_name=HOME,
        user_id=api.users["user"],
        access_key="AKUSER",
        occupied_slots={"cpu": "1"},
        started_at=datetime(2024, 10, 1, tzinfo=UTC),
    )
    root_run(api.ledger, "workload", "start_kernel", kernel)
    refused = api.post(f"{BASE}/{gid}/purge", None)
    assert refused.status_code >= 400 and "kernel" in refused.json()["code"]
    spare = _create(api, "spare")
    purged = api.post(f"{BASE}/{spare}/purge", None)
    assert purged.status_code == 200, purged.text
    assert purged.json()["name"] == "spare"
    assert api.get(f"{BASE}/{spare}").status_code == 404
    assert _create(api, "spare")  # the name is free again


def test_purge_of_the_id_of_a_refused_create_erases_its_input(api: Api) -> None:
    """No group came of the create, but its description was sealed under the id's key: the
    purge destroys that key and answers null (no group), a superadmin's only."""
    body = {"name": "refused", "domain_name": "no-such-domain", "description": "Jane's group"}
    refused = api.post(BASE, body)
    assert refused.status_code == 404, refused.text
    records = api.ledger.queries.audit_log(entity_type="group", operation="create")
    gid = next(r.entity_id for r in records if r.status == "error")  # the ledger chose it; the trail names it
    assert api.ledger.app.keys.key(f"group:{gid}") is not None
    assert api.post(f"{BASE}/{gid}/purge", None, role="admin").status_code == 404
    erased = api.post(f"{BASE}/{gid}/purge", None)
    assert erased.status_code == 200 and erased.json() is None, erased.text
    assert api.ledger.app.keys.key(f"group:{gid}") is None
    assert api.post(f"{BASE}/{gid}/purge", None).status_code == 404


def test_stale_if_match_is_412(api: Api) -> None:
    gid = _create(api, "g")
    api.patch(f"{BASE}/{gid}", {"description": "x"})
    stale = api.patch(f"{BASE}/{gid}", {"description": "y"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["code"] == "ledger_precondition_failed"
    assert api.post(f"{BASE}/{gid}/purge", None, **{"If-Match": '"1"'}).status_code == 412
    assert api.get(f"{BASE}/{gid}").json()["description"] == "x"


def test_idempotent_create_makes_one_group(api: Api) -> None:
    key = {"Idempotency-Key": "create-team"}
    first = api.post(BASE, {"name": "team", "domain_name": HOME}, **key)
    again = api.post(BASE, {"domain_name": HOME, "name": "team"}, **key)
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert [g["id"] for g in api.get(BASE).json()["items"]] == [first.json()["id"]]


@pytest.fixture
def world(api: Api) -> dict[str, str]:
    """A home group the user belongs to, one they do not, and a foreign group."""
    mine = _create(api, "mine")
    api.patch(f"{BASE}/{mine}", {"user_update_mode": "add", "user_uuids": [str(api.users["user"])]})
    return {"mine": mine, "other": _create(api, "other"), "foreign": _create(api, "far", FOREIGN)}


READ = {  # role -> the groups it reads
    "superadmin": {"mine", "other", "foreign"},
    "admin": {"mine", "other"},
    "user": {"mine"},
    "service": set(),
    "foreign_admin": {"foreign"},
}


@pytest.mark.parametrize("role", list(READ))
def test_who_reads_which_groups(api: Api, world: dict[str, str], role: str) -> None:
    listed = api.get(BASE, role=role).json()
    assert {g["id"] for g in listed["items"]} == {world[k] for k in READ[role]}
    for key, gid in world.items():
        expected = 200 if key in READ[role] else 404
        for suffix in ("", "/members", "/history"):
            assert api.get(f"{BASE}/{gid}{suffix}", role=role).status_code == expected, (key, suffix)
    assert api.get(f"{BASE}/{uuid.uuid4()}", role=role).status_code == 404
    foreign_filter = api.get(BASE, params={"domain_name": FOREIGN}, role=role).json()["items"]
    assert {g["id"] for g in foreign_filter} == {world[k] for k in READ[role] if k == "foreign"}


def test_foreign_writes_are_404_and_change_nothing(api: Api, world: dict[str, str]) -> None:
    far = world["foreign"]
    nowhere = str(uuid.uuid4())
    for write in (
        lambda gid: api.patch(f"{BASE}/{gid}", {"description": "mine now"}, role="admin"),
        lambda gid: api.delete(f"{BASE}/{gid}", role="admin"),
        lambda gid: api.post(f"{BASE}/{gid}/purge", None, role="admin"),
    ):
        response = write(far)
        assert response.status_code == 404, response.text
        # Word for word what a group that does not exist gets: the quotes around the id
        # once told the two apart.
        unknown = write(nowhere).json()
        assert response.json() == {k: v.replace(nowhere, far) if isinstance(v, str) else v for k, v in unknown.items()}
    assert api.get(f"{BASE}/{far}").json()["description"] is None
    into = api.post(BASE, {"name": "x", "domain_name": FOREIGN}, role="admin")
    assert into.status_code == 403
    assert api.patch(f"{BASE}/{world['mine']}", {"description": "d"}, role="user").status_code == 403
    own = api.patch(f"{BASE}/{world['mine']}", {"description": "d"}, role="admin")
    assert own.status_code == 200


def test_filters_and_paging(api: Api) -> None:
    for name in ("a1", "a2", "a3", "b1"):
        _create(api, name)
    api.delete(f"{BASE}/{_create(api, 'a4')}")
    first = api.get(BASE, params={"name_prefix": "a", "active": True, "limit": 2}).json()
    assert [g["name"] for g in first["items"]] == ["a1", "a2"] and first["next_after"] == f"{HOME}/a2"
    rest = api.get(BASE, params={"name_prefix": "a", "active": True, "limit": 2, "after": first["next_after"]})
    assert [g["name"] for g in rest.json()["items"]] == ["a3"] and rest.json()["next_after"] is None
    assert [g["name"] for g in api.get(BASE, params={"active": False}).json()["items"]] == ["a4"]
    assert [g["name"] for g in api.get(BASE, params={"name": "b1", "domain_name": HOME}).json()["items"]] == ["b1"]
    bad = api.get(BASE, params={"after": "nocursor"})
    assert bad.status_code == 400 and bad.json()["field"] == "after"


def test_bad_input_names_the_field(api: Api) -> None:
    unknown = api.post(BASE, {"name": "g", "domain_name": HOME, "warp": 1})
    assert unknown.status_code == 400 and unknown.json()["field"] == "warp"
    slots = api.post(BASE, {"name": "g", "domain_name": HOME, "total_resource_slots": {"cpu": "lots"}})
    assert slots.status_code == 400 and slots.json()["field"].startswith("total_resource_slots")
    nameless = api.post(BASE, {"domain_name": HOME})
    assert nameless.status_code == 400 and nameless.json()["field"] == "name"
    gid = _create(api, "g")
    dup = api.post(BASE, {"name": "g", "domain_name": HOME})
    assert dup.status_code == 409
    active = api.patch(f"{BASE}/{gid}", {"is_active": "sometimes"})
    assert active.status_code == 400 and active.json()["field"] == "is_active"
    not_an_id = api.patch(f"{BASE}/not-a-uuid", {"description": "d"})
    assert not_an_id.status_code == 400 and not_an_id.json()["field"] == "group_id"
    # A read names the malformed id as the writes, history and the user and session reads do.
    for path in (f"{BASE}/not-a-uuid", f"{BASE}/not-a-uuid/members", f"{BASE}/not-a-uuid/history"):
        for role in ("superadmin", "admin", "user"):
            read = api.get(path, role=role)
            assert read.status_code == 400 and read.json()["field"] == "group_id", (path, role, read.text)
            assert read.json()["detail"] == "group_id: 'not-a-uuid' is not a UUID"
    assert api.get(BASE, params={"active": "maybe"}).json()["field"] == "active"


def test_a_group_moved_into_the_admins_domain_shows_its_history_since_the_move(api: Api) -> None:
    """A group created in beta and moved to alpha: alpha's admin read the group and its
    state since the move, but its history was 'group not found' (judged on the state it
    was created in). The entries since the move are the admin's; the beta ones stay hidden,
    as `state?version=` hides the states they left."""
    gid = _create(api, "mover", domain=FOREIGN)
    assert api.patch(f"{BASE}/{gid}", {"total_resource_slots": {"cpu": 2}}).status_code == 200
    assert api.patch(f"{BASE}/{gid}", {"domain_name": HOME}).status_code == 200
    assert api.patch(f"{BASE}/{gid}", {"description": "alpha's now"}).status_code == 200
    everything = api.get(f"{BASE}/{gid}/history").json()
    assert [e["version"] for e in everything] == [1, 2, 3, 4]
    assert api.get(f"{BASE}/{gid}", role="admin").status_code == 200
    assert api.get(f"{BASE}/{gid}/state", params={"version": 3}, role="admin").status_code == 200
    assert api.get(f"{BASE}/{gid}/state", params={"version": 2}, role="admin").status_code == 404
    mine = api.get(f"{BASE}/{gid}/history", role="admin")
    assert mine.status_code == 200, mine.text
    assert [(e["version"], e["changes"].get("domain_name")) for e in mine.json()] == [
        (3, {"old": FOREIGN, "new": HOME}),
        (4, None),
    ]
    assert '"Created"' not in mine.text and '"cpu"' not in mine.text  # beta's entries
    # Paged either way, from the newest: the same entries, none before the move.
    newest = api.get(f"{BASE}/{gid}/history", params={"limit": 1, "newest_first": True}, role="admin")
    assert [e["version"] for e in newest.json()] == [4]
    rest = api.get(
        f"{BASE}/{gid}/history",
        params={"limit": 1, "newest_first": True, "after": newest.headers["Ledger-Next-After"]},
        role="admin",
    )
    assert [e["version"] for e in rest.json()] == [3] and "Ledger-Next-After" not in rest.headers
    assert api.get(f"{BASE}/{gid}/history", role="foreign_admin").status_code == 404  # not beta's any more


def test_a_group_moved_away_and_back_hides_its_time_in_the_other_domain(api: Api) -> None:
    """Judged on the state it was created in, an alpha group moved to beta and back showed
    alpha's admin what beta did with it meanwhile. Each entry is judged on the state it
    leaves, read forward and backward alike (each way a page at a time)."""
    gid = _create(api, "traveller")
    assert api.patch(f"{BASE}/{gid}", {"domain_name": FOREIGN}).status_code == 200
    assert api.patch(f"{BASE}/{gid}", {"integration_id": "beta-42"}).status_code == 200
    assert api.patch(f"{BASE}/{gid}", {"domain_name": HOME}).status_code == 200
    assert api.patch(f"{BASE}/{gid}", {"description": "home again"}).status_code == 200
    whole = api.get(f"{BASE}/{gid}/history", role="admin")
    assert [e["version"] for e in whole.json()] == [1, 4, 5], whole.text
    for newest_first in (False, True):
        seen = [e["version"] for e in api.history_by_pages(f"{BASE}/{gid}/history", "admin", newest_first)]
        assert seen == ([5, 4, 1] if newest_first else [1, 4, 5])


def test_dotfiles_round_trip_as_base64(api: Api) -> None:
    # GroupOut documents dotfiles as base64: a body read back and written again must not
    # change them (they were read as UTF-8 text, so each write wrapped them in base64 again)
    dotfiles = b"\xff\xfe export PS1='$ '\n"
    encoded = base64.b64encode(dotfiles).decode()
    created = api.post(BASE, {"name": "team", "domain_name": HOME, "dotfiles": encoded})
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["dotfiles"] == encoded
    same = api.patch(f"{BASE}/{group['id']}", {"dotfiles": group["dotfiles"]})
    assert same.status_code == 200 and same.json()["changed"] is False
    assert same.json()["group"]["dotfiles"] == encoded
    for bad_value in ("not base64!", "ZGF0YQ==é"):  # the second is not even ASCII (it was a 500)
        bad = api.patch(f"{BASE}/{group['id']}", {"dotfiles": bad_value})
        assert bad.status_code == 400 and bad.json()["field"] == "dotfiles", bad.text
    documented = create_app().openapi()["components"]["schemas"]["GroupCreator"]["properties"]["dotfiles"]
    assert documented["contentEncoding"] == "base64"


def test_the_membership_fields_document_no_default(api: Api) -> None:
    # the PATCH schema said user_update_mode defaults to "add", but user_uuids alone is a 400
    # (membership changes need both): a client following the document was refused
    gid = _create(api, "team")
    alone = api.patch(f"{BASE}/{gid}", {"user_uuids": [str(api.users["user"])]})
    assert alone.status_code == 400 and alone.json()["field"] == "user_update_mode"
    documented = create_app().openapi()["components"]["schemas"]["GroupPatch"]
    for field in ("user_update_mode", "user_uuids"):
        assert "default" not in documented["properties"][field]
        assert "both or neither" in documented["properties"][field]["description"]
        assert field not in documented.get("required", [])
