"""Actions and results: one action per use case, with the seeds' method names."""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidAPIParameters
from domain.validation import LedgerModel, jsonable


class Role(enum.Enum):
    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    USER = "user"
    SERVICE = "service"  # the platform reporting workload facts


@dataclass(frozen=True)
class ActionTriggerMeta:
    """Who triggers an action; it ends up on every event the action stores."""

    user_id: uuid.UUID | str | None
    access_key: str | None
    role: Role | str
    domain_name: str | None
    request_id: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "role", Role(str(getattr(self.role, "value", self.role)).lower()))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidAPIParameters(f"{self.role!r} is not one of {allowed}", field="role") from None

    @property
    def role_name(self) -> str:
        return self.role.value if isinstance(self.role, Role) else str(self.role)


class BaseAction(LedgerModel, ABC):
    """Input of one service method. Validated at construction."""

    @abstractmethod
    def entity_id(self) -> str | None:
        """Target entity's id, None when the action creates it."""

    @classmethod
    @abstractmethod
    def entity_type(cls) -> str: ...

    @classmethod
    @abstractmethod
    def operation_type(cls) -> str: ...

    def spec(self) -> dict[str, Any]:
        """The action's input in JSON form, for monitors and the audit trail."""
        spec: dict[str, Any] = jsonable(self)
        return spec


class BaseActionResult(ABC):
    @abstractmethod
    def entity_id(self) -> str | None:
        """The entity the action touched (always known once it ran)."""
