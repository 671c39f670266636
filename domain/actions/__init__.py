"""Action framework: actions, results, trigger meta, context and the processor."""

from domain.actions.base import ActionTriggerMeta, BaseAction, BaseActionResult, Role
from domain.actions.context import ActionContext, action_context, current_context
from domain.actions.processor import ActionMonitor, ActionProcessor, ActionValidator, ProcessResult

__all__ = [
    "ActionContext",
    "ActionMonitor",
    "ActionProcessor",
    "ActionTriggerMeta",
    "ActionValidator",
    "BaseAction",
    "BaseActionResult",
    "ProcessResult",
    "Role",
    "action_context",
    "current_context",
]
