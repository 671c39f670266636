"""Creator, modifier and data of a group (fields as in REFERENCE.md, seed 003)."""

from __future__ import annotations

import base64
import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from domain.errors import InvalidAPIParameters
from domain.validation import (
    LedgerModel,
    Slots,
    VFolderHosts,
    field_of,
    jsonable,
    nullable,
    optional_state_of,
    parse_hosts,
    parse_name,
    parse_project_type,
    parse_slots,
    parse_uuid,
    text_parser,
    tri_state_of,
)
from domain.values import (
    OptionalState,
    ProjectType,
    ResourceSlot,
    TriState,
    VFolderHostPermissionMap,
    shown,
)

MAX_DOTFILES = 64 * 1024
_SLUG = re.compile(r"^[\w.-]+$")  # \w is unicode-aware: letters and digits of any script


def parse_slug(raw: Any, field: str) -> str:
    name = parse_name(raw, field, max_length=64)
    if not _SLUG.match(name):
        raise InvalidAPIParameters("must be a slug: letters, digits, '_', '-' and '.' only", field=field)
    return name


def parse_bool(raw: Any, field: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidAPIParameters(f"expected true or false, got {shown(raw)}", field=field)


def parse_dotfiles(raw: Any, field: str) -> bytes:
    data = raw.encode() if isinstance(raw, str) else raw
    if not isinstance(data, bytes | bytearray):
        raise InvalidAPIParameters(f"expected bytes or a string, got {type(raw).__name__}", field=field)
    if len(data) > MAX_DOTFILES:
        raise InvalidAPIParameters(f"must be at most {MAX_DOTFILES} bytes, got {len(data)}", field=field)
    return bytes(data)


MAX_REGISTRY_VALUE = 256


def parse_container_registry(raw: Any, field: str) -> dict[str, str]:
    """`{}` or `{registry, project}`: each value one line of at most 256 characters,
    parsed as a name (it is shown in listings and names an external registry)."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise InvalidAPIParameters("expected {} or {registry, project} with string values", field=field)
    unknown = set(raw) - {"registry", "project"}
    if unknown:
        shown_keys = ", ".join(shown(k, 20) for k in sorted(unknown)[:3])
        raise InvalidAPIParameters(f"unknown keys {shown_keys}; allowed: registry, project", field=field)
    return {key: parse_name(value, f"{field}.{key}", max_length=MAX_REGISTRY_VALUE) for key, value in raw.items()}


class UserUpdateMode(enum.Enum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


def parse_user_update_mode(raw: Any, field: str) -> UserUpdateMode:
    if isinstance(raw, UserUpdateMode):
        return raw
    if not isinstance(raw, str):  # str() of a huge int raises: only text is read
        raise InvalidAPIParameters(f"{shown(raw)} is not one of add, remove, replace", field=field)
    try:
        return UserUpdateMode(raw.strip().lower())
    except ValueError:
        raise InvalidAPIParameters(f"{shown(raw)} is not one of add, remove, replace", field=field) from None


def parse_user_uuids(raw: Any, field: str) -> list[uuid.UUID]:
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple | set | frozenset):
        raise InvalidAPIParameters("expected a list of user UUIDs", field=field)
    return [parse_uuid(item, field) for item in raw]


Slug = Annotated[str, field_of(parse_slug)]
# REFERENCE.md: description <= 512 (free text over lines), integration_id <= 512 (one line).
parse_description = text_parser(512, multiline=True)
parse_integration_id = text_parser(512)
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


class GroupModifier(LedgerModel):
    """Every field is left alone unless given; description and container_registry can be nullified."""

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

    def fields_json(self) -> dict[str, Any]:
        wanted = {}
        for name in GROUP_FIELDS:
            state = getattr(self, name)
            if not state.is_nop():
                wanted[name] = to_json(name, state.value())
        return wanted


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
            dotfiles=base64.b64decode(fields["dotfiles"]),
            resource_policy=fields["resource_policy"],
            type=ProjectType(fields["type"]),
            container_registry=fields.get("container_registry"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            **{f: to_json(f, getattr(self, f)) for f in GROUP_FIELDS},
            "created_at": self.created_at.isoformat(),
            "modified_at": self.modified_at.isoformat(),
        }
