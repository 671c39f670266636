"""Snapshots taken by an older class version still load: the aggregate class upcasts
their state (eventsourcing's `class_version` / `upcast_vX_vY`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from adapters.store.application import SNAPSHOT_INTERVAL
from domain.domains import CreateDomainAction
from domain.errors import PolicyInUse
from domain.group import CreateGroupAction, Group, ModifyGroupAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    policy_id,
)
from domain.sharedmap import plain_state
from domain.user import DeleteUserAction, User
from tests.domain.fakes import ensure_user


def test_a_policy_snapshot_from_before_default_references_loads_and_tracks_them(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        services = ledger.services
        asyncio.run(
            services.keypair_resource_policy.create_keypair_resource_policy(
                CreateKeyPairResourcePolicyAction(creator={"name": "gold"})
            )
        )
        policy = ledger.app.get(policy_id("gold"), KeyPairResourcePolicy)
        assert policy is not None
        for seconds in range(1, SNAPSHOT_INTERVAL + 5):  # a long stream: loaded from its snapshot
            policy.modify({"idle_timeout": seconds})
        ledger.app.save(policy)
        policy.modify({"idle_timeout": 0})
        ledger.app.save(policy)
        # The snapshot version 1 of the class would have taken: no `default_of`, no class_version.
        old = KeyPairResourcePolicy.Snapshot.take(policy)  # type: ignore[attr-defined]
        del old.state["default_of"], old.state["class_version"]
        assert ledger.app.snapshots is not None
        ledger.app.snapshots.put([old])
        newest = list(ledger.app.snapshots.get(policy_id("gold"), desc=True, limit=1))
        assert newest[0].originator_version == policy.version and "class_version" not in newest[0].state

    with open_ledger(ledger_url) as reopened:  # a fresh cache: loaded from that snapshot
        loaded = reopened.app.get(policy_id("gold"), KeyPairResourcePolicy)
        assert loaded is not None and loaded.default_of == {} and loaded.fields["idle_timeout"] == 0
        asyncio.run(
            reopened.services.domain.create_domain(
                CreateDomainAction(creator={"name": "d", "default_keypair_resource_policy": "gold"})
            )
        )
        with pytest.raises(PolicyInUse, match="domain:d"):
            asyncio.run(
                reopened.services.keypair_resource_policy.delete_keypair_resource_policy(
                    DeleteKeyPairResourcePolicyAction(name="gold")
                )
            )


def test_a_user_snapshot_from_before_memberships_loads_and_tracks_them(ledger_url: str) -> None:
    user_id = uuid.uuid4()
    with open_ledger(ledger_url) as ledger:
        ensure_user(ledger.app.store, user_id, "default")
        user = ledger.app.get(User.id_for(str(user_id)), User)
        assert user is not None
        for seconds in range(1, SNAPSHOT_INTERVAL + 5):  # a long stream: loaded from its snapshot
            user.modify({"full_name": f"n{seconds}"})
        ledger.app.save(user)
        user.modify({"full_name": "last"})
        ledger.app.save(user)
        # The snapshot version 1 of the class would have taken: no `groups`, no class_version.
        old = User.Snapshot.take(user)  # type: ignore[attr-defined]
        del old.state["groups"], old.state["class_version"]
        assert ledger.app.snapshots is not None
        ledger.app.snapshots.put([old])

    with open_ledger(ledger_url) as reopened:  # a fresh cache: loaded from that snapshot
        loaded = reopened.app.get(User.id_for(str(user_id)), User)
        assert loaded is not None and loaded.groups == {} and loaded.fields["full_name"] == "last"
        group = asyncio.run(
            reopened.services.group.create_group(CreateGroupAction(input={"name": "g", "domain_name": "default"}))
        ).data.id
        modify = ModifyGroupAction(group_id=group, user_update_mode="add", user_uuids=[user_id])
        asyncio.run(reopened.services.group.modify_group(modify))
        asyncio.run(reopened.services.user.delete_user(DeleteUserAction(user_id=user_id)))
        stored = reopened.app.get(group, Group)
        assert stored is not None and stored.members == []  # the upcast user left the group it joined


def test_a_group_snapshot_from_when_members_were_a_dict_loads_as_a_list(ledger_url: str) -> None:
    members = [uuid.UUID(int=0xA1), uuid.UUID(int=0xA2)]
    with open_ledger(ledger_url) as ledger:
        for member in members:
            ensure_user(ledger.app.store, member, "default")
        group = asyncio.run(
            ledger.services.group.create_group(CreateGroupAction(input={"name": "g", "domain_name": "default"}))
        ).data.id
        modify = ModifyGroupAction(group_id=group, user_update_mode="add", user_uuids=members)
        asyncio.run(ledger.services.group.modify_group(modify))
        stored = ledger.app.get(group, Group)
        assert stored is not None
        for seconds in range(SNAPSHOT_INTERVAL + 5):  # a long stream: loaded from its snapshot
            stored.modify({"description": f"d{seconds}"})
        ledger.app.save(stored)
        stored.modify({"description": "last"})
        ledger.app.save(stored)
        # Version 1 of the class: members as a dict of id -> True, no class_version.
        old = Group.Snapshot.take(stored)  # type: ignore[attr-defined]
        old.state["members"] = dict.fromkeys(old.state["members"], True)
        del old.state["class_version"]
        assert ledger.app.snapshots is not None
        ledger.app.snapshots.put([old])

    with open_ledger(ledger_url) as reopened:
        loaded = reopened.app.get(group, Group)
        assert loaded is not None and loaded.members == [str(m) for m in members]
        assert loaded.fields["description"] == "last"
        remove = ModifyGroupAction(group_id=group, user_update_mode="remove", user_uuids=members[:1])
        asyncio.run(reopened.services.group.modify_group(remove))
        assert reopened.app.get(group, Group).members == [str(members[1])]  # type: ignore[union-attr]


KEYPAIR = {"resource_policy": "p", "user_id": None, "domain_name": "d"}


def _usage_with_an_older_snapshot(ledger_url: str, older: Callable[[dict[str, Any]], None], *, retired: bool) -> None:
    """Keypair AK's usage, one session running (`s0`) and, if `retired`, one retired
    (`old`), its newest snapshot's state made an older version's by `older`."""
    from domain.session import Scope
    from domain.session.usage import ScopeUsage

    with open_ledger(ledger_url) as ledger:
        usage = ScopeUsage.open(Scope.KEYPAIR, "AK")
        if retired:
            usage.start("old", {"cpu": "1"})
            usage.retire(KEYPAIR)
        for n in range(SNAPSHOT_INTERVAL + 5):  # a long stream: loaded from its snapshot
            usage.start(f"s{n}", {"cpu": "1"})
            if n:
                usage.release(f"s{n}")
        ledger.app.save(usage)
        old = ScopeUsage.Snapshot.take(usage)  # type: ignore[attr-defined]
        plain_state(old.state)
        older(old.state)
        assert ledger.app.snapshots is not None
        ledger.app.snapshots.put([old])


def _reopened_usage(ledger: Any) -> Any:
    from domain.session import Scope
    from domain.session.usage import ScopeUsage, usage_id

    loaded = ledger.app.get(usage_id(Scope.KEYPAIR, "AK"), ScopeUsage)
    assert loaded is not None
    return loaded


def test_a_usage_snapshot_from_before_retired_sessions_loads_and_releases(ledger_url: str) -> None:
    def version_1(state: dict[str, Any]) -> None:  # no `retired`, no class_version
        del state["retired"], state["class_version"]

    _usage_with_an_older_snapshot(ledger_url, version_1, retired=False)
    with open_ledger(ledger_url) as reopened:  # a fresh cache: loaded from that snapshot
        loaded = _reopened_usage(reopened)
        assert loaded.retired == {} and set(loaded.running) == {"s0"}
        loaded.retire(KEYPAIR)
        assert loaded.running == {} and set(loaded.retired) == {"s0"} and loaded.running_total == {}
        assert loaded.retired_under == {"s0": KEYPAIR}
        assert loaded.release("s0") and loaded.retired == {} and loaded.retired_under == {}


def test_a_usage_snapshot_from_before_retired_keypairs_loads_and_keeps_none_for_its_sessions(
    ledger_url: str,
) -> None:
    def version_2(state: dict[str, Any]) -> None:  # `retired`, no `retired_under`
        del state["retired_under"]
        state["class_version"] = 2

    _usage_with_an_older_snapshot(ledger_url, version_2, retired=True)
    with open_ledger(ledger_url) as reopened:
        loaded = _reopened_usage(reopened)
        assert set(loaded.retired) == {"old"} and loaded.retired_under == {}
        loaded.retire(KEYPAIR)
        assert set(loaded.retired) == {"old", "s0"} and loaded.retired_under == {"s0": KEYPAIR}
        assert loaded.release("old") and loaded.release("s0") and loaded.retired_under == {}


def test_a_keypair_snapshot_from_before_deletes_recorded_a_policy_loads_and_records_one(ledger_url: str) -> None:
    """A keypair snapshot taken before a delete recorded the policy its sessions run on
    under (`deleted_under`) loads with none; its delete then records one."""
    from domain.keypair import DeleteKeyPairAction, KeyPair
    from tests.adapters.sessions import SessionWorld, run

    with open_ledger(ledger_url) as ledger:
        SessionWorld(ledger)  # keypair AK on policy p
        keypair = ledger.app.get(KeyPair.id_for("AK"), KeyPair)
        assert keypair is not None
        for n in range(SNAPSHOT_INTERVAL + 5):  # a long stream: loaded from its snapshot
            keypair.modify({"resource_policy": None if n % 2 == 0 else "p"})
        ledger.app.save(keypair)
        keypair.modify({"resource_policy": "p"})  # as the policy's stream records it
        ledger.app.save(keypair)
        old = KeyPair.Snapshot.take(keypair)  # type: ignore[attr-defined]
        del old.state["deleted_under"], old.state["class_version"]
        assert ledger.app.snapshots is not None
        ledger.app.snapshots.put([old])

    with open_ledger(ledger_url) as reopened:  # a fresh cache: loaded from that snapshot
        loaded = reopened.app.get(KeyPair.id_for("AK"), KeyPair)
        assert loaded is not None and loaded.deleted_under is None and loaded.resource_policy == "p"
        run(reopened, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))
        deleted = reopened.app.get(KeyPair.id_for("AK"), KeyPair)
        assert deleted is not None and deleted.is_deleted
        assert deleted.deleted_under is not None and deleted.deleted_under["name"] == "p"
