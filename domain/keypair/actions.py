"""Keypair actions: what policy assignment and "policy in use" need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.keypair.types import KeyPairData
from domain.parsers import parse_access_key, parse_name, parse_new_access_key
from domain.validation import EntityName, UUIDField, field_of, nullable, tri_state_of
from domain.values import TriState

AccessKey = Annotated[str, field_of(parse_access_key)]


class KeyPairAction(BaseAction):
    access_key: AccessKey

    @classmethod
    def entity_type(cls) -> str:
        return EntityType.KEYPAIR

    def entity_id(self) -> str | None:
        return self.access_key


class CreateKeyPairAction(KeyPairAction):
    """`user_id` is the owner: a live user of `domain_name`. `resource_policy` None: the
    keypair uses its owner's, then its domain's default, then the system policy."""

    access_key: Annotated[str, field_of(parse_new_access_key)]
    user_id: UUIDField
    domain_name: EntityName
    resource_policy: Annotated[str | None, field_of(nullable(parse_name))] = None

    @classmethod
    def operation_type(cls) -> str:
        return "create"

    def target_domains(self) -> set[str]:
        return {self.domain_name}

    def fields_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "domain_name": self.domain_name,
            "resource_policy": self.resource_policy,
        }


class ModifyKeyPairAction(KeyPairAction):
    """`resource_policy` None: unassign (the precedence decides); left out: unchanged."""

    resource_policy: Annotated[TriState[str], tri_state_of(parse_name)] = TriState.nop()

    @classmethod
    def operation_type(cls) -> str:
        return "modify"


class DeleteKeyPairAction(KeyPairAction):
    @classmethod
    def operation_type(cls) -> str:
        return "delete"


@dataclass(frozen=True)
class _KeyPairResult(BaseActionResult):
    keypair: KeyPairData

    def entity_id(self) -> str | None:
        return self.keypair.access_key


@dataclass(frozen=True)
class CreateKeyPairActionResult(_KeyPairResult):
    pass


@dataclass(frozen=True)
class ModifyKeyPairActionResult(_KeyPairResult):
    """`changed`: whether this command stored an event (False: everything given already
    held, and nothing was written)."""

    changed: bool


@dataclass(frozen=True)
class DeleteKeyPairActionResult(_KeyPairResult):
    """Carries the keypair as it was just before the delete; `cancelled_sessions`: the ids
    of its pending sessions the delete cancelled."""

    cancelled_sessions: tuple[str, ...] = ()
