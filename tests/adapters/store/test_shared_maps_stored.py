"""Aggregates that keep a SharedMap, through the store: a cached copy shares the map, a
change on one copy never shows in another, and a snapshot stores a plain object that a
cold read turns back into the same entries (both backends)."""

from __future__ import annotations

import asyncio
import uuid

from adapters.bootstrap import open_ledger
from adapters.store.application import SNAPSHOT_INTERVAL
from domain.group import Group
from domain.sharedmap import SharedMap
from tests.adapters.groups import create_group, kernel_action, terminate_kernel


def test_a_group_copy_shares_its_kernels_and_a_change_shows_in_that_copy_only(ledger_url):
    kernels = [uuid.UUID(int=i + 1) for i in range(SNAPSHOT_INTERVAL + 50)]
    with open_ledger(ledger_url) as ledger:
        group_id = create_group(ledger, "g").id
        # Past the snapshot interval: the group is read back from a snapshot below.
        for first in range(0, len(kernels), 50):
            batch = [kernel_action(group_id, k) for k in kernels[first : first + 50]]
            asyncio.run(ledger.services.workload.record_batch(batch))
        terminate_kernel(ledger, kernels[0])
        stored = ledger.app.get(group_id, Group)
        assert isinstance(stored, Group) and isinstance(stored.kernels, SharedMap)
        twin = stored.clone()
        assert twin.kernels is stored.kernels  # shared, not copied
        twin.end_kernel(str(kernels[1]))
        assert str(kernels[1]) not in twin.kernels and str(kernels[1]) in stored.kernels
        assert len(stored.kernels) == SNAPSHOT_INTERVAL + 49
    with open_ledger(ledger_url) as reopened:  # a cold read: the snapshot, then the events after it
        group_again = reopened.app.repository.get(group_id)
        assert dict(group_again.kernels) == dict(stored.kernels)
        assert reopened.app.snapshots is not None
        (snapshot,) = list(reopened.app.snapshots.get(group_id, desc=True, limit=1))
        assert type(snapshot.state["kernels"]) is dict  # stored as the plain object it reads back as
        assert len(snapshot.state["kernels"]) == SNAPSHOT_INTERVAL  # the 100th event: 100 started, none ended
