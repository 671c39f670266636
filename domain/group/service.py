"""The group service: load, let the aggregates decide, save group and name index together."""

from __future__ import annotations

import uuid

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import InvalidAPIParameters
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
from domain.ports import AggregateStore, UnitOfWork, load_live
from domain.usage import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
    UsageReader,
    UsageReports,
)

GROUP = EntityType.GROUP


def group_data(group: Group) -> GroupData:
    assert group.created_at is not None and group.changed_at is not None
    return GroupData.from_fields(group.id, group.created_at, group.changed_at, group.fields)


def load_group(work: UnitOfWork, group_id: uuid.UUID) -> Group:
    """A group that exists (active or soft-deleted); purged and unknown ones are not found."""
    return load_live(work, Group, str(group_id))


def name_index(work: UnitOfWork, domain_name: str, name: str) -> GroupNameIndex:
    index = work.get(name_index_id(domain_name, name), GroupNameIndex)
    return index if index is not None else work.add(GroupNameIndex.open(domain_name, name))


class GroupService:
    def __init__(self, store: AggregateStore, usage: UsageReader, timezone: str = "UTC") -> None:
        self._store = store
        self._reports = UsageReports(usage, timezone)

    async def create_group(self, action: CreateGroupAction) -> CreateGroupActionResult:
        group_id = action.group_id
        fields = action.input.fields_json()

        def create() -> Group:
            work = UnitOfWork(self._store)
            if action.chosen_id and work.get(group_id, Entity) is not None:
                raise InvalidAPIParameters(f"{group_id} is already used", field="group_id")
            name_index(work, fields["domain_name"], fields["name"]).claim(str(group_id))
            group = work.add(Group.create(str(group_id), fields))
            work.commit()
            return group

        return CreateGroupActionResult(group_data(self._store.run(create, GROUP, "create")))

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
            group.modify(modifier.wanted_fields(group.fields))
            if group.name_key != (old_domain, old_name):
                name_index(work, *group.name_key).claim(str(group.id))
                name_index(work, old_domain, old_name).release(str(group.id))
            if not mode.is_nop():
                group.update_members(mode.value(), [str(u) for u in users.value()])
            # Every event of a modify is the group's own (the name index moves only with it).
            changed = bool(group.pending_events)
            work.commit()
            return group, changed

        group, changed = self._store.run(modify, GROUP, "modify")
        return ModifyGroupActionResult(group_data(group), changed=changed)

    async def delete_group(self, action: DeleteGroupAction) -> DeleteGroupActionResult:
        def delete() -> GroupData:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            before = group_data(group)
            group.delete()
            work.commit()
            return before

        return DeleteGroupActionResult(self._store.run(delete, GROUP, "delete"))

    async def purge_group(self, action: PurgeGroupAction) -> PurgeGroupActionResult:
        def purge() -> GroupData:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            before = group_data(group)
            group.purge()
            name_index(work, *group.name_key).release(str(group.id))
            work.commit()
            return before

        return PurgeGroupActionResult(self._store.run(purge, GROUP, "purge"))

    async def usage_per_month(self, action: UsagePerMonthAction) -> UsagePerMonthActionResult:
        return self._reports.per_month(action)

    async def usage_per_period(self, action: UsagePerPeriodAction) -> UsagePerPeriodActionResult:
        return self._reports.per_period(action)
