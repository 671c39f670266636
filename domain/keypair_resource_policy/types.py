"""Creator, modifier and data of a keypair resource policy (fields as in REFERENCE.md)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from domain.hosts import VFolderHostPermissionMap
from domain.modifier import Modifier
from domain.parsers import parse_default_for_unspecified, parse_int, parse_name, parse_positive_int
from domain.slot_patch import SlotPatch, parse_slot_patch
from domain.validation import (
    LedgerModel,
    NewEntityName,
    NonNegativeInt,
    NullableNonNegativeInt,
    NullableSlots,
    PositiveInt,
    Slots,
    VFolderHosts,
    field_of,
    nullable,
    optional_state_of,
    parse_hosts,
    parse_slots,
    tri_state_of,
)
from domain.values import DefaultForUnspecified, OptionalState, ResourceSlot, TriState

# Backend.AI deprecated all three on keypair policies; issue 12 enforces max_vfolder_count
# again (vfolders created with an owner's access key), so it no longer warns.
DEPRECATED_FIELDS = ("max_vfolder_size", "max_quota_scope_size")


def deprecation_message(names: list[str]) -> str | None:
    """The warning for deprecated fields given (None for none), as the CLI and HTTP show it."""
    if not names:
        return None
    return f"{', '.join(names)}: deprecated keypair resource policy field(s); stored for compatibility but not enforced"


def _warn_deprecated(names: list[str]) -> None:
    message = deprecation_message(names)
    if message is not None:
        warnings.warn(
            message,
            DeprecationWarning,
            stacklevel=4,  # _warn_deprecated < after_init < LedgerModel.__init__ < caller
        )


def to_json(value: Any) -> Any:
    """The JSON form a field takes inside events and read models."""
    if value is None or type(value) in (int, str):
        return value
    if isinstance(value, ResourceSlot | VFolderHostPermissionMap):
        return value.to_json()
    if isinstance(value, DefaultForUnspecified):
        return value.name
    return value


class KeyPairResourcePolicyCreator(LedgerModel):
    name: NewEntityName
    default_for_unspecified: Annotated[DefaultForUnspecified, field_of(parse_default_for_unspecified)] = (
        DefaultForUnspecified.LIMITED
    )
    total_resource_slots: Slots = ResourceSlot()
    max_session_lifetime: NullableNonNegativeInt = 0
    max_concurrent_sessions: NonNegativeInt = 30
    max_pending_session_count: NullableNonNegativeInt = None
    max_pending_session_resource_slots: NullableSlots = None
    max_concurrent_sftp_sessions: NonNegativeInt = 1
    max_containers_per_session: PositiveInt = 1
    idle_timeout: NullableNonNegativeInt = 1800
    allowed_vfolder_hosts: VFolderHosts = VFolderHostPermissionMap()
    max_vfolder_count: NullableNonNegativeInt = None
    max_vfolder_size: NullableNonNegativeInt = None
    max_quota_scope_size: NullableNonNegativeInt = None
    # The policy whose slot limits apply where this one lists none (see REFERENCE: seed 001's
    # policy priority and its circular-reference case). Fallbacks do not chain.
    fallback_policy: Annotated[str | None, field_of(nullable(parse_name))] = None

    def deprecated_given(self) -> list[str]:
        return [f for f in DEPRECATED_FIELDS if getattr(self, f) is not None]

    def after_init(self) -> None:
        _warn_deprecated(self.deprecated_given())

    def fields_json(self) -> dict[str, Any]:
        return {f: to_json(getattr(self, f)) for f in POLICY_FIELDS}


POLICY_FIELDS: tuple[str, ...] = tuple(f for f in KeyPairResourcePolicyCreator.model_fields if f != "name")


def _opt(parse: Any) -> Any:
    return optional_state_of(parse)


class KeyPairResourcePolicyModifier(Modifier):
    """Every field is left alone unless given; plain values mean update, None means null.

    `max_session_lifetime`, `idle_timeout` and the two pending fields can be nullified
    (unlimited); so can the deprecated fields.

    The two slot maps can also be patched: `total_resource_slots_patch` and
    `max_pending_session_resource_slots_patch` (see domain.slot_patch) change the slots
    they name and keep the others, merged into the stored map by the service when it
    decides (a null pending map counts as empty). A patch and its map's replacement
    (or nullification) cannot both be given.
    """

    default_for_unspecified: Annotated[OptionalState[DefaultForUnspecified], _opt(parse_default_for_unspecified)] = (
        OptionalState.nop()
    )
    total_resource_slots: Annotated[OptionalState[ResourceSlot], _opt(parse_slots)] = OptionalState.nop()
    max_session_lifetime: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    max_concurrent_sessions: Annotated[OptionalState[int], _opt(parse_int)] = OptionalState.nop()
    max_pending_session_count: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    max_pending_session_resource_slots: Annotated[TriState[ResourceSlot], tri_state_of(parse_slots)] = TriState.nop()
    max_concurrent_sftp_sessions: Annotated[OptionalState[int], _opt(parse_int)] = OptionalState.nop()
    max_containers_per_session: Annotated[OptionalState[int], _opt(parse_positive_int)] = OptionalState.nop()
    idle_timeout: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    allowed_vfolder_hosts: Annotated[OptionalState[VFolderHostPermissionMap], _opt(parse_hosts)] = OptionalState.nop()
    max_vfolder_count: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    max_vfolder_size: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    max_quota_scope_size: Annotated[TriState[int], tri_state_of(parse_int)] = TriState.nop()
    fallback_policy: Annotated[TriState[str], tri_state_of(parse_name)] = TriState.nop()
    total_resource_slots_patch: Annotated[OptionalState[SlotPatch], _opt(parse_slot_patch)] = OptionalState.nop()
    max_pending_session_resource_slots_patch: Annotated[OptionalState[SlotPatch], _opt(parse_slot_patch)] = (
        OptionalState.nop()
    )

    FIELDS = POLICY_FIELDS
    SLOT_PATCHES = {
        "total_resource_slots_patch": "total_resource_slots",
        "max_pending_session_resource_slots_patch": "max_pending_session_resource_slots",
    }

    def deprecated_given(self) -> list[str]:
        return [f for f in DEPRECATED_FIELDS if not getattr(self, f).is_nop()]

    def after_init(self) -> None:
        super().after_init()
        _warn_deprecated(self.deprecated_given())

    @staticmethod
    def field_json(name: str, value: Any) -> Any:
        return to_json(value)


@dataclass(frozen=True)
class KeyPairResourcePolicyData:
    name: str
    created_at: datetime
    default_for_unspecified: DefaultForUnspecified
    total_resource_slots: ResourceSlot
    max_session_lifetime: int | None
    max_concurrent_sessions: int
    max_pending_session_count: int | None
    max_pending_session_resource_slots: ResourceSlot | None
    max_concurrent_sftp_sessions: int
    max_containers_per_session: int
    idle_timeout: int | None
    allowed_vfolder_hosts: VFolderHostPermissionMap
    max_vfolder_count: int | None
    max_vfolder_size: int | None
    max_quota_scope_size: int | None
    fallback_policy: str | None = None

    @classmethod
    def from_fields(cls, name: str, created_at: datetime, fields: dict[str, Any]) -> KeyPairResourcePolicyData:
        pending = fields.get("max_pending_session_resource_slots")
        return cls(
            name=name,
            created_at=created_at,
            default_for_unspecified=DefaultForUnspecified[fields["default_for_unspecified"]],
            total_resource_slots=ResourceSlot.from_json(fields["total_resource_slots"]),
            max_session_lifetime=fields.get("max_session_lifetime"),
            max_concurrent_sessions=fields["max_concurrent_sessions"],
            max_pending_session_count=fields.get("max_pending_session_count"),
            max_pending_session_resource_slots=None if pending is None else ResourceSlot.from_json(pending),
            max_concurrent_sftp_sessions=fields["max_concurrent_sftp_sessions"],
            max_containers_per_session=fields["max_containers_per_session"],
            idle_timeout=fields.get("idle_timeout"),
            allowed_vfolder_hosts=VFolderHostPermissionMap.from_json(fields["allowed_vfolder_hosts"]),
            max_vfolder_count=fields.get("max_vfolder_count"),
            max_vfolder_size=fields.get("max_vfolder_size"),
            max_quota_scope_size=fields.get("max_quota_scope_size"),
            fallback_policy=fields.get("fallback_policy"),
        )

    def fields_json(self) -> dict[str, Any]:
        return {f: to_json(getattr(self, f)) for f in POLICY_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at.isoformat(), **self.fields_json()}
