"""Groups, keypairs and users name existing domains and users, relations are recorded with
them, a keypair's policy is optional, and an admin never grants more than a superadmin
granted their domain. On both backends, through the processors (roles from the context)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta
from domain.domains import CreateDomainAction, DeleteDomainAction, Domain, ModifyDomainAction
from domain.effective_policy import PolicySource, resolve_effective_policy
from domain.errors import (
    DomainNotEmpty,
    GroupSlotsAboveDomain,
    ObjectNotFound,
    PolicyNotAllowedInDomain,
    UserInUse,
)
from domain.group import CreateGroupAction, DeleteGroupAction, Group, ModifyGroupAction, PurgeGroupAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, policy_id
from domain.ports import UnitOfWork
from domain.user import CreateUserAction, DeleteUserAction, User
from tests.conftest import SUPERADMIN

U1, U2, U3 = (uuid.UUID(int=0xB0 + i) for i in range(1, 4))


def admin_of(domain: str) -> ActionTriggerMeta:
    return ActionTriggerMeta(user_id=uuid.UUID(int=9), access_key="AKADMIN", role="admin", domain_name=domain)


def run(ledger: Ledger, service: str, method: str, action: Any, who: ActionTriggerMeta = SUPERADMIN) -> Any:
    processor = getattr(getattr(ledger.processors, service), method)
    return asyncio.run(processor.wait_for_complete(action, who))


def domain(ledger: Ledger, name: str, **fields: Any) -> None:
    run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": name, **fields}))


def user(ledger: Ledger, user_id: uuid.UUID, domain_name: str, **fields: Any) -> None:
    creator = {"user_id": user_id, "domain_name": domain_name, **fields}
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))


def policy(ledger: Ledger, name: str) -> None:
    run(
        ledger,
        "keypair_resource_policy",
        "create_keypair_resource_policy",
        CreateKeyPairResourcePolicyAction(creator={"name": name}),
    )


def new_keypair(access_key: str, owner: uuid.UUID, domain_name: str) -> CreateKeyPairAction:
    return CreateKeyPairAction(access_key=access_key, user_id=owner, domain_name=domain_name)


def stored(ledger: Ledger, cls: type[Any], key: str) -> Any:
    return ledger.app.get(cls.id_for(key), cls)


def test_a_fresh_ledger_holds_the_domain_default(ledger: Ledger) -> None:
    default = stored(ledger, Domain, "default")
    assert default is not None and default.is_active and not default.is_deleted


def test_a_typo_names_the_domain_and_the_field_and_creates_nothing(ledger: Ledger) -> None:
    policy(ledger, "p")
    user(ledger, U1, "default")
    with (
        stores_nothing_but_audit(ledger),
        pytest.raises(ObjectNotFound, match=r"domain_name: domain 'defualt' not found"),
    ):
        run(ledger, "group", "create_group", CreateGroupAction(input={"name": "g", "domain_name": "defualt"}))
    with stores_nothing_but_audit(ledger), pytest.raises(ObjectNotFound, match=r"domain_name: domain 'defualt'"):
        run(ledger, "keypair", "create_keypair", new_keypair("AK", U1, "defualt"))
    with stores_nothing_but_audit(ledger), pytest.raises(ObjectNotFound, match=rf"user_id: user {U2} not found"):
        run(ledger, "keypair", "create_keypair", new_keypair("AK", U2, "default"))
    assert stored(ledger, Domain, "defualt") is None


def test_an_owner_must_be_a_user_of_the_keypairs_domain(ledger: Ledger) -> None:
    """A user of another domain is answered as one that does not exist (it said which
    domain the user is in: an admin learned whether a foreign user exists, and where)."""
    domain(ledger, "other")
    user(ledger, U1, "other")
    with pytest.raises(ObjectNotFound, match=f"^user_id: user {U1} not found in domain 'default'$") as refused:
        run(ledger, "keypair", "create_keypair", new_keypair("AK", U1, "default"))
    assert refused.value.field == "user_id"


def test_a_keypair_is_recorded_on_its_owner_who_cannot_leave_before_it(ledger: Ledger) -> None:
    user(ledger, U1, "default")
    run(ledger, "keypair", "create_keypair", new_keypair("AK1", U1, "default"))
    assert list(stored(ledger, User, str(U1)).keypairs) == ["AK1"]
    with pytest.raises(UserInUse, match="AK1"):
        run(ledger, "user", "delete_user", DeleteUserAction(user_id=U1))
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK1"))
    run(ledger, "user", "delete_user", DeleteUserAction(user_id=U1))
    with pytest.raises(ObjectNotFound, match="user_id: user"):  # a deleted owner owns nothing new
        run(
            ledger,
            "keypair",
            "create_keypair",
            new_keypair("AK2", U1, "default"),
        )


def test_a_group_is_on_its_domain_until_purged_and_members_are_its_users(ledger: Ledger) -> None:
    domain(ledger, "d")
    domain(ledger, "e")
    user(ledger, U1, "d")
    user(ledger, U2, "e")
    group_id = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "g", "domain_name": "d"})).data.id
    assert list(stored(ledger, Domain, "d").groups) == [str(group_id)]
    add = {"user_update_mode": "add"}
    with pytest.raises(ObjectNotFound, match=rf"user_uuids: user {U3} not found"):
        run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group_id, user_uuids=[U1, U3], **add))
    with pytest.raises(ObjectNotFound, match=f"user {U2} not found in domain 'd'"):
        run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group_id, user_uuids=[U2], **add))
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group_id, user_uuids=[U1], **add))
    # Moving the group takes it to the other domain's list, but its members must follow.
    move = ModifyGroupAction(group_id=group_id, modifier={"domain_name": "e"})
    with pytest.raises(ObjectNotFound, match=f"user {U1} not found in domain 'e'"):
        run(ledger, "group", "modify_group", move)
    run(ledger, "user", "delete_user", DeleteUserAction(user_id=U1))
    run(ledger, "group", "delete_group", DeleteGroupAction(group_id=group_id))  # soft: still held
    with pytest.raises(DomainNotEmpty, match="group"):
        run(ledger, "domain", "delete_domain", DeleteDomainAction(domain_name="d"))
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=group_id))
    assert stored(ledger, Domain, "d").groups == {}
    run(ledger, "domain", "delete_domain", DeleteDomainAction(domain_name="d"))


def test_a_moved_group_changes_domain_lists(ledger: Ledger) -> None:
    domain(ledger, "d")
    domain(ledger, "e")
    group_id = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "g", "domain_name": "d"})).data.id
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group_id, modifier={"domain_name": "e"}))
    assert stored(ledger, Domain, "d").groups == {} and list(stored(ledger, Domain, "e").groups) == [str(group_id)]
    with pytest.raises(ObjectNotFound, match="domain_name: domain 'nowhere' not found"):
        run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group_id, modifier={"domain_name": "nowhere"}))


def test_a_keypair_without_a_policy_follows_the_precedence_and_assigns_nothing(ledger: Ledger) -> None:
    policy(ledger, "gold")
    policy(ledger, "silver")
    domain(ledger, "d", default_keypair_resource_policy="silver")
    user(ledger, U1, "d")
    created = run(ledger, "keypair", "create_keypair", new_keypair("AK", U1, "d"))
    assert created.keypair.resource_policy is None
    assert all("KeyPairAssigned" not in name for name in event_names(ledger, policy_id("silver")))

    def effective() -> tuple[str, PolicySource]:
        found = resolve_effective_policy(UnitOfWork(ledger.app.store), "AK")
        return found.name, found.source

    assert effective() == ("silver", PolicySource.DOMAIN)
    run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy="gold"))
    assert effective() == ("gold", PolicySource.KEYPAIR)
    modified = run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy=None))
    assert modified.changed and modified.keypair.resource_policy is None
    assert event_names(ledger, policy_id("gold"))[-2:] == ["KeyPairAssigned", "KeyPairUnassigned"]
    assert effective() == ("silver", PolicySource.DOMAIN)
    again = run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy=None))
    assert again.changed is False
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))  # nothing to unassign


def test_an_admin_assigns_only_policies_the_domain_allows(ledger: Ledger) -> None:
    for name in ("gold", "silver"):
        policy(ledger, name)
    domain(ledger, "d", allowed_keypair_resource_policies=["silver"])
    user(ledger, U1, "d")
    admin = admin_of("d")
    create = CreateKeyPairAction(access_key="AK", user_id=U1, domain_name="d", resource_policy="gold")
    with pytest.raises(PolicyNotAllowedInDomain, match=r"resource_policy: .*'gold' is not allowed in domain 'd'"):
        run(ledger, "keypair", "create_keypair", create, admin)
    run(ledger, "keypair", "create_keypair", create.model_copy(update={"resource_policy": "silver"}), admin)
    with pytest.raises(PolicyNotAllowedInDomain):
        run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy="gold"), admin)
    run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy=None), admin)
    run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy="gold"))  # superadmin
    modify = ModifyDomainAction(domain_name="d", modifier={"allowed_keypair_resource_policies": None})
    run(ledger, "domain", "modify_domain", modify)
    run(ledger, "keypair", "modify_keypair", ModifyKeyPairAction(access_key="AK", resource_policy="silver"), admin)


def test_an_admin_cannot_set_a_groups_slots_above_the_domains(ledger: Ledger) -> None:
    domain(ledger, "d", total_resource_slots={"cpu": "10"})
    admin = admin_of("d")
    too_much = CreateGroupAction(input={"name": "g", "domain_name": "d", "total_resource_slots": {"cpu": "11"}})
    with pytest.raises(GroupSlotsAboveDomain, match=r"total_resource_slots.cpu: 11 is above domain 'd'"):
        run(ledger, "group", "create_group", too_much, admin)
    # A slot the domain does not list is unlimited; the domain's own value is allowed.
    fits = {"name": "g", "domain_name": "d", "total_resource_slots": {"cpu": "10", "mem": "1t"}}
    group_id = run(ledger, "group", "create_group", CreateGroupAction(input=fits), admin).data.id
    patch = ModifyGroupAction(group_id=group_id, modifier={"total_resource_slots_patch": {"cpu": "12"}})
    with pytest.raises(GroupSlotsAboveDomain):
        run(ledger, "group", "modify_group", patch, admin)
    whole = ModifyGroupAction(group_id=group_id, modifier={"total_resource_slots": {"cpu": "inf"}})
    with pytest.raises(GroupSlotsAboveDomain):
        run(ledger, "group", "modify_group", whole, admin)
    lower = ModifyGroupAction(group_id=group_id, modifier={"total_resource_slots_patch": {"cpu": "4"}})
    run(ledger, "group", "modify_group", lower, admin)
    run(ledger, "group", "modify_group", patch)  # a superadmin may
    assert stored(ledger, Group, str(group_id)).fields["total_resource_slots"]["cpu"] == "12"


def event_names(ledger: Ledger, stream: uuid.UUID) -> list[str]:
    return [type(e).__name__ for e in ledger.app.events.get(stream)]


class stores_nothing_but_audit:
    """A refused action stores only its audit record."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __enter__(self) -> None:
        self._head = self._ledger.app.recorder.max_notification_id() or 0

    def __exit__(self, *exc: object) -> None:
        new = self._ledger.app.recorder.select_notifications(start=self._head + 1, limit=10)
        assert [n.topic for n in new] == ["domain.audit.record:AuditRecord.Recorded"]
