"""Schemathesis over the whole OpenAPI document, in-process, as the superadmin (issue 13).

Every operation the document has when this module is collected gets positive examples
only (the domain parsers accept more than the schema describes, so generated invalid
input may rightly succeed; the hand-written negative cases are in test_http_negative.py).
Each response must be no 5xx, have a documented status and content type, and match its
schema.

One backend is enough here: the document and the routes are the same on both, so this
runs on in-memory SQLite (the `api` fixture's tests cover PostgreSQL).
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from adapters.bootstrap import open_ledger
from adapters.http import create_app
from tests.adapters.http.api import HOME, populate

MAX_EXAMPLES = 10  # per operation: enough to reach every field, few enough to stay fast
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _document() -> dict[str, Any]:
    # The document is built from the routes alone: an app that is never started opens no ledger.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_app().openapi()


# Loaded when the module is collected (pytest 9 cannot run schemathesis' fixture-loaded
# schemas), so it covers every route registered by then.
schema = schemathesis.openapi.from_dict(_document())
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE], max_examples=MAX_EXAMPLES)


@dataclass
class Target:
    app: FastAPI
    headers: dict[str, str]
    users: dict[str, uuid.UUID]

    def call(self, method: str, path: str, **data: Any) -> Any:
        """One explicit case of the document's operation, called and checked like the generated ones."""
        case = schema[path][method].Case(**data)
        return case.call_and_validate(app=self.app, headers=dict(self.headers), checks=CHECKS)


@pytest.fixture
def target() -> Iterator[Target]:
    """The app over a fresh, populated in-memory ledger for each operation (schemathesis
    ends an app's lifespan after each test, and an app starts once over a ledger)."""
    with open_ledger("sqlite:///:memory:") as ledger:
        users, tokens, _ = populate(ledger)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            app = create_app(ledger=ledger)
        try:
            yield Target(app, {"Authorization": f"Bearer {tokens['superadmin']}"}, users)
        finally:
            asgi.shutdown_lifespans()  # before the ledger closes under the running app


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_as_documented(case: Any, target: Target) -> None:
    if case.query and case.query.get("min_position") is not None:
        # A position beyond the head is a documented 503 after a 5 s wait: nothing to learn
        # from that wait on every example (test_http_policies.py covers the 503 itself).
        case.query["min_position"] = 0
    response = case.call_and_validate(app=target.app, headers=dict(target.headers), checks=CHECKS)
    # A documented 401 would pass every check: make sure the calls really are the superadmin's.
    assert response.status_code != 401, response.text


def test_entities_that_exist_answer_as_documented(target: Target) -> None:
    """Generated path values rarely name an entity that exists, so their 200 answers are
    checked here: each entity read of the document, given an id its list answers with."""
    paths = schema.raw_schema["paths"]
    if "post" in paths.get("/v1/keypairs", {}):
        user = str(target.users["user"])
        created = target.call("POST", "/v1/keypairs", body={"access_key": "AKSCHEMA0000001", "user_id": user})
        assert created.status_code == 201, created.text
    if "post" in paths.get("/v1/groups", {}):
        created = target.call("POST", "/v1/groups", body={"name": "team", "domain_name": HOME})
        assert created.status_code == 201, created.text
    read = 0
    for path, operations in paths.items():
        if "get" not in operations or "{" not in path:
            continue
        listing = path.split("/{")[0]
        if "get" not in paths.get(listing, {}):
            continue
        items = target.call("GET", listing).json().get("items", [])
        names = re.findall(r"\{([^}]+)\}", path)
        # An item names its id after the parameter, or (a group) plain `id`.
        found = [{name: item.get(name, item.get("id")) for name in names} for item in items]
        found = [ids for ids in found if None not in ids.values()]
        if not found:
            continue
        values = {name: str(value) for name, value in found[0].items()}
        required = {
            p["name"]: "1" for p in operations["get"].get("parameters", []) if p.get("required") and p["in"] == "query"
        }
        answer = target.call("GET", path, path_parameters=values, query=required)
        assert answer.status_code == 200, f"{path} {values}: {answer.text[:300]}"
        read += 1
    assert read >= 8  # a policy's get, history, state and diff, and a domain's at least
