"""Action metrics in Prometheus' text format, read back with prometheus-client's parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.parser import text_string_to_metric_families

from adapters.bootstrap import Ledger
from adapters.monitors import DURATION_BUCKETS, PrometheusMonitor, StoreEntityDomains
from domain.errors import InsufficientPermission, LedgerError, StoreUnavailable
from tests.actions import FAILURES, SAMPLES, build_world, meta, run

METHOD = ("group", "modify_group")


def samples(text: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def exercise(ledger: Ledger) -> None:
    world = build_world(ledger)  # 12 successes by the superadmin of domain "default"
    run(ledger, *METHOD, SAMPLES[METHOD](world), meta("admin"))
    with pytest.raises(LedgerError):
        run(ledger, *METHOD, FAILURES[METHOD][0](world), meta("admin"))
    with pytest.raises(InsufficientPermission):
        run(ledger, *METHOD, SAMPLES[METHOD](world), meta("user"))


def check(text: str) -> None:
    found = samples(text)
    counts = {
        (s.labels["entity_type"], s.labels["operation_type"], s.labels["status"], s.labels["domain"]): s.value
        for s in found["backendai_action_count_total"]
    }
    assert counts[("group", "modify", "success", "alpha")] == 1
    assert counts[("group", "modify", "error", "alpha")] == 1
    assert counts[("group", "modify", "denied", "alpha")] == 1
    assert counts[("group", "create", "success", "default")] == 2
    assert counts[("domain", "create", "success", "default")] == 2
    assert sum(counts.values()) == 15
    errors = [s for s in found["backendai_action_count_total"] if s.labels["status"] == "error"]
    assert [s.labels["error_detail"] for s in errors] == ["group_not_found"]
    assert {s.labels["operation"] for s in errors} == {"group_modify"}
    buckets = {
        float(s.labels["le"]) for s in found["backendai_action_duration_sec_bucket"] if s.labels["status"] == "denied"
    }
    assert buckets == {*map(float, DURATION_BUCKETS), float("inf")}
    durations = sum(s.value for s in found["backendai_action_duration_sec_count"])
    assert durations == 15
    # Seed 004's names, beside Backend.AI's: the same outcomes.
    totals = {
        (s.labels["entity_type"], s.labels["operation"], s.labels["status"]): s.value
        for s in found["backend_action_total"]
    }
    assert totals[("group", "modify", "denied")] == totals[("group", "modify", "error")] == 1
    assert totals[("group", "create", "success")] == 2 and sum(totals.values()) == 15
    assert sum(s.value for s in found["backend_action_duration_seconds_count"]) == 15
    assert {"entity_type", "operation"} == set(found["backend_action_duration_seconds_count"][0].labels)
    errors_total = {
        (s.labels["entity_type"], s.labels["operation"], s.labels["error_type"]): s.value
        for s in found["backend_action_errors_total"]
    }
    assert errors_total == {("group", "modify", "group_not_found"): 1, ("group", "modify", "permission_forbidden"): 1}


def test_the_live_monitor_counts_every_outcome(memory_ledger: Ledger) -> None:
    exercise(memory_ledger)
    check(memory_ledger.metrics.exposition())


def test_metrics_replayed_from_the_audit_trail_equal_the_live_ones(ledger: Ledger) -> None:
    exercise(ledger)
    replayed = PrometheusMonitor()
    replayed.replay(ledger.queries.audit_log())
    check(replayed.exposition())
    live, again = samples(ledger.metrics.exposition()), samples(replayed.exposition())
    assert [(s.labels, s.value) for s in live["backendai_action_count_total"]] == [
        (s.labels, s.value) for s in again["backendai_action_count_total"]
    ]


def test_a_permission_check_that_cannot_read_the_store_counts_as_an_error(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin's check reads the entity's domain from the store; when that read fails,
    nothing was refused: the outcome is an error (in the live metrics and the audit trail
    alike), never a `denied` that an operator would read as a permission problem."""
    world = build_world(ledger)
    read = StoreEntityDomains.domain_of
    failed: list[str] = []

    def once_unreachable(self: StoreEntityDomains, entity_type: str, entity_id: str) -> str | None:
        if not failed:
            failed.append(entity_id)
            raise StoreUnavailable("event store unreachable")
        return read(self, entity_type, entity_id)

    monkeypatch.setattr(StoreEntityDomains, "domain_of", once_unreachable)
    with pytest.raises(StoreUnavailable):
        run(ledger, *METHOD, SAMPLES[METHOD](world), meta("admin"))
    assert failed == [str(world.group)]
    monkeypatch.undo()
    [record] = ledger.queries.audit_log(entity_type="group", operation="modify")
    assert (record.status, record.error_code) == ("error", "ledger_unavailable")
    for text in (ledger.metrics.exposition(), replayed(ledger)):
        found = samples(text)
        modified = [s for s in found["backend_action_total"] if s.labels["operation"] == "modify"]
        assert {s.labels["status"]: s.value for s in modified} == {"error": 1}
        [counted] = [s for s in found["backendai_action_count_total"] if s.labels["operation_type"] == "modify"]
        assert (counted.labels["status"], counted.labels["error_detail"]) == ("error", "ledger_unavailable")


def replayed(ledger: Ledger) -> str:
    monitor = PrometheusMonitor()
    monitor.replay(ledger.queries.audit_log())
    return monitor.exposition()


def test_ledger_metrics_prints_the_replay_of_the_trail_without_reading_whole_entries(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger metrics` read every entry with its input to count outcomes (154 MB on 10,000
    of them): it reads only the counted columns now, a chunk at a time, and prints what
    replaying the whole entries printed, byte for byte (the same label sets in the same
    order, the same sums added in the same order)."""
    from adapters.bootstrap import open_ledger
    from adapters.cli.render import safe
    from adapters.read import queries
    from tests.actions import record_trail
    from tests.adapters.cli.helpers import as_json, ok

    monkeypatch.setattr(prometheus_metrics, "_use_created", False)  # as the command does
    monkeypatch.setattr(queries, "OUTCOMES_CHUNK", 7)  # several chunks
    with open_ledger(ledger_url) as opened:
        exercise(opened)  # real outcomes: successes, an error, a denial, two domains
        record_trail(opened, 60)
        expected = PrometheusMonitor()
        expected.replay(opened.queries.audit_log())
        assert [tuple(o) for o in opened.queries.audit_outcomes()] == [
            (e.entity_type, e.operation, e.status, e.domain_name, e.error_code, e.duration)
            for e in opened.queries.audit_log()
        ]

    def whole_entries(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("metrics read the whole entries")

    monkeypatch.setattr(queries.Queries, "audit_log", whole_entries)
    text = expected.exposition()
    assert "d\\x1bq" in safe(text, keep="\n") and 'status="running"' in text
    assert ok(ledger_url, "metrics").stdout == safe(text, keep="\n")
    assert as_json(ledger_url, "metrics") == json.loads(json.dumps(expected.samples()))
