"""Creator, modifier and data of a domain (issue 12; Backend.AI's domain fields).

`allowed_keypair_resource_policies` is what an admin of the domain may assign (set by a
superadmin): None means any policy, a list means only those (an empty list: none, only a
superadmin assigns). It restricts assignments made after it is set; defaults already set
stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from domain.errors import InvalidAPIParameters
from domain.hosts import VFolderHostPermissionMap
from domain.modifier import Modifier
from domain.parsers import parse_bool, parse_description, parse_name
from domain.slot_patch import SlotPatch, parse_slot_patch
from domain.validation import (
    LedgerModel,
    NewEntityName,
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
from domain.values import OptionalState, ResourceSlot, TriState

MAX_ALLOWED_POLICIES = 1000  # a list an operator types and reads; every entry is a name


def parse_policy_names(raw: Any, field: str) -> list[str]:
    """A list (tuple, set) of policy names, deduplicated and sorted; a string is refused,
    not read as a list of characters."""
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple | set | frozenset):
        raise InvalidAPIParameters("expected a list of keypair resource policy names", field=field)
    if len(raw) > MAX_ALLOWED_POLICIES:
        raise InvalidAPIParameters(f"at most {MAX_ALLOWED_POLICIES} names, got {len(raw)}", field=field)
    return sorted({parse_name(item, field) for item in raw})


Description = Annotated[str | None, field_of(nullable(parse_description))]
Bool = Annotated[bool, field_of(parse_bool)]
PolicyName = Annotated[str | None, field_of(nullable(parse_name))]
PolicyNames = Annotated[list[str] | None, field_of(nullable(parse_policy_names))]


class DomainCreator(LedgerModel):
    name: NewEntityName
    description: Description = None
    is_active: Bool = True
    total_resource_slots: Slots = ResourceSlot()
    allowed_vfolder_hosts: VFolderHosts = VFolderHostPermissionMap()
    default_keypair_resource_policy: PolicyName = None
    allowed_keypair_resource_policies: PolicyNames = None

    def fields_json(self) -> dict[str, Any]:
        return {f: jsonable(getattr(self, f)) for f in DOMAIN_FIELDS}


DOMAIN_FIELDS: tuple[str, ...] = tuple(f for f in DomainCreator.model_fields if f != "name")


class DomainModifier(Modifier):
    """Every field is left alone unless given. The name is the domain's identity (groups,
    keypairs and users name it), so it is not modifiable. `description`, the default
    policy and the allowed list can be nullified (None: no default; any policy).
    `total_resource_slots_patch` (see domain.slot_patch) changes the slots it names and
    keeps the others; it cannot be given with `total_resource_slots`."""

    description: Annotated[TriState[str], tri_state_of(parse_description)] = TriState.nop()
    is_active: Annotated[OptionalState[bool], optional_state_of(parse_bool)] = OptionalState.nop()
    total_resource_slots: Annotated[OptionalState[ResourceSlot], optional_state_of(parse_slots)] = OptionalState.nop()
    allowed_vfolder_hosts: Annotated[OptionalState[VFolderHostPermissionMap], optional_state_of(parse_hosts)] = (
        OptionalState.nop()
    )
    default_keypair_resource_policy: Annotated[TriState[str], tri_state_of(parse_name)] = TriState.nop()
    allowed_keypair_resource_policies: Annotated[TriState[list[str]], tri_state_of(parse_policy_names)] = TriState.nop()

    total_resource_slots_patch: Annotated[OptionalState[SlotPatch], optional_state_of(parse_slot_patch)] = (
        OptionalState.nop()
    )

    FIELDS = DOMAIN_FIELDS
    SLOT_PATCHES = {"total_resource_slots_patch": "total_resource_slots"}


@dataclass(frozen=True)
class DomainData:
    name: str
    description: str | None
    is_active: bool
    created_at: datetime
    modified_at: datetime
    total_resource_slots: ResourceSlot
    allowed_vfolder_hosts: VFolderHostPermissionMap
    default_keypair_resource_policy: str | None
    allowed_keypair_resource_policies: tuple[str, ...] | None

    @classmethod
    def from_fields(cls, name: str, created_at: datetime, modified_at: datetime, fields: dict[str, Any]) -> DomainData:
        allowed = fields.get("allowed_keypair_resource_policies")
        return cls(
            name=name,
            description=fields.get("description"),
            is_active=fields["is_active"],
            created_at=created_at,
            modified_at=modified_at,
            total_resource_slots=ResourceSlot.from_json(fields["total_resource_slots"]),
            allowed_vfolder_hosts=VFolderHostPermissionMap.from_json(fields["allowed_vfolder_hosts"]),
            default_keypair_resource_policy=fields.get("default_keypair_resource_policy"),
            allowed_keypair_resource_policies=None if allowed is None else tuple(allowed),
        )

    def allows_policy(self, policy: str) -> bool:
        """Whether an admin of this domain may assign `policy` (None: any)."""
        allowed = self.allowed_keypair_resource_policies
        return allowed is None or policy in allowed

    def fields_json(self) -> dict[str, Any]:
        return {f: jsonable(getattr(self, f)) for f in DOMAIN_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.fields_json(),
            "created_at": self.created_at.isoformat(),
            "modified_at": self.modified_at.isoformat(),
        }
