"""`ledger audit`, `ledger metrics`, `show --at/--version` and `diff` on the command line."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.adapters.cli.helpers import as_json, ledger, ok

GROUP = str(uuid.UUID(int=99))


def _history(db: str) -> datetime:
    """A policy created, modified twice, and a refused delete; returns a moment between."""
    ok(db, "--access-key", "AKROOT", "policy", "create", "p", "--idle-timeout", "100")
    ok(db, "policy", "modify", "p", "--idle-timeout", "200")
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    ok(db, "policy", "modify", "p", "--idle-timeout", "300", "--max-concurrent-sessions", "4")
    refused = ledger(db, "--role", "user", "--access-key", "AKUSER", "policy", "delete", "p")
    assert refused.exit_code == 1 and "permission_generic_forbidden" in refused.stderr
    return between


def test_audit_lists_filters_and_exports_json_lines(db: str) -> None:
    _history(db)
    everything = as_json(db, "audit")
    assert [(e["operation"], e["status"]) for e in everything] == [
        ("create", "success"),
        ("modify", "success"),
        ("modify", "success"),
        ("delete", "denied"),
    ]
    assert [e["operation"] for e in as_json(db, "audit", "--actor", "AKROOT")] == ["create"]
    assert [e["status"] for e in as_json(db, "audit", "--status", "denied")] == ["denied"]
    assert len(as_json(db, "audit", "--entity-type", "keypair_resource_policy", "--entity-id", "p")) == 4
    assert as_json(db, "audit", "--entity-id", "q") == []
    since = everything[2]["started_at"]
    assert [e["action_id"] for e in as_json(db, "audit", "--since", since)] == [e["action_id"] for e in everything[2:]]
    assert len(as_json(db, "audit", "--until", since)) == 2
    lines = ok(db, "audit", "--jsonl", "--operation", "modify").stdout.splitlines()
    assert [json.loads(line)["spec"]["modifier"] for line in lines] == [
        {"idle_timeout": 200},
        {"idle_timeout": 300, "max_concurrent_sessions": 4},
    ]
    table = ok(db, "audit").stdout
    assert "denied: user AKUSER may not delete keypair_resource_policy p" in table
    bad = ledger(db, "audit", "--since", "yesterday")
    assert bad.exit_code == 1 and "since" in bad.stderr


def test_metrics_prints_the_exposition_of_the_whole_trail(db: str) -> None:
    _history(db)
    text = ok(db, "metrics").stdout
    counts = {
        (s.labels["operation_type"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "backendai_action_count_total"
    }
    assert counts == {("create", "success"): 1, ("modify", "success"): 2, ("delete", "denied"): 1}
    assert "backendai_action_duration_sec_bucket" in text and "_created" not in text


def test_show_at_a_time_or_a_version_and_diff(db: str) -> None:
    between = _history(db)
    assert as_json(db, "policy", "show", "p", "--version", "1")["fields"]["idle_timeout"] == 100
    at = as_json(db, "policy", "show", "p", "--at", between.isoformat())
    assert (at["version"], at["fields"]["idle_timeout"], at["deleted"]) == (2, 200, False)
    assert as_json(db, "policy", "show", "p")["idle_timeout"] == 300  # no option: the read model, now
    assert as_json(db, "policy", "diff", "p", "--from", "1", "--to", "3") == {
        "idle_timeout": {"old": 100, "new": 300},
        "max_concurrent_sessions": {"old": 30, "new": 4},
    }
    assert as_json(db, "policy", "diff", "p", "--from", between.isoformat(), "--to", "3") == {
        "idle_timeout": {"old": 200, "new": 300},
        "max_concurrent_sessions": {"old": 30, "new": 4},
    }
    table = ok(db, "policy", "diff", "p", "--from", "1", "--to", "3").stdout
    assert [line.split() for line in table.splitlines() if "idle_timeout" in line] == [
        ["│", "idle_timeout", "│", "100", "│", "300", "│"]
    ]
    early = ledger(db, "policy", "show", "p", "--at", "2000-01-01T00:00:00Z")
    assert early.exit_code == 1 and "did not exist at 2000-01-01T00:00:00Z" in early.stderr
    assert ledger(db, "policy", "show", "p", "--version", "9").exit_code == 1


def test_group_show_at_a_version_and_diff(db: str) -> None:
    ok(db, "group", "create", "team", "--domain-name", "default", "--id", GROUP, "--description", "one")
    ok(db, "group", "modify", GROUP, "--description", "two")
    ok(db, "group", "delete", GROUP)
    first = as_json(db, "group", "show", GROUP, "--version", "1")
    assert (first["fields"]["description"], first["deleted"]) == ("one", False)
    assert as_json(db, "group", "diff", GROUP, "--from", "1", "--to", "3") == {
        "description": {"old": "one", "new": "two"},
        "is_active": {"old": True, "new": False},
    }
