"""Slot patches: change some slots of a stored slot map and keep the others.

A modifier that replaces a whole slot map makes a caller who wants to change one slot
read the map first and send it back merged, so a change made by someone else in between
is lost. A patch is merged into the stored map inside the service's load-decide-save
instead: a version conflict retries the merge on the newer map, so two patches of
different slots both survive.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.errors import InvalidAPIParameters
from domain.frozen import FrozenMapping
from domain.shown import shown
from domain.slots import KNOWN_SLOTS, SLOT_ALIASES, ResourceSlot
from domain.values import OptionalState


class SlotPatch(FrozenMapping[Decimal | None]):
    """Known slot names (aliases resolved) to a new quantity, or to None: remove the slot
    from the map (a slot a map does not list is not limited by it, which is not the same
    as any quantity). Its JSON form, what the audit records, is the patch itself."""

    __slots__ = ()

    def to_json(self) -> dict[str, str | None]:
        kept = ResourceSlot({k: v for k, v in self._data.items() if v is not None}).to_json()
        return {k: kept.get(k) for k in sorted(self._data)}

    def apply(self, current: Mapping[str, str] | None, field: str) -> dict[str, str]:
        """The JSON form of `current` (a stored map; None counts as empty) with this patch
        applied, validated as a whole exactly as a replacement named `field` would be."""
        merged = dict(current or {})
        for name, quantity in ResourceSlot({k: v for k, v in self._data.items() if v is not None}).to_json().items():
            merged[name] = quantity
        for name in (k for k, v in self._data.items() if v is None):
            merged.pop(name, None)
        try:
            return ResourceSlot.from_user_input(merged, field).to_json()
        except InvalidAPIParameters as exc:
            raise InvalidAPIParameters(f"the patched map is invalid: {exc.reason}", field=exc.field) from None


def parse_slot_patch(raw: Any, field: str) -> SlotPatch:
    """`{"cpu": "16", "gpu": None}`: each quantity parsed as in a slot limit map (`inf`
    allowed); None removes the slot. Unknown names are refused, as is a slot given twice
    (directly and as an alias). An empty patch is allowed and changes nothing."""
    if isinstance(raw, SlotPatch):
        # Built directly, it was never parsed: its items are checked like input (its JSON
        # form cannot be written before they are: an int or a text broke it).
        raw = dict(raw.items())
    if not isinstance(raw, Mapping):
        raise InvalidAPIParameters("expected a mapping of slot names to quantities (null removes a slot)", field=field)
    quantities = ResourceSlot.from_user_input({k: v for k, v in raw.items() if v is not None}, field)
    patch: dict[str, Decimal | None] = dict(quantities)
    known = KNOWN_SLOTS.loaded()
    for key in (k for k, v in raw.items() if v is None):
        name = SLOT_ALIASES.get(key, key) if isinstance(key, str) else key
        label = key if isinstance(key, str) and len(key) <= 40 else shown(key)
        if not isinstance(name, str) or name not in known:
            raise InvalidAPIParameters(f"unknown slot {shown(key)}", field=f"{field}.{label}")
        if name in patch:
            raise InvalidAPIParameters(
                f"slot {name!r} given twice (directly and as an alias)", field=f"{field}.{label}"
            )
        patch[name] = None
    return SlotPatch(patch)


def check_patches(modifier: Any, patches: Mapping[str, str]) -> None:
    """A map is either replaced or patched by one modifier, never both."""
    for patch, target in patches.items():
        if not getattr(modifier, patch).is_nop() and not getattr(modifier, target).is_nop():
            raise InvalidAPIParameters(
                f"give either {target} (the whole map) or {patch} (some slots), not both", field=patch
            )


def patched_fields(modifier: Any, patches: Mapping[str, str], current: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of every map a patch of `modifier` names, merged into `current`."""
    merged: dict[str, Any] = {}
    for patch, target in patches.items():
        state: OptionalState[SlotPatch] = getattr(modifier, patch)
        if not state.is_nop():
            merged[target] = state.value().apply(current.get(target), target)
    return merged
