"""Aggregates that keep a SharedMap, through the store: a cached copy shares the map, a
change on one copy never shows in another, and a snapshot stores a plain object that a
cold read turns back into the same entries (both backends)."""

from __future__ import annotations

import asyncio
import uuid

from adapters.bootstrap import open_ledger
from adapters.store.application import SNAPSHOT_INTERVAL
from domain.group import CreateGroupAction, Group
from domain.sharedmap import SharedMap
from domain.workload import StartKernelAction, TerminateKernelAction
from tests.conftest import SUPERADMIN


def _start(group_id: uuid.UUID, i: int) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=uuid.UUID(int=i + 1),
        session_id=uuid.UUID(int=i + 1),
        session_name=f"s{i}",
        group_id=group_id,
        domain_name="default",
        user_id=group_id,
        access_key="AKSHARED",
        occupied_slots={"cpu": "1"},
        started_at="2024-10-01T00:00:00+00:00",
    )


def test_a_group_copy_shares_its_kernels_and_a_change_shows_in_that_copy_only(ledger_url):
    with open_ledger(ledger_url) as ledger:
        loop = asyncio.new_event_loop()
        group = ledger.processors.group.create_group
        created = loop.run_until_complete(
            group.wait_for_complete(CreateGroupAction(input={"name": "g", "domain_name": "default"}), SUPERADMIN)
        )
        group_id = created.data.id
        workload = ledger.services.workload
        # Past the snapshot interval: the group is read back from a snapshot below.
        for first in range(0, SNAPSHOT_INTERVAL + 50, 50):
            loop.run_until_complete(workload.record_batch([_start(group_id, i) for i in range(first, first + 50)]))
        loop.run_until_complete(
            workload.terminate_kernel(
                TerminateKernelAction(kernel_id=uuid.UUID(int=1), terminated_at="2024-10-01T01:00:00+00:00")
            )
        )
        stored = ledger.app.get(group_id, Group)
        assert isinstance(stored, Group) and isinstance(stored.kernels, SharedMap)
        twin = stored.clone()
        assert twin.kernels is stored.kernels  # shared, not copied
        twin.end_kernel(str(uuid.UUID(int=2)))
        assert str(uuid.UUID(int=2)) not in twin.kernels and str(uuid.UUID(int=2)) in stored.kernels
        assert len(stored.kernels) == SNAPSHOT_INTERVAL + 49
        loop.close()
    with open_ledger(ledger_url) as reopened:  # a cold read: the snapshot, then the events after it
        group_again = reopened.app.repository.get(group_id)
        assert dict(group_again.kernels) == dict(stored.kernels)
        assert reopened.app.snapshots is not None
        (snapshot,) = list(reopened.app.snapshots.get(group_id, desc=True, limit=1))
        assert type(snapshot.state["kernels"]) is dict  # stored as the plain object it reads back as
        assert len(snapshot.state["kernels"]) == SNAPSHOT_INTERVAL  # the 100th event: 100 started, none ended
