"""Seed 003: the group (project) service on SQLite and PostgreSQL.

The small helpers (group commands, workload facts, `stores_nothing`) live in
tests/adapters/groups.py, shared with the other group and workload test modules.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import (
    DuplicateGroupName,
    GroupNotFound,
    InvalidAPIParameters,
    PurgeGroupActionActiveEndpointsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
)
from domain.group import (
    CreateGroupAction,
    DeleteGroupAction,
    GroupCreator,
    GroupModifier,
    ModifyGroupAction,
    PurgeGroupAction,
    UserUpdateMode,
)
from domain.hosts import ALL_VFOLDER_PERMISSIONS
from domain.personal import ERASED
from domain.values import OptionalState, ProjectType, ResourceSlot, TriState
from tests.adapters.groups import (
    ENTITY,
    PURGE_ERRORS,
    create_endpoint,
    create_group,
    create_vfolder,
    delete_group,
    destroy_endpoint,
    events,
    head,
    modify_group,
    purge_group,
    start_kernel,
    stores_nothing,
    terminate_kernel,
    user_ids,
)
from tests.domain.fakes import ensure_domain, ensure_user

GiB = 1024**3
SEED_GROUP_ID = uuid.UUID("12345678-1234-1234-1234-123456789012")


# Create


def seed_create_action() -> CreateGroupAction:
    """Seed 003's create example, as written (plus the seed's group id, to look it up)."""
    return CreateGroupAction(
        input=GroupCreator(
            name="development-team",
            domain_name="example.com",
            type=ProjectType.GENERAL,
            description="Development team group",
            is_active=True,
            total_resource_slots=ResourceSlot.from_user_input({"cpu": "4", "mem": "8g"}, None),
            allowed_vfolder_hosts={"local": "local"},
            resource_policy="development-policy",
            container_registry={"registry": "docker.io"},
        ),
        group_id=SEED_GROUP_ID,
    )


def test_seed_create_example_stores_every_value(ledger: Ledger) -> None:
    ensure_domain(ledger.app.store, "example.com")  # the seed's domain exists
    result = asyncio.run(ledger.services.group.create_group(seed_create_action()))
    stored = ledger.queries.group(SEED_GROUP_ID)
    assert stored == result.data
    assert result.entity_id() == str(SEED_GROUP_ID)
    for group in (result.data, stored):
        assert group is not None
        assert group.id == SEED_GROUP_ID
        assert group.name == "development-team"
        assert group.domain_name == "example.com"
        assert group.type is ProjectType.GENERAL
        assert group.description == "Development team group"
        assert group.is_active is True
        assert group.total_resource_slots == {"cpu": Decimal(4), "mem": Decimal(8 * GiB)}
        assert group.allowed_vfolder_hosts == {"local": ALL_VFOLDER_PERMISSIONS}
        assert group.resource_policy == "development-policy"
        assert group.container_registry == {"registry": "docker.io"}
        assert group.integration_id is None
        assert group.dotfiles == b""
        assert group.created_at == group.modified_at
        assert group.created_at.tzinfo is not None
    assert ledger.queries.groups("example.com") == [stored]
    assert ledger.queries.groups("other.org") == []
    assert ledger.queries.group_members(SEED_GROUP_ID) == set()
    (entry,) = ledger.queries.history(ENTITY, str(SEED_GROUP_ID))
    assert (entry.event, entry.version) == ("Created", 1)
    assert entry.changes["name"] == {"old": None, "new": "development-team"}
    assert entry.changes["total_resource_slots"] == {"old": None, "new": {"cpu": "4", "mem": str(8 * GiB)}}


def test_type_and_update_mode_read_back_equal_to_their_text(ledger: Ledger) -> None:
    """A group's `type` is Backend.AI's string enum: `data.type == "general"` holds for the
    result and the query alike, and the membership modes equal the seed's words."""
    created = create_group(ledger, "typed", type="MODEL_STORE")
    stored = ledger.queries.group(created.id)
    assert stored is not None
    assert created.type == stored.type == "model-store"
    assert create_group(ledger, "plain").type == "general"
    assert [mode.value for mode in UserUpdateMode] == [UserUpdateMode.ADD, "remove", "replace"]


def test_every_group_result_has_the_seeds_success_status(ledger: Ledger) -> None:
    """Seed 003: create "returns the created group data with success status", delete and
    purge "return success status"; Backend.AI's results carry `success` beside `data`.
    The results had `data` only: `result.success` was an AttributeError."""
    service = ledger.services.group
    created = asyncio.run(service.create_group(CreateGroupAction(input={"name": "ok", "domain_name": "default"})))
    group = created.data.id
    results = [
        created,
        asyncio.run(service.modify_group(ModifyGroupAction(group_id=group, modifier={"description": "d"}))),
        asyncio.run(service.delete_group(DeleteGroupAction(group_id=group))),
        asyncio.run(service.purge_group(PurgeGroupAction(group_id=group))),
    ]
    assert [(result.success, result.data.id) for result in results] == [(True, group)] * 4


def test_create_from_a_dict_takes_defaults_and_chooses_an_id(ledger: Ledger) -> None:
    result = asyncio.run(
        ledger.services.group.create_group(CreateGroupAction(input={"name": "minimal", "domain_name": "default"}))
    )
    group = result.data
    assert isinstance(group.id, uuid.UUID)
    assert ledger.queries.group(group.id) == group
    assert group.type is ProjectType.GENERAL
    assert (group.description, group.integration_id, group.container_registry) == (None, None, None)
    assert group.is_active is True
    assert group.total_resource_slots == {}
    assert group.allowed_vfolder_hosts == {}
    assert group.dotfiles == b""
    assert group.resource_policy == "default"
    other = create_group(ledger, "second")
    assert other.id != group.id


def test_create_with_a_group_id_already_in_use_is_refused(ledger: Ledger) -> None:
    first = create_group(ledger, "first")
    with stores_nothing(ledger), pytest.raises(InvalidAPIParameters) as info:
        create_group(ledger, "second", group_id=first.id)
    assert info.value.field == "group_id"
    assert [g.name for g in ledger.queries.groups()] == ["first"]


def test_the_same_create_action_run_again_is_refused_at_once(ledger: Ledger) -> None:
    """The ledger draws a group's id when the action is built, so a test that runs one
    action twice runs the same id twice: the id clashed on every attempt, and the second
    run answered ConcurrentModification after 50 retries (~6 s) where a duplicate name is
    meant; once the group is renamed or purged, a rerun is refused naming group_id."""
    create = CreateGroupAction(input={"name": "twice", "domain_name": "default"})
    first = asyncio.run(ledger.services.group.create_group(create)).data
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        asyncio.run(ledger.services.group.create_group(create))
    modify_group(ledger, first.id, name="renamed")
    delete_group(ledger, first.id)
    purge_group(ledger, first.id)
    with stores_nothing(ledger), pytest.raises(InvalidAPIParameters) as rerun:
        asyncio.run(ledger.services.group.create_group(create))
    assert rerun.value.field == "group_id" and "ran before" in rerun.value.message
    assert ledger.queries.group_by_name("default", "twice") is None


# Modify


def test_seed_modify_example_updates_fields_and_adds_members(ledger: Ledger) -> None:
    ensure_domain(ledger.app.store, "example.com")  # the seed's domain and users exist
    created = asyncio.run(ledger.services.group.create_group(seed_create_action())).data
    user_1, user_2 = (str(ensure_user(ledger.app.store, u, "example.com")) for u in user_ids(2))
    action = ModifyGroupAction(
        group_id=SEED_GROUP_ID,
        modifier=GroupModifier(
            description=TriState.update("Updated development team description"),
            total_resource_slots=OptionalState.update(ResourceSlot.from_user_input({"cpu": "8", "mem": "16g"}, None)),
        ),
        user_update_mode=OptionalState.update(UserUpdateMode.ADD),
        user_uuids=OptionalState.update([user_1, user_2]),
    )
    result = asyncio.run(ledger.services.group.modify_group(action))
    stored = ledger.queries.group(SEED_GROUP_ID)
    assert stored == result.data
    assert stored is not None
    assert stored.description == "Updated development team description"
    assert stored.total_resource_slots == {"cpu": Decimal(8), "mem": Decimal(16 * GiB)}
    # Partial update: everything else is as created.
    for field in ("name", "domain_name", "type", "is_active", "allowed_vfolder_hosts", "resource_policy"):
        assert getattr(stored, field) == getattr(created, field), field
    assert stored.container_registry == {"registry": "docker.io"}
    assert stored.created_at == created.created_at
    assert stored.modified_at > created.modified_at
    assert ledger.queries.group_members(SEED_GROUP_ID) == {uuid.UUID(user_1), uuid.UUID(user_2)}
    history = ledger.queries.history(ENTITY, str(SEED_GROUP_ID))
    assert [e.event for e in history] == ["Created", "Modified", "MembersAdded"]
    assert history[1].changes == {
        "description": {"old": "Development team group", "new": "Updated development team description"},
        "total_resource_slots": {
            "old": {"cpu": "4", "mem": str(8 * GiB)},
            "new": {"cpu": "8", "mem": str(16 * GiB)},
        },
    }
    assert history[2].details == {"user_ids": [user_1, user_2]}


def test_modify_changes_only_the_given_fields_and_nullifies_the_nullable_ones(ledger: Ledger) -> None:
    created = create_group(
        ledger, "team", description="before", container_registry={"registry": "cr.io", "project": "p"}
    )
    changed = modify_group(
        ledger,
        created.id,
        description=None,
        container_registry=TriState.nullify(),
        integration_id="ext-1",
        type="MODEL_STORE",
        dotfiles="export A=1\n",
        allowed_vfolder_hosts={"nfs": ["mount-in-session"]},
    )
    assert ledger.queries.group(created.id) == changed
    assert changed.description is None
    assert changed.container_registry is None
    assert changed.integration_id == "ext-1"
    assert changed.type is ProjectType.MODEL_STORE
    assert changed.dotfiles == b"export A=1\n"
    assert set(changed.allowed_vfolder_hosts) == {"nfs"}
    assert (changed.name, changed.resource_policy, changed.is_active) == ("team", "default", True)
    last = ledger.queries.history(ENTITY, str(created.id))[-1]
    assert last.event == "Modified"
    assert set(last.changes) == {
        "description",
        "container_registry",
        "integration_id",
        "type",
        "dotfiles",
        "allowed_vfolder_hosts",
    }
    assert last.changes["type"] == {"old": "general", "new": "model-store"}
    assert last.changes["container_registry"] == {"old": {"registry": "cr.io", "project": "p"}, "new": None}
    # Setting the same values again changes nothing and stores nothing.
    with stores_nothing(ledger):
        again = modify_group(ledger, created.id, description=None, integration_id="ext-1", type="model-store")
    assert again == changed


def test_modify_of_an_unknown_group_is_refused(ledger: Ledger) -> None:
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        modify_group(ledger, uuid.uuid4(), description="x")
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        modify_group(ledger, uuid.uuid4(), mode="add", users=user_ids(1))


def test_membership_add_remove_replace_store_only_real_changes(ledger: Ledger) -> None:
    group = create_group(ledger)
    u1, u2, u3, u4 = user_ids(4)

    def members() -> set[uuid.UUID]:
        return ledger.queries.group_members(group.id)

    def last_event() -> tuple[str, dict[str, Any]]:
        entry = ledger.queries.history(ENTITY, str(group.id))[-1]
        return entry.event, entry.details

    modify_group(ledger, group.id, mode="add", users=[str(u1), u2])
    assert members() == {u1, u2}
    # Only the new member is recorded; UUIDs in any letter case are the same user.
    modify_group(ledger, group.id, mode=UserUpdateMode.ADD, users=[str(u2).upper(), u3])
    assert members() == {u1, u2, u3}
    assert last_event() == ("MembersAdded", {"user_ids": [str(u3)]})
    with stores_nothing(ledger):
        modify_group(ledger, group.id, mode="add", users=[u1, u1, u3])
    modify_group(ledger, group.id, mode=OptionalState.update("REMOVE"), users=OptionalState.update([u1, u4]))
    assert members() == {u2, u3}
    assert last_event() == ("MembersRemoved", {"user_ids": [str(u1)]})
    with stores_nothing(ledger):
        modify_group(ledger, group.id, mode="remove", users=[u4, u1])
    modify_group(ledger, group.id, mode="replace", users=[u3, u4])
    assert members() == {u3, u4}
    assert events(ledger, group.id)[-2:] == ["MembersRemoved", "MembersAdded"]
    with stores_nothing(ledger):
        modify_group(ledger, group.id, mode=UserUpdateMode.REPLACE, users=[u4, u3])
    modify_group(ledger, group.id, mode="replace", users=[])
    assert members() == set()
    assert last_event() == ("MembersRemoved", {"user_ids": [str(u3), str(u4)]})
    assert events(ledger, group.id) == [
        "Created",
        "MembersAdded",
        "MembersAdded",
        "MembersRemoved",
        "MembersRemoved",
        "MembersAdded",
        "MembersRemoved",
    ]


def test_membership_and_field_changes_land_together(ledger: Ledger) -> None:
    group = create_group(ledger)
    (user,) = user_ids(1)
    ensure_user(ledger.app.store, user, "default")  # members are existing users
    before = head(ledger)
    changed = modify_group(ledger, group.id, description="with members", mode="add", users=[user])
    assert head(ledger) == before + 3  # the group's Modified and MembersAdded, the user's GroupJoined
    assert changed.description == "with members"
    assert ledger.queries.group_members(group.id) == {user}
    assert events(ledger, group.id) == ["Created", "Modified", "MembersAdded"]
    assert [entry.event for entry in ledger.queries.history("user", str(user))][-1] == "GroupJoined"


def test_bad_membership_requests_are_refused_and_store_nothing(ledger: Ledger) -> None:
    group = create_group(ledger, description="kept")
    (user,) = user_ids(1)
    modify_group(ledger, group.id, mode="add", users=[user])
    # The seed's placeholder ids are not UUIDs: a validation error naming the field.
    with pytest.raises(InvalidAPIParameters) as info:
        ModifyGroupAction(
            group_id=group.id,
            user_update_mode=OptionalState.update(UserUpdateMode.ADD),
            user_uuids=OptionalState.update(["user-uuid-1", "user-uuid-2"]),
        )
    assert info.value.field == "user_uuids"
    with pytest.raises(InvalidAPIParameters) as info:
        ModifyGroupAction(group_id=group.id, user_update_mode="merge", user_uuids=[str(user)])
    assert info.value.field == "user_update_mode"
    # A mode without users, or users without a mode, even with a field change beside it.
    with stores_nothing(ledger), pytest.raises(InvalidAPIParameters) as info:
        modify_group(ledger, group.id, description="lost", mode="remove")
    assert info.value.field == "user_uuids"
    with stores_nothing(ledger), pytest.raises(InvalidAPIParameters) as info:
        modify_group(ledger, group.id, description="lost", users=[user])
    assert info.value.field == "user_update_mode"
    stored = ledger.queries.group(group.id)
    assert stored is not None and stored.description == "kept"
    assert ledger.queries.group_members(group.id) == {user}


# Delete (soft)


def test_delete_is_soft_and_clears_the_integration_id(ledger: Ledger) -> None:
    group = create_group(ledger, "soft", integration_id="ext-42")
    (user,) = user_ids(1)
    modify_group(ledger, group.id, mode="add", users=[user])
    before = delete_group(ledger, group.id)
    assert before == group  # the data as it was just before
    stored = ledger.queries.group(group.id)
    assert stored is not None
    assert stored.is_active is False
    assert stored.integration_id is None
    assert (stored.name, stored.created_at) == ("soft", group.created_at)
    assert stored.modified_at > group.modified_at
    assert ledger.queries.groups() == [stored]
    assert ledger.queries.group_members(group.id) == {user}
    last = ledger.queries.history(ENTITY, str(group.id))[-1]
    assert last.event == "Deleted"
    assert last.changes == {
        "is_active": {"old": True, "new": False},
        "integration_id": {"old": "ext-42", "new": None},
    }
    # Deleting again changes nothing.
    with stores_nothing(ledger):
        assert delete_group(ledger, group.id) == stored
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        delete_group(ledger, uuid.uuid4())


def test_a_soft_deleted_group_can_be_reactivated(ledger: Ledger) -> None:
    group = create_group(ledger, "comeback")
    delete_group(ledger, group.id)
    reactivated = modify_group(ledger, group.id, is_active=True)
    assert reactivated.is_active is True
    start_kernel(ledger, group.id)  # takes workload again
    assert events(ledger, group.id) == ["Created", "Deleted", "Modified", "KernelStarted"]


# Purge (hard)


def test_purge_checks_run_in_the_reference_order(ledger: Ledger) -> None:
    group = create_group(ledger, "busy", description="to purge")
    (user,) = user_ids(1)
    modify_group(ledger, group.id, mode="add", users=[user])
    vfolder = create_vfolder(ledger, group.id)
    mounting = start_kernel(ledger, group.id, mounts=[vfolder])
    plain = start_kernel(ledger, group.id)
    endpoint = create_endpoint(ledger, group.id)
    expected = ledger.queries.group(group.id)

    # Kernels and endpoints are active too, but the mounted vfolder is checked first.
    with stores_nothing(ledger), pytest.raises(PurgeGroupActionVFoldersMountedToActiveKernelsError) as info:
        purge_group(ledger, group.id)
    assert str(vfolder) in str(info.value)
    terminate_kernel(ledger, mounting)
    with stores_nothing(ledger), pytest.raises(PurgeGroupActionActiveKernelsError) as info:
        purge_group(ledger, group.id)
    assert str(plain) in str(info.value)
    terminate_kernel(ledger, plain)
    with stores_nothing(ledger), pytest.raises(PurgeGroupActionActiveEndpointsError) as info:
        purge_group(ledger, group.id)
    assert str(endpoint) in str(info.value)
    assert ledger.queries.group(group.id) == expected
    assert ledger.queries.group_members(group.id) == {user}

    destroy_endpoint(ledger, endpoint)
    before = purge_group(ledger, group.id)
    assert before == expected
    assert ledger.queries.group(group.id) is None
    assert ledger.queries.groups() == []
    assert ledger.queries.group_members(group.id) == set()
    assert events(ledger, group.id)[-1] == "Purged"
    assert events(ledger, group.id)[0] == "Created"  # history is kept
    # A purged group is gone for every command.
    for command in (purge_group, delete_group):
        with stores_nothing(ledger), pytest.raises(GroupNotFound):
            command(ledger, group.id)
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        modify_group(ledger, group.id, description="ghost")
    # Its name is free again.
    again = create_group(ledger, "busy")
    assert again.id != group.id
    assert ledger.queries.groups() == [again]


def test_purge_errors_are_http_conflicts_with_codes() -> None:
    assert [(e.status, e("x").code) for e in PURGE_ERRORS] == [
        (409, "group_purge_vfolders_mounted"),
        (409, "group_purge_active_kernels"),
        (409, "group_purge_active_endpoints"),
    ]


def test_only_a_mount_of_the_groups_own_vfolder_is_the_vfolder_error(ledger: Ledger) -> None:
    group = create_group(ledger, "target")
    other = create_group(ledger, "other")
    foreign = create_vfolder(ledger, other.id)
    own = create_vfolder(ledger, group.id)  # exists, but no kernel mounts it
    kernel = start_kernel(ledger, group.id, mounts=[foreign])
    with stores_nothing(ledger), pytest.raises(PurgeGroupActionActiveKernelsError):
        purge_group(ledger, group.id)
    # A cancelled kernel no longer occupies anything: the group purges, vfolder and all.
    terminate_kernel(ledger, kernel, status="CANCELLED")
    purge_group(ledger, group.id)
    assert ledger.queries.group(group.id) is None
    assert own is not None
    assert ledger.queries.group(other.id) is not None


def test_a_soft_deleted_group_can_be_purged(ledger: Ledger) -> None:
    group = create_group(ledger, "both")
    delete_group(ledger, group.id)
    before = purge_group(ledger, group.id)
    assert before.is_active is False
    assert ledger.queries.group(group.id) is None
    assert events(ledger, group.id) == ["Created", "Deleted", "Purged"]


def test_purge_of_an_unknown_group_is_refused(ledger: Ledger) -> None:
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        purge_group(ledger, uuid.uuid4())


# Names


def test_names_are_unique_per_domain_not_globally(ledger: Ledger) -> None:
    first = create_group(ledger, "team", "d1")
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName, match="team"):
        create_group(ledger, "team", "d1", description="second try")
    second = create_group(ledger, "team", "d2")
    assert ledger.queries.groups("d1") == [first]
    assert ledger.queries.groups("d2") == [second]
    assert [(g.domain_name, g.name) for g in ledger.queries.groups()] == [("d1", "team"), ("d2", "team")]
    assert DuplicateGroupName.status == 409


def test_rename_moves_the_name_index(ledger: Ledger) -> None:
    alpha = create_group(ledger, "alpha")
    beta = create_group(ledger, "beta")
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        modify_group(ledger, beta.id, name="alpha", description="not applied")
    stored_beta = ledger.queries.group(beta.id)
    assert stored_beta is not None and (stored_beta.name, stored_beta.description) == ("beta", None)

    modify_group(ledger, alpha.id, name="gamma")
    new_alpha = create_group(ledger, "alpha")  # the old name is free
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        create_group(ledger, "gamma")  # the new name is taken
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        modify_group(ledger, alpha.id, name="alpha")

    # Moving to another domain frees the name in the old one and takes it in the new one.
    ensure_domain(ledger.app.store, "elsewhere")  # a group moves to an existing domain
    modify_group(ledger, alpha.id, domain_name="elsewhere")
    create_group(ledger, "gamma")
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        create_group(ledger, "gamma", "elsewhere")
    assert sorted((g.domain_name, g.name) for g in ledger.queries.groups()) == [
        ("default", "alpha"),
        ("default", "beta"),
        ("default", "gamma"),
        ("elsewhere", "gamma"),
    ]
    assert new_alpha.id != alpha.id
    # Renaming to one's own name is no change at all.
    with stores_nothing(ledger):
        modify_group(ledger, beta.id, name="beta")


def test_soft_delete_keeps_the_name_and_purge_frees_it(ledger: Ledger) -> None:
    group = create_group(ledger, "kept")
    delete_group(ledger, group.id)
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        create_group(ledger, "kept")
    other = create_group(ledger, "other")
    with stores_nothing(ledger), pytest.raises(DuplicateGroupName):
        modify_group(ledger, other.id, name="kept")
    purge_group(ledger, group.id)
    modify_group(ledger, other.id, name="kept")  # by rename
    reborn = create_group(ledger, "other")  # and the renamed group's old name
    assert sorted(g.name for g in ledger.queries.groups()) == ["kept", "other"]
    assert reborn.id not in (group.id, other.id)


# History


def test_history_records_each_step_with_old_and_new_values(ledger: Ledger) -> None:
    group = create_group(ledger, "audited", description="v1", integration_id="ext-7")
    u1, u2 = user_ids(2)
    modify_group(ledger, group.id, name="audited-2", description="v2")
    modify_group(ledger, group.id, mode="add", users=[u1, u2])
    modify_group(ledger, group.id, mode="remove", users=[u2])
    delete_group(ledger, group.id)
    before_purge = ledger.queries.history(ENTITY, str(group.id))
    purge_group(ledger, group.id)
    history = ledger.queries.history(ENTITY, str(group.id))
    assert [(e.event, e.version) for e in history] == [
        ("Created", 1),
        ("Modified", 2),
        ("MembersAdded", 3),
        ("MembersRemoved", 4),
        ("Deleted", 5),
        ("Purged", 6),
    ]
    assert all(e.entity_id == str(group.id) and e.entity_type == ENTITY for e in history)
    created, modified, added, removed, deleted = before_purge
    assert created.changes["description"] == {"old": None, "new": "v1"}
    assert created.changes["integration_id"] == {"old": None, "new": "ext-7"}
    assert modified.changes == {
        "name": {"old": "audited", "new": "audited-2"},
        "description": {"old": "v1", "new": "v2"},
    }
    assert added.details == {"user_ids": [str(u1), str(u2)]}
    assert removed.details == {"user_ids": [str(u2)]}
    assert deleted.changes == {
        "is_active": {"old": True, "new": False},
        "integration_id": {"old": "ext-7", "new": None},
    }
    # The purge erased the group's personal values (issue 14); the rest of its history stays.
    created, modified, added, removed, deleted, _purged = history
    assert created.changes["description"] == {"old": None, "new": ERASED}
    assert modified.changes == {
        "name": {"old": "audited", "new": "audited-2"},
        "description": {"old": ERASED, "new": ERASED},
    }
    assert added.details == {"user_ids": [ERASED, ERASED]}
    assert deleted.changes["integration_id"] == {"old": ERASED, "new": None}
    times = [e.occurred_at for e in history]
    assert times == sorted(times)
