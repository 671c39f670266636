"""A bulk import (WorkloadService.record_batch) runs with the cyclic garbage collector
paused, and leaves it as it found it: on, or off when the process had turned it off."""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import LedgerError
from domain.group import CreateGroupAction
from domain.workload import StartKernelAction, TerminateKernelAction
from domain.workload import service as workload_service
from domain.workload.service import PAUSE_COLLECTION_FROM, collection_paused

T0 = datetime(2024, 10, 1, tzinfo=UTC)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def start(group_id: uuid.UUID, i: int) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=uuid.UUID(int=i + 1),
        session_id=uuid.UUID(int=i + 1),
        session_name=f"s{i}",
        group_id=group_id,
        domain_name="default",
        user_id=group_id,
        access_key="AKBULK",
        occupied_slots={"cpu": "1"},
        started_at=T0 + timedelta(minutes=i),
    )


def group(ledger: Ledger) -> uuid.UUID:
    created = asyncio.run(
        ledger.services.group.create_group(CreateGroupAction(input={"name": "bulk", "domain_name": "default"}))
    )
    group_id: uuid.UUID = created.data.id
    return group_id


def watch_collector(monkeypatch: pytest.MonkeyPatch, action_class: type) -> list[bool]:
    """Whether the collector was on, each time a fact of `action_class` was applied."""
    seen: list[bool] = []
    handler = workload_service._HANDLERS[action_class]

    def watched(facts: Any, action: Any) -> Any:
        seen.append(gc.isenabled())
        return handler(facts, action)

    monkeypatch.setitem(workload_service._HANDLERS, action_class, watched)
    return seen


@pytest.mark.usefixtures("collector_on")
def test_a_large_batch_runs_with_the_collector_paused(memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    group_id = group(memory_ledger)
    seen = watch_collector(monkeypatch, StartKernelAction)
    actions: list[Any] = [start(group_id, i) for i in range(PAUSE_COLLECTION_FROM)]
    actions += [
        TerminateKernelAction(kernel_id=uuid.UUID(int=i + 1), terminated_at=T0 + timedelta(days=1)) for i in range(3)
    ]
    assert asyncio.run(memory_ledger.services.workload.record_batch(actions)) == len(actions)
    assert seen == [False] * PAUSE_COLLECTION_FROM
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_small_batch_leaves_the_collector_alone(memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    group_id = group(memory_ledger)
    seen = watch_collector(monkeypatch, StartKernelAction)
    asyncio.run(memory_ledger.services.workload.record_batch([start(group_id, 0), start(group_id, 1)]))
    assert seen == [True, True]


@pytest.mark.usefixtures("collector_on")
def test_a_refused_batch_turns_the_collector_back_on(memory_ledger: Ledger) -> None:
    group_id = group(memory_ledger)
    actions = [start(group_id, i) for i in range(PAUSE_COLLECTION_FROM)]
    actions.append(start(uuid.UUID(int=99), PAUSE_COLLECTION_FROM))  # a group that does not exist
    with pytest.raises(LedgerError):
        asyncio.run(memory_ledger.services.workload.record_batch(actions))
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_concurrent_pauses_end_with_the_last() -> None:
    first_in, first_may_leave = threading.Event(), threading.Event()
    inside: list[bool] = []

    def first() -> None:
        with collection_paused():
            first_in.set()
            first_may_leave.wait(10)
            inside.append(gc.isenabled())

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(10)
    with collection_paused():
        pass
    inside.append(gc.isenabled())  # the first is still inside: still paused
    first_may_leave.set()
    thread.join(10)
    assert inside == [False, False]
    assert gc.isenabled()


def test_a_process_that_turned_the_collector_off_keeps_it_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("collector_on")
def test_an_error_inside_a_pause_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("refused")
    assert gc.isenabled()
