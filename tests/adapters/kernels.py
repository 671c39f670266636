"""Kernels started and vfolders created through the workload service, for the read tests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from adapters.bootstrap import Ledger
from domain.workload import CreateVFolderAction, StartKernelAction

T0 = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)


def start(
    ledger: Ledger,
    group_id: uuid.UUID,
    started_at: datetime,
    access_key: str = "AKTEST",
    kernel_id: uuid.UUID | None = None,
    mounts: list[uuid.UUID] | None = None,
    domain_name: str = "default",
    user_id: uuid.UUID | None = None,
) -> str:
    action = StartKernelAction(
        kernel_id=kernel_id or uuid.uuid4(),
        session_id=uuid.uuid4(),
        session_name="sess",
        group_id=group_id,
        domain_name=domain_name,
        user_id=user_id or uuid.uuid4(),
        access_key=access_key,
        occupied_slots={"cpu": "2", "mem": "4g"},
        started_at=started_at,
        mounts=mounts or [],
        image="python:3.11",
        agent="agent-1",
    )
    asyncio.run(ledger.services.workload.start_kernel(action))
    return str(action.kernel_id)


def vfolder(ledger: Ledger, group_id: uuid.UUID, name: str, host: str = "local") -> str:
    action = CreateVFolderAction(vfolder_id=uuid.uuid4(), name=name, host=host, group_id=group_id)
    asyncio.run(ledger.services.workload.create_vfolder(action))
    return str(action.vfolder_id)
