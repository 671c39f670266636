"""`Entity.clone`: the private copy the aggregate cache hands out and keeps."""

from __future__ import annotations

import uuid

from domain.group.aggregate import Group
from domain.keypair_resource_policy import KeyPairResourcePolicy, KeyPairResourcePolicyCreator


def test_a_clone_is_equal_and_shares_no_dict_or_list() -> None:
    policy = KeyPairResourcePolicy.create("p", KeyPairResourcePolicyCreator(name="p").fields_json())
    twin = policy.clone()
    assert type(twin) is KeyPairResourcePolicy and vars(twin) == vars(policy)
    for name, value in vars(policy).items():
        if type(value) in (dict, list):
            assert vars(twin)[name] is not value, name  # a change to one is not a change to the other
        else:
            assert vars(twin)[name] is value, name  # scalars and frozen values are shared
    twin.modify({"max_concurrent_sessions": 7})
    assert policy.fields != twin.fields and len(policy.pending_events) == 1 and len(twin.pending_events) == 2


def test_a_clone_of_a_group_keeps_its_members_apart() -> None:
    group = Group.create(str(uuid.uuid4()), {"name": "g", "domain_name": "default"})
    twin = group.clone()
    twin.members.append("someone")  # events change members in place: the copy must be its own
    assert "someone" not in group.members
