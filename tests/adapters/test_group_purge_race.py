"""Purge against concurrent new workload: never both succeed (DESIGN.md, Consistency).

The lock-step races make both commands decide on the same state and then let the store
order their saves, in a chosen order, so every outcome is checked deterministically.
The free-running race starts many threads at once and checks the invariant only.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import GroupNotFound
from domain.group import Group, PurgeGroupAction
from domain.workload import CreateEndpointAction, CreateVFolderAction, Endpoint, Kernel, VFolder
from tests.adapters.groups import (
    PURGE_ERRORS,
    create_group,
    create_vfolder,
    events,
    kernel_action,
    stores_nothing,
)
from tests.races import Command, all_at_once, decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit


def purge(ledger: Ledger, group_id: uuid.UUID) -> Command:
    return lambda: asyncio.run(ledger.services.group.purge_group(PurgeGroupAction(group_id=group_id)))


def batch(ledger: Ledger, actions: list[Any]) -> Command:
    return lambda: asyncio.run(ledger.services.workload.record_batch(actions))


def stored(ledger: Ledger, cls: type[Any], entity_id: uuid.UUID) -> Any:
    return ledger.app.get(cls.id_for(str(entity_id)), cls)


def stored_group(ledger: Ledger, group_id: uuid.UUID) -> Group:
    group = ledger.app.get(group_id, Group)
    assert group is not None
    return group


# Each race: the new workload (as a batch of facts), what it leaves in the store, and the
# purge error it causes when it lands first.


def _kernel(group_id: uuid.UUID, vfolder: uuid.UUID) -> tuple[list[Any], list[tuple[type, uuid.UUID]]]:
    action = kernel_action(group_id)
    return [action], [(Kernel, action.kernel_id)]


def _endpoint(group_id: uuid.UUID, vfolder: uuid.UUID) -> tuple[list[Any], list[tuple[type, uuid.UUID]]]:
    action = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group_id, name="serve")
    return [action], [(Endpoint, action.endpoint_id)]


def _new_vfolder_mounted(group_id: uuid.UUID, vfolder: uuid.UUID) -> tuple[list[Any], list[tuple[type, uuid.UUID]]]:
    folder = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="fresh", host="local", group_id=group_id)
    kernel = kernel_action(group_id, mounts=[folder.vfolder_id])
    return [folder, kernel], [(VFolder, folder.vfolder_id), (Kernel, kernel.kernel_id)]


def _existing_vfolder_mounted(
    group_id: uuid.UUID, vfolder: uuid.UUID
) -> tuple[list[Any], list[tuple[type, uuid.UUID]]]:
    kernel = kernel_action(group_id, mounts=[vfolder])
    return [kernel], [(Kernel, kernel.kernel_id)]


RACES = {
    "start_kernel": (_kernel, PURGE_ERRORS[1]),
    "create_endpoint": (_endpoint, PURGE_ERRORS[2]),
    "create_vfolder_and_mount": (_new_vfolder_mounted, PURGE_ERRORS[0]),
    "mount_existing_vfolder": (_existing_vfolder_mounted, PURGE_ERRORS[0]),
}


@pytest.mark.parametrize("first", ["purge", "workload"])
@pytest.mark.parametrize("race", sorted(RACES))
def test_purge_and_new_workload_never_both_succeed(ledger: Ledger, race: str, first: str) -> None:
    make, purge_error = RACES[race]
    group = create_group(ledger, "contested")
    vfolder = create_vfolder(ledger, group.id)
    facts, created = make(group.id, vfolder)
    order = [0, 1] if first == "purge" else [1, 0]
    purged, recorded = decide_together(ledger, [purge(ledger, group.id), batch(ledger, facts)], order)

    if first == "purge":
        assert purged is None
        assert isinstance(recorded, GroupNotFound), recorded
        assert ledger.queries.group(group.id) is None
        for cls, entity_id in created:
            assert stored(ledger, cls, entity_id) is None, cls.__name__
        assert events(ledger, group.id) == ["Created", "VFolderAdded", "Purged"]
        assert stored_group(ledger, group.id).kernels == {}
        assert stored_group(ledger, group.id).endpoints == {}
        create_group(ledger, "contested")  # the name was released with the purge
    else:
        assert recorded is None
        assert type(purged) is purge_error, purged
        assert ledger.queries.group(group.id) is not None
        for cls, entity_id in created:
            assert stored(ledger, cls, entity_id) is not None, cls.__name__
        assert "Purged" not in events(ledger, group.id)
        with stores_nothing(ledger), pytest.raises(purge_error):
            purge(ledger, group.id)()


def test_free_running_purges_and_starts_keep_the_invariant(ledger: Ledger) -> None:
    """Threads start together without lock-step; whatever order the store picks, a purge
    that succeeds saw no new kernel or endpoint, and a purge that fails saw one."""
    for round_ in range(10):
        group = create_group(ledger, f"free-{round_}")
        vfolder = create_vfolder(ledger, group.id)
        kernels = [kernel_action(group.id), kernel_action(group.id, mounts=[vfolder])]
        endpoint = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group.id, name="serve")
        folder = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="late", host="local", group_id=group.id)
        commands = [
            purge(ledger, group.id),
            *(batch(ledger, [k]) for k in kernels),
            batch(ledger, [endpoint]),
            batch(ledger, [folder]),
        ]
        outcomes = all_at_once(commands)

        purged, plain_kernel, mounting_kernel, new_endpoint, new_folder = (o is None for o in outcomes)
        assert all(isinstance(o, GroupNotFound) for o in outcomes[1:] if o is not None), outcomes
        assert purged != (plain_kernel or mounting_kernel or new_endpoint), f"round {round_}: {outcomes}"
        history = events(ledger, group.id)
        if purged:
            assert history[-1] == "Purged"  # nothing was added to the group after its purge
            assert ledger.queries.group(group.id) is None
        else:
            # The purge was refused for workload that really landed.
            justified = {
                PURGE_ERRORS[0]: mounting_kernel,
                PURGE_ERRORS[1]: plain_kernel or mounting_kernel,
                PURGE_ERRORS[2]: new_endpoint,
            }
            assert justified.get(type(outcomes[0])), outcomes
            assert "Purged" not in history
            # The group's own record of active workload is exactly what succeeded.
            group_state = stored_group(ledger, group.id)
            landed = [k for k, ok in zip(kernels, (plain_kernel, mounting_kernel), strict=True) if ok]
            assert set(group_state.kernels) == {str(k.kernel_id) for k in landed}
            assert set(group_state.endpoints) == ({str(endpoint.endpoint_id)} if new_endpoint else set())
        for action, ok in zip(kernels, (plain_kernel, mounting_kernel), strict=True):
            assert (stored(ledger, Kernel, action.kernel_id) is not None) == ok
        assert (stored(ledger, Endpoint, endpoint.endpoint_id) is not None) == new_endpoint
        assert (stored(ledger, VFolder, folder.vfolder_id) is not None) == new_folder
