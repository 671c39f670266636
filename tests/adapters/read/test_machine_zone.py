"""The machine's time zone (the process's TZ) changes no answer: usage reports and totals,
time travel and the audit trail's window read the same in New York (DST),
Kathmandu (+05:45) and Kiritimati (+14:00) as in UTC. Python reads TZ for every naive
`now()`, `fromtimestamp()` and argument-less `astimezone()`; the ledger must use none."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, ModifyKeyPairResourcePolicyAction
from domain.workload import StartKernelAction, TerminateKernelAction
from tests.actions import run
from tests.adapters.groups import create_group

POLICY = "keypair_resource_policy"
# Kernels across a month's, a leap day's, a year's and DST's edges, given in offsets far apart.
SPANS = [
    ("2024-02-29T23:59:59.999999+14:00", "2024-03-01T00:00:00.000001-12:00"),
    ("2024-03-10T01:59:59-05:00", "2024-03-10T03:00:00-04:00"),
    ("2024-11-03T01:30:00-04:00", "2024-11-03T01:30:00-05:00"),
    ("2024-12-31T18:15:00+05:45", "2025-01-01T00:00:00Z"),
    ("2024-04-30T23:59:59.999999", None),
]


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Sets the process's zone (TZ, read again by tzset); UTC again afterwards."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    use("UTC")
    yield use
    monkeypatch.undo()
    time.tzset()


def _answers(ledger: Ledger, group: uuid.UUID, moments: list[datetime]) -> dict[str, Any]:
    """Every time-bound answer the ledger gives for the world `_record` made."""
    q, reports = ledger.queries, ledger.services.group
    answers: dict[str, Any] = {}
    for month in ("202402", "202403", "202411", "202412", "202501"):
        answers[month] = asyncio.run(reports.usage_per_month(UsagePerMonthAction(month=month))).result
    period = UsagePerPeriodAction(start_date="20240229", end_date="20240310", project_id=group)
    answers["period"] = asyncio.run(reports.usage_per_period(period)).result
    # Totals of ended kernels only: a running one's grows with the clock.
    answers["totals"] = q.usage_totals(date(2024, 2, 29), date(2024, 3, 10), group)
    for n, moment in enumerate(moments):
        for offset in (timedelta(hours=14), timedelta(hours=-12), timedelta(hours=5, minutes=45)):
            local = moment.astimezone(timezone(offset))
            state = q.state_at(POLICY, "p", at=local)
            answers[f"state {n} {offset}"] = None if state is None else state.version
            answers[f"audit {n} {offset}"] = [e.action_id for e in q.audit_log(since=local)]
            answers[f"naive {n}"] = [e.action_id for e in q.audit_log(until=moment.replace(tzinfo=None))]
    return answers


def _record(ledger: Ledger) -> tuple[uuid.UUID, list[datetime]]:
    """A policy with two versions, a group, and the kernels of SPANS; the versions' times."""
    run(ledger, POLICY, "create_keypair_resource_policy", CreateKeyPairResourcePolicyAction(creator={"name": "p"}))
    action = ModifyKeyPairResourcePolicyAction(name="p", modifier={"max_concurrent_sessions": 3})
    run(ledger, POLICY, "modify_keypair_resource_policy", action)
    group = create_group(ledger, name="g").id
    facts: list[Any] = []
    for started, ended in SPANS:
        kernel_id = uuid.uuid4()
        facts.append(
            StartKernelAction(
                kernel_id=kernel_id,
                session_id=uuid.uuid4(),
                session_name="s",
                group_id=group,
                domain_name="default",
                user_id=uuid.UUID(int=7),
                access_key="AKUSER",
                occupied_slots={"cpu": "1", "mem": "1g"},
                started_at=started,
                mounts=[],
                image="python:3.11",
                agent="agent-1",
            )
        )
        if ended is not None:
            facts.append(TerminateKernelAction(kernel_id=kernel_id, terminated_at=ended))
    asyncio.run(ledger.services.workload.record_batch(facts))
    moments = [entry.occurred_at for entry in ledger.queries.history(POLICY, "p")]
    return group, [m - timedelta(microseconds=1) for m in moments] + moments


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati"])
def test_answers_do_not_depend_on_the_machine_zone(ledger_url: str, machine_zone: Any, zone: str) -> None:
    with open_ledger(ledger_url, timezone="America/New_York") as ledger:
        group, moments = _record(ledger)
        in_utc = _answers(ledger, group, moments)
        machine_zone(zone)
        assert datetime.now().astimezone().utcoffset() != timedelta(0)  # the zone took effect
        assert _answers(ledger, group, moments) == in_utc
    # A process started in that zone reads the ledger alike.
    with open_ledger(ledger_url, timezone="America/New_York") as reopened:
        assert _answers(reopened, group, moments) == in_utc
