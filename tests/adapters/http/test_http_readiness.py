"""/readyz of a server whose ledger another process changed under it."""

from __future__ import annotations

import uuid

from adapters.bootstrap import open_ledger
from adapters.store.keys import MasterKey
from domain.keypair_resource_policy import KeyPairResourcePolicy
from domain.user import CreateUserAction
from tests.actions import run
from tests.adapters.http.api import HOME, Api
from tests.adapters.store.raw import cut_event_state


def test_a_server_whose_master_key_was_rotated_away_is_not_ready(api: Api, ledger_url: str) -> None:
    """After `ledger keys rotate` in another process, this server's master key opens no key:
    reads of personal values and writes were refused (500 configuration_invalid) while
    /readyz said 200 "ready", so a load balancer kept sending it every request."""
    user = uuid.uuid4()
    assert api.client.get("/readyz").status_code == 200
    with open_ledger(ledger_url) as other:
        creator = {"user_id": user, "domain_name": HOME, "email": "ada@example.org"}
        run(other, "user", "create_user", CreateUserAction(creator=creator))
        other.app.keys.rotate(MasterKey.generate())
    # A read answered 500, as a bug would: it is 503 (another server can answer) saying why.
    read = api.get(f"/v1/users/{user}")
    assert read.status_code == 503 and read.headers["content-type"] == "application/problem+json", read.text
    assert read.json()["code"] == "configuration_invalid" and read.headers["Retry-After"]
    assert "restart this process with the new master key" in read.json()["detail"]
    listed = api.get("/v1/users")
    assert listed.status_code == 503 and "another process rotated it" in listed.json()["detail"], listed.text
    ready = api.client.get("/readyz")
    assert ready.status_code == 503, ready.json()
    assert ready.json()["code"] == "configuration_invalid"
    assert "rotated it (`ledger keys rotate`); restart this process" in ready.json()["detail"]


def test_a_damaged_event_is_a_documented_problem_pointing_to_verify(api: Api) -> None:
    """An event cut behind the ledger's back made every read and write of its entity a 500
    no route documented, its detail quoting the library (`MapperDeserialisationError:
    Failed to deserialise state of stored event with topic 'domain....'`)."""
    base = "/v1/keypair-resource-policies"
    api.post(base, {"name": "cut"})
    api.patch(f"{base}/cut", {"idle_timeout": 5})
    stream = KeyPairResourcePolicy.id_for("cut")
    notifications = api.ledger.app.recorder.select_notifications(1, 10_000)
    api.ledger.app.cache.clear()
    cut_event_state(api.ledger, max(n.id for n in notifications if n.originator_id == stream))
    document = api.client.get("/openapi.json").json()
    for method, path in (("get", "/{name}/history"), ("get", "/{name}"), ("patch", "/{name}")):
        answer = api.get(f"{base}/cut{path[7:]}") if method == "get" else api.patch(f"{base}/cut", {"idle_timeout": 6})
        assert answer.status_code == 500 and answer.headers["content-type"] == "application/problem+json", answer.text
        problem = answer.json()
        assert problem["code"] == "ledger_damaged_event" and "`ledger verify` names it" in problem["detail"]
        assert str(stream) in problem["detail"], problem
        assert "Mapper" not in problem["detail"] and "domain." not in problem["detail"], problem
        documented = document["paths"][f"{base}{path}"][method]["responses"]["500"]
        assert "ledger_damaged_event" in documented["description"]
        assert "application/problem+json" in documented["content"]


def test_another_time_zones_usage_model_is_not_counted_as_this_servers_lag(api: Api, ledger_url: str) -> None:
    """A report run in another time zone leaves that zone's usage read model in the same
    database, caught up only when a process of that zone reads it: /readyz listed its
    ever-growing lag under `lag`, beside the read models this server keeps current."""
    with open_ledger(ledger_url, "Asia/Seoul"):
        pass  # opening builds and catches up the zone's usage read model
    api.post("/v1/keypair-resource-policies", {"name": "after-the-report"})
    ready = api.client.get("/readyz").json()
    assert "usage_asia_seoul" in ready["on_demand_lag"] and ready["on_demand_lag"]["usage_asia_seoul"] > 0
    assert "usage_asia_seoul" not in ready["lag"] and "usage_utc" in ready["lag"]
