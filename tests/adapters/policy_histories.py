"""Generated histories of policy commands (create, modify, delete by name), and a way to
run one command through the service, for the replay and time-travel properties."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import strategies as st

from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    ModifyKeyPairResourcePolicyAction,
)

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


def run_command(ledger: Any, command: tuple[str, str, dict[str, Any]]) -> KeyPairResourcePolicyData | None:
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
