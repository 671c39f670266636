"""Actions and results of the user service (issue 12). Users are named by their UUID; a
create targets the new user's domain, the other actions the domain the user is in (the
permission validator resolves it from the store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.parsers import parse_bool, parse_reason
from domain.user.types import UserCreator, UserData, UserModifier
from domain.validation import UUIDField, built, field_of


class UserAction(BaseAction):
    @classmethod
    def entity_type(cls) -> str:
        return EntityType.USER


class CreateUserAction(UserAction):
    creator: Annotated[UserCreator, built(UserCreator)]

    def entity_id(self) -> str | None:
        return str(self.creator.user_id)

    def target_domains(self) -> set[str]:
        return {self.creator.domain_name}

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class _OnUser(UserAction):
    user_id: UUIDField

    def entity_id(self) -> str | None:
        return str(self.user_id)


class ModifyUserAction(_OnUser):
    modifier: Annotated[UserModifier, built(UserModifier)] = UserModifier()

    @classmethod
    def operation_type(cls) -> str:
        return "modify"


class DeleteUserAction(_OnUser):
    @classmethod
    def operation_type(cls) -> str:
        return "delete"


class EraseUserAction(_OnUser):
    """Erase a user's personal values (issue 14): their key is destroyed, they read
    `[erased]` everywhere. `reason` is kept in clear in the audit trail and on the event
    (who asked and why must outlive the erasure), so it must not name personal values.
    `accept_clear_history`: erase even though the user's stream holds values stored in
    clear before sealing existed (those stay readable; the count is recorded)."""

    reason: Annotated[str, field_of(parse_reason)]
    accept_clear_history: Annotated[bool, field_of(parse_bool)] = False

    @classmethod
    def operation_type(cls) -> str:
        return "erase"


@dataclass(frozen=True)
class _UserResult(BaseActionResult):
    user: UserData

    def entity_id(self) -> str | None:
        return str(self.user.user_id)


@dataclass(frozen=True)
class CreateUserActionResult(_UserResult):
    pass


@dataclass(frozen=True)
class ModifyUserActionResult(_UserResult):
    """`changed`: whether this command stored an event (False: everything given already
    held, and nothing was written)."""

    changed: bool


@dataclass(frozen=True)
class DeleteUserActionResult(_UserResult):
    """Carries the user as it was just before the delete."""


@dataclass(frozen=True)
class EraseUserActionResult(BaseActionResult):
    """Carries the user as it reads after the erasure, or None when the id names no user:
    only the input of refused commands was sealed under its key (docs/ERASURE.md, "A
    subject without an entity"); `clear_values`: how many values stored in clear stay
    readable (0 unless the erasure accepted them)."""

    user_id: str
    user: UserData | None
    clear_values: int

    def entity_id(self) -> str | None:
        return self.user_id
