"""Actions and results of the domain service (issue 12). Domains are named by their
name; every action targets that domain, so a permission row can scope it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.domains.types import DomainCreator, DomainData, DomainModifier
from domain.validation import EntityName, built


class DomainAction(BaseAction):
    @classmethod
    def entity_type(cls) -> str:
        return EntityType.DOMAIN


class CreateDomainAction(DomainAction):
    creator: Annotated[DomainCreator, built(DomainCreator)]

    def entity_id(self) -> str | None:
        return self.creator.name

    def target_domains(self) -> set[str]:
        return {self.creator.name}

    @classmethod
    def operation_type(cls) -> str:
        return "create"


class _OnDomain(DomainAction):
    domain_name: EntityName

    def entity_id(self) -> str | None:
        return self.domain_name

    def target_domains(self) -> set[str]:
        return {self.domain_name}


class ModifyDomainAction(_OnDomain):
    modifier: Annotated[DomainModifier, built(DomainModifier)] = DomainModifier()

    @classmethod
    def operation_type(cls) -> str:
        return "modify"


class DeleteDomainAction(_OnDomain):
    @classmethod
    def operation_type(cls) -> str:
        return "delete"


@dataclass(frozen=True)
class _DomainResult(BaseActionResult):
    domain: DomainData

    def entity_id(self) -> str | None:
        return self.domain.name


@dataclass(frozen=True)
class CreateDomainActionResult(_DomainResult):
    pass


@dataclass(frozen=True)
class ModifyDomainActionResult(_DomainResult):
    """`changed`: whether this command stored an event (False: everything given already
    held, and nothing was written)."""

    changed: bool


@dataclass(frozen=True)
class DeleteDomainActionResult(_DomainResult):
    """Carries the domain as it was just before the delete."""
