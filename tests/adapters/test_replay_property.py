"""Property: any valid history replays, in a freshly opened ledger, to what the commands returned."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import open_ledger
from domain.errors import DuplicatePolicyName, ObjectNotFound
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    ModifyKeyPairResourcePolicyAction,
    policy_id,
)
from domain.keypair_resource_policy.service import policy_data
from tests.conftest import fresh_url

NAMES = ["alpha", "beta", "gamma"]

field_values = {
    "max_concurrent_sessions": st.integers(0, 50),
    "max_containers_per_session": st.integers(1, 8),
    "idle_timeout": st.none() | st.integers(0, 7200),
    "max_session_lifetime": st.none() | st.integers(0, 86400),
    "max_pending_session_count": st.none() | st.integers(0, 20),
    "default_for_unspecified": st.sampled_from(["LIMITED", "UNLIMITED", "limited"]),
    "total_resource_slots": st.fixed_dictionaries(
        {}, optional={"cpu": st.integers(0, 64).map(str), "mem": st.sampled_from(["1g", "512m", "64G"])}
    ),
    "allowed_vfolder_hosts": st.lists(st.sampled_from(["local", "nfs", "s3"]), unique=True),
}
fields = st.fixed_dictionaries({}, optional=field_values)
creatable = fields.map(lambda d: {k: v for k, v in d.items() if v is not None})

commands = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(NAMES), creatable),
        st.tuples(st.just("modify"), st.sampled_from(NAMES), fields),
        st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just({})),
    ),
    max_size=14,
)


def _run(ledger: Any, command: tuple[str, str, dict[str, Any]]) -> KeyPairResourcePolicyData | None:
    kind, name, values = command
    service = ledger.services.keypair_resource_policy
    if kind == "create":
        action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name, **values))
        return asyncio.run(service.create_keypair_resource_policy(action)).keypair_resource_policy
    if kind == "modify":
        action = ModifyKeyPairResourcePolicyAction(name=name, modifier=values)
        return asyncio.run(service.modify_keypair_resource_policy(action)).keypair_resource_policy
    asyncio.run(service.delete_keypair_resource_policy(DeleteKeyPairResourcePolicyAction(name=name)))
    return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=commands)
def test_reopened_ledger_replays_to_what_commands_returned(backend: str, history: list[Any]) -> None:
    expected: dict[str, KeyPairResourcePolicyData | None] = dict.fromkeys(NAMES)
    with fresh_url(backend) as url:
        with open_ledger(url) as ledger:
            for command in history:
                kind, name, _ = command
                try:
                    expected[name] = _run(ledger, command)
                except DuplicatePolicyName:
                    assert kind == "create" and expected[name] is not None
                except ObjectNotFound:
                    assert kind in ("modify", "delete") and expected[name] is None
                else:
                    assert (expected[name] is None) == (kind == "delete")
        with open_ledger(url) as reopened:
            for name, data in expected.items():
                stored = reopened.app.get(policy_id(name), KeyPairResourcePolicy)
                replayed = None if stored is None or stored.is_deleted else policy_data(stored)
                assert replayed == data
                assert reopened.queries.keypair_resource_policy(name) == data
            live = sorted(n for n, d in expected.items() if d is not None)
            listed = [p.name for p in reopened.queries.keypair_resource_policies() if p.name != "default"]
            assert listed == live
