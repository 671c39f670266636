"""`State.run`, which every CLI command that acts goes through: the action's result is
returned as is and never turned into text on the way (asyncio.run, on CPython 3.11,
formats repr(task) with its result when it restores its SIGINT handler: seconds for a
large report)."""

from __future__ import annotations

import signal
from typing import Any

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
