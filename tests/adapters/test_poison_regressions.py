"""Regression tests for inputs that once broke every read of a ledger (issue: poison-proof inputs).

Each test stores what used to be accepted and poisoned the read models, then shows the
ledger still answers every query on both backends.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from tests.adapters.cli.helpers import GROUP, SERVICE, as_json, given_domains, jsonl, workload_facts
from tests.adapters.cli.helpers import ledger as run


def test_a_300_fact_import_keeps_every_read_working(ledger_url: str, tmp_path: Any) -> None:
    """One batch of 300 facts once wrote an audit row whose comma-joined entity id was too
    large for PostgreSQL's B-tree index: from then on every query and the follower failed."""
    given_domains(ledger_url, "d1")
    as_json(ledger_url, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    begin, _ = workload_facts(vfolders=20, kernels=100, endpoints=0)
    assert len(begin) == 320
    (tmp_path / "facts.jsonl").write_text(jsonl(begin))
    summary = as_json(ledger_url, *SERVICE, "workload", "import", str(tmp_path / "facts.jsonl"))
    assert (summary["facts"], summary["batches"]) == (320, 1)

    (record,) = as_json(ledger_url, "audit", "--operation", "record_batch")
    first = f"vfolder:{begin[0]['vfolder_id']}"
    assert record["entity_id"] == f"{first} (+319 more)"
    # The batch is found by any entity it touched, not only by its label.
    kernel = f"kernel:{begin[50]['kernel_id']}"
    (found,) = as_json(ledger_url, "audit", "--entity-type", "workload", "--entity-id", kernel)
    assert found["action_id"] == record["action_id"]
    assert as_json(ledger_url, "audit", "--entity-id", "kernel:00000000-0000-0000-0000-000000000000") == []

    # Every read model still answers.
    assert len(as_json(ledger_url, "usage", "month", "202410")) == 1
    assert as_json(ledger_url, "group", "show", GROUP)["id"] == GROUP
    statuses = as_json(ledger_url, "projections", "status")
    assert all(s["lag"] == 0 for s in statuses), statuses


def test_audit_of_a_batch_written_before_entity_ids_is_read_as_a_batch(ledger_url: str) -> None:
    """Older records packed a batch's ids into `entity_id`, comma-joined."""
    from datetime import UTC, datetime

    from domain.actions.base import ActionResultMeta, ActionStatus
    from domain.audit import AuditRecord, audit_entry
    from tests.conftest import SUPERADMIN

    now = datetime.now(UTC)
    ids = [f"kernel:{i:08d}-0000-4000-8000-000000000000" for i in range(200)]
    meta = ActionResultMeta(
        action_id="11111111-1111-4111-8111-111111111111",
        entity_type="workload",
        operation="record_batch",
        entity_id=",".join(ids),
        status=ActionStatus.SUCCESS,
        description="success",
        started_at=now,
        ended_at=now,
        duration=0.0,
    )
    with open_ledger(ledger_url) as ledger:
        ledger.app.save(AuditRecord.record(audit_entry(meta, SUPERADMIN, {})))
        (entry,) = ledger.queries.audit_log(entity_id=ids[123])
        assert entry.entity_id == f"{ids[0]} (+199 more)"
        assert ledger.queries.audit_log(entity_type="workload") == [entry]


def test_dotfiles_reach_the_audit_as_size_and_digest_only(ledger_url: str, tmp_path: Any) -> None:
    secret = b"export TOKEN=s3cr3t-value\n" * 100
    (tmp_path / "dotfiles").write_bytes(secret)
    given_domains(ledger_url, "d1")
    as_json(ledger_url, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    as_json(ledger_url, "group", "modify", GROUP, "--dotfiles-file", str(tmp_path / "dotfiles"))
    (entry,) = as_json(ledger_url, "audit", "--operation", "modify", "--entity-id", GROUP)
    dotfiles = entry["spec"]["modifier"]["dotfiles"]
    assert dotfiles == {"size": len(secret), "sha256": hashlib.sha256(secret).hexdigest()}
    assert "s3cr3t" not in json.dumps(as_json(ledger_url, "audit"))


@pytest.mark.parametrize("domain", ["d2", "D1"])
def test_a_kernel_must_carry_its_groups_domain(ledger_url: str, domain: str) -> None:
    given_domains(ledger_url, "d1")
    as_json(ledger_url, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    result = run(
        ledger_url,
        *SERVICE,
        "workload",
        "kernel-start",
        *("1e1e1e1e-0000-4000-8000-000000000001", "--session-id", GROUP, "--session-name", "s"),
        *("--group-id", GROUP, "--domain-name", domain, "--owner", GROUP, "--kernel-access-key", "AKUSER"),
        *("--slots", "cpu=1", "--started-at", "2024-10-01T00:00:00Z"),
    )
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "--domain-name: " in result.stderr and "'d1'" in result.stderr
    assert as_json(ledger_url, "usage", "month", "202410") == []


def test_a_kernel_cannot_span_more_than_ten_years(ledger_url: str) -> None:
    """Usage keeps a rollup row per day a kernel ran: a kernel from 1900 to 8999 would
    have been millions of rows in one projection batch."""
    from domain.errors import InvalidAPIParameters
    from domain.workload import TerminateKernelAction
    from tests.actions import build_world, run

    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)  # its kernel started 2024-10-01T00:00Z
        late = TerminateKernelAction(kernel_id=world.kernel, terminated_at="2034-10-03T00:00:00Z")
        with pytest.raises(InvalidAPIParameters, match="longer than 3653 days") as refused:
            run(ledger, "workload", "terminate_kernel", late)
        assert refused.value.field == "terminated_at"
        ok = TerminateKernelAction(kernel_id=world.kernel, terminated_at="2034-09-30T00:00:00Z")
        run(ledger, "workload", "terminate_kernel", ok)
        assert ledger.queries.usage_totals(date(2024, 10, 1), date(2034, 9, 30))


def test_a_kernel_cannot_end_before_it_started(ledger_url: str) -> None:
    """A termination before the start was accepted and every report then showed the
    kernel's negative usage (used_time '-4 days'); one by one and in a batch alike."""
    from domain.errors import InvalidAPIParameters
    from domain.workload import RecordWorkloadBatchAction, TerminateKernelAction
    from tests.actions import build_world, run

    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)  # its kernel started 2024-10-01T00:00Z
        early = TerminateKernelAction(kernel_id=world.kernel, terminated_at="2024-09-30T23:59:59.999999Z")
        batch = RecordWorkloadBatchAction(actions=[early])
        for method, action in (("terminate_kernel", early), ("record_workload_batch", batch)):
            with pytest.raises(InvalidAPIParameters, match="cannot end before it started") as refused:
                run(ledger, "workload", method, action)
            assert refused.value.field is not None and refused.value.field.endswith("terminated_at")
        kernel = ledger.queries.kernel(world.kernel)
        assert kernel is not None and kernel.terminated_at is None
        at_start = TerminateKernelAction(kernel_id=world.kernel, terminated_at="2024-10-01T00:00:00Z")
        run(ledger, "workload", "terminate_kernel", at_start)  # a zero span is a span
        kernel = ledger.queries.kernel(world.kernel)
        assert kernel is not None and kernel.terminated_at == kernel.started_at


def test_a_usage_report_over_many_groups_keeps_the_audit_trail_readable(ledger_url: str) -> None:
    """A report's scope names every group it was asked for, comma-joined: the audit row of
    a month report over 100 groups was too large for PostgreSQL's B-tree index, and from
    then on the audit trail answered ReadModelStalled to everyone."""
    import uuid

    from domain.group import UsagePerMonthAction
    from tests.actions import run as process

    groups = [uuid.uuid4() for _ in range(100)]
    with open_ledger(ledger_url) as ledger:
        report = UsagePerMonthAction(month="202410", group_ids=groups)
        assert process(ledger, "group", "usage_per_month", report).result == []
        (entry,) = ledger.queries.audit_log(operation="usage_per_month")
        assert entry.entity_id == f"project:{groups[0]} (+99 more)"
        # Found by any group it reported on, as a batch is by any entity it touched.
        assert ledger.queries.audit_log(entity_id=f"project:{groups[50]}") == [entry]
        assert ledger.queries.audit_log(entity_id=f"project:{uuid.uuid4()}") == []
