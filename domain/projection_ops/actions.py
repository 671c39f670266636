"""Actions on read models: skipping the event a projection is stalled on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.actions import BaseAction, BaseActionResult
from domain.catalog import EntityType
from domain.parsers import parse_projection_name, parse_reason
from domain.validation import PositiveInt, field_of


class SkipProjectionEventAction(BaseAction):
    """Step the read model `projection` (its name as `projections status` shows it) over the
    event at `position`, the one it is stalled on; `reason` is kept in the audit trail."""

    projection: Annotated[str, field_of(parse_projection_name)]
    position: PositiveInt
    reason: Annotated[str, field_of(parse_reason)]

    @classmethod
    def entity_type(cls) -> str:
        return EntityType.PROJECTION

    @classmethod
    def operation_type(cls) -> str:
        return "skip"

    def entity_id(self) -> str | None:
        return self.projection


@dataclass(frozen=True)
class SkipProjectionEventActionResult(BaseActionResult):
    projection: str
    version: int
    position: int
    cause: str  # what the handler raised on the skipped event

    def entity_id(self) -> str | None:
        return self.projection
