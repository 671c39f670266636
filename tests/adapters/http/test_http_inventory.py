"""`/v1/kernels`, `/v1/vfolders` and `/v1/endpoints` over HTTP: the reported workload read
back, each role seeing what READS grants (a user their own kernels, an admin their
domain's, the platform and a superadmin all of it) and nothing else answered otherwise
than an unknown thing; kernel and vfolder lists paged by `after`; bad filters named."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.http import calls
from domain.group import CreateGroupAction
from tests.adapters.http.api import FOREIGN, HOME, Api, root_run

FACTS = "/v1/workload/facts"


def _group(api: Api, name: str, domain: str) -> str:
    action = CreateGroupAction(input={"name": name, "domain_name": domain})
    return str(root_run(api.ledger, "group", "create_group", action).data.id)


def _start(kernel_id: str, group_id: str, domain: str, user_id: Any, hour: int) -> dict[str, Any]:
    return {
        "fact": "start_kernel",
        "kernel_id": kernel_id,
        "session_id": str(uuid.uuid4()),
        "session_name": "s",
        "group_id": group_id,
        "domain_name": domain,
        "user_id": str(user_id),
        "access_key": "AKUSER",
        "occupied_slots": {"cpu": 1},
        "started_at": f"2025-01-01T{hour:02}:00:00Z",
    }


class Workload:
    """In alpha's group: the user's kernel, the admin's kernel, a vfolder and an endpoint;
    in beta's group: a kernel, a vfolder and an endpoint."""

    def __init__(self, api: Api) -> None:
        self.home, self.away = _group(api, "home", HOME), _group(api, "away", FOREIGN)
        self.mine, self.admins, self.foreign = (str(uuid.uuid4()) for _ in range(3))
        self.home_vf, self.away_vf, self.home_ep, self.away_ep = (str(uuid.uuid4()) for _ in range(4))
        facts = [
            _start(self.mine, self.home, HOME, api.users["user"], 1),
            _start(self.admins, self.home, HOME, api.users["admin"], 2),
            _start(self.foreign, self.away, FOREIGN, api.foreign_user, 3),
            {"fact": "create_vfolder", "vfolder_id": self.home_vf, "name": "a", "host": "h", "group_id": self.home},
            {"fact": "create_vfolder", "vfolder_id": self.away_vf, "name": "b", "host": "h", "group_id": self.away},
            {"fact": "create_endpoint", "endpoint_id": self.home_ep, "name": "e", "group_id": self.home},
            {"fact": "create_endpoint", "endpoint_id": self.away_ep, "name": "e", "group_id": self.away},
        ]
        answer = api.post(FACTS, facts, role="service")
        assert answer.status_code == 200, answer.text


def _ids(answer: Any, key: str) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {item[key] for item in answer.json()["items"]}


@pytest.mark.parametrize(
    ("role", "kernels", "vfolders", "endpoints"),
    [
        ("superadmin", {"mine", "admins", "foreign"}, {"home_vf", "away_vf"}, {"home_ep", "away_ep"}),
        ("service", {"mine", "admins", "foreign"}, {"home_vf", "away_vf"}, {"home_ep", "away_ep"}),
        ("admin", {"mine", "admins"}, {"home_vf"}, {"home_ep"}),
        ("foreign_admin", {"foreign"}, {"away_vf"}, {"away_ep"}),
        ("user", {"mine"}, set(), set()),
    ],
)
def test_each_role_reads_the_workload_it_may_and_nothing_else(
    api: Api, role: str, kernels: set[str], vfolders: set[str], endpoints: set[str]
) -> None:
    w = Workload(api)
    everything = {"kernels": ("mine", "admins", "foreign"), "vfolders": ("home_vf", "away_vf")}
    assert _ids(api.get("/v1/kernels", role), "kernel_id") == {getattr(w, k) for k in kernels}
    assert _ids(api.get("/v1/vfolders", role), "vfolder_id") == {getattr(w, v) for v in vfolders}
    for name in everything["kernels"]:
        answer = api.get(f"/v1/kernels/{getattr(w, name)}", role)
        assert answer.status_code == (200 if name in kernels else 404), (name, answer.text)
    for name in everything["vfolders"]:
        answer = api.get(f"/v1/vfolders/{getattr(w, name)}", role)
        assert answer.status_code == (200 if name in vfolders else 404), (name, answer.text)
    for name, group in (("home_ep", w.home), ("away_ep", w.away)):
        listed = _ids(api.get("/v1/endpoints", role, params={"group_id": group}), "endpoint_id")
        assert listed == ({getattr(w, name)} if name in endpoints else set()), name
        answer = api.get(f"/v1/endpoints/{getattr(w, name)}", role)
        assert answer.status_code == (200 if name in endpoints else 404), (name, answer.text)
    # An unknown id is the same 404 as one the caller may not see.
    assert api.get(f"/v1/kernels/{uuid.uuid4()}", role).status_code == 404


def test_a_kernel_reads_as_the_cli_shows_it(api: Api) -> None:
    w = Workload(api)
    answer = api.get(f"/v1/kernels/{w.mine}")
    assert answer.status_code == 200 and answer.headers.get("ETag")
    kernel = answer.json()
    assert (kernel["kernel_id"], kernel["group_id"], kernel["status"]) == (w.mine, w.home, "RUNNING")
    assert kernel["user_id"] == str(api.users["user"]) and kernel["terminated_at"] is None
    # As the ledger's query holds it, its time written as every HTTP answer writes one.
    assert kernel["started_at"] == "2025-01-01T01:00:00Z"
    in_ledger = api.ledger.queries.kernel(w.mine)
    assert in_ledger is not None
    assert kernel == {**in_ledger.to_json(), "started_at": "2025-01-01T01:00:00Z"}
    vfolder = api.get(f"/v1/vfolders/{w.home_vf}").json()
    assert vfolder == {"vfolder_id": w.home_vf, "group_id": w.home, "host": "h", "name": "a"}
    endpoint = api.get(f"/v1/endpoints/{w.home_ep}").json()
    assert endpoint == {"endpoint_id": w.home_ep, "group_id": w.home, "name": "e", "active": True}


def test_lists_page_by_after_and_refuse_bad_filters_by_name(api: Api) -> None:
    w = Workload(api)
    for path, key, whole in (("/v1/kernels", "kernel_id", 3), ("/v1/vfolders", "vfolder_id", 2)):
        everything = [item[key] for item in api.get(path).json()["items"]]
        assert len(everything) == whole
        paged: list[str] = []
        params: dict[str, Any] = {"limit": 1}
        while True:
            answer = api.get(path, params=params).json()
            paged += [item[key] for item in answer["items"]]
            if answer["next_after"] is None:
                break
            params["after"] = answer["next_after"]
        assert paged == everything, path
    # The admin's vfolders page within what they see.
    first = api.get("/v1/vfolders", "admin", params={"limit": 1}).json()
    assert [v["vfolder_id"] for v in first["items"]] == [w.home_vf] and first["next_after"] is None
    running = api.get("/v1/kernels", params={"status": "running", "group_id": w.home}).json()["items"]
    assert [k["kernel_id"] for k in running] == [w.mine, w.admins]
    for path, params, field in (
        ("/v1/kernels", {"status": "SLEEPING"}, "status"),
        ("/v1/kernels", {"after": "k1"}, "after"),
        ("/v1/kernels", {"since": "yesterday"}, "since"),
        ("/v1/vfolders", {"group_id": "nope"}, "group_id"),
        ("/v1/endpoints", {"group_id": "nope"}, "group_id"),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 400, (path, params, answer.text)
        assert answer.json()["field"] == field, answer.json()


def test_a_kernel_reported_late_is_on_the_next_page_though_it_started_first(api: Api) -> None:
    """The platform reports a start late (a retried report, a slow agent) after a client
    read a page: listed by start time, the kernel sorted before the page's cursor and
    `next_after` never reached it. The list is in the order the starts were recorded in,
    an admin's (their domain's) as the platform's; `since` still selects by start time."""
    w = Workload(api)
    pages = {role: api.get("/v1/kernels", role, params={"limit": 1}).json() for role in ("admin", "service")}
    for page in pages.values():
        assert [k["kernel_id"] for k in page["items"]] == [w.mine] and page["next_after"] == w.mine
    late = _start(str(uuid.uuid4()), w.home, HOME, api.users["user"], 0)  # before every kernel listed
    assert api.post(FACTS, [late], role="service").status_code == 200
    expected = {"admin": [w.admins, late["kernel_id"]], "service": [w.admins, w.foreign, late["kernel_id"]]}
    for role, page in pages.items():
        rest = api.get("/v1/kernels", role, params={"limit": 5, "after": page["next_after"]}).json()
        assert [k["kernel_id"] for k in rest["items"]] == expected[role] and rest["next_after"] is None, role
    window = {"since": "2025-01-01T00:00:00Z", "until": "2025-01-01T01:00:00Z"}
    assert [k["kernel_id"] for k in api.get("/v1/kernels", params=window).json()["items"]] == [late["kernel_id"]]


def test_a_cursor_the_caller_may_not_see_is_refused_as_an_unknown_one(api: Api) -> None:
    # A page after another domain's kernel or vfolder (or another user's kernel) would
    # tell the caller that it exists and where it stands among theirs (when it was
    # recorded, its name): it is answered as an unknown cursor is, a 400 naming `after`.
    w = Workload(api)
    later = _start(str(uuid.uuid4()), w.home, HOME, api.users["user"], 4)  # follows every cursor
    assert api.post(FACTS, [later], role="service").status_code == 200
    unknown = str(uuid.uuid4())
    for role, path, hidden in (
        ("admin", "/v1/kernels", w.foreign),
        ("user", "/v1/kernels", w.admins),
        ("admin", "/v1/vfolders", w.away_vf),
        ("foreign_admin", "/v1/vfolders", w.home_vf),
    ):
        answers = [api.get(path, role, params={"after": cursor}) for cursor in (hidden, unknown)]
        assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
        assert answers[0].json() == answers[1].json() and answers[0].json()["field"] == "after", (role, path)


def test_a_malformed_group_id_of_the_endpoints_list_is_named_for_an_admin_too(api: Api) -> None:
    # An admin's typo was answered as a group without endpoints (200, no items) where
    # the platform's is a 400 naming group_id.
    for role in ("superadmin", "service", "admin"):
        answer = api.get("/v1/endpoints", role, params={"group_id": "nope"})
        assert answer.status_code == 400, (role, answer.text)
        assert answer.json()["field"] == "group_id", answer.json()


def test_endpoint_reads_wait_for_min_position(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # An admin's endpoint read looks the group's domain up in its read model: a position
    # not reached was accepted and not waited for (200 or 404), where every other read
    # answers 503.
    w = Workload(api)
    monkeypatch.setattr(calls, "MAX_WAIT", 0.1)  # the wait is 5 s: what matters is its answer
    for role in ("superadmin", "admin"):
        for path, params in (("/v1/endpoints", {"group_id": w.home}), (f"/v1/endpoints/{w.home_ep}", {})):
            behind = api.get(path, role, params={**params, "min_position": 2**62})
            assert behind.status_code == 503, (role, path, behind.text)
            assert behind.json()["code"] == "ledger_read_model_behind", behind.text


def test_every_role_pages_its_whole_list_at_every_page_size(api: Api) -> None:
    # Ties of start time and of name across page edges, other domains' rows between the
    # caller's: the pages chained by next_after are exactly the caller's whole list.
    w = Workload(api)
    facts: list[dict[str, Any]] = []
    for i in range(4):
        for group, domain, user in ((w.home, HOME, api.users["user"]), (w.away, FOREIGN, api.foreign_user)):
            facts.append(_start(str(uuid.uuid4()), group, domain, user, 1 + i % 2))
            facts.append(
                {"fact": "create_vfolder", "vfolder_id": str(uuid.uuid4()), "name": "a", "host": "h", "group_id": group}
            )
    assert api.post(FACTS, facts, role="service").status_code == 200
    for role in ("superadmin", "admin", "foreign_admin", "user"):
        for path, key in (("/v1/kernels", "kernel_id"), ("/v1/vfolders", "vfolder_id")):
            whole = [item[key] for item in api.get(path, role).json()["items"]]
            for size in range(1, len(whole) + 2):
                paged: list[str] = []
                params: dict[str, Any] = {"limit": size}
                while True:
                    answer = api.get(path, role, params=params).json()
                    paged += [item[key] for item in answer["items"]]
                    if answer["next_after"] is None:
                        break
                    params["after"] = answer["next_after"]
                assert paged == whole, (role, path, size)
