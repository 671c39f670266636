"""Creator, modifier and data of a group (fields as in REFERENCE.md, seed 003)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from domain.hosts import VFolderHostPermissionMap
from domain.modifier import Modifier
from domain.parsers import (
    parse_bool,
    parse_container_registry,
    parse_description,
    parse_dotfiles,
    parse_integration_id,
    parse_name,
    parse_project_type,
    parse_slug,
)
from domain.personal import ERASED
from domain.slot_patch import SlotPatch, parse_slot_patch
from domain.validation import (
    LedgerModel,
    Slots,
    VFolderHosts,
    field_of,
    jsonable,
    nullable,
    optional_state_of,
    parse_hosts,
    parse_slots,
    tri_state_of,
)
from domain.values import OptionalState, ProjectType, ResourceSlot, TriState

Slug = Annotated[str, field_of(parse_slug)]
Description = Annotated[str | None, field_of(nullable(parse_description))]
IntegrationId = Annotated[str | None, field_of(nullable(parse_integration_id))]
Dotfiles = Annotated[bytes, field_of(parse_dotfiles)]
Registry = Annotated[dict[str, str] | None, field_of(nullable(parse_container_registry))]
Bool = Annotated[bool, field_of(parse_bool)]
Type = Annotated[ProjectType, field_of(parse_project_type)]


def to_json(name: str, value: Any) -> Any:
    """The JSON form a group field takes inside events and read models."""
    if name == "dotfiles":
        return base64.b64encode(value).decode()
    return jsonable(value)


class GroupCreator(LedgerModel):
    name: Slug
    domain_name: Annotated[str, field_of(parse_name)]
    type: Type = ProjectType.GENERAL
    description: Description = None
    is_active: Bool = True
    integration_id: IntegrationId = None
    total_resource_slots: Slots = ResourceSlot()
    allowed_vfolder_hosts: VFolderHosts = VFolderHostPermissionMap()
    dotfiles: Dotfiles = b""
    resource_policy: Annotated[str, field_of(parse_name)] = "default"
    container_registry: Registry = None

    def fields_json(self) -> dict[str, Any]:
        return {f: to_json(f, getattr(self, f)) for f in GROUP_FIELDS}


GROUP_FIELDS: tuple[str, ...] = tuple(GroupCreator.model_fields)


class GroupModifier(Modifier):
    """Every field is left alone unless given; description and container_registry can be nullified.

    `total_resource_slots_patch` (see domain.slot_patch) changes the slots it names and
    keeps the others, merged into the stored map by the service when it decides; it
    cannot be given with `total_resource_slots` (the whole map).
    """

    name: Annotated[OptionalState[str], optional_state_of(parse_slug)] = OptionalState.nop()
    domain_name: Annotated[OptionalState[str], optional_state_of(parse_name)] = OptionalState.nop()
    type: Annotated[OptionalState[ProjectType], optional_state_of(parse_project_type)] = OptionalState.nop()
    description: Annotated[TriState[str], tri_state_of(parse_description)] = TriState.nop()
    is_active: Annotated[OptionalState[bool], optional_state_of(parse_bool)] = OptionalState.nop()
    integration_id: Annotated[OptionalState[str], optional_state_of(parse_integration_id)] = OptionalState.nop()
    total_resource_slots: Annotated[OptionalState[ResourceSlot], optional_state_of(parse_slots)] = OptionalState.nop()
    allowed_vfolder_hosts: Annotated[OptionalState[VFolderHostPermissionMap], optional_state_of(parse_hosts)] = (
        OptionalState.nop()
    )
    dotfiles: Annotated[OptionalState[bytes], optional_state_of(parse_dotfiles)] = OptionalState.nop()
    resource_policy: Annotated[OptionalState[str], optional_state_of(parse_name)] = OptionalState.nop()
    container_registry: Annotated[TriState[dict[str, str]], tri_state_of(parse_container_registry)] = TriState.nop()
    total_resource_slots_patch: Annotated[OptionalState[SlotPatch], optional_state_of(parse_slot_patch)] = (
        OptionalState.nop()
    )

    FIELDS = GROUP_FIELDS
    SLOT_PATCHES = {"total_resource_slots_patch": "total_resource_slots"}

    @staticmethod
    def field_json(name: str, value: Any) -> Any:
        return to_json(name, value)


@dataclass(frozen=True)
class GroupData:
    id: uuid.UUID
    name: str
    domain_name: str
    description: str | None
    is_active: bool
    created_at: datetime
    modified_at: datetime
    integration_id: str | None
    total_resource_slots: ResourceSlot
    allowed_vfolder_hosts: VFolderHostPermissionMap
    dotfiles: bytes
    resource_policy: str
    type: ProjectType
    container_registry: dict[str, str] | None

    @classmethod
    def from_fields(
        cls, group_id: uuid.UUID, created_at: datetime, modified_at: datetime, fields: dict[str, Any]
    ) -> GroupData:
        return cls(
            id=group_id,
            name=fields["name"],
            domain_name=fields["domain_name"],
            description=fields.get("description"),
            is_active=fields["is_active"],
            created_at=created_at,
            modified_at=modified_at,
            integration_id=fields.get("integration_id"),
            total_resource_slots=ResourceSlot.from_json(fields["total_resource_slots"]),
            allowed_vfolder_hosts=VFolderHostPermissionMap.from_json(fields["allowed_vfolder_hosts"]),
            # Erased ([erased]) by an erasure that raced the group's create (docs/ERASURE.md):
            # the bytes and the registry are gone, read as none, not as a decoding failure.
            dotfiles=b"" if fields["dotfiles"] == ERASED else base64.b64decode(fields["dotfiles"]),
            resource_policy=fields["resource_policy"],
            type=ProjectType(fields["type"]),
            container_registry=None if fields.get("container_registry") == ERASED else fields.get("container_registry"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            **{f: to_json(f, getattr(self, f)) for f in GROUP_FIELDS},
            "created_at": self.created_at.isoformat(),
            "modified_at": self.modified_at.isoformat(),
        }
