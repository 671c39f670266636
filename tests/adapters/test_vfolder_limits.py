"""Storage limits (issue 12 item 5) through the processors, on SQLite and PostgreSQL: a
vfolder created for an owner needs `create-vfolder` on its host from the domain, a group
of the owner's user or the owner's effective policy, and stays within the owner's `max_vfolder_count`; a
vfolder without an owner is a reported fact, checked against nothing and counted nowhere."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import InvalidAPIParameters, QuotaExceeded, VFolderHostNotAllowed
from domain.workload import CreateVFolderAction
from tests.adapters.sessions import PLATFORM, SessionWorld, run

CREATE = ["create-vfolder"]


def create(world: SessionWorld, host: str = "local", owner: str | None = "AK", **more: Any) -> uuid.UUID:
    vfolder_id = uuid.uuid4()
    action = CreateVFolderAction(
        vfolder_id=vfolder_id,
        name=f"vf-{vfolder_id.hex[:6]}",
        host=host,
        group_id=more.pop("group_id", world.group_id),
        owner_access_key=owner,
    )
    run(world.ledger, "workload", "create_vfolder", action, PLATFORM)
    return vfolder_id


def test_the_host_must_grant_create_vfolder_at_some_level(ledger: Ledger) -> None:
    world = SessionWorld(ledger, allowed_vfolder_hosts={"policy-host": CREATE, "mount-only": ["mount-in-session"]})
    world.modify_group(allowed_vfolder_hosts={"group-host": CREATE})
    world.modify_domain(allowed_vfolder_hosts={"domain-host": None})  # a host mapped to null grants all
    for host in ("policy-host", "group-host", "domain-host"):
        assert ledger.queries.vfolder(create(world, host)) is not None
    for host in ("mount-only", "elsewhere"):
        with pytest.raises(VFolderHostNotAllowed) as refused:
            create(world, host)
        assert (refused.value.host, refused.value.permission) == (host, "create-vfolder")
        assert f"on host {host!r}" in str(refused.value)


def test_any_group_of_the_owners_user_may_grant_create_vfolder(ledger: Ledger) -> None:
    """A vfolder created for an owner is its user's: REFERENCE (storage) unites the grants
    of every group of the user, as a mount of it does; only the vfolder's group granted."""
    from domain.group import ModifyGroupAction

    world = SessionWorld(ledger)
    team = world.group("team", allowed_vfolder_hosts={"nfs": CREATE})
    members = {"user_uuids": [str(world.user_id)]}
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=team, user_update_mode="add", **members))
    assert ledger.queries.vfolder(create(world, "nfs")) is not None
    with pytest.raises(VFolderHostNotAllowed, match="neither the domain, any group of the user nor"):
        create(world, "local")
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=team, user_update_mode="remove", **members))
    with pytest.raises(VFolderHostNotAllowed):
        create(world, "nfs")


def test_max_vfolder_count_of_the_owners_effective_policy(ledger: Ledger) -> None:
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": CREATE}, max_vfolder_count=2)
    create(world), create(world)
    with pytest.raises(QuotaExceeded) as refused:
        create(world)
    assert (refused.value.limit, refused.value.scope, refused.value.scope_id) == ("max_vfolder_count", "keypair", "AK")
    assert "2 owned + 1 > 2" in str(refused.value)
    world.modify_policy("p", max_vfolder_count=0)  # 0 is unlimited
    create(world)
    world.modify_policy("p", max_vfolder_count=3)
    with pytest.raises(QuotaExceeded):
        create(world)
    world.keypair("AK2", "p")  # a count per owner
    create(world, owner="AK2")


def test_a_vfolder_count_refusal_names_the_policys_version_as_an_enqueue_refusal_does(ledger: Ledger) -> None:
    """`ledger workload vfolder-create` refused with `max_vfolder_count of policy 'p'
    (keypair): 1 vfolders + 1 > 1`: no version, where an enqueue refusal names it (its
    message, kept by the audit record, is all the ledger keeps of the refusal: once the
    policy changed, which state refused was lost), and "1 vfolders"."""
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": CREATE}, max_vfolder_count=1)
    create(world)
    with pytest.raises(QuotaExceeded) as refused:
        create(world)
    named = f"max_vfolder_count of policy 'p' (keypair, version {world.version()}): 1 owned + 1 > 1"
    assert refused.value.message.endswith(named)
    recorded = ledger.queries.audit_log(entity_type="vfolder", status="error")
    assert [entry.description for entry in recorded] == [refused.value.message]


def test_a_vfolder_without_an_owner_is_an_unchecked_fact_counted_nowhere(ledger: Ledger) -> None:
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": CREATE}, max_vfolder_count=1)
    for _ in range(3):
        create(world, "anywhere", owner=None)
    created = create(world)  # the owner's first: the facts above counted nothing
    assert ledger.queries.vfolder(created) is not None
    with pytest.raises(QuotaExceeded):
        create(world)


def test_the_owner_must_be_a_keypair_of_the_groups_domain(ledger: Ledger) -> None:
    from domain.domains import CreateDomainAction
    from domain.keypair import CreateKeyPairAction
    from domain.user import CreateUserAction

    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": CREATE})
    run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": "e"}))
    user_id = uuid.uuid4()
    run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": user_id, "domain_name": "e"}))
    keypair = CreateKeyPairAction(access_key="AKE", user_id=user_id, domain_name="e", resource_policy="p")
    run(ledger, "keypair", "create_keypair", keypair)
    with pytest.raises(InvalidAPIParameters) as refused:
        create(world, owner="AKE")
    assert refused.value.field == "owner_access_key"


def test_a_purged_groups_vfolders_leave_their_owners_count(ledger: Ledger) -> None:
    from domain.group import PurgeGroupAction

    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": CREATE}, max_vfolder_count=2)
    other = world.group("other")
    create(world, group_id=other), create(world, group_id=other)
    with pytest.raises(QuotaExceeded):
        create(world)
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=other))
    # The purge removed both: the owner had none left, yet was refused forever.
    create(world), create(world)
    with pytest.raises(QuotaExceeded):
        create(world)
