"""The user service: a user, its domain's member list, its groups' member lists and its
default policy's check are decided and saved together.

An admin (the acting role, from the action context) may give a user only a default
policy its domain allows (`allowed_keypair_resource_policies`); a superadmin, the
platform or a direct service call may give any live policy.

An erasure (issue 14) first asks the store how many of the user's own events hold
personal values stored in clear (written before sealing existed): those would outlive
the erasure, so it is refused unless the operator accepts them. An id that names no user
but whose key exists (a refused create sealed its input under it) is erased all the same,
by a `SubjectErasure` (domain/erasure.py).
"""

from __future__ import annotations

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.domains.aggregate import Domain
from domain.domains.service import DEFAULT_POLICY, check_admin_may_assign, relink_default_policy, require_domain
from domain.entity import Entity
from domain.erasure import erase_subject, requester
from domain.errors import UserClearHistory
from domain.group.aggregate import Group
from domain.ports import AggregateStore, ClearHistory, SubjectKeyCheck, UnitOfWork, load_live
from domain.shown import plural
from domain.user.actions import (
    CreateUserAction,
    CreateUserActionResult,
    DeleteUserAction,
    DeleteUserActionResult,
    EraseUserAction,
    EraseUserActionResult,
    ModifyUserAction,
    ModifyUserActionResult,
)
from domain.user.aggregate import User
from domain.user.lookup import require_user_of as require_user_of  # where the keypair service finds it
from domain.user.types import UserData
from domain.values import UserUpdateMode

USER = EntityType.USER


def user_data(user: User) -> UserData:
    assert user.created_at is not None and user.changed_at is not None
    return UserData.from_fields(user.user_id, user.created_at, user.changed_at, user.fields)


class UserService:
    def __init__(self, store: AggregateStore, history: ClearHistory | None = None) -> None:
        self._store = store
        # A store that cannot hold clear values (the in-memory one) needs no check.
        self._history = history if history is not None or not isinstance(store, ClearHistory) else store
        # A store without subject keys (the in-memory one) has nothing sealed to erase.
        self._keys = store if isinstance(store, SubjectKeyCheck) else None

    @takes_action
    async def create_user(self, action: CreateUserAction) -> CreateUserActionResult:
        key, fields = str(action.creator.user_id), action.creator.fields_json()

        def create() -> User:
            work = UnitOfWork(self._store)
            user = work.create(User, key, fields)  # refuses a live user
            domain = require_domain(work, fields["domain_name"], "domain_name")
            domain.add_user(key)  # refuses an inactive domain
            check_admin_may_assign(domain, fields[DEFAULT_POLICY], DEFAULT_POLICY)
            relink_default_policy(work, f"user:{key}", None, fields[DEFAULT_POLICY])
            work.commit()
            return user

        return CreateUserActionResult(user_data(self._store.run(create, USER, "create")))

    @takes_action
    async def modify_user(self, action: ModifyUserAction) -> ModifyUserActionResult:
        key, wanted = str(action.user_id), action.modifier.fields_json()

        def modify() -> tuple[User, bool]:
            work = UnitOfWork(self._store)
            user = load_live(work, User, key)
            old_default = user.default_policy
            changes = user.modify(wanted)
            if not changes:
                return user, False
            if DEFAULT_POLICY in changes:
                check_admin_may_assign(load_live(work, Domain, user.domain_name), user.default_policy, DEFAULT_POLICY)
                relink_default_policy(work, f"user:{key}", old_default, user.default_policy)
            work.commit()
            return user, True

        user, changed = self._store.run(modify, USER, "modify")
        return ModifyUserActionResult(user_data(user), changed=changed)

    @takes_action
    async def delete_user(self, action: DeleteUserAction) -> DeleteUserActionResult:
        key = str(action.user_id)

        def delete() -> UserData:
            work = UnitOfWork(self._store)
            user = load_live(work, User, key)
            before = user_data(user)
            leave_groups(work, user)
            user.delete()  # refuses a user who still owns keypairs
            domain = work.get(Domain.id_for(user.domain_name), Domain)
            if domain is not None:
                domain.remove_user(key)
            relink_default_policy(work, f"user:{key}", user.default_policy, None)
            work.commit()
            return before

        return DeleteUserActionResult(self._store.run(delete, USER, "delete"))

    @takes_action
    async def erase_user(self, action: EraseUserAction) -> EraseUserActionResult:
        key, subject = str(action.user_id), f"user:{action.user_id}"

        def erase() -> tuple[User | None, int]:
            work = UnitOfWork(self._store)
            # A deleted user too: its history still holds its values.
            found = work.get(User.id_for(key), Entity)
            user = found if isinstance(found, User) else None
            # No user, but a refused command's input (a create's email) is sealed under the
            # id's key: that key is erased on a stream of its own (domain/erasure.py).
            if user is None and (found is not None or self._keys is None or not self._keys.has_key(subject)):
                raise User.missing(key)
            history = self._history
            aggregate_id = User.id_for(key) if user is None else user.id
            events, values = (0, 0) if history is None else history.clear_history(aggregate_id, key, subject)
            if values and not action.accept_clear_history:
                raise UserClearHistory(
                    f"user {key}: {plural(events, 'stored event')} (its own, audit records, snapshots) "
                    f"{'hold' if events > 1 else 'holds'} "
                    f"{plural(values, 'personal value')} stored in clear before sealing existed, which an "
                    "erasure cannot remove; accept that with accept_clear_history"
                )
            requested_by = requester()
            if user is None:
                erase_subject(work, subject, action.reason, requested_by, action.accept_clear_history, values)
            else:
                user.erase(action.reason, requested_by, action.accept_clear_history, values)
            work.commit()
            return user, values

        user, values = self._store.run(erase, USER, "erase")
        return EraseUserActionResult(key, None if user is None else user_data(user), clear_values=values)


def leave_groups(work: UnitOfWork, user: User) -> None:
    """The user leaves every group it is in, each group's MembersRemoved and the user's
    GroupLeft in the same append (a member added concurrently conflicts on the user's
    stream and is refused on retry)."""
    for group_id in sorted(user.groups):
        group = work.get(Group.id_for(group_id), Group)
        if group is not None and not group.is_deleted:
            group.update_members(UserUpdateMode.REMOVE, [user.key])
        user.leave_group(group_id)
