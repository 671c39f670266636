"""Actions and results of the group service (seed 003 names)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, model_validator

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.group.types import GroupCreator, GroupData, GroupModifier
from domain.parsers import parse_bool, parse_user_update_mode, parse_uuid_list
from domain.validation import UUIDField, built, field_of, optional_state_of
from domain.values import OptionalState, UserUpdateMode


class GroupAction(BaseAction):
    @classmethod
    def entity_type(cls) -> str:
        return EntityType.GROUP


class CreateGroupAction(GroupAction):
    input: Annotated[GroupCreator, built(GroupCreator)]
    # A new random id unless given: every attempt, audit row and refusal names the group.
    group_id: UUIDField = Field(default_factory=uuid.uuid4)

    @model_validator(mode="before")
    @classmethod
    def _no_id_given(cls, data: Any) -> Any:
        # `group_id=None` asks the ledger to choose, as leaving it out does.
        if isinstance(data, dict) and "group_id" in data and data["group_id"] is None:
            return {k: v for k, v in data.items() if k != "group_id"}
        return data

    @property
    def chosen_id(self) -> bool:
        """Whether the caller named the id (then it may clash with an existing stream)."""
        return "group_id" in self.model_fields_set

    def entity_id(self) -> str | None:
        return str(self.group_id)

    def target_domains(self) -> set[str]:
        return {self.input.domain_name}

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class _OnGroup(GroupAction):
    group_id: UUIDField

    def entity_id(self) -> str | None:
        return str(self.group_id)


class ModifyGroupAction(_OnGroup):
    modifier: Annotated[GroupModifier, built(GroupModifier)] = GroupModifier()
    user_update_mode: Annotated[OptionalState[UserUpdateMode], optional_state_of(parse_user_update_mode)] = (
        OptionalState.nop()
    )
    user_uuids: Annotated[OptionalState[list[uuid.UUID]], optional_state_of(parse_uuid_list)] = OptionalState.nop()

    @classmethod
    def operation_type(cls) -> str:
        return "modify"

    def target_domains(self) -> set[str]:
        moved_to = self.modifier.domain_name
        return set() if moved_to.is_nop() else {moved_to.value()}


class DeleteGroupAction(_OnGroup):
    @classmethod
    def operation_type(cls) -> str:
        return "delete"


class PurgeGroupAction(_OnGroup):
    """`accept_clear_history`: purge even though the group's stream holds personal values
    stored in clear by an older release (the purge cannot erase those; it records how many)."""

    accept_clear_history: Annotated[bool, field_of(parse_bool)] = False

    @classmethod
    def operation_type(cls) -> str:
        return "purge"


@dataclass(frozen=True)
class _GroupResult(BaseActionResult):
    data: GroupData

    def entity_id(self) -> str | None:
        return str(self.data.id)

    @property
    def success(self) -> bool:
        """Backend.AI's results carry `success` beside `data` (seed 003: "returns the group
        data with success status"). Always true: a failure raises its error instead of
        returning success=False (REFERENCE: this project raises errors)."""
        return True


@dataclass(frozen=True)
class CreateGroupActionResult(_GroupResult):
    pass


@dataclass(frozen=True)
class ModifyGroupActionResult(_GroupResult):
    """`changed`: whether this command stored an event (False: everything given already
    held, and nothing was written)."""

    changed: bool


@dataclass(frozen=True)
class DeleteGroupActionResult(_GroupResult):
    """Carries the group as it was just before the delete; `cancelled_sessions`: the ids
    of its pending sessions the delete cancelled (none could be admitted any more)."""

    cancelled_sessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class PurgeGroupActionResult(BaseActionResult):
    """Carries the group as it was just before the purge, or None when the id names no
    group: only the input of refused commands sealed under its key was erased
    (docs/ERASURE.md, "A subject without an entity")."""

    group_id: uuid.UUID
    data: GroupData | None
    cancelled_sessions: tuple[str, ...] = ()  # its pending sessions the purge cancelled

    def entity_id(self) -> str | None:
        return str(self.group_id)

    @property
    def success(self) -> bool:
        """As `_GroupResult.success`: a failure raises instead."""
        return True
