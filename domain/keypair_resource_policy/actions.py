"""Actions and results of the keypair resource policy service (seed 000 names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.keypair_resource_policy.types import (
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
)
from domain.validation import EntityName, built


class KeypairResourcePolicyAction(BaseAction):
    @classmethod
    def entity_type(cls) -> str:
        return EntityType.KEYPAIR_RESOURCE_POLICY


class CreateKeyPairResourcePolicyAction(KeypairResourcePolicyAction):
    creator: Annotated[KeyPairResourcePolicyCreator, built(KeyPairResourcePolicyCreator)]

    def entity_id(self) -> str | None:
        return self.creator.name

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class ModifyKeyPairResourcePolicyAction(KeypairResourcePolicyAction):
    name: EntityName
    modifier: Annotated[KeyPairResourcePolicyModifier, built(KeyPairResourcePolicyModifier)]

    def entity_id(self) -> str | None:
        return self.name

    @classmethod
    def operation_type(cls) -> str:
        return "modify"


class DeleteKeyPairResourcePolicyAction(KeypairResourcePolicyAction):
    name: EntityName

    def entity_id(self) -> str | None:
        return self.name

    @classmethod
    def operation_type(cls) -> str:
        return "delete"


@dataclass(frozen=True)
class _PolicyResult(BaseActionResult):
    keypair_resource_policy: KeyPairResourcePolicyData

    def entity_id(self) -> str | None:
        return self.keypair_resource_policy.name


@dataclass(frozen=True)
class CreateKeyPairResourcePolicyActionResult(_PolicyResult):
    pass


@dataclass(frozen=True)
class ModifyKeyPairResourcePolicyActionResult(_PolicyResult):
    """`changed`: whether this command stored an event (False: everything given already
    held, and nothing was written)."""

    changed: bool


@dataclass(frozen=True)
class DeleteKeyPairResourcePolicyActionResult(_PolicyResult):
    """Carries the policy as it was just before the delete."""
