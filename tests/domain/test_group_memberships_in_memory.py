"""Group memberships on the in-memory store: each one is recorded on the group's stream
(MembersAdded / MembersRemoved) and on the user's (GroupJoined / GroupLeft) in the same
save, so the two lists always agree; a user's delete leaves every group it is in; a
purge releases its members; a member add that decided on a user deleted meanwhile
conflicts on the user's stream and is refused on retry."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from domain.errors import ObjectNotFound
from domain.group import CreateGroupAction, DeleteGroupAction, Group, GroupService, ModifyGroupAction, PurgeGroupAction
from domain.user import DeleteUserAction, User, UserService
from tests.domain.fakes import InMemoryStore, NoUsage, ensure_domain, ensure_user

U1, U2, U3 = (uuid.UUID(int=0xB0 + i) for i in range(1, 4))


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    ensure_domain(store, "d")
    for user_id in (U1, U2, U3):
        ensure_user(store, user_id, "d")
    return store


def create_group(store: InMemoryStore, name: str = "g") -> uuid.UUID:
    action = CreateGroupAction(input={"name": name, "domain_name": "d"})
    group_id: uuid.UUID = asyncio.run(GroupService(store, NoUsage()).create_group(action)).data.id
    return group_id


def members(store: InMemoryStore, group_id: uuid.UUID, mode: str, users: list[uuid.UUID]) -> None:
    action = ModifyGroupAction(group_id=group_id, user_update_mode=mode, user_uuids=users)
    asyncio.run(GroupService(store, NoUsage()).modify_group(action))


def delete_user(store: InMemoryStore, user_id: uuid.UUID) -> None:
    asyncio.run(UserService(store).delete_user(DeleteUserAction(user_id=user_id)))


def group_of(store: InMemoryStore, group_id: uuid.UUID) -> Group:
    group = store.get(group_id, Group)
    assert group is not None
    return group


def user_of(store: InMemoryStore, user_id: uuid.UUID) -> User:
    user = store.get(User.id_for(str(user_id)), User)
    assert user is not None
    return user


def assert_lists_agree(store: InMemoryStore, groups: list[uuid.UUID], users: list[uuid.UUID]) -> None:
    """Each group's member list is exactly the users whose group list names it."""
    for group_id in groups:
        group = group_of(store, group_id)
        if group.is_deleted:
            expected: set[str] = set()
        else:
            expected = set(group.members)
        assert {str(u) for u in users if str(group_id) in user_of(store, u).groups} == expected


def test_adding_members_records_each_membership_on_the_user_in_the_same_save(
    store: InMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = create_group(store)
    saves: list[list[uuid.UUID]] = []
    real_save = store.save

    def recording_save(*aggregates: Any) -> None:
        saves.append([a.id for a in aggregates if a is not None and a.pending_events])
        real_save(*aggregates)

    monkeypatch.setattr(store, "save", recording_save)
    members(store, group, "add", [U1, U2])
    assert len(saves) == 1
    assert set(saves[0]) == {group, User.id_for(str(U1)), User.id_for(str(U2))}
    assert store.events(User.id_for(str(U1)))[-1] == "GroupJoined"
    assert user_of(store, U1).groups == {str(group): True}
    members(store, group, "add", [U1])  # already a member: nothing is written
    assert len(saves) == 1
    assert_lists_agree(store, [group], [U1, U2, U3])


def test_remove_and_replace_record_the_users_leaving(store: InMemoryStore) -> None:
    group = create_group(store)
    members(store, group, "add", [U1, U2])
    members(store, group, "remove", [U1, U3])  # U3 was no member: nothing for it
    assert store.events(User.id_for(str(U1)))[-2:] == ["GroupJoined", "GroupLeft"]
    assert "GroupLeft" not in store.events(User.id_for(str(U3)))
    members(store, group, "replace", [U3])
    assert user_of(store, U2).groups == {} and user_of(store, U3).groups == {str(group): True}
    assert list(group_of(store, group).members) == [str(U3)]
    assert_lists_agree(store, [group], [U1, U2, U3])


def test_a_deleted_user_leaves_every_group_it_is_in_soft_deleted_ones_too(store: InMemoryStore) -> None:
    first, second, other = create_group(store, "g1"), create_group(store, "g2"), create_group(store, "g3")
    members(store, first, "add", [U1, U2])
    members(store, second, "add", [U1])
    members(store, other, "add", [U2])
    asyncio.run(GroupService(store, NoUsage()).delete_group(DeleteGroupAction(group_id=second)))  # soft: inactive
    delete_user(store, U1)
    assert store.events(User.id_for(str(U1)))[-3:] == ["GroupLeft", "GroupLeft", "Deleted"]
    assert store.events(first)[-1] == "MembersRemoved" and store.events(second)[-1] == "MembersRemoved"
    assert "MembersRemoved" not in store.events(other)
    assert list(group_of(store, first).members) == [str(U2)] and group_of(store, second).members == []
    # Created again, the user is in no group.
    ensure_user(store, U1, "d")
    assert user_of(store, U1).groups == {}
    assert_lists_agree(store, [first, second, other], [U1, U2, U3])


def test_a_purge_releases_its_members(store: InMemoryStore) -> None:
    group, kept = create_group(store, "g1"), create_group(store, "g2")
    members(store, group, "add", [U1, U2])
    members(store, kept, "add", [U1])
    asyncio.run(GroupService(store, NoUsage()).purge_group(PurgeGroupAction(group_id=group)))
    assert user_of(store, U1).groups == {str(kept): True} and user_of(store, U2).groups == {}
    assert store.events(User.id_for(str(U2)))[-1] == "GroupLeft"
    events_of_purged = store.events(group)
    delete_user(store, U1)  # the purged group's stream is left alone
    assert store.events(group) == events_of_purged
    assert_lists_agree(store, [group, kept], [U1, U2, U3])


def test_a_member_add_that_decided_before_the_users_delete_is_refused_on_retry(
    store: InMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add has checked U1 is live; the delete saves first; the add's save conflicts on
    U1's stream (the group's stream alone would not), and its retry finds U1 gone."""
    group = create_group(store)
    real_save = store.save
    interleaved: list[bool] = []

    def delete_first(*aggregates: Any) -> None:
        if not interleaved:
            interleaved.append(True)
            # The service's event loop is running in this thread: the delete runs in its own.
            deleting = threading.Thread(target=delete_user, args=(store, U1))
            deleting.start()
            deleting.join()
        real_save(*aggregates)

    monkeypatch.setattr(store, "save", delete_first)
    with pytest.raises(ObjectNotFound, match=f"user_uuids: user {U1} not found") as refused:
        members(store, group, "add", [U1])
    assert (refused.value.field, refused.value.entity_id) == ("user_uuids", str(U1))
    assert interleaved == [True]
    assert user_of(store, U1).is_deleted and group_of(store, group).members == []
    assert "MembersAdded" not in store.events(group)
