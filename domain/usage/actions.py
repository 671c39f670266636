"""Usage report actions and results (seed 003 names): a report over the groups an
action names, or over every group of the ledger."""

from __future__ import annotations

import uuid
from abc import abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any

from domain.actions import BaseActionResult, BaseScopeAction
from domain.catalog import EntityType
from domain.parsers import parse_uuid, parse_uuid_list
from domain.usage.windows import parse_day, parse_month
from domain.validation import field_of, nullable


class _UsageAction(BaseScopeAction):
    """A report over the groups it names, or over every group of the ledger."""

    @classmethod
    def entity_type(cls) -> str:
        return EntityType.GROUP

    def scope_type(self) -> str:
        return "project" if self.groups() else "ledger"

    def scope_id(self) -> str:
        return ",".join(str(g) for g in self.groups()) or "all"

    @abstractmethod
    def groups(self) -> list[uuid.UUID]:
        """The groups reported on; none means every group."""


class UsagePerMonthAction(_UsageAction):
    month: Annotated[str, field_of(parse_month)]
    group_ids: Annotated[list[uuid.UUID] | None, field_of(nullable(parse_uuid_list))] = None

    @classmethod
    def operation_type(cls) -> str:
        return "usage_per_month"

    def groups(self) -> list[uuid.UUID]:
        return self.group_ids or []


class UsagePerPeriodAction(_UsageAction):
    start_date: Annotated[str, field_of(parse_day)]
    end_date: Annotated[str, field_of(parse_day)]
    project_id: Annotated[uuid.UUID | None, field_of(nullable(parse_uuid))] = None

    @classmethod
    def operation_type(cls) -> str:
        return "usage_per_period"

    def groups(self) -> list[uuid.UUID]:
        return [] if self.project_id is None else [self.project_id]


@dataclass(frozen=True)
class UsagePerMonthActionResult(BaseActionResult):
    result: list[dict[str, Any]]
    scope: str = ""  # the action's scope: which groups were reported on

    def entity_id(self) -> str | None:
        return self.scope


@dataclass(frozen=True)
class UsagePerPeriodActionResult(BaseActionResult):
    result: list[dict[str, Any]]
    scope: str = ""

    def entity_id(self) -> str | None:
        return self.scope
