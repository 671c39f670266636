"""The group service: load, let the aggregates decide, save group and name index together."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from domain.base import AggregateStore, Entity, UnitOfWork
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
from domain.group.aggregate import ENTITY_TYPE, Group, GroupNameIndex, group_not_found, name_index_id
from domain.group.types import GroupData
from domain.group.usage import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
    UsageReader,
    month_report,
    month_window,
    period_report,
    period_window,
)


def group_data(group: Group) -> GroupData:
    assert group.created_at is not None and group.changed_at is not None
    return GroupData.from_fields(group.id, group.created_at, group.changed_at, group.fields)


def load_group(work: UnitOfWork, group_id: uuid.UUID) -> Group:
    """A group that exists (active or soft-deleted); purged and unknown ones are not found."""
    group = work.get(group_id, Entity)  # the id may name another kind's stream
    if not isinstance(group, Group) or group.is_deleted:
        raise group_not_found(group_id)
    return group


def name_index(work: UnitOfWork, domain_name: str, name: str) -> GroupNameIndex:
    index = work.get(name_index_id(domain_name, name), GroupNameIndex)
    return index if index is not None else work.add(GroupNameIndex.open(domain_name, name))


class GroupService:
    def __init__(self, store: AggregateStore, usage: UsageReader, timezone: str = "UTC") -> None:
        self._store = store
        self._usage = usage
        self._tz = ZoneInfo(timezone)  # the reports' local time (configuration, default UTC)

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

        return CreateGroupActionResult(group_data(self._store.run(create, ENTITY_TYPE, "create")))

    async def modify_group(self, action: ModifyGroupAction) -> ModifyGroupActionResult:
        wanted = action.modifier.fields_json()
        mode, users = action.user_update_mode, action.user_uuids
        if mode.is_nop() != users.is_nop():
            missing = "user_uuids" if users.is_nop() else "user_update_mode"
            raise InvalidAPIParameters("membership changes need both user_update_mode and user_uuids", field=missing)

        def modify() -> Group:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            old_domain, old_name = group.name_key
            group.modify(wanted)
            if group.name_key != (old_domain, old_name):
                name_index(work, *group.name_key).claim(str(group.id))
                name_index(work, old_domain, old_name).release(str(group.id))
            if not mode.is_nop():
                group.update_members(mode.value().value, [str(u) for u in users.value()])
            work.commit()
            return group

        return ModifyGroupActionResult(group_data(self._store.run(modify, ENTITY_TYPE, "modify")))

    async def delete_group(self, action: DeleteGroupAction) -> DeleteGroupActionResult:
        def delete() -> GroupData:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            before = group_data(group)
            group.delete()
            work.commit()
            return before

        return DeleteGroupActionResult(self._store.run(delete, ENTITY_TYPE, "delete"))

    async def purge_group(self, action: PurgeGroupAction) -> PurgeGroupActionResult:
        def purge() -> GroupData:
            work = UnitOfWork(self._store)
            group = load_group(work, action.group_id)
            before = group_data(group)
            group.purge()
            name_index(work, *group.name_key).release(str(group.id))
            work.commit()
            return before

        return PurgeGroupActionResult(self._store.run(purge, ENTITY_TYPE, "purge"))

    async def usage_per_month(self, action: UsagePerMonthAction) -> UsagePerMonthActionResult:
        start, end = month_window(action.month, self._tz)
        group_ids = [str(g) for g in action.group_ids] if action.group_ids else None
        report = month_report(self._usage.kernels(start, end, group_ids), self._tz)
        return UsagePerMonthActionResult(report, scope=action.entity_id() or "")

    async def usage_per_period(self, action: UsagePerPeriodAction) -> UsagePerPeriodActionResult:
        start, end = period_window(action.start_date, action.end_date, self._tz)
        group_ids = None if action.project_id is None else [str(action.project_id)]
        report = period_report(self._usage.kernels(start, end, group_ids), self._tz)
        return UsagePerPeriodActionResult(report, scope=action.entity_id() or "")
