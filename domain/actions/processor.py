"""The action processor: validators, monitors, then the service method.

Monitors' `prepare` runs in order before the service and `done` in reverse order after
it, in a `finally`; a failing monitor is logged and never fails the action.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from domain.actions.base import ActionTriggerMeta, BaseAction, BaseActionResult
from domain.actions.context import ActionContext, action_context

log = logging.getLogger(__name__)

ActionT = TypeVar("ActionT", bound=BaseAction)
ResultT = TypeVar("ResultT", bound=BaseActionResult)


@dataclass
class ProcessResult:
    """What monitors see once an action has ended, however it ended."""

    context: ActionContext
    action: BaseAction
    started_at: datetime
    ended_at: datetime | None = None
    duration: float = 0.0
    result: BaseActionResult | None = None
    error: BaseException | None = None
    extra: dict[str, object] = field(default_factory=dict)


class ActionValidator(Protocol):
    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None: ...


class ActionMonitor(Protocol):
    async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None: ...

    async def done(self, action: BaseAction, result: ProcessResult) -> None: ...


class ActionProcessor(Generic[ActionT, ResultT]):
    def __init__(
        self,
        func: Callable[[ActionT], Awaitable[ResultT]],
        validators: Sequence[ActionValidator] = (),
        monitors: Sequence[ActionMonitor] = (),
    ) -> None:
        self._func = func
        self._validators = list(validators)
        self._monitors = list(monitors)

    async def wait_for_complete(self, action: ActionT, meta: ActionTriggerMeta) -> ResultT:
        with action_context(meta, action.entity_type(), action.operation_type()) as ctx:
            process = ProcessResult(context=ctx, action=action, started_at=datetime.now(UTC))
            began = time.perf_counter()
            try:
                for validator in self._validators:
                    await validator.validate(action, meta)
                for monitor in self._monitors:
                    await _quietly(monitor.prepare(action, meta), monitor, "prepare")
                process.result = await self._func(action)
                return process.result
            except BaseException as exc:
                process.error = exc
                raise
            finally:
                process.duration = time.perf_counter() - began
                process.ended_at = datetime.now(UTC)
                for monitor in reversed(self._monitors):
                    await _quietly(monitor.done(action, process), monitor, "done")


async def _quietly(step: Awaitable[None], monitor: object, stage: str) -> None:
    try:
        await step
    except Exception:
        log.exception("action monitor %s failed in %s", type(monitor).__name__, stage)
