"""Operators' interventions on read models: stepping a stalled projection over one event."""

from domain.projection_ops.actions import SkipProjectionEventAction, SkipProjectionEventActionResult
from domain.projection_ops.aggregate import ProjectionOps
from domain.projection_ops.service import ProjectionOpsService, StalledProjections
from domain.projection_ops.types import SkippedEvent, Stall

__all__ = [
    "ProjectionOps",
    "ProjectionOpsService",
    "SkipProjectionEventAction",
    "SkipProjectionEventActionResult",
    "SkippedEvent",
    "Stall",
    "StalledProjections",
]
