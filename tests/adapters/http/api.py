"""The HTTP test harness: an app over a ledger, and a token per role.

`Api` creates two domains (`alpha`, the callers' home, and `beta`, a foreign one), a user
per role in `alpha` (plus a user in `beta`), and issues each a token through the ledger's
own token service. `api.client` is an in-process client; `api.as_(role)` its headers.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from adapters.bootstrap import Ledger
from adapters.http import create_app
from domain.actions import ActionTriggerMeta
from domain.domains import CreateDomainAction
from domain.token import IssueTokenAction
from domain.user import CreateUserAction

HOME = "alpha"
FOREIGN = "beta"
ROLES = ("superadmin", "admin", "user", "service")
ROOT = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")


def root_run(ledger: Ledger, service: str, method: str, action: Any) -> Any:
    """Runs an action as the root of trust (what the CLI does with database access)."""
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, ROOT))


def issue(ledger: Ledger, user_id: uuid.UUID, role: str, domain: str, **extra: Any) -> str:
    action = IssueTokenAction(user_id=user_id, role=role, domain_name=domain, **extra)
    result = root_run(ledger, "token", "issue_token", action)
    return str(result.token)


@dataclass
class Api:
    ledger: Ledger
    client: TestClient
    users: dict[str, uuid.UUID] = field(default_factory=dict)  # role -> user id (in HOME)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token; "foreign_admin" too
    foreign_user: uuid.UUID = field(default_factory=uuid.uuid4)

    def as_(self, role: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **headers}

    def get(self, path: str, role: str = "superadmin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.as_(role), **kwargs)

    def post(self, path: str, json: Any, role: str = "superadmin", **headers: str) -> Any:
        return self.client.post(path, json=json, headers=self.as_(role, **headers))

    def patch(self, path: str, json: Any, role: str = "superadmin", **headers: str) -> Any:
        return self.client.patch(path, json=json, headers=self.as_(role, **headers))

    def delete(self, path: str, role: str = "superadmin", **headers: str) -> Any:
        return self.client.delete(path, headers=self.as_(role, **headers))

    def history_by_pages(self, path: str, role: str, newest_first: bool) -> list[dict[str, Any]]:
        """Every entry of the history route `path` as `role` reads it a page of one at a
        time, following `Ledger-Next-After`: each page answers 200, and its cursor is the
        position of its last entry."""
        read: list[dict[str, Any]] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 1, "newest_first": newest_first}
            if after is not None:
                params["after"] = after
            answer = self.get(path, params=params, role=role)
            assert answer.status_code == 200, answer.text
            read += answer.json()
            after = answer.headers.get("Ledger-Next-After")
            if after is None:
                return read
            assert answer.json() and after == str(answer.json()[-1]["position"])


def populate(ledger: Ledger) -> tuple[dict[str, uuid.UUID], dict[str, str], uuid.UUID]:
    for domain in (HOME, FOREIGN):
        root_run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": domain}))
    users: dict[str, uuid.UUID] = {}
    tokens: dict[str, str] = {}
    for role in ROLES:
        users[role] = uuid.uuid4()
        creator = {"user_id": str(users[role]), "domain_name": HOME, "email": f"{role}@example.org"}
        root_run(ledger, "user", "create_user", CreateUserAction(creator=creator))
        tokens[role] = issue(ledger, users[role], role, HOME, name=role)
    foreign = uuid.uuid4()
    root_run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": str(foreign), "domain_name": FOREIGN}))
    tokens["foreign_admin"] = issue(ledger, foreign, "admin", FOREIGN, name="foreign admin")
    return users, tokens, foreign


@contextmanager
def api_over(ledger: Ledger) -> Iterator[Api]:
    users, tokens, foreign = populate(ledger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # starlette's TestClient on httpx
        client = TestClient(create_app(ledger=ledger), raise_server_exceptions=False)
    with client:
        yield Api(ledger, client, users, tokens, foreign)


def shaped(model: type[BaseModel], data: Any) -> None:
    """`data` is exactly what a route's response model describes: valid, no required key left
    out and none added (nested models too), as schemathesis checks over the whole API."""
    model.model_validate(data)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert required <= set(data) <= set(model.model_fields), model.__name__
    for name, info in model.model_fields.items():
        inner = info.annotation
        if name in data and isinstance(inner, type) and issubclass(inner, BaseModel):
            shaped(inner, data[name])
