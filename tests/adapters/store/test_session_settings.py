"""What a database session's settings may not change: a PostgreSQL server, database or
role (or the client's PGDATESTYLE and PGTZ) may set DateStyle and TimeZone for every
session the ledger opens; each read answers as it does on SQLite, in UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.bootstrap import open_ledger
from domain.group import UsagePerMonthAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.actions import run
from tests.adapters.groups import create_group
from tests.adapters.kernels import start

POLICY = "keypair_resource_policy"


def test_times_read_back_under_another_datestyle_and_zone(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DateStyle 'SQL, DMY' made PostgreSQL write times as '04/12/2026 01:11:32.55 UTC',
    which psycopg does not parse: history, the audit trail, time travel's name lookups,
    the usage reports and a subject key's age all failed with NotImplementedError, while
    every command still succeeded (it writes times, it does not read them)."""
    monkeypatch.setenv("PGDATESTYLE", "SQL, DMY")
    monkeypatch.setenv("PGTZ", "Asia/Kathmandu")
    with open_ledger(ledger_url) as ledger:
        action = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
        run(ledger, POLICY, "create_keypair_resource_policy", action)
        group = create_group(ledger, name="g").id
        start(ledger, group, datetime(2024, 2, 29, 23, 30, tzinfo=UTC))
        q = ledger.queries
        (created,) = q.history(POLICY, "p")
        assert created.occurred_at.utcoffset() == timedelta(0)
        state = q.state_at(POLICY, "p", at=created.occurred_at)
        assert state is not None and state.version == 1
        entries = q.audit_log(since=created.occurred_at - timedelta(seconds=5))
        assert ("create", "p") in [(e.operation, e.entity_id) for e in entries]
        assert all(e.started_at.utcoffset() == timedelta(0) for e in entries)
        assert q.group(group) is not None
        report = asyncio.run(ledger.services.group.usage_per_month(UsagePerMonthAction(month="202402"))).result
        assert [info["created_at"] for info in report[0]["c_infos"]] == ["2024-02-29 23:30:00+00:00"]
        assert ledger.app.keys.made_after(f"group:{group}", datetime(2000, 1, 1, tzinfo=UTC))
