"""Usage reports name each kernel's user, on SQLite and PostgreSQL: `email` and `full_name`
come from the users read model when the report is read (as Backend.AI joins its users
table), so an edit shows in the next report; a user the ledger does not know names no
one (None); a deleted user is still named while its row exists."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from adapters.bootstrap import Ledger
from domain.group import UsagePerMonthAction
from domain.workload import StartKernelAction, TerminateKernelAction
from tests.adapters.directory import create_domain, create_user, delete_user, modify_user
from tests.adapters.groups import create_group

ALICE = uuid.UUID("a11ce000-0000-4000-8000-000000000001")
BOB = uuid.UUID("b0b00000-0000-4000-8000-000000000002")
STRANGER = uuid.UUID("5a5a5a5a-0000-4000-8000-000000000003")


def kernel(ledger: Ledger, group_id: uuid.UUID, user_id: uuid.UUID, hour: int) -> str:
    kernel_id = uuid.uuid4()
    start = StartKernelAction(
        kernel_id=kernel_id,
        session_id=kernel_id,
        session_name=f"s{hour}",
        group_id=group_id,
        domain_name="lab",
        user_id=user_id,
        access_key="AKUSER",
        occupied_slots={"cpu": "1", "mem": "1g"},
        started_at=f"2024-10-01T{hour:02d}:00:00Z",
    )
    end = TerminateKernelAction(kernel_id=kernel_id, terminated_at=f"2024-10-01T{hour:02d}:30:00Z")
    asyncio.run(ledger.services.workload.record_batch([start, end]))
    return str(kernel_id)


def names(ledger: Ledger) -> dict[str, tuple[Any, Any]]:
    action = UsagePerMonthAction(month="202410")
    report = asyncio.run(ledger.services.group.usage_per_month(action)).result
    return {info["id"]: (info["email"], info["full_name"]) for group in report for info in group["c_infos"]}


def test_each_kernel_is_named_by_its_user_at_report_time(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_user(ledger, ALICE, "lab", email="alice@example.org", full_name="Alice Liddell")
    create_user(ledger, BOB, "lab", email="bob@example.org")
    group = create_group(ledger, "team", domain_name="lab").id
    alice, bob, stranger = (kernel(ledger, group, user, hour) for hour, user in enumerate((ALICE, BOB, STRANGER)))
    assert names(ledger) == {
        alice: ("alice@example.org", "Alice Liddell"),
        bob: ("bob@example.org", None),
        stranger: (None, None),  # facts may name users the ledger never declared
    }
    modify_user(ledger, BOB, full_name="Bob", email=None)
    assert names(ledger)[bob] == (None, "Bob")  # read at report time, not copied at start
    create_user(ledger, STRANGER, "lab", full_name="Late")
    assert names(ledger)[stranger] == (None, "Late")


def test_a_deleted_user_is_still_named(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_user(ledger, ALICE, "lab", email="alice@example.org", full_name="Alice")
    group = create_group(ledger, "team", domain_name="lab").id
    alice = kernel(ledger, group, ALICE, 1)
    delete_user(ledger, ALICE)
    assert names(ledger) == {alice: ("alice@example.org", "Alice")}
