"""Domains: aggregate, creator/modifier, actions and service (the package name avoids
`domain.domain`)."""

from domain.domains.actions import (
    CreateDomainAction,
    CreateDomainActionResult,
    DeleteDomainAction,
    DeleteDomainActionResult,
    DomainAction,
    ModifyDomainAction,
    ModifyDomainActionResult,
)
from domain.domains.aggregate import Domain
from domain.domains.service import DomainService
from domain.domains.types import DomainCreator, DomainData, DomainModifier

__all__ = [
    "CreateDomainAction",
    "CreateDomainActionResult",
    "DeleteDomainAction",
    "DeleteDomainActionResult",
    "Domain",
    "DomainAction",
    "DomainCreator",
    "DomainData",
    "DomainModifier",
    "DomainService",
    "ModifyDomainAction",
    "ModifyDomainActionResult",
]
