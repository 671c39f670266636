"""`State.run`, which every CLI command that acts goes through: the action's result is
returned as is and never turned into text on the way (asyncio.run, on CPython 3.11,
formats repr(task) with its result when it restores its SIGINT handler: seconds for a
large report)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from adapters.cli.app import State
from domain.actions import ActionTriggerMeta
from domain.group import UsagePerMonthAction

META = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")


class Watched:
    """A result that counts how often it is shown."""

    shown = 0

    def __repr__(self) -> str:
        Watched.shown += 1
        return "Watched()"


class Processor:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.seen: list[Any] = []

    async def wait_for_complete(self, action: Any, meta: ActionTriggerMeta) -> Any:
        self.seen.append((action, meta))
        return self.result


def test_the_result_comes_back_unshown_and_the_sigint_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a console script's main thread
    try:
        result = Watched()
        processor = Processor(result)
        action = UsagePerMonthAction(month="202401")
        state = State(db=None, as_json=False, meta=META)
        assert state.run(processor, action) is result  # type: ignore[arg-type]
        assert processor.seen == [(action, META)]
        assert Watched.shown == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


class InterruptedProcessor(Processor):
    """Ctrl-C lands while the action runs (say, waiting out another process's write lock),
    and the action goes on to complete: committed and audited."""

    async def wait_for_complete(self, action: Any, meta: ActionTriggerMeta) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return await super().wait_for_complete(action, meta)


def test_an_action_that_completed_under_ctrl_c_returns_its_result() -> None:
    """asyncio.run answers Ctrl-C by cancelling its task, which lands only once the action
    (synchronous underneath) has returned: its result was dropped and the command said
    `interrupted` (before that, nothing, exit 130) of a policy it had created."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a console script's main thread
    try:
        result = Watched()
        state = State(db=None, as_json=False, meta=META)
        try:
            returned = state.run(InterruptedProcessor(result), UsagePerMonthAction(month="202401"))  # type: ignore[arg-type]
        except KeyboardInterrupt:  # (as such it would stop the test session, not fail the test)
            pytest.fail("the result of an action that completed was dropped for the interrupt")
        assert returned is result
        with pytest.raises(KeyboardInterrupt):  # but a command of several actions stops before its next
            state.run(Processor(result), UsagePerMonthAction(month="202401"))  # type: ignore[arg-type]
        state = State(db=None, as_json=False, meta=META)

        class Refused(InterruptedProcessor):
            async def wait_for_complete(self, action: Any, meta: ActionTriggerMeta) -> Any:
                os.kill(os.getpid(), signal.SIGINT)
                raise KeyboardInterrupt  # stopped before it completed: the interrupt stands

        with pytest.raises(KeyboardInterrupt):
            state.run(Refused(result), UsagePerMonthAction(month="202401"))  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGINT, before)
