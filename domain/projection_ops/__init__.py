"""Operators' interventions on read models: stepping a stalled projection over one event."""

from domain.projection_ops.actions import (
    ENTITY_TYPE,
    SkipProjectionEventAction,
    SkipProjectionEventActionResult,
)
from domain.projection_ops.aggregate import ProjectionOps, SkippedEvent
from domain.projection_ops.service import ProjectionOpsService, Stall, StalledProjections

__all__ = [
    "ENTITY_TYPE",
    "ProjectionOps",
    "ProjectionOpsService",
    "SkipProjectionEventAction",
    "SkipProjectionEventActionResult",
    "SkippedEvent",
    "Stall",
    "StalledProjections",
]
