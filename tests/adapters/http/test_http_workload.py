"""`POST /v1/workload/facts` over HTTP: one fact or a batch, each as a line of the JSON Lines
import; a bad fact named by its index and field; a refused fact (a duplicate id) stores
nothing of the batch; only the platform reports facts."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from adapters.http.routes.workload import Recorded
from domain.group import CreateGroupAction
from domain.keypair import CreateKeyPairAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.adapters.http.api import HOME, Api, root_run

FACTS = "/v1/workload/facts"


@pytest.fixture
def group_id(api: Api) -> str:
    action = CreateGroupAction(input={"name": "g", "domain_name": HOME})
    return str(root_run(api.ledger, "group", "create_group", action).data.id)


def _endpoint(group_id: str, endpoint_id: str | None = None) -> dict[str, Any]:
    return {
        "fact": "create_endpoint",
        "endpoint_id": endpoint_id or str(uuid.uuid4()),
        "group_id": group_id,
        "name": "e",
    }


def _kernel_facts(api: Api, group_id: str, kernel_id: str) -> list[dict[str, Any]]:
    vfolder_id = str(uuid.uuid4())
    return [
        {"fact": "create_vfolder", "vfolder_id": vfolder_id, "name": "data", "host": "local", "group_id": group_id},
        {
            "fact": "start_kernel",
            "kernel_id": kernel_id,
            "session_id": str(uuid.uuid4()),
            "session_name": "s",
            "group_id": group_id,
            "domain_name": HOME,
            "user_id": str(api.users["user"]),
            "access_key": "AKUSER",
            "occupied_slots": {"cpu": 2, "mem": "1g"},
            "started_at": "2025-01-01T00:00:00Z",
            "mounts": [vfolder_id],
        },
        {"fact": "report_kernel_stats", "kernel_id": kernel_id, "reported_at": "2025-01-01T01:00:00Z", "cpu_used": 5},
        {"fact": "terminate_kernel", "kernel_id": kernel_id, "terminated_at": "2025-01-01T02:00:00Z"},
    ]


def _history(api: Api, entity_type: str, entity_id: str) -> list[Any]:
    return list(api.ledger.queries.history(entity_type, entity_id))


def test_one_fact(api: Api, group_id: str) -> None:
    fact = _endpoint(group_id)
    recorded = api.post(FACTS, fact, role="service")
    assert recorded.status_code == 200, recorded.text
    assert recorded.json() == {
        "recorded": 1,
        "unchanged": 0,
        "by_fact": {"create_endpoint": 1},
        "entities": [f"endpoint:{fact['endpoint_id']}"],
    }
    assert int(recorded.headers["Ledger-Position"]) > 0
    assert [e.event for e in _history(api, "endpoint", fact["endpoint_id"])] == ["Created"]


def test_a_batch_is_recorded_in_one_append(api: Api, group_id: str) -> None:
    kernel_id = str(uuid.uuid4())
    facts = _kernel_facts(api, group_id, kernel_id)
    recorded = api.post(FACTS, facts, role="superadmin")
    assert recorded.status_code == 200, recorded.text
    data = recorded.json()
    assert data["recorded"] == 4 and data["entities"][1] == f"kernel:{kernel_id}"
    assert set(data) == set(Recorded.model_fields) and Recorded.model_validate(data).recorded == 4
    assert data["by_fact"] == {"create_vfolder": 1, "start_kernel": 1, "report_kernel_stats": 1, "terminate_kernel": 1}
    kernel = api.ledger.queries.kernel(kernel_id)
    assert kernel is not None and kernel.status == "TERMINATED"
    audit = api.ledger.queries.audit_log(operation="record_batch")
    assert len(audit) == 1 and audit[0].role == "superadmin"


def test_a_bad_fact_is_named_by_index_and_field_and_nothing_is_recorded(api: Api, group_id: str) -> None:
    good = _endpoint(group_id)
    missing = {k: v for k, v in _kernel_facts(api, group_id, str(uuid.uuid4()))[1].items() if k != "started_at"}
    refused = api.post(FACTS, [good, missing], role="service")
    assert refused.status_code == 400 and refused.json()["field"] == "[1].started_at"
    assert refused.json()["code"] == "ledger_invalid_parameters"
    assert _history(api, "endpoint", good["endpoint_id"]) == []
    unknown = api.post(FACTS, [good, {"fact": "launch_rocket"}], role="service")
    assert unknown.status_code == 400 and unknown.json()["field"] == "[1].fact"
    extra = api.post(FACTS, [{**good, "warp": 9}], role="service")
    assert extra.status_code == 400 and extra.json()["field"] == "[0].warp"
    not_object = api.post(FACTS, [good, 7], role="service")
    assert not_object.status_code == 400 and not_object.json()["field"] == "[1]"
    # One fact alone is named by its field only.
    alone = api.post(FACTS, {**good, "endpoint_id": "x"}, role="service")
    assert alone.status_code == 400 and alone.json()["field"] == "endpoint_id"
    assert api.post(FACTS, [], role="service").json()["field"] == "body"
    for whole in (7, False, "create_endpoint"):  # one fact that is no object: the body, as every route names it
        refused = api.post(FACTS, whole, role="service")
        assert refused.status_code == 400 and refused.json()["field"] == "body", refused.text
    assert api.post(FACTS, good, role="service").status_code == 200  # nothing of the above was stored


def test_a_duplicate_refuses_the_whole_batch_naming_its_index(api: Api, group_id: str) -> None:
    first = _endpoint(group_id)
    assert api.post(FACTS, first, role="service").status_code == 200
    fresh = _endpoint(group_id)
    duplicate = api.post(FACTS, [fresh, first], role="service")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "workload_duplicate_id"
    assert duplicate.json()["detail"].startswith("[1] (create_endpoint): ")
    assert duplicate.json()["field"] == "[1].endpoint_id"  # the fact and its field at fault
    assert _history(api, "endpoint", fresh["endpoint_id"]) == []
    again = api.post(FACTS, first, role="service")
    assert again.status_code == 409 and again.json()["code"] == "workload_duplicate_id"


def test_a_refusal_over_an_entity_a_fact_names_is_placed_by_its_index(api: Api, group_id: str) -> None:
    """A batch refused because of the group (or kernel) a fact refers to, not the fact's own
    id, was answered with neither the fact's index nor a field placing it in the array
    (`group_id`, as if the body were one fact): in a batch of thousands the platform could
    not tell which fact to mend."""
    unknown_group = str(uuid.uuid4())
    refused = api.post(FACTS, [_endpoint(group_id), _endpoint(unknown_group)], role="service")
    assert refused.status_code == 404 and refused.json()["code"] == "group_not_found"
    assert refused.json()["detail"].startswith("[1] (create_endpoint): "), refused.text
    assert refused.json()["field"] == "[1].group_id"
    kernel = str(uuid.uuid4())
    started, _stats, ended = _kernel_facts(api, group_id, kernel)[1:]
    ghost = {**ended, "kernel_id": str(uuid.uuid4())}
    refused = api.post(FACTS, [started, ghost], role="service")
    assert refused.status_code == 404 and refused.json()["detail"].startswith("[1] (terminate_kernel): ")
    assert _history(api, "kernel", kernel) == []
    alone = api.post(FACTS, _endpoint(unknown_group), role="service")
    assert alone.json()["field"] == "group_id" and not alone.json()["detail"].startswith("[")


def test_only_the_platform_reports_facts(api: Api, group_id: str) -> None:
    fact = _endpoint(group_id)
    for role in ("admin", "user", "foreign_admin"):
        refused = api.post(FACTS, fact, role=role)
        assert refused.status_code == 403, (role, refused.text)
    assert _history(api, "endpoint", fact["endpoint_id"]) == []


def test_idempotency_key_replays_a_batch(api: Api, group_id: str) -> None:
    facts = [_endpoint(group_id), _endpoint(group_id)]
    key = {"Idempotency-Key": "facts-1"}
    first = api.post(FACTS, facts, role="service", **key)
    again = api.post(FACTS, facts, role="service", **key)
    assert first.status_code == again.status_code == 200 and again.text == first.text
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_host_refusal_names_the_host_and_permission(api: Api, group_id: str) -> None:
    policy = CreateKeyPairResourcePolicyAction(creator={"name": "no-hosts"})
    root_run(api.ledger, "keypair_resource_policy", "create_keypair_resource_policy", policy)
    keypair = CreateKeyPairAction(
        access_key="AKV", user_id=api.users["user"], domain_name=HOME, resource_policy="no-hosts"
    )
    root_run(api.ledger, "keypair", "create_keypair", keypair)
    fact = {"fact": "create_vfolder", "vfolder_id": str(uuid.uuid4()), "name": "d", "host": "nas", "group_id": group_id}
    refused = api.post(FACTS, {**fact, "owner_access_key": "AKV"}, role="service")
    assert refused.status_code == 403 and refused.json()["code"] == "vfolder_host_not_allowed", refused.text
    assert (refused.json()["host"], refused.json()["permission"]) == ("nas", "create-vfolder")
    # Named as every refusal of one input's value is: the fact's `host`, in a batch where it is.
    assert refused.json()["field"] == "host", refused.text
    batch = [_endpoint(group_id), {**fact, "owner_access_key": "AKV"}]
    refused = api.post(FACTS, batch, role="service")
    assert refused.status_code == 403 and refused.json()["field"] == "[1].host", refused.text


def test_a_number_too_large_for_a_float_is_refused_naming_the_field(api: Api, group_id: str) -> None:
    """1e400 is read as an exact Decimal (never inf); the route once wrote each fact back
    to JSON for the import's parser, which cannot write a Decimal: a 500 instead of a 400."""
    kernel = _kernel_facts(api, group_id, str(uuid.uuid4()))[1]
    one = json.dumps({**kernel, "occupied_slots": {"cpu": "HUGE"}}).replace('"HUGE"', "1e400")
    headers = api.as_("service", **{"Content-Type": "application/json"})
    refused = api.client.post(FACTS, content=one.encode(), headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "occupied_slots.cpu" and "too large" in refused.json()["detail"]
    batch = f"[{json.dumps(_endpoint(group_id))}, {one}]"
    refused = api.client.post(FACTS, content=batch.encode(), headers=headers)
    assert refused.status_code == 400 and refused.json()["field"] == "[1].occupied_slots.cpu", refused.text
    assert _history(api, "kernel", kernel["kernel_id"]) == []


def test_the_document_says_how_many_facts_a_batch_may_hold(api: Api, group_id: str) -> None:
    """A batch past 10,000 facts is refused, which neither the document's array (no
    `maxItems`) nor the README (about 40,000, from the body's size) said: a platform
    batching by either was refused."""
    schema = api.client.get("/openapi.json").json()["paths"][FACTS]["post"]["requestBody"]["content"]
    batch = next(s for s in schema["application/json"]["schema"]["anyOf"] if s.get("type") == "array")
    most = batch["maxItems"]
    over = [_endpoint(group_id) for _ in range(most + 1)]
    refused = api.post(FACTS, over, "service")
    assert refused.status_code == 400 and refused.json()["field"] == "body", refused.text
    assert f"at most {most} facts" in refused.json()["detail"], refused.text
