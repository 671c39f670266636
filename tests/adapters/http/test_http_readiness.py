"""/readyz of a server whose ledger another process changed under it."""

from __future__ import annotations

import uuid

from adapters.bootstrap import open_ledger
from adapters.store.keys import MasterKey
from domain.user import CreateUserAction
from tests.actions import run
from tests.adapters.http.api import HOME, Api


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
