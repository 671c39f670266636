"""The race helper itself: a command that hangs fails the test, it is not read as success."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from tests.races import StillRunning, decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit


class App:
    """Enough of an application for `decide_together`: a save it can wrap."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save(self, name: str) -> None:
        self.saved.append(name)


def ledger() -> Any:
    return SimpleNamespace(app=App())


def test_commands_that_finish_return_their_outcomes_and_save_in_order() -> None:
    fake = ledger()
    failure = ValueError("refused")

    def refuse() -> None:
        fake.app.save("b")
        raise failure

    outcomes = decide_together(fake, [lambda: fake.app.save("a"), refuse], order=[1, 0])
    assert outcomes == [None, failure]
    assert fake.app.saved == ["b", "a"]
    assert "save" not in vars(fake.app)  # the wrapper is gone


def test_a_command_still_running_after_the_timeout_fails_loudly() -> None:
    fake, release = ledger(), threading.Event()

    def hang() -> None:
        release.wait(30)  # decides forever, never saves

    try:
        with pytest.raises(StillRunning, match=r"commands \[1\] of 2 still running 0.5 s"):
            decide_together(fake, [lambda: None, hang], timeout=0.5)
    finally:
        release.set()
    assert "save" not in vars(fake.app)
