"""Action framework: actions, results, trigger meta, context and the processor."""

from domain.actions.base import (
    ActionResultMeta,
    ActionStatus,
    ActionTriggerMeta,
    BaseAction,
    BaseActionResult,
    BaseBatchAction,
    BaseScopeAction,
    Role,
)
from domain.actions.context import ActionContext, action_context, current_context
from domain.actions.processor import (
    ActionMonitor,
    ActionProcessor,
    ActionValidator,
    ProcessResult,
    RunningAction,
    running_action,
    takes_action,
)

__all__ = [
    "ActionContext",
    "ActionMonitor",
    "ActionProcessor",
    "ActionResultMeta",
    "ActionStatus",
    "ActionTriggerMeta",
    "ActionValidator",
    "BaseAction",
    "BaseActionResult",
    "BaseBatchAction",
    "BaseScopeAction",
    "ProcessResult",
    "Role",
    "RunningAction",
    "action_context",
    "current_context",
    "running_action",
    "takes_action",
]
