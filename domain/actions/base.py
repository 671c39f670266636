"""Actions and results: one action per use case, with the seeds' method names."""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.errors import InvalidAPIParameters
from domain.parsers import parse_name, parse_uuid
from domain.shown import shown
from domain.validation import LedgerModel, jsonable


class Role(enum.StrEnum):
    """A string enum, as Backend.AI's UserRole: `meta.role` equals the text it is given in
    ("admin"), which validators and monitors compare it with."""

    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    USER = "user"
    SERVICE = "service"  # the platform reporting workload facts


META_TEXT_MAX = 256  # the audit and history columns that hold these are String(256)


@dataclass(frozen=True)
class ActionTriggerMeta:
    """Who triggers an action; it ends up on every event the action stores, so it is
    validated like any input: `user_id` a UUID (a UUID string becomes a uuid.UUID) or
    None; `access_key`, `domain_name`, `request_id` None or a name of at most 256
    characters (no control or invisible characters); `role` one of Role in any case.
    A bad value raises InvalidAPIParameters naming the field."""

    user_id: uuid.UUID | str | None
    access_key: str | None
    role: Role | str
    domain_name: str | None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.user_id is not None:
            object.__setattr__(self, "user_id", parse_uuid(self.user_id, "user_id"))
        for field in ("access_key", "domain_name", "request_id"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, parse_name(value, field, max_length=META_TEXT_MAX))
        role = self.role.value if isinstance(self.role, Role) else self.role
        try:
            if not isinstance(role, str):
                raise ValueError(role)
            object.__setattr__(self, "role", Role(role.strip().lower()))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidAPIParameters(f"{shown(self.role)} is not one of {allowed}", field="role") from None

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

    def target_domains(self) -> set[str]:
        """Domains this action moves its entity into (create, change of domain); the
        domain the entity is in already is resolved from the store by the validator."""
        return set()


class BaseBatchAction(BaseAction):
    """An action on many entities at once; `entity_id` lists them for the audit trail."""

    @abstractmethod
    def entity_ids(self) -> Sequence[str]: ...

    def entity_id(self) -> str | None:
        return batch_label(self.entity_ids())


def batch_label(ids: Sequence[str]) -> str | None:
    """A batch's entity id for the audit row: bounded whatever the batch's size, because
    it lands in an indexed column (PostgreSQL's B-tree refuses entries over ~2.7 kB); the
    full list is kept beside it (`entity_ids`)."""
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else f"{ids[0]} (+{len(ids) - 1} more)"


class BaseScopeAction(BaseAction):
    """An action on everything in a scope (a project, a domain, the whole ledger)."""

    @abstractmethod
    def scope_type(self) -> str: ...

    @abstractmethod
    def scope_id(self) -> str: ...

    def entity_id(self) -> str | None:
        return f"{self.scope_type()}:{self.scope_id()}"


class ActionStatus(enum.StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    DENIED = "denied"  # a validator refused the action: the service never ran
    RUNNING = "running"


@dataclass(frozen=True)
class ActionResultMeta:
    """How one action ended; what monitors, the audit trail and metrics record."""

    action_id: str
    entity_type: str
    operation: str
    entity_id: str | None
    status: ActionStatus
    description: str
    started_at: datetime
    ended_at: datetime
    duration: float  # seconds
    error_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Every field is a scalar: a shallow copy (asdict deep-copies, on every action's path).
        data = dict(vars(self))
        data.update(
            status=self.status.value, started_at=self.started_at.isoformat(), ended_at=self.ended_at.isoformat()
        )
        return data


class BaseActionResult(ABC):
    @abstractmethod
    def entity_id(self) -> str | None:
        """The entity the action touched (always known once it ran)."""
