"""The group service: load, let the aggregates decide, save group, name index and domain
together.

A group names a live domain and is recorded on it (`Domain.GroupAdded`) in the same
append, so a domain cannot be deleted while it holds a group. A soft-deleted group stays
recorded (it still holds its name and can be modified back to active), its pending
sessions cancelled in the delete's append (domain/session/purge.py); a purge removes
it, so a domain is never blocked forever: purge its deleted groups first. Members are
live users of the group's domain (as Backend.AI's association), each membership recorded
on the user's stream too (`User.GroupJoined` / `GroupLeft`) in the same append, so adding
a member and deleting that user conflict in the store; a purge releases its members.
An admin (the acting role) cannot set a group's `total_resource_slots` above its
domain's, slot by slot (a slot the domain does not list is unlimited). A purge of an id
that names no group, but whose key exists (a refused create sealed its input under it),
erases that key by a `SubjectErasure` (domain/erasure.py): a superadmin's only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal

from domain.actions import Role, current_context, takes_action
from domain.catalog import EntityType
from domain.domains.aggregate import Domain
from domain.domains.service import require_domain
from domain.entity import Entity
from domain.erasure import erase_subject, requester
from domain.errors import GroupClearHistory, GroupSlotsAboveDomain, InvalidAPIParameters, LedgerError
from domain.group.actions import (
    CreateGroupAction,
    CreateGroupActionResult,
    DeleteGroupAction,
    DeleteGroupActionResult,
    ModifyGroupAction,
    ModifyGroupActionResult,
    PurgeGroupAction,
    PurgeGroupActionResult,
)
from domain.group.aggregate import Group, GroupNameIndex, name_index_id
from domain.group.types import GroupData
from domain.ports import AggregateStore, ClearHistory, SubjectKeyCheck, UnitOfWork, load_live
from domain.shown import plural
from domain.usage import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
    UsageReader,
    UsageReports,
)
from domain.user.aggregate import User
from domain.user.lookup import require_user_of
from domain.values import UserUpdateMode

GROUP = EntityType.GROUP


def group_data(group: Group) -> GroupData:
    assert group.created_at is not None and group.changed_at is not None
    return GroupData.from_fields(group.id, group.created_at, group.changed_at, group.fields)


def erase_without_group(
    work: UnitOfWork, group_id: uuid.UUID, accept_clear_history: bool, history: ClearHistory | None
) -> None:
    """Erases `group:<id>` on its own stream (domain/erasure.py): no group was created, but
    the input of a refused create is sealed under the id's key. Values stored in clear by
    an older release are counted and refused as for a purge."""
    subject = f"group:{group_id}"
    events, values = (0, 0) if history is None else history.clear_history(group_id, str(group_id), subject)
    if values and not accept_clear_history:
        raise GroupClearHistory(
            f"group {group_id}: {plural(events, 'stored event')} (audit records) "
            f"{'hold' if events > 1 else 'holds'} "
            f"{plural(values, 'personal value')} stored in clear before sealing existed, which a purge "
            "cannot erase; accept that with accept_clear_history"
        )
    reason = "group purge of an id that names no group"  # a purge takes no reason: said in clear, no personal value
    erase_subject(work, subject, reason, requester(), accept_clear_history, values)


def load_group(work: UnitOfWork, group_id: uuid.UUID) -> Group:
    """A group that exists (active or soft-deleted); purged and unknown ones are not found."""
    return load_live(work, Group, str(group_id))


def name_index(work: UnitOfWork, domain_name: str, name: str) -> GroupNameIndex:
    index = work.get(name_index_id(domain_name, name), GroupNameIndex)
    return index if index is not None else work.add(GroupNameIndex.open(domain_name, name))


def _id_in_use(work: UnitOfWork, action: CreateGroupAction, fields: Mapping[str, object]) -> LedgerError:
    """A create whose id names a stream already. The caller chose it: said so. The ledger
    drew it when the action was built, so this same action object ran before and is run
    again: refused as a new action for its name would be (the name is taken), or, once its
    group was renamed or purged, as a rerun. Left to the append, the id clashed on every
    attempt: `ConcurrentModification` after 50 retries (~6 s), an error that asks for a retry."""
    if action.chosen_id:
        return InvalidAPIParameters(f"{action.group_id} is already used", field="group_id")
    index = work.get(name_index_id(str(fields["domain_name"]), str(fields["name"])), GroupNameIndex)
    if index is not None and index.holder is not None:
        return index.taken()
    return InvalidAPIParameters(
        f"{action.group_id} is already used: this action ran before; build a new one to create another group",
        field="group_id",
    )


SLOTS = "total_resource_slots"


def check_admin_slots(domain: Domain, slots: Mapping[str, str], field: str = SLOTS) -> None:
    """An admin never grants a group more of a slot than the superadmin granted its domain."""
    context = current_context()
    if context is None or context.role != Role.ADMIN.value:
        return
    ceiling: Mapping[str, str] = domain.fields.get(SLOTS) or {}
    for slot, quantity in sorted(slots.items()):
        if slot in ceiling and Decimal(quantity) > Decimal(ceiling[slot]):
            raise GroupSlotsAboveDomain(
                f"{quantity} is above domain {domain.name!r}'s {ceiling[slot]}"
                " (only a superadmin may raise the domain's)",
                field=f"{field}.{slot}",
            )


def require_members(work: UnitOfWork, domain_name: str, user_ids: Iterable[str], field: str) -> None:
    """Each member is a live user of the group's domain."""
    for user_id in user_ids:
        require_user_of(work, user_id, domain_name, field)


def record_memberships(work: UnitOfWork, group_id: str, removed: Iterable[str], added: Iterable[str]) -> None:
    """Each membership the group's events changed is recorded on the user's stream too, in
    the same append: a member added while the user is deleted conflicts in the store."""
    for user_id in added:
        load_live(work, User, user_id).join_group(group_id)  # loaded (and checked) already
    for user_id in removed:
        user = work.get(User.id_for(user_id), User)
        if user is not None:
            user.leave_group(group_id)


class GroupService:
    def __init__(
        self, store: AggregateStore, usage: UsageReader, timezone: str = "UTC", history: ClearHistory | None = None
    ) -> None:
        self._store = store
        # A store that cannot hold clear values (the in-memory one) needs no check.
        self._history = history if history is not None or not isinstance(store, ClearHistory) else store
        # A store without subject keys (the in-memory one) has nothing sealed to erase.
        self._keys = store if isinstance(store, SubjectKeyCheck) else None
        self._reports = UsageReports(usage, timezone)

    @takes_action
    async def create_group(self, action: CreateGroupAction) -> CreateGroupActionResult:
        group_id = action.group_id
        fields = action.input.fields_json()

        def create() -> Group:
            work = UnitOfWork(self._store)
            if work.get(group_id, Entity) is not None:
                raise _id_in_use(work, action, fields)
            domain = require_domain(work, fields["domain_name"], "domain_name")
            check_admin_slots(domain, fields[SLOTS])
            name_index(work, fields["domain_name"], fields["name"]).claim(str(group_id))
            group = work.add(Group.create(str(group_id), fields))
            domain.add_group(str(group_id))
            work.commit()
            return group

        return CreateGroupActionResult(group_data(self._store.run(create, GROUP, "create")))

    @takes_action
    async def modify_group(self, action: ModifyGroupAction) -> ModifyGroupActionResult:
        modifier = action.modifier
        mode, users = action.user_update_mode, action.user_uuids
        if mode.is_nop() != users.is_nop():
            missing = "user_uuids" if users.is_nop() else "user_update_mode"
            raise InvalidAPIParameters("membership changes need both user_update_mode and user_uuids", field=missing)

        def modify() -> tuple[Group, bool]:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            old_domain, old_name = group.name_key
            # The patch merges into the map just loaded: a conflict retries on the newer one.
            changes = group.modify(modifier.wanted_fields(group.fields))
            domain_name = group.fields["domain_name"]
            if domain_name != old_domain:
                _move(work, group, old_domain, domain_name)
            if group.name_key != (old_domain, old_name):
                name_index(work, *group.name_key).claim(str(group.id))
                name_index(work, old_domain, old_name).release(str(group.id))
            if SLOTS in changes:
                check_admin_slots(require_domain(work, domain_name, "domain_name"), group.fields[SLOTS])
            if not mode.is_nop():
                wanted = [str(u) for u in users.value()]
                if mode.value() is not UserUpdateMode.REMOVE:
                    members = set(group.members)
                    require_members(work, domain_name, [u for u in wanted if u not in members], "user_uuids")
                removed, added = group.update_members(mode.value(), wanted)
                record_memberships(work, str(group.id), removed, added)
            # Every event of a modify is the group's own (the name index moves only with it).
            changed = bool(group.pending_events)
            work.commit()
            return group, changed

        group, changed = self._store.run(modify, GROUP, "modify")
        return ModifyGroupActionResult(group_data(group), changed=changed)

    @takes_action
    async def delete_group(self, action: DeleteGroupAction) -> DeleteGroupActionResult:
        # Imported here: the cycle purge_group names.
        from domain.session.purge import close_deleted_group_sessions

        def delete() -> DeleteGroupActionResult:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            before = group_data(group)
            group.delete()
            # Its pending sessions could never be admitted: cancelled with it, in its append.
            cancelled = close_deleted_group_sessions(work, str(group.id), deleted=bool(group.pending_events))
            work.commit()
            return DeleteGroupActionResult(before, tuple(cancelled))

        return self._store.run(delete, GROUP, "delete")

    @takes_action
    async def purge_group(self, action: PurgeGroupAction) -> PurgeGroupActionResult:
        # Imported here: the session package imports keypairs, which import users, which
        # import groups (a cycle at import time).
        from domain.session.purge import admitted_mounts, close_group_sessions
        from domain.workload.storage import release_group_vfolders

        def purge() -> PurgeGroupActionResult:
            work = UnitOfWork(self._store)
            if self._erases_without_group(work, action.group_id):
                erase_without_group(work, action.group_id, action.accept_clear_history, self._history)
                work.commit()
                return PurgeGroupActionResult(action.group_id, None)
            group = load_group(work, action.group_id)
            before = group_data(group)
            # A refusal first (the clear-history count reads the whole ledger); admitted
            # sessions are weighed as the scheduled kernels they stand for.
            group.check_purgeable(admitted_mounts(work, group))
            cancelled = close_group_sessions(work, str(group.id))  # pending ones are cancelled
            release_group_vfolders(work, group)  # its vfolders go with it: their owners' counts drop
            events, values = (
                (0, 0)
                if self._history is None
                else self._history.clear_history(group.id, str(group.id), f"group:{group.id}")
            )
            group.purge(accept_clear_history=action.accept_clear_history, clear_values=values)
            if values and not action.accept_clear_history:  # after the purge's own checks, which come first
                raise GroupClearHistory(
                    f"group {group.id}: {plural(events, 'stored event')} (its own, its kernels', audit records, "
                    f"snapshots) {'hold' if events > 1 else 'holds'} "
                    f"{plural(values, 'personal value')} stored in clear before sealing existed, which a purge "
                    "cannot erase; accept that with accept_clear_history"
                )
            record_memberships(work, str(group.id), sorted(group.members), ())  # released with it
            name_index(work, *group.name_key).release(str(group.id))
            domain = work.get(Domain.id_for(group.fields["domain_name"]), Domain)
            if domain is not None:
                domain.remove_group(str(group.id))
            work.commit()
            return PurgeGroupActionResult(action.group_id, before, tuple(cancelled))

        return self._store.run(purge, GROUP, "purge")

    def _erases_without_group(self, work: UnitOfWork, group_id: uuid.UUID) -> bool:
        """Whether a purge of `group_id` erases a subject no group's stream holds: the id
        never named a group, but a refused create sealed its input under the id's key. A
        superadmin's only, as a user's erasure is: that input may be of any domain, and an
        admin's purge of it stays "not found", which reveals nothing."""
        context = current_context()
        if context is not None and context.role == Role.ADMIN.value:
            return False
        return work.get(group_id, Entity) is None and self._keys is not None and self._keys.has_key(f"group:{group_id}")

    @takes_action
    async def usage_per_month(self, action: UsagePerMonthAction) -> UsagePerMonthActionResult:
        return self._reports.per_month(action, _reported_domain())

    @takes_action
    async def usage_per_period(self, action: UsagePerPeriodAction) -> UsagePerPeriodActionResult:
        return self._reports.per_period(action, _reported_domain())


def _reported_domain() -> str | None:
    """An admin reads the usage of their own domain's groups only (the permission table
    lets every admin run a report; which groups it covers is decided here)."""
    context = current_context()
    if context is None or context.role != Role.ADMIN.value:
        return None
    return context.domain_name or ""


def _move(work: UnitOfWork, group: Group, old_domain: str, new_domain: str) -> None:
    """A group moved to another domain leaves the old one's list and joins the new one's;
    its members must be users of the new domain too, and it must hold no session or
    active kernel (decided and counted in the old domain)."""
    from domain.session.purge import move_group_sessions  # imported here: the cycle purge_group names

    require_domain(work, new_domain, "domain_name").add_group(str(group.id))
    require_members(work, new_domain, sorted(group.members), "domain_name")
    move_group_sessions(work, group, old_domain, new_domain)
    old = work.get(Domain.id_for(old_domain), Domain)
    if old is not None:
        old.remove_group(str(group.id))
