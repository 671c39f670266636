"""Property: any valid history replays, in a freshly opened ledger, to what the commands returned."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from adapters.bootstrap import open_ledger
from domain.errors import DuplicatePolicyName, ObjectNotFound
from domain.keypair_resource_policy import KeyPairResourcePolicy, KeyPairResourcePolicyData, policy_id
from domain.keypair_resource_policy.service import policy_data
from tests.adapters.policy_histories import NAMES, commands, run_command
from tests.conftest import fresh_url


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=commands)
def test_reopened_ledger_replays_to_what_commands_returned(backend: str, history: list[Any]) -> None:
    expected: dict[str, KeyPairResourcePolicyData | None] = dict.fromkeys(NAMES)
    with fresh_url(backend) as url:
        with open_ledger(url) as ledger:
            for command in history:
                kind, name, _ = command
                try:
                    expected[name] = run_command(ledger, command)
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
