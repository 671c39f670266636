"""The action processor: validators, monitors, then the service method.

In seed 004's order: monitors' `prepare` in order, then the validators, the service, and
monitors' `done` in reverse order in a `finally`, so every action, denied ones too, is
prepared and then done by every monitor; a failing monitor is logged and never fails the
action. A validator's refusal (`InsufficientPermission`) ends the action as `denied`
before the service runs; a validator that fails otherwise ends it as an `error`.

While the service runs, `running_action()` names the action: the store appends its
success record in the same transaction as its events (issue 15), so an action's events
never exist without their record, and `ProcessResult.recorded` tells the audit monitor.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from domain.actions.base import ActionResultMeta, ActionStatus, ActionTriggerMeta, BaseAction, BaseActionResult
from domain.actions.context import ActionContext, action_context
from domain.errors import InsufficientPermission, InvalidAPIParameters, LedgerError, ReadModelStalled, cause_kind

log = logging.getLogger(__name__)

ActionT = TypeVar("ActionT", bound=BaseAction)
ResultT = TypeVar("ResultT", bound=BaseActionResult)


@dataclass(frozen=True)
class ProcessResult:
    """What monitors see once an action has ended, however it ended."""

    context: ActionContext
    trigger: ActionTriggerMeta
    meta: ActionResultMeta
    result: BaseActionResult | None = None
    error: BaseException | None = None
    recorded: bool = False  # its success record was appended with its events


@dataclass
class RunningAction:
    """The action whose service is running in this context, for the store to record its
    success in the append that stores its events."""

    action: BaseAction
    trigger: ActionTriggerMeta
    context: ActionContext
    started_at: datetime
    began: float
    recorded: bool = False

    def ended(self, status: ActionStatus, entity_id: str | None, error: BaseException | None) -> ActionResultMeta:
        """How the action ended, now."""
        return ActionResultMeta(
            action_id=self.context.action_id,
            entity_type=self.action.entity_type(),
            operation=self.action.operation_type(),
            entity_id=entity_id,
            status=status,
            description=_describe(status, error),
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            duration=time.perf_counter() - self.began,
            error_code=_error_code(error),
        )

    def success(self, entity_id: str | None) -> ActionResultMeta:
        """How the action ends if the append under way commits."""
        return self.ended(ActionStatus.SUCCESS, entity_id, None)


_running: ContextVar[RunningAction | None] = ContextVar("ledger_running_action", default=None)


def running_action() -> RunningAction | None:
    return _running.get()


class ActionValidator(Protocol):
    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        """Raises (an `InsufficientPermission`, say) to refuse the action."""


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
        # Read on first use: a ledger makes ~35 processors, and a CLI command runs one.
        self._accepts: type | None = None

    def _check(self, action: object, meta: object) -> None:
        """An in-process caller's wrong objects are refused before anything runs or is
        recorded (there is no action to record): else they fail deep inside as whatever
        attribute they lack, and the audit monitor fails with them."""
        if not isinstance(meta, ActionTriggerMeta):
            raise InvalidAPIParameters(f"must be an ActionTriggerMeta, not {type(meta).__name__}", field="meta")
        if self._accepts is None:
            self._accepts = action_class(self._func)
        require_action(action, self._accepts)

    async def wait_for_complete(self, action: ActionT, meta: ActionTriggerMeta) -> ResultT:
        self._check(action, meta)
        with action_context(meta, action.entity_type(), action.operation_type()) as ctx:
            running = RunningAction(action, meta, ctx, datetime.now(UTC), time.perf_counter())
            result: ResultT | None = None
            error: BaseException | None = None
            status = ActionStatus.DENIED
            try:
                for monitor in self._monitors:
                    await _quietly(monitor.prepare(action, meta), monitor, "prepare", ctx.action_id)
                for validator in self._validators:
                    await validator.validate(action, meta)
                status = ActionStatus.RUNNING
                token = _running.set(running)
                try:
                    result = await self._func(action)
                finally:
                    _running.reset(token)
                status = ActionStatus.SUCCESS
                return result
            except BaseException as exc:
                error = exc
                # Denied only when a validator refused: one that failed to decide (its
                # store lookup unreachable, a bug) is an error like the service's own.
                if status is ActionStatus.RUNNING or not isinstance(exc, InsufficientPermission):
                    status = ActionStatus.ERROR
                raise
            finally:
                ended = running.ended(status, _entity_id(action, result), error)
                process = ProcessResult(ctx, meta, ended, result, error, recorded=running.recorded)
                for monitor in reversed(self._monitors):
                    await _quietly(monitor.done(action, process), monitor, "done", ctx.action_id)


def action_class(func: Callable[..., object]) -> type:
    """The action class a service method declares for its one argument (BaseAction when
    it declares none that resolves)."""
    parameters = [name for name in inspect.signature(func).parameters if name != "self"]
    try:
        declared = typing.get_type_hints(func).get(parameters[0]) if parameters else None
    except NameError:  # an annotation that names what its module does not import
        declared = None
    return declared if isinstance(declared, type) and issubclass(declared, BaseAction) else BaseAction


def require_action(action: object, accepted: type) -> None:
    if not isinstance(action, accepted):
        raise InvalidAPIParameters(f"must be a {accepted.__name__}, not {type(action).__name__}", field="action")


ServiceMethod = TypeVar("ServiceMethod", bound=Callable[..., Awaitable[object]])


def takes_action(method: ServiceMethod) -> ServiceMethod:
    """A service method called directly (the services are public, beside the processors)
    refuses an object that is not its declared action, naming `action`, instead of failing
    on the first attribute it lacks. Its class is read on first use."""
    accepted: type | None = None

    @functools.wraps(method)
    async def call(self: object, action: object) -> object:
        nonlocal accepted
        if accepted is None:
            accepted = action_class(method)
        require_action(action, accepted)
        return await method(self, action)

    return typing.cast(ServiceMethod, call)


def _entity_id(action: BaseAction, result: BaseActionResult | None) -> str | None:
    # The result knows ids the ledger chose (a new group's); the action knows the rest.
    return (result.entity_id() if result is not None else None) or action.entity_id()


def _describe(status: ActionStatus, error: BaseException | None) -> str:
    if error is None:
        return status.value
    if isinstance(error, ReadModelStalled) and error.cause:
        # Kept for good in the audit trail, where no skip's sealing nor erasure reaches: the
        # stall's cause (a handler's error, which may quote the event's values) as its kind.
        return error.message.replace(error.cause, cause_kind(error.cause), 1)
    if isinstance(error, LedgerError):
        return error.message
    return f"{type(error).__name__}: {error}"


def _error_code(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return error.code if isinstance(error, LedgerError) else "ledger_internal"


async def _quietly(step: Awaitable[None], monitor: object, stage: str, action_id: str) -> None:
    """Runs one monitor step; its failure is logged, never raised. A warning, not an error:
    the action's own outcome stands (and is what a caller reports), while the log says what
    is missing from its side effects (an audit record, a metric). The exception rides on the
    record (exc_info), so the handler decides between one line and a traceback."""
    try:
        await step
    except Exception:
        log.warning(
            "action monitor %s failed in %s of action %s", type(monitor).__name__, stage, action_id, exc_info=True
        )
