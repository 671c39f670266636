"""The permission table walked over a real `ledger serve` process: every `/v1` operation of
the OpenAPI document, as each role (superadmin, admin, user and service of domain alpha, an
admin of domain beta), against things of domain alpha. Reads: what `READS` grants answers,
anything else is the 404 an unknown thing gets (lists leave it out). Writes: what
`PERMISSIONS` grants takes effect on a fresh target per attempt; anything else is refused
(403, or 404 for an entity of a domain the caller does not act in) and changes nothing.
A new route without a row here fails the walk's coverage check."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Ledger
from domain.domains import CreateDomainAction
from domain.group import CreateGroupAction, ModifyGroupAction
from domain.keypair import CreateKeyPairAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from domain.session import EnqueueSessionAction, ScheduleSessionAction
from domain.token import IssueTokenAction
from domain.user import CreateUserAction
from domain.workload import CreateEndpointAction, CreateVFolderAction, StartKernelAction
from tests.adapters.http.api import HOME, root_run
from tests.adapters.http.server import Tokens, populated, serving
from tests.conftest import fresh_url

pytestmark = pytest.mark.slow

ROLES = ("superadmin", "admin", "user", "service", "foreign_admin")
_names = itertools.count()


def _fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@dataclass
class World:
    """What the walk reads and writes: all of it in alpha unless named beta."""

    ledger: Ledger
    tokens: Tokens
    foreign_user: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.user = self.tokens.users["user"]
        self.policy("walk")
        self.keypair("AKWALK", self.user)
        self.group_id = self.group(members=[self.user])
        self.session_id = self.session()
        self.token_id = str(self.issue().data.token_id)
        self.kernel_id, self.vfolder_id, self.endpoint_id = self.workload()

    def run(self, service: str, method: str, action: Any) -> Any:
        return root_run(self.ledger, service, method, action)

    def policy(self, name: str) -> str:
        creator = {"name": name, "total_resource_slots": {"cpu": "64"}}
        self.run(
            "keypair_resource_policy",
            "create_keypair_resource_policy",
            CreateKeyPairResourcePolicyAction(creator=creator),
        )
        return name

    def keypair(self, access_key: str, owner: uuid.UUID) -> str:
        action = CreateKeyPairAction(access_key=access_key, user_id=owner, domain_name=HOME, resource_policy="walk")
        self.run("keypair", "create_keypair", action)
        return access_key

    def new_user(self) -> str:
        user_id = uuid.uuid4()
        self.run("user", "create_user", CreateUserAction(creator={"user_id": str(user_id), "domain_name": HOME}))
        return str(user_id)

    def group(self, members: list[uuid.UUID] | None = None) -> str:
        created = self.run("group", "create_group", CreateGroupAction(input={"name": _fresh("g"), "domain_name": HOME}))
        group_id = str(created.data.id)
        if members:
            add = ModifyGroupAction(group_id=group_id, user_update_mode="add", user_uuids=[str(m) for m in members])
            self.run("group", "modify_group", add)
        return group_id

    def session_body(self) -> dict[str, Any]:
        return {
            "session_id": str(uuid.uuid4()),
            "access_key": "AKWALK",
            "group_id": self.group_id,
            "requested_slots": {"cpu": "1"},
        }

    def session(self, *, running: bool = False) -> str:
        body = self.session_body()
        self.run("session", "enqueue_session", EnqueueSessionAction(**body))
        if running:
            self.run("session", "schedule_session", ScheduleSessionAction(session_id=body["session_id"]))
        return str(body["session_id"])

    def workload(self) -> tuple[str, str, str]:
        """A kernel the user ran, a vfolder and an endpoint, in the walk's group."""
        kernel, vfolder, endpoint = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.run(
            "workload",
            "start_kernel",
            StartKernelAction(
                kernel_id=kernel,
                session_id=uuid.uuid4(),
                session_name="s",
                group_id=self.group_id,
                domain_name=HOME,
                user_id=self.user,
                access_key="AKWALK",
                occupied_slots={"cpu": "1"},
                started_at="2025-01-01T00:00:00Z",
            ),
        )
        create = CreateVFolderAction(vfolder_id=vfolder, name="v", host="h", group_id=self.group_id)
        self.run("workload", "create_vfolder", create)
        serving = CreateEndpointAction(endpoint_id=endpoint, name="e", group_id=self.group_id)
        self.run("workload", "create_endpoint", serving)
        return str(kernel), str(vfolder), str(endpoint)

    def domain(self) -> str:
        name = _fresh("d")
        self.run("domain", "create_domain", CreateDomainAction(creator={"name": name}))
        return name

    def issue(self) -> Any:
        return self.run("token", "issue_token", IssueTokenAction(user_id=self.user, role="user", domain_name=HOME))


@dataclass(frozen=True)
class Step:
    method: str
    route: str  # the OpenAPI path it walks
    expect: dict[str, int]  # role -> status
    path: Callable[[World], str] | None = None  # the concrete path (default: `route`)
    body: Callable[[World], Any] | None = None
    listed: Callable[[World, Any], bool] | None = None  # a list: whether alpha's thing is in it
    sees: frozenset[str] = frozenset()  # the roles whose list holds it


def statuses(superadmin: int, admin: int, user: int, service: int, foreign_admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (superadmin, admin, user, service, foreign_admin), strict=True))


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


SUPERADMIN_ONLY_READ = statuses(200, 404, 404, 404, 404)
SUPERADMIN_ONLY_WRITE = statuses(200, 403, 403, 403, 403)
SUPERADMIN_ONLY_CREATE = statuses(201, 403, 403, 403, 403)
DOMAIN_READ = statuses(200, 200, 404, 404, 404)
OWN_READ = statuses(200, 200, 200, 404, 404)
DOMAIN_CREATE = statuses(201, 201, 403, 403, 403)
DOMAIN_WRITE = statuses(200, 200, 403, 403, 404)
PLATFORM_CREATE = statuses(201, 403, 403, 201, 403)
PLATFORM_WRITE = statuses(200, 403, 403, 200, 403)
PLATFORM_OR_ADMINS = statuses(200, 200, 403, 200, 404)
ALL_SEE = frozenset(ROLES)
OWNERS_SEE = frozenset({"superadmin", "admin", "user"})
ADMINS_SEE = frozenset({"superadmin", "admin"})
PLATFORM_AND_ADMINS = statuses(200, 200, 404, 200, 404)
PLATFORM_AND_ADMINS_SEE = frozenset({"superadmin", "admin", "service"})


def _items(answer: Any) -> list[Any]:
    return list(answer["items"] if isinstance(answer, dict) else answer)


def _history(base: str, key: Callable[[World], str], expect: dict[str, int]) -> list[Step]:
    return [
        Step("GET", f"{base}/history", expect, lambda w: f"{base.split('{')[0]}{key(w)}/history"),
        Step("GET", f"{base}/state", expect, lambda w: f"{base.split('{')[0]}{key(w)}/state?version=1"),
        Step("GET", f"{base}/diff", expect, lambda w: f"{base.split('{')[0]}{key(w)}/diff?from=1&to=1"),
    ]


P = "/v1/keypair-resource-policies"
K = "/v1/keypairs"
U = "/v1/users"
D = "/v1/domains"
G = "/v1/groups"
S = "/v1/sessions"

WALK: list[Step] = [
    # Keypair resource policies: every admin reads them (they assign them); a superadmin writes.
    Step(
        "GET",
        P,
        everyone(200),
        listed=lambda w, a: any(p["name"] == "walk" for p in _items(a)),
        sees=frozenset({"superadmin", "admin", "foreign_admin"}),
    ),
    Step("GET", f"{P}/{{name}}", statuses(200, 200, 404, 404, 200), lambda w: f"{P}/walk"),
    *_history(f"{P}/{{name}}", lambda w: "walk", statuses(200, 200, 404, 404, 200)),
    Step("POST", P, SUPERADMIN_ONLY_CREATE, body=lambda w: {"name": _fresh("p")}),
    Step(
        "PATCH",
        f"{P}/{{name}}",
        SUPERADMIN_ONLY_WRITE,
        lambda w: f"{P}/{w.policy(_fresh('p'))}",
        lambda w: {"idle_timeout": 60},
    ),
    Step("DELETE", f"{P}/{{name}}", SUPERADMIN_ONLY_WRITE, lambda w: f"{P}/{w.policy(_fresh('p'))}"),
    # Keypairs: an admin their domain's, a user their own.
    Step(
        "GET",
        K,
        everyone(200),
        listed=lambda w, a: any(k["access_key"] == "AKWALK" for k in _items(a)),
        sees=OWNERS_SEE,
    ),
    Step("GET", f"{K}/{{access_key}}", OWN_READ, lambda w: f"{K}/AKWALK"),
    Step("GET", f"{K}/{{access_key}}/effective-policy", OWN_READ, lambda w: f"{K}/AKWALK/effective-policy"),
    *_history(f"{K}/{{access_key}}", lambda w: "AKWALK", OWN_READ),
    Step(
        "POST",
        K,
        DOMAIN_CREATE,
        body=lambda w: {
            "access_key": _fresh("AK"),
            "user_id": str(w.user),
            "domain_name": HOME,
            "resource_policy": "walk",
        },
    ),
    Step(
        "PATCH",
        f"{K}/{{access_key}}",
        DOMAIN_WRITE,
        lambda w: f"{K}/{w.keypair(_fresh('AK'), w.user)}",
        lambda w: {"resource_policy": None},
    ),
    Step("DELETE", f"{K}/{{access_key}}", DOMAIN_WRITE, lambda w: f"{K}/{w.keypair(_fresh('AK'), w.user)}"),
    # Users: an admin their domain's, a user themselves.
    Step(
        "GET",
        U,
        everyone(200),
        listed=lambda w, a: any(u["user_id"] == str(w.user) for u in _items(a)),
        sees=OWNERS_SEE,
    ),
    Step("GET", f"{U}/{{user_id}}", OWN_READ, lambda w: f"{U}/{w.user}"),
    *_history(f"{U}/{{user_id}}", lambda w: str(w.user), OWN_READ),
    Step("POST", U, DOMAIN_CREATE, body=lambda w: {"user_id": str(uuid.uuid4()), "domain_name": HOME}),
    Step("PATCH", f"{U}/{{user_id}}", DOMAIN_WRITE, lambda w: f"{U}/{w.new_user()}", lambda w: {"full_name": "W"}),
    Step("DELETE", f"{U}/{{user_id}}", DOMAIN_WRITE, lambda w: f"{U}/{w.new_user()}"),
    Step(
        "POST",
        f"{U}/{{user_id}}/erase",
        SUPERADMIN_ONLY_WRITE,
        lambda w: f"{U}/{w.new_user()}/erase",
        lambda w: {"reason": "walk", "accept_clear_history": False},
    ),
    # Domains: an admin reads their own; a superadmin writes.
    Step("GET", D, everyone(200), listed=lambda w, a: any(d["name"] == HOME for d in _items(a)), sees=ADMINS_SEE),
    Step("GET", f"{D}/{{name}}", DOMAIN_READ, lambda w: f"{D}/{HOME}"),
    *_history(f"{D}/{{name}}", lambda w: HOME, DOMAIN_READ),
    Step("POST", D, SUPERADMIN_ONLY_CREATE, body=lambda w: {"name": _fresh("d")}),
    Step("PATCH", f"{D}/{{name}}", SUPERADMIN_ONLY_WRITE, lambda w: f"{D}/{HOME}", lambda w: {"description": "w"}),
    Step("DELETE", f"{D}/{{name}}", SUPERADMIN_ONLY_WRITE, lambda w: f"{D}/{w.domain()}"),
    # Groups: an admin their domain's, a user those they belong to.
    Step("GET", G, everyone(200), listed=lambda w, a: any(g["id"] == w.group_id for g in _items(a)), sees=OWNERS_SEE),
    Step("GET", f"{G}/{{group_id}}", OWN_READ, lambda w: f"{G}/{w.group_id}"),
    Step("GET", f"{G}/{{group_id}}/members", OWN_READ, lambda w: f"{G}/{w.group_id}/members"),
    *_history(f"{G}/{{group_id}}", lambda w: w.group_id, OWN_READ),
    Step("POST", G, DOMAIN_CREATE, body=lambda w: {"name": _fresh("g"), "domain_name": HOME}),
    Step("PATCH", f"{G}/{{group_id}}", DOMAIN_WRITE, lambda w: f"{G}/{w.group()}", lambda w: {"description": "w"}),
    Step("DELETE", f"{G}/{{group_id}}", DOMAIN_WRITE, lambda w: f"{G}/{w.group()}"),
    Step("POST", f"{G}/{{group_id}}/purge", DOMAIN_WRITE, lambda w: f"{G}/{w.group()}/purge"),
    # Sessions: the platform drives them; an admin may end their domain's; a user reads their own.
    Step(
        "GET",
        S,
        everyone(200),
        listed=lambda w, a: any(s["session_id"] == w.session_id for s in _items(a)),
        sees=frozenset({"superadmin", "admin", "user", "service"}),
    ),
    Step("GET", f"{S}/due", everyone(200)),
    Step("GET", f"{S}/{{session_id}}", statuses(200, 200, 200, 200, 404), lambda w: f"{S}/{w.session_id}"),
    *_history(f"{S}/{{session_id}}", lambda w: w.session_id, statuses(200, 200, 200, 200, 404)),
    Step("POST", S, PLATFORM_CREATE, body=lambda w: w.session_body()),
    Step("POST", f"{S}/{{session_id}}/schedule", PLATFORM_WRITE, lambda w: f"{S}/{w.session()}/schedule", lambda w: {}),
    Step("POST", f"{S}/{{session_id}}/cancel", PLATFORM_OR_ADMINS, lambda w: f"{S}/{w.session()}/cancel", lambda w: {}),
    Step(
        "POST",
        f"{S}/{{session_id}}/terminate",
        PLATFORM_OR_ADMINS,
        lambda w: f"{S}/{w.session(running=True)}/terminate",
        lambda w: {"reason": "walk"},
    ),
    Step(
        "POST",
        f"{S}/{{session_id}}/activity",
        PLATFORM_WRITE,
        lambda w: f"{S}/{w.session(running=True)}/activity",
        lambda w: {},
    ),
    # Workload facts: the platform reports them.
    Step(
        "POST",
        "/v1/workload/facts",
        PLATFORM_WRITE,
        body=lambda w: {
            "fact": "create_endpoint",
            "endpoint_id": str(uuid.uuid4()),
            "group_id": w.group_id,
            "name": "e",
        },
    ),
    # The workload read back: the platform's and a superadmin's all, an admin their
    # domain's, a user the kernels they ran.
    Step(
        "GET",
        "/v1/kernels",
        everyone(200),
        listed=lambda w, a: any(k["kernel_id"] == w.kernel_id for k in _items(a)),
        sees=frozenset({"superadmin", "admin", "user", "service"}),
    ),
    Step("GET", "/v1/kernels/{kernel_id}", statuses(200, 200, 200, 200, 404), lambda w: f"/v1/kernels/{w.kernel_id}"),
    Step(
        "GET",
        "/v1/vfolders",
        everyone(200),
        listed=lambda w, a: any(v["vfolder_id"] == w.vfolder_id for v in _items(a)),
        sees=PLATFORM_AND_ADMINS_SEE,
    ),
    Step("GET", "/v1/vfolders/{vfolder_id}", PLATFORM_AND_ADMINS, lambda w: f"/v1/vfolders/{w.vfolder_id}"),
    Step(
        "GET",
        "/v1/endpoints",
        everyone(200),
        lambda w: f"/v1/endpoints?group_id={w.group_id}",
        listed=lambda w, a: any(e["endpoint_id"] == w.endpoint_id for e in _items(a)),
        sees=PLATFORM_AND_ADMINS_SEE,
    ),
    Step("GET", "/v1/endpoints/{endpoint_id}", PLATFORM_AND_ADMINS, lambda w: f"/v1/endpoints/{w.endpoint_id}"),
    # Usage: a superadmin reads every group's, an admin their domain's (others: nothing).
    Step("GET", "/v1/usage/month/{month}", everyone(200), lambda w: "/v1/usage/month/202401"),
    Step(
        "GET",
        "/v1/usage/period",
        statuses(200, 200, 404, 404, 404),
        lambda w: f"/v1/usage/period?start_date=20240101&end_date=20240131&project_id={w.group_id}",
    ),
    # The audit trail: a superadmin's all, an admin's the actions that concern their domain.
    Step(
        "GET",
        "/v1/audit",
        everyone(200),
        lambda w: "/v1/audit?limit=1000",
        listed=lambda w, a: any(e["domain_name"] == HOME for e in _items(a)),
        sees=ADMINS_SEE,
    ),
    Step("GET", "/v1/verify", SUPERADMIN_ONLY_READ),
    # Tokens: a superadmin's business only.
    Step(
        "GET",
        "/v1/tokens",
        everyone(200),
        listed=lambda w, a: any(t["token_id"] == w.token_id for t in _items(a)),
        sees=frozenset({"superadmin"}),
    ),
    Step("GET", "/v1/tokens/{token_id}", SUPERADMIN_ONLY_READ, lambda w: f"/v1/tokens/{w.token_id}"),
    Step(
        "POST",
        "/v1/tokens",
        SUPERADMIN_ONLY_CREATE,
        body=lambda w: {"user_id": str(w.user), "role": "user", "domain_name": HOME},
    ),
    Step(
        "POST",
        "/v1/tokens/{token_id}/revoke",
        SUPERADMIN_ONLY_WRITE,
        lambda w: f"/v1/tokens/{w.issue().data.token_id}/revoke",
    ),
]


@pytest.fixture
def walked(backend: str) -> Iterator[tuple[World, httpx.Client]]:
    with fresh_url(backend) as url, populated(url) as (ledger, tokens), serving(url) as server:
        world = World(ledger, tokens)
        with httpx.Client(base_url=server.base, timeout=30.0) as client:
            yield world, client


def test_every_route_and_role(walked: tuple[World, httpx.Client]) -> None:
    world, client = walked
    document = client.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() if p.startswith("/v1/") for m in ops}
    assert operations == {(s.method, s.route) for s in WALK}, "every /v1 operation has its row, and only those"
    wrong: list[str] = []
    for step in WALK:
        for role in ROLES:
            path = step.path(world) if step.path else step.route
            body = step.body(world) if step.body else None
            answer = client.request(step.method, path, json=body, headers=world.tokens.headers(role))
            if answer.status_code != step.expect[role]:
                wrong.append(f"{step.method} {path} as {role}: {answer.status_code} {answer.text[:160]}")
                continue
            if answer.status_code >= 400:
                assert answer.headers["content-type"] == "application/problem+json"
            if answer.status_code == 404:  # what the caller may not see: not even its domain, unless they named it
                assert HOME not in answer.json()["detail"] or HOME in path, answer.text
            if step.listed is not None:
                holds = step.listed(world, answer.json())
                if holds != (role in step.sees):
                    wrong.append(f"{step.method} {path} as {role}: alpha's item listed={holds}")
    assert not wrong, "\n".join(wrong)
