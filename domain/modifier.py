"""The base of the entities' modifiers (keypair resource policy, domain, group, user).

A modifier's fields are states (`OptionalState` / `TriState`): a field left alone (nop)
is not changed, any other becomes the new stored value. A subclass names the stored
fields it may replace (`FIELDS`, in the order events list them), the slot maps it may
patch (`SLOT_PATCHES`: patch field -> the map it patches, see domain.slot_patch), and
how one value is stored (`field_json`); the rest is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from domain.slot_patch import check_patches, patched_fields
from domain.validation import LedgerModel, jsonable


class Modifier(LedgerModel):
    FIELDS: ClassVar[tuple[str, ...]] = ()
    SLOT_PATCHES: ClassVar[Mapping[str, str]] = {}

    def after_init(self) -> None:
        check_patches(self, self.SLOT_PATCHES)

    @staticmethod
    def field_json(name: str, value: Any) -> Any:
        """The JSON form field `name` is stored in (events and read models)."""
        return jsonable(value)

    def fields_json(self) -> dict[str, Any]:
        """The fields this modifier replaces, in their JSON form (patches left out: they
        need the stored fields, see `wanted_fields`)."""
        wanted = {}
        for name in self.FIELDS:
            state = getattr(self, name)
            if not state.is_nop():
                wanted[name] = self.field_json(name, state.value())
        return wanted

    def wanted_fields(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """What `fields_json` gives, plus each patched slot map merged into `current` (the
        stored fields). Called inside load-decide-save, so a patch merges into the latest
        map (a version conflict retries it on the newer one)."""
        return {**self.fields_json(), **patched_fields(self, self.SLOT_PATCHES, current)}
