"""The session routes over HTTP: the platform drives a session through both gates, an admin
ends one of their domain, quota refusals are problems with their code, the sessions due,
Idempotency-Key on enqueue, and who may read which session (the read table)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.http.calls import Call
from adapters.http.routes.common import Page
from adapters.http.routes.sessions import DueOut, Enqueued, Scheduled, SessionChange, SessionDetailOut
from adapters.read.sessions import SessionEntry
from domain.group import CreateGroupAction
from domain.keypair import CreateKeyPairAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from domain.session import Session
from tests.adapters.http.api import FOREIGN, HOME, Api, root_run, shaped

BASE = "/v1/sessions"


def _policy(api: Api, name: str, **fields: Any) -> None:
    action = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
    root_run(api.ledger, "keypair_resource_policy", "create_keypair_resource_policy", action)


def _keypair(api: Api, access_key: str, user_id: uuid.UUID, domain: str, policy: str) -> None:
    action = CreateKeyPairAction(access_key=access_key, user_id=user_id, domain_name=domain, resource_policy=policy)
    root_run(api.ledger, "keypair", "create_keypair", action)


def _group(api: Api, domain: str) -> str:
    action = CreateGroupAction(input={"name": f"g-{domain}", "domain_name": domain})
    return str(root_run(api.ledger, "group", "create_group", action).data.id)


class World:
    """Policy `p` (cpu 8; the limits given); keypairs `AKUSER` (the harness user's) and
    `AKADMIN` (the admin's) in alpha, `AKBETA` (the foreign user's) in beta; a group in each."""

    def __init__(self, api: Api, **limits: Any) -> None:
        self.api = api
        _policy(api, "p", **{"total_resource_slots": {"cpu": "8"}, **limits})
        _keypair(api, "AKUSER", api.users["user"], HOME, "p")
        _keypair(api, "AKADMIN", api.users["admin"], HOME, "p")
        _keypair(api, "AKBETA", api.foreign_user, FOREIGN, "p")
        self.groups = {HOME: _group(api, HOME), FOREIGN: _group(api, FOREIGN)}

    def body(self, access_key: str = "AKUSER", domain: str = HOME, cpu: str = "1", **more: Any) -> dict[str, Any]:
        return {
            "session_id": str(uuid.uuid4()),
            "access_key": access_key,
            "group_id": self.groups[domain],
            "requested_slots": {"cpu": cpu},
            **more,
        }

    def enqueue(self, access_key: str = "AKUSER", domain: str = HOME, **more: Any) -> str:
        body = self.body(access_key, domain, **more)
        answer = self.api.post(BASE, body, role="service")
        assert answer.status_code == 201, answer.text
        return str(body["session_id"])


@pytest.fixture
def world(api: Api) -> World:
    return World(api)


def test_enqueue_schedule_activity_terminate(api: Api, world: World) -> None:
    body = world.body()
    sid = body["session_id"]
    enqueued = api.post(BASE, body, role="service")
    assert enqueued.status_code == 201, enqueued.text
    data = enqueued.json()
    assert data["session"]["status"] == "PENDING" and data["session"]["user_id"] == str(api.users["user"])
    assert data["policy"]["name"] == "p" and data["session"]["requested_slots"] == {"cpu": "1"}
    assert enqueued.headers["ETag"] == '"1"' and int(enqueued.headers["Ledger-Position"]) > 0
    shaped(Enqueued, data)

    scheduled = api.post(f"{BASE}/{sid}/schedule", None, role="service")
    assert scheduled.status_code == 200, scheduled.text
    decided = scheduled.json()
    assert decided["admitted"] is True and decided["changed"] is True and decided["reasons"] == []
    assert decided["session"]["status"] == "RUNNING"
    shaped(Scheduled, decided)
    assert {(c["limit"], c["slot"]) for c in decided["checks"]} >= {("total_resource_slots", "cpu")}

    at = datetime.now(UTC) + timedelta(seconds=1)  # as it happens: not ahead of the ledger's clock
    active = api.post(f"{BASE}/{sid}/activity", {"at": at.isoformat()}, role="service")
    assert active.status_code == 200 and active.json()["changed"] is True
    assert datetime.fromisoformat(active.json()["session"]["last_activity_at"]) == at
    ahead = api.post(f"{BASE}/{sid}/activity", {"at": "2100-01-01T00:00:00Z"}, role="service")
    assert ahead.status_code == 400 and "ahead of the ledger's clock" in ahead.text
    older = api.post(f"{BASE}/{sid}/activity", {"at": "2000-01-01T00:00:00"}, role="service")
    assert older.json()["changed"] is False

    ended = api.post(f"{BASE}/{sid}/terminate", {"reason": "done"}, role="service")
    assert ended.status_code == 200 and ended.json()["session"]["status"] == "TERMINATED"
    assert ended.json()["session"]["end_reason"] == "done" and ended.json()["changed"] is True
    shaped(SessionChange, ended.json())
    again = api.post(f"{BASE}/{sid}/terminate", {"reason": "done"}, role="service")
    assert again.status_code == 200 and again.json()["changed"] is False

    got = api.get(f"{BASE}/{sid}", params={"min_position": ended.headers["Ledger-Position"]})
    assert got.status_code == 200 and got.headers["ETag"] == ended.headers["ETag"]
    shown = got.json()
    assert shown["status"] == "TERMINATED" and shown["policy_name"] == "p"
    assert [d["decision"] for d in shown["decisions"]] == ["enqueue", "admitted"]
    shaped(SessionDetailOut, shown)
    shaped(Page[SessionEntry], api.get(BASE).json())
    assert shown["decisions"][1]["checks"] == decided["checks"]
    history = api.get(f"{BASE}/{sid}/history").json()
    assert [e["event"] for e in history][:2] == ["Created", "Admitted"] and len(history) == 4
    assert history[0]["actor"]["role"] == "service"
    assert api.get(f"{BASE}/{sid}/state", params={"version": 1}).json()["fields"]["status"] == "PENDING"


def test_a_session_terminated_while_its_kernel_runs_is_terminating_until_the_kernel_ends(api: Api) -> None:
    """Its terminate released its usage at once: a second session was admitted past
    max_concurrent_sessions 1 while the first one's kernel still ran."""
    world = World(api, max_concurrent_sessions=1)
    first, second = world.enqueue(), world.enqueue()
    assert api.post(f"{BASE}/{first}/schedule", None, role="service").json()["admitted"] is True
    kernel = str(uuid.uuid4())
    start = {
        "fact": "start_kernel",
        "kernel_id": kernel,
        "session_id": first,
        "session_name": "s",
        "group_id": world.groups[HOME],
        "domain_name": HOME,
        "user_id": str(api.users["user"]),
        "access_key": "AKUSER",
        "occupied_slots": {"cpu": "1"},
        "started_at": "2025-01-01T00:00:00Z",
    }
    assert api.post("/v1/workload/facts", start, role="service").status_code == 200
    ending = api.post(f"{BASE}/{first}/terminate", {"reason": "done"}, role="service")
    assert ending.status_code == 200 and ending.json()["changed"] is True
    assert (ending.json()["session"]["status"], ending.json()["session"]["ended_at"]) == ("TERMINATING", None)
    shaped(SessionChange, ending.json())
    again = api.post(f"{BASE}/{first}/terminate", {"reason": "done"}, role="service")
    assert again.json()["changed"] is False and again.json()["session"]["status"] == "TERMINATING"
    cancel = api.post(f"{BASE}/{first}/cancel", None, role="service")
    assert cancel.status_code == 200 and cancel.json()["changed"] is False
    listed = api.get(BASE, params={"status": "TERMINATING", "min_position": cancel.headers["Ledger-Position"]})
    assert [s["session_id"] for s in listed.json()["items"]] == [first]
    assert api.post(f"{BASE}/{second}/schedule", None, role="service").json()["admitted"] is False
    end = {"fact": "terminate_kernel", "kernel_id": kernel, "terminated_at": "2025-01-01T02:00:00Z"}
    ended = api.post("/v1/workload/facts", end, role="service")
    assert ended.status_code == 200
    shown = api.get(f"{BASE}/{first}", params={"min_position": ended.headers["Ledger-Position"]}).json()
    assert (shown["status"], shown["end_reason"], shown["kernels"]) == ("TERMINATED", "done", 0)
    shaped(SessionDetailOut, shown)
    assert api.post(f"{BASE}/{second}/schedule", None, role="service").json()["admitted"] is True


def test_deferred_decision_names_every_failed_limit(api: Api, world: World) -> None:
    big = world.enqueue(cpu="6")
    assert api.post(f"{BASE}/{big}/schedule", None, role="service").json()["admitted"] is True
    sid = world.enqueue(cpu="4")
    deferred = api.post(f"{BASE}/{sid}/schedule", None, role="service")
    assert deferred.status_code == 200, deferred.text
    data = deferred.json()
    assert data["admitted"] is False and data["session"]["status"] == "PENDING"
    assert [(r["limit"], r["slot"], r["used"], r["allowed"]) for r in data["reasons"]] == [
        ("total_resource_slots", "cpu", "6", "8")
    ]
    listed = api.get(BASE, params={"status": "pending"}).json()["items"]
    assert [s["session_id"] for s in listed] == [sid] and listed[0]["decisions"] == 1


def test_cancel_by_the_platform_and_by_an_admin_of_the_domain(api: Api, world: World) -> None:
    first, second = world.enqueue(), world.enqueue()
    cancelled = api.post(f"{BASE}/{first}/cancel", None, role="service")
    assert cancelled.status_code == 200 and cancelled.json()["session"]["status"] == "CANCELLED"
    assert api.post(f"{BASE}/{first}/cancel", None, role="service").json()["changed"] is False
    # An admin of another domain is told what an unknown session gets; a user may not at all.
    foreign = api.post(f"{BASE}/{second}/cancel", None, role="foreign_admin")
    assert foreign.status_code == 404 and foreign.json()["code"] == "session_not_found"
    assert api.post(f"{BASE}/{second}/cancel", None, role="user").status_code == 403
    assert api.post(f"{BASE}/{second}/terminate", {"reason": "x"}, role="foreign_admin").status_code == 404
    by_admin = api.post(f"{BASE}/{second}/terminate", {"reason": "policy"}, role="admin")
    assert by_admin.status_code == 200 and by_admin.json()["session"]["status"] == "TERMINATED"
    # An admin enqueues nothing: that is the platform's.
    assert api.post(BASE, world.body(), role="admin").status_code == 403
    unknown = api.post(f"{BASE}/{uuid.uuid4()}/cancel", None, role="service")
    assert unknown.status_code == 404


def test_a_group_delete_and_purge_name_the_pending_sessions_they_cancelled(api: Api, world: World) -> None:
    """The platform learns from the answer which sessions it must not start: a soft delete
    and a purge cancel the group's pending sessions in their own append."""
    pending = sorted([world.enqueue(), world.enqueue()])
    group = world.groups[HOME]
    deleted = api.delete(f"/v1/groups/{group}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["cancelled_sessions"] == pending and deleted.json()["id"] == group
    assert {api.get(f"{BASE}/{sid}").json()["status"] for sid in pending} == {"CANCELLED"}
    spare = world.groups[FOREIGN]
    waiting = world.enqueue("AKBETA", FOREIGN)
    purged = api.post(f"/v1/groups/{spare}/purge", None)
    assert purged.status_code == 200, purged.text
    assert purged.json()["cancelled_sessions"] == [waiting]
    assert api.delete(f"/v1/groups/{group}").json()["cancelled_sessions"] == []  # nothing left


def test_a_keypair_delete_names_the_pending_sessions_it_cancelled(api: Api, world: World) -> None:
    waiting = world.enqueue("AKBETA", FOREIGN)
    deleted = api.delete("/v1/keypairs/AKBETA")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["cancelled_sessions"] == [waiting] and deleted.json()["access_key"] == "AKBETA"
    assert api.get(f"{BASE}/{waiting}").json()["status"] == "CANCELLED"


def test_quota_refusal_is_a_problem_with_its_code(api: Api) -> None:
    world = World(api, max_pending_session_count=1)
    world.enqueue()
    refused = api.post(BASE, world.body(), role="service")
    assert refused.status_code == 412 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "quota_exceeded" and "max_pending_session_count" in refused.json()["detail"]
    # What it weighed, as members a platform can act on, not only words in `detail`.
    weighed = {name: refused.json().get(name) for name in ("limit", "scope", "scope_id")}
    assert weighed == {"limit": "max_pending_session_count", "scope": "keypair", "scope_id": "AKUSER"}
    assert len(api.get(BASE).json()["items"]) == 1


def test_problems_name_the_field(api: Api, world: World) -> None:
    unknown = api.post(BASE, {**world.body(), "warp": 1}, role="service")
    assert unknown.status_code == 400 and unknown.json()["field"] == "warp"
    slots = api.post(BASE, world.body(cpu="inf"), role="service")
    assert slots.status_code == 400 and slots.json()["field"] == "requested_slots.cpu"
    assert api.post(BASE, [world.body()], role="service").json()["field"] == "body"
    sid = world.enqueue()
    twin = api.post(f"{BASE}/{sid}/terminate", {"reason": "x", "session_id": sid}, role="service")
    assert twin.status_code == 400 and twin.json()["field"] == "session_id"
    assert api.post(f"{BASE}/{sid}/terminate", {}, role="service").json()["field"] == "reason"
    assert api.get(f"{BASE}/not-a-uuid").status_code == 400
    assert api.get(BASE, params={"status": "DONE"}).json()["field"] == "status"


def test_a_mount_on_a_host_no_level_grants_is_refused_naming_mounts(api: Api, world: World) -> None:
    """The refusal's detail began `mounts: vfolder ...`, yet its `field` was missing, where
    a mount that does not exist is refused naming `mounts`: a platform mapping refusals
    to the input it sent found no field to map this one to."""
    vfolder = str(uuid.uuid4())
    fact = {"fact": "create_vfolder", "vfolder_id": vfolder, "name": "d", "host": "nas", "group_id": world.groups[HOME]}
    assert api.post("/v1/workload/facts", fact, role="service").status_code == 200
    refused = api.post(BASE, world.body(mounts=[vfolder]), role="service")
    assert refused.status_code == 403 and refused.json()["code"] == "vfolder_host_not_allowed", refused.text
    assert refused.json()["field"] == "mounts" and refused.json()["detail"].startswith("mounts: "), refused.text
    missing = api.post(BASE, world.body(mounts=[str(uuid.uuid4())]), role="service")
    assert missing.status_code == 404 and missing.json()["field"] == "mounts", missing.text


def test_idempotent_enqueue(api: Api, world: World) -> None:
    body = world.body()
    key = {"Idempotency-Key": "enqueue-1"}
    first = api.post(BASE, body, role="service", **key)
    again = api.post(BASE, body, role="service", **key)
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert [s["session_id"] for s in api.get(BASE).json()["items"]] == [body["session_id"]]
    assert len(api.get(f"{BASE}/{body['session_id']}/history").json()) == 1
    # Without the key, the same session again is the domain's duplicate.
    twin = api.post(BASE, body, role="service")
    assert twin.status_code == 409 and twin.json()["code"] == "session_enqueue_duplicate_id"
    assert twin.json()["field"] == "session_id"


def test_a_schedule_twin_that_finds_the_session_admitted_gets_the_first_response(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two schedules with one Idempotency-Key at once: the twin checked the key before the
    first committed, then found the session RUNNING, appended nothing (so no record of its
    own conflicted) and answered `changed: false` as a new request, and that answer could
    be the one kept for every later retry. It now replays the first response."""
    sid = world.enqueue()
    key = {"Idempotency-Key": "schedule-twin"}
    first = api.post(f"{BASE}/{sid}/schedule", None, role="service", **key)
    assert first.status_code == 200 and first.json()["changed"] is True
    real = Call._first_response
    checks: list[object] = []

    def checked_before_the_first_committed(self: Call, *args: Any) -> Any:
        checks.append(args)
        return None if len(checks) == 1 else real(self, *args)

    monkeypatch.setattr(Call, "_first_response", checked_before_the_first_committed)
    twin = api.post(f"{BASE}/{sid}/schedule", None, role="service", **key)
    assert twin.status_code == 200, twin.text
    assert twin.text == first.text and twin.headers["Idempotent-Replayed"] == "true"


def test_sessions_due(api: Api) -> None:
    world = World(api, idle_timeout=60)
    home = world.enqueue()
    beta = world.enqueue("AKBETA", FOREIGN)
    pending = world.enqueue()
    for sid in (home, beta):
        assert api.post(f"{BASE}/{sid}/schedule", None, role="service").json()["admitted"] is True
    later = {"now": "2100-01-01T00:00:00Z"}
    due = api.get(f"{BASE}/due", params=later, role="service")
    assert due.status_code == 200
    assert {d["session_id"] for d in due.json()} == {home, beta}
    assert {d["reason"] for d in due.json()} == {"idle_timeout"} and due.json()[0]["policy"] == "p"
    # The policy as it was resolved, as a decision names it.
    assert {(d["policy_ref"]["name"], d["policy_ref"]["source"]) for d in due.json()} == {("p", "keypair")}
    shaped(DueOut, due.json()[0])
    assert [d["session_id"] for d in api.get(f"{BASE}/due", params=later, role="admin").json()] == [home]
    assert [d["session_id"] for d in api.get(f"{BASE}/due", params=later, role="foreign_admin").json()] == [beta]
    assert api.get(f"{BASE}/due", params=later, role="user").json() == []
    assert api.get(f"{BASE}/due", role="service").json() == []  # nobody idle for a minute yet
    assert pending not in {d["session_id"] for d in due.json()}
    assert api.get(f"{BASE}/due", params={"now": "soon"}).status_code == 400


def test_due_reads_a_lower_case_utc_designator(api: Api) -> None:
    """RFC 3339 lets a platform write `now` with a lower-case "z"; it was a 400."""
    world = World(api, idle_timeout=60)
    sid = world.enqueue()
    assert api.post(f"{BASE}/{sid}/schedule", None, role="service").json()["admitted"] is True
    due = api.get(f"{BASE}/due", params={"now": "2100-01-01t00:00:00z"}, role="service")
    assert due.status_code == 200, due.text
    assert [d["session_id"] for d in due.json()] == [sid]


# Who reads what: superadmin and service all, an admin their domain's, a user what they own.
SEES = {
    "superadmin": {"user", "admin", "beta"},
    "service": {"user", "admin", "beta"},
    "admin": {"user", "admin"},
    "user": {"user"},
    "foreign_admin": {"beta"},
}


@pytest.mark.parametrize("role", sorted(SEES))
def test_read_table(api: Api, world: World, role: str) -> None:
    sessions = {
        "user": world.enqueue("AKUSER"),
        "admin": world.enqueue("AKADMIN"),
        "beta": world.enqueue("AKBETA", FOREIGN),
    }
    listed = api.get(BASE, role=role)
    assert listed.status_code == 200
    assert {s["session_id"] for s in listed.json()["items"]} == {sessions[o] for o in SEES[role]}
    for owner, sid in sessions.items():
        seen = owner in SEES[role]
        got = api.get(f"{BASE}/{sid}", role=role)
        assert got.status_code == (200 if seen else 404), (owner, got.text)
        history = api.get(f"{BASE}/{sid}/history", role=role)
        assert history.status_code == (200 if seen else 404)
        state = api.get(f"{BASE}/{sid}/state", role=role)
        assert state.status_code == (200 if seen else 404)
    assert api.get(f"{BASE}/{uuid.uuid4()}", role=role).status_code == 404


def test_paging_through_pending_sessions_while_scheduling_them_reaches_every_one(api: Api, world: World) -> None:
    """The cursor (the last session of a page) was looked for among the sessions the filter
    kept: once the platform had scheduled the page it read with `status=PENDING`, the next
    page was empty with no `next_after`, and the pending sessions after it were never listed."""
    ids = [world.enqueue() for _ in range(5)]
    other = world.enqueue("AKBETA", FOREIGN)
    pending = {"status": "PENDING", "limit": 2}
    seen: list[str] = []
    after = None
    while True:
        page = api.get(BASE, params=pending if after is None else {**pending, "after": after}, role="service").json()
        for session in page["items"]:
            seen.append(session["session_id"])
            scheduled = api.post(f"{BASE}/{session['session_id']}/schedule", {}, role="service")
            assert scheduled.status_code == 200 and scheduled.json()["admitted"], scheduled.text
        after = page["next_after"]
        if after is None:
            break
    assert seen == [*ids, other]
    # A cursor the caller may not see is refused as an unknown one is (an empty page would
    # say the list ends there); a malformed one is named too.
    hidden = api.get(BASE, params={"after": other}, role="admin")
    unknown = api.get(BASE, params={"after": str(uuid.uuid4())}, role="admin")
    assert [hidden.status_code, unknown.status_code] == [400, 400], (hidden.text, unknown.text)
    assert hidden.json() == unknown.json() and hidden.json()["field"] == "after"
    assert api.get(BASE, params={"after": str(uuid.uuid4())}).json()["field"] == "after"
    malformed = api.get(BASE, params={"after": "nope"})
    assert malformed.status_code == 400 and malformed.json()["field"] == "after"


def test_list_pages_and_filters(api: Api, world: World) -> None:
    ids = [world.enqueue() for _ in range(3)]
    other = world.enqueue("AKADMIN")
    first = api.get(BASE, params={"limit": 2}).json()
    assert [s["session_id"] for s in first["items"]] == ids[:2] and first["next_after"] == ids[1]
    rest = api.get(BASE, params={"limit": 2, "after": first["next_after"]}).json()
    assert [s["session_id"] for s in rest["items"]] == [ids[2], other] and rest["next_after"] is None
    mine = api.get(BASE, params={"access_key": "AKADMIN"}).json()["items"]
    assert [s["session_id"] for s in mine] == [other]
    group = api.get(BASE, params={"group_id": world.groups[HOME], "limit": 10}).json()["items"]
    assert len(group) == 4


def test_a_session_made_before_the_cursor_but_committed_after_it_is_on_the_next_page(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An enqueue made before a page's last session but committed after the page was read
    (a slow request, another process) was placed by its made time, before the cursor: the
    client paging on with `next_after` never saw it."""
    ids = [world.enqueue() for _ in range(3)]
    first = api.get(BASE, params={"limit": 2}).json()
    assert [s["session_id"] for s in first["items"]] == ids[:2] and first["next_after"] == ids[1]
    made = datetime.fromisoformat(first["items"][0]["enqueued_at"]) - timedelta(seconds=1)
    with monkeypatch.context() as clock:
        clock.setattr(Session.Created, "create_timestamp", staticmethod(lambda: made))
        late = world.enqueue()
    rest = api.get(BASE, params={"limit": 2, "after": first["next_after"]}).json()
    assert [s["session_id"] for s in rest["items"]] == [ids[2], late] and rest["next_after"] is None


def test_a_page_after_a_cursor_reads_one_page_of_sessions_not_all_of_them(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page with a cursor read every session of the filter and cut the page out in
    Python: paging a platform's whole list read it all again per page. The cursor now
    stops the read in SQL, as the first page's limit does."""
    ids = [world.enqueue() for _ in range(12)]
    read: list[int] = []
    sessions = api.ledger.queries.sessions

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = sessions(*args, **kwargs)
        read.append(len(found))
        return found

    monkeypatch.setattr(api.ledger.queries, "sessions", counted)
    for role in ("superadmin", "service", "admin", "user"):
        read.clear()
        page = api.get(BASE, params={"limit": 3, "after": ids[4]}, role=role).json()
        assert [s["session_id"] for s in page["items"]] == ids[5:8] and page["next_after"] == ids[7], role
        assert read == [4], role  # the page and one more, to know that another follows


def test_a_user_pages_through_their_own_sessions_only(api: Api, world: World) -> None:
    """A user's own sessions (their keypair's owner when it was enqueued), narrowed in
    SQL, so a page of them is never short of the user's sessions that follow."""
    mine = [world.enqueue(), world.enqueue()]
    world.enqueue("AKADMIN")  # between the user's and after them: never listed
    mine.append(world.enqueue())
    world.enqueue("AKADMIN")
    listed: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = api.get(BASE, params=params, role="user").json()
        listed += [s["session_id"] for s in page["items"]]
        if page["next_after"] is None:
            break
        params["after"] = page["next_after"]
    assert listed == mine
