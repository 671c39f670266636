"""A member add and the member's delete on SQLite and PostgreSQL: never a deleted user in
a group. Both commands decide on the same state (the user is live), then the store orders
their saves: they conflict on the user's stream, and the retry of the one saved second
sees the other's outcome (a delete retried leaves the group it was just added to; an add
retried finds the user gone). The free-running race checks the invariant alone."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from adapters.bootstrap import Ledger
from domain.errors import ObjectNotFound
from domain.group import Group, ModifyGroupAction
from domain.user import DeleteUserAction, User
from tests.adapters.groups import create_group, events
from tests.domain.fakes import ensure_user
from tests.races import Command, all_at_once, decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit


def add_members(ledger: Ledger, group_id: uuid.UUID, users: list[uuid.UUID]) -> Command:
    action = ModifyGroupAction(group_id=group_id, user_update_mode="add", user_uuids=users)
    return lambda: asyncio.run(ledger.services.group.modify_group(action))


def delete_user(ledger: Ledger, user_id: uuid.UUID) -> Command:
    return lambda: asyncio.run(ledger.services.user.delete_user(DeleteUserAction(user_id=user_id)))


def stored_user(ledger: Ledger, user_id: uuid.UUID) -> User:
    user = ledger.app.get(User.id_for(str(user_id)), User)
    assert user is not None
    return user


def assert_no_deleted_member(ledger: Ledger, group_id: uuid.UUID, users: list[uuid.UUID]) -> None:
    """The group's members (stored and read model) are live users that list the group,
    and every user listing the group is one of its members."""
    group = ledger.app.get(group_id, Group)
    assert group is not None
    for user_id in users:
        user = stored_user(ledger, user_id)
        in_group = str(user_id) in group.members
        assert in_group == (str(group_id) in user.groups), f"{user_id}: the two lists disagree"
        assert not (in_group and user.is_deleted), f"deleted user {user_id} is a member"
    assert ledger.queries.group_members(group_id) == {uuid.UUID(u) for u in group.members}


@pytest.mark.parametrize("first", ["add", "delete"])
def test_a_member_add_and_the_users_delete_never_leave_a_deleted_member(ledger: Ledger, first: str) -> None:
    group = create_group(ledger, "contested")
    user_id = ensure_user(ledger.app.store, uuid.uuid4(), "default")
    order = [0, 1] if first == "add" else [1, 0]
    commands = [add_members(ledger, group.id, [user_id]), delete_user(ledger, user_id)]
    added, deleted = decide_together(ledger, commands, order)

    assert deleted is None  # a member can always be deleted: it leaves its groups
    assert stored_user(ledger, user_id).is_deleted
    assert stored_user(ledger, user_id).groups == {}
    if first == "add":
        assert added is None
        assert events(ledger, group.id) == ["Created", "MembersAdded", "MembersRemoved"]
        user_events = [type(e).__name__ for e in ledger.app.events.get(User.id_for(str(user_id)))]
        assert user_events[-3:] == ["GroupJoined", "GroupLeft", "Deleted"]
    else:
        assert isinstance(added, ObjectNotFound), added
        assert "user_uuids" in str(added)
        assert events(ledger, group.id) == ["Created"]
    assert_no_deleted_member(ledger, group.id, [user_id])


def test_free_running_adds_and_deletes_keep_the_invariant(ledger: Ledger) -> None:
    """Adds of several users to two groups and those users' deletes, released together with
    no lock-step: whatever the store picks, no group ends up with a deleted member."""
    groups = [create_group(ledger, "free-a").id, create_group(ledger, "free-b").id]
    for round_ in range(5):
        users = [ensure_user(ledger.app.store, uuid.uuid4(), "default") for _ in range(3)]
        commands = [add_members(ledger, g, users) for g in groups] + [delete_user(ledger, u) for u in users]
        outcomes = all_at_once(commands)
        assert all(o is None for o in outcomes[len(groups) :]), f"round {round_}: {outcomes}"
        assert all(o is None or isinstance(o, ObjectNotFound) for o in outcomes[: len(groups)]), outcomes
        for group_id in groups:
            assert_no_deleted_member(ledger, group_id, users)
