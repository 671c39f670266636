"""Group commands, workload facts and store checks shared by the group and workload tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from adapters.bootstrap import Ledger
from domain.entity import Entity
from domain.errors import (
    PurgeGroupActionActiveEndpointsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
)
from domain.group import CreateGroupAction, DeleteGroupAction, Group, GroupData, ModifyGroupAction, PurgeGroupAction
from domain.values import UserUpdateMode
from domain.workload import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    StartKernelAction,
    TerminateKernelAction,
)
from tests.domain.fakes import ensure_domain, ensure_user

ENTITY = "group"
PURGE_ERRORS = (
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionActiveEndpointsError,
)

# Group commands


def create_group(
    ledger: Ledger, name: str = "team", domain_name: str = "default", group_id: uuid.UUID | None = None, **fields: Any
) -> GroupData:
    ensure_domain(ledger.app.store, domain_name)  # a group names an existing domain
    action = CreateGroupAction(input={"name": name, "domain_name": domain_name, **fields}, group_id=group_id)
    return asyncio.run(ledger.services.group.create_group(action)).data


def modify_group(
    ledger: Ledger, group_id: uuid.UUID, *, mode: Any = None, users: Any = None, **modifier: Any
) -> GroupData:
    membership: dict[str, Any] = {}
    if mode is not None:
        membership["user_update_mode"] = mode
    if users is not None:
        membership["user_uuids"] = users
        if mode not in ("remove", UserUpdateMode.REMOVE):
            ensure_members(ledger, group_id, users)
    action = ModifyGroupAction(group_id=group_id, modifier=modifier, **membership)
    return asyncio.run(ledger.services.group.modify_group(action)).data


def ensure_members(ledger: Ledger, group_id: uuid.UUID, users: Any) -> None:
    """Members are existing users of the group's domain: the users a test adds are created
    there first (a value the service refuses anyway is left for it to refuse)."""
    group = ledger.app.get(Group.id_for(str(group_id)), Entity)  # any kind: the service refuses others
    if not isinstance(group, Group) or not isinstance(users, list | tuple):
        return
    for user in users:
        try:
            user_id = uuid.UUID(str(user))
        except ValueError:
            continue
        ensure_user(ledger.app.store, user_id, group.fields["domain_name"])


def delete_group(ledger: Ledger, group_id: uuid.UUID) -> GroupData:
    return asyncio.run(ledger.services.group.delete_group(DeleteGroupAction(group_id=group_id))).data


def purge_group(ledger: Ledger, group_id: uuid.UUID) -> GroupData:
    return asyncio.run(ledger.services.group.purge_group(PurgeGroupAction(group_id=group_id))).data


# Workload facts


def kernel_action(group_id: uuid.UUID, kernel_id: uuid.UUID | None = None, mounts: Sequence[uuid.UUID] = ()) -> Any:
    return StartKernelAction(
        kernel_id=kernel_id or uuid.uuid4(),
        session_id=uuid.uuid4(),
        session_name="sess",
        group_id=group_id,
        domain_name="default",
        user_id=uuid.uuid4(),
        access_key="AKTEST",
        occupied_slots={"cpu": "2", "mem": "4g"},
        started_at=datetime(2024, 10, 1, 12, 0, tzinfo=UTC),
        mounts=list(mounts),
        image="python:3.11",
        agent="agent-1",
    )


def start_kernel(ledger: Ledger, group_id: uuid.UUID, mounts: Sequence[uuid.UUID] = ()) -> uuid.UUID:
    action = kernel_action(group_id, mounts=mounts)
    asyncio.run(ledger.services.workload.start_kernel(action))
    return action.kernel_id


def terminate_kernel(ledger: Ledger, kernel_id: uuid.UUID, status: str = "TERMINATED") -> None:
    action = TerminateKernelAction(kernel_id=kernel_id, terminated_at=datetime.now(UTC), status=status)
    asyncio.run(ledger.services.workload.terminate_kernel(action))


def create_vfolder(ledger: Ledger, group_id: uuid.UUID) -> uuid.UUID:
    action = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="data", host="local", group_id=group_id)
    asyncio.run(ledger.services.workload.create_vfolder(action))
    return action.vfolder_id


def create_endpoint(ledger: Ledger, group_id: uuid.UUID) -> uuid.UUID:
    action = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group_id, name="serve")
    asyncio.run(ledger.services.workload.create_endpoint(action))
    return action.endpoint_id


def destroy_endpoint(ledger: Ledger, endpoint_id: uuid.UUID) -> None:
    asyncio.run(ledger.services.workload.destroy_endpoint(DestroyEndpointAction(endpoint_id=endpoint_id)))


# What the store holds


def head(ledger: Ledger) -> int:
    return ledger.app.recorder.max_notification_id() or 0


@contextmanager
def stores_nothing(ledger: Ledger) -> Iterator[None]:
    """The block (usually a refused command) appends no event at all."""
    before = head(ledger)
    yield
    assert head(ledger) == before, "a refused or no-op command stored events"


def events(ledger: Ledger, group_id: uuid.UUID) -> list[str]:
    return [entry.event for entry in ledger.queries.history(ENTITY, str(group_id))]


def user_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]
