"""`ledger audit`, `ledger metrics`, `show --at/--version` and `diff` on the command line."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.bootstrap import open_ledger
from adapters.cli.audit import AuditStatus
from domain.actions import ActionStatus
from tests.adapters.cli.helpers import (
    ACTOR,
    SERVICE,
    as_json,
    given_domains,
    given_users,
    jsonl,
    ledger,
    ok,
    refused,
    usage_error,
    workload_facts,
)
from tests.adapters.cli.helpers import GROUP as TEAM

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
    assert refused.exit_code == 1 and "permission_forbidden" in refused.stderr
    return between


def test_audit_lists_filters_and_exports_json_lines(db: str) -> None:
    _history(db)
    everything = as_json(db, "audit", "--oldest-first")
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
    later = as_json(db, "audit", "--since", since, "--oldest-first")
    assert [e["action_id"] for e in later] == [e["action_id"] for e in everything[2:]]
    assert len(as_json(db, "audit", "--until", since)) == 2
    lines = ok(db, "audit", "--jsonl", "--operation", "modify", "--oldest-first").stdout.splitlines()
    assert [json.loads(line)["spec"]["modifier"] for line in lines] == [
        {"idle_timeout": 200},
        {"idle_timeout": 300, "max_concurrent_sessions": 4},
    ]
    table = ok(db, "audit").stdout
    assert "denied: user AKUSER may not delete keypair_resource_policy p" in table
    bad = ledger(db, "audit", "--since", "yesterday")
    assert bad.exit_code == 1 and "since" in bad.stderr


def test_a_batch_is_found_by_an_entity_it_touched_pasted_in_capitals(db: str, tmp_path: Path) -> None:
    given_domains(db, "d1")
    ok(db, "group", "create", "team-a", "--domain-name", "d1", "--id", TEAM)
    begin, _ = workload_facts(vfolders=1, kernels=2, endpoints=0)
    (tmp_path / "facts.jsonl").write_text(jsonl(begin))
    ok(db, *SERVICE, "workload", "import", str(tmp_path / "facts.jsonl"))
    kernel = f"kernel:{begin[1]['kernel_id']}"
    assert kernel != f"kernel:{begin[1]['kernel_id'].upper()}"
    (found,) = as_json(db, "audit", "--entity-id", kernel)
    # A bare UUID was matched in any case, a batch's `kernel:UUID` only as stored.
    assert as_json(db, "audit", "--entity-id", f"kernel:{begin[1]['kernel_id'].upper()}") == [found]
    # A bare UUID (how a single fact's record names its kernel) finds the batch too.
    assert as_json(db, "audit", "--entity-id", begin[1]["kernel_id"].upper()) == [found]


def test_audit_is_newest_first_and_limit_keeps_the_latest(db: str) -> None:
    ok(db, "policy", "create", "p")
    for timeout in range(1, 11):
        ok(db, "policy", "modify", "p", "--idle-timeout", str(timeout))
    timeouts = [e["spec"].get("modifier", {}).get("idle_timeout") for e in as_json(db, "audit")]
    assert timeouts == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, None]  # newest first; the create last
    latest = as_json(db, "audit", "--limit", "8")
    assert [e["spec"]["modifier"]["idle_timeout"] for e in latest] == [10, 9, 8, 7, 6, 5, 4, 3]
    in_order = as_json(db, "audit", "--limit", "8", "--oldest-first")
    assert [e["spec"]["modifier"]["idle_timeout"] for e in in_order] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert as_json(db, "audit", "--oldest-first")[0]["operation"] == "create"
    lines = ok(db, "audit", "--jsonl", "--limit", "2").stdout.splitlines()
    assert [json.loads(line)["spec"]["modifier"]["idle_timeout"] for line in lines] == [10, 9]
    assert ok(db, "audit", "--limit", "3").stdout.count("modify") == 3
    # The Python query keeps its order (oldest first, `limit` the oldest); newest_first is asked for.
    with open_ledger(db) as opened:
        assert [e.operation for e in opened.queries.audit_log(limit=1)] == ["create"]
        newest = opened.queries.audit_log(limit=2, newest_first=True)
        assert [e.spec["modifier"]["idle_timeout"] for e in newest] == [10, 9]


def test_audit_pages_on_from_a_cursor_both_ways_as_the_http_api_does(db: str) -> None:
    """`--limit 8` showed the latest eight and nothing went on from there: the trail had no
    `--after` (`GET /v1/audit` has `after`), and a table named no position to go on from."""
    ok(db, "policy", "create", "p")
    for timeout in range(1, 11):
        ok(db, "policy", "modify", "p", "--idle-timeout", str(timeout))
    whole = as_json(db, "audit")  # newest first
    first = ok(db, "audit", "--limit", "4")
    assert first.stdout.count("modify") == 4
    assert first.stderr == f"more: --after {whole[3]['position']}\n"
    page = as_json(db, "audit", "--limit", "4", "--after", str(whole[3]["position"]))
    assert page == {"items": whole[4:8], "next_after": str(whole[7]["position"])}
    last = ok(db, "audit", "--limit", "4", "--after", str(whole[7]["position"]))
    assert last.stdout.count("modify") == 2 and last.stdout.count("create") == 1 and last.stderr == ""
    assert as_json(db, "audit", "--after", str(whole[7]["position"])) == whole[8:]
    lines = ok(db, "audit", "--jsonl", "--after", str(whole[8]["position"])).stdout.splitlines()
    assert [json.loads(line) for line in lines] == whole[9:]
    # Forwards: in the order recorded, from the oldest on (`--after 0`: from the first).
    oldest = whole[::-1]
    assert as_json(db, "audit", "--oldest-first", "--limit", "2", "--after", "0") == {
        "items": oldest[:2],
        "next_after": str(oldest[1]["position"]),
    }
    forward = as_json(db, "audit", "--oldest-first", "--limit", "3", "--after", str(oldest[0]["position"]))
    assert forward == {"items": oldest[1:4], "next_after": str(oldest[3]["position"])}
    with open_ledger(db) as opened:  # what the HTTP API's `after` reads
        same = opened.queries.audit_log(limit=3, after=oldest[0]["position"])
        assert [e.position for e in same] == [e["position"] for e in forward["items"]]
    unknown = refused(db, "audit", "--after", str(whole[0]["position"] + 1000))
    assert unknown.startswith("error: ledger_invalid_parameters: --after: names no audit entry"), unknown
    assert "'--after': must be at least 0, got -1" in usage_error(db, "audit", "--after", "-1")


def test_audit_refuses_filter_values_that_can_match_nothing(db: str) -> None:
    _history(db)
    status = usage_error(db, "audit", "--status", "bogus")
    assert "'bogus' is not one of 'success', 'error', 'denied', 'running'" in status
    assert [e["status"] for e in as_json(db, "audit", "--status", "DENIED")] == ["denied"]
    assert as_json(db, "audit", "--status", "running") == []  # a valid status that nothing has now
    assert "'policy' is not one of 'keypair_resource_policy'" in usage_error(db, "audit", "--entity-type", "policy")
    # Refused by the query's own check (`parse_window`), as `kernel list` and the HTTP API refuse it.
    backwards = refused(db, "audit", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01")
    assert backwards == (
        "error: ledger_invalid_parameters: --since: '2026-01-02T00:00:00Z' is not before until '2026-01-01': "
        "no action could match"
    )
    assert "is not before" in refused(db, "audit", "--since", "2026-01-01T01:00+01:00", "--until", "2026-01-01")
    assert len(as_json(db, "audit", "--since", "2000-01-01", "--until", "8000-01-01")) == 4
    assert "limit" in ledger(db, "audit", "--limit", "0").stderr


def test_jsonl_with_the_root_json_is_a_usage_error_as_usage_csv_is(db: str) -> None:
    """--jsonl won over --json silently: JSON Lines came out where a JSON array was asked for."""
    _history(db)
    error = json.loads(usage_error(db, "--json", "audit", "--jsonl"))["error"]
    assert error["code"] == "usage"
    assert error["message"].startswith("Invalid value for --jsonl: --jsonl and the root --json are two output formats")
    csv = json.loads(usage_error(db, "--json", "usage", "month", "202403", "--csv"))["error"]["message"]
    assert error["message"].replace("--jsonl", "--csv").split(" (see ")[0] == csv.split(" (see ")[0]


def test_audit_help_says_the_order(db: str) -> None:
    text = " ".join(ledger(db, "audit", "--help").stdout.split())
    assert "Newest first" in text and "--limit N keeps the latest N" in text
    assert "--oldest-first lists them in the order the ledger recorded them" in text


def test_audit_status_choices_are_the_domains() -> None:
    assert [s.value for s in AuditStatus] == [s.value for s in ActionStatus]


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
    # --json: the same samples as data (it printed the exposition text).
    samples = as_json(db, "metrics")
    exposed = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert {(s["name"], tuple(sorted(s["labels"].items())), s["value"]) for s in samples} == exposed


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
    # A refused point names the option the user typed (it said `from:` and `to:`).
    for args, option in ((("--from", "0001-01-01", "--to", "2"), "--from: "), (("--from", "1", "--to", "x"), "--to: ")):
        bad = ledger(db, "policy", "diff", "p", *args)
        assert bad.exit_code == 1 and f"ledger_invalid_parameters: {option}" in bad.stderr, bad.stderr


def test_keypair_show_at_a_time_or_a_version_and_diff(db: str) -> None:
    """Policies, groups, domains and users had `show --at/--version` and `diff`; keypairs,
    whose policy an auditor asks after most, had neither (`No such option: --at`), though
    the query and `GET /v1/keypairs/{ak}/state` answer it."""
    given_users(db, ACTOR)
    ok(db, "policy", "create", "gold")
    ok(db, "keypair", "create", "AK1", "--owner", ACTOR, "--resource-policy", "gold")
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    ok(db, "keypair", "modify", "AK1", "--unassign")
    ok(db, "keypair", "delete", "AK1")
    at = as_json(db, "keypair", "show", "AK1", "--at", between.isoformat())
    assert (at["version"], at["fields"]["resource_policy"], at["deleted"]) == (1, "gold", False)
    last = as_json(db, "keypair", "show", "AK1", "--version", "3")
    assert (last["fields"]["resource_policy"], last["deleted"]) == (None, True)
    assert as_json(db, "keypair", "diff", "AK1", "--from", between.isoformat(), "--to", "2") == {
        "resource_policy": {"old": "gold", "new": None}
    }
    early = ledger(db, "keypair", "show", "AK1", "--at", "2000-01-01T00:00:00Z")
    assert early.exit_code == 1 and "did not exist at 2000-01-01T00:00:00Z" in early.stderr


def test_a_version_below_1_is_refused_once_naming_the_option_typed(db: str) -> None:
    """`diff --from 0` said `version: versions start at 1` (the query's field, not the option),
    and `show --version -1` said `must be at least 0` though 0 was then refused."""
    _history(db)
    for args, said in (
        (("diff", "p", "--from", "0", "--to", "2"), "--from: must be at least 1, got 0"),
        (("diff", "p", "--from", "1", "--to", "0"), "--to: must be at least 1, got 0"),
        (("show", "p", "--version", "0"), "--version: must be at least 1, got 0"),
        (("show", "p", "--version", "-1"), "--version: must be at least 1, got -1"),
    ):
        assert refused(db, "policy", *args) == f"error: ledger_invalid_parameters: {said}"
    bad = ledger(db, "--json", "policy", "diff", "p", "--from", "0", "--to", "2")
    assert json.loads(bad.stderr)["error"]["field"] == "--from"


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


def test_a_whole_trail_exported_as_json_lines_is_streamed_and_equals_the_list(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit --jsonl` and `--json audit` built the whole list before writing a line: 154 MB
    held for a 22 MB export of 10,000 actions. Without --limit they stream one statement
    (`audit_export`), a few rows at a time, and write what the list would have held,
    filters, order and format alike."""
    _history(db)
    ok(db, "--access-key", "AKROOT", "policy", "create", "q")
    cases = [[], ["--oldest-first"], ["--operation", "modify"], ["--status", "denied"], ["--actor", "AKROOT"],
             ["--entity-type", "keypair_resource_policy", "--entity-id", "p", "--oldest-first"]]  # fmt: skip
    # The list path (a limit past the trail's length) is the oracle.
    listed = [as_json(db, "audit", "--limit", "1000", *case) for case in cases]
    assert all(listed) and len(listed[0]) == 5
    monkeypatch.setattr("adapters.read.queries.OUTCOMES_CHUNK", 2)

    def whole_list(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole trail was read into a list")

    monkeypatch.setattr("adapters.read.queries.Queries.audit_log", whole_list)
    for case, entries in zip(cases, listed, strict=True):
        lines = ok(db, "audit", "--jsonl", *case).stdout.splitlines()
        assert [json.loads(line) for line in lines] == entries, case
        # --json streams too, and prints the very array it printed as a list.
        array = ok(db, "--json", "audit", *case).stdout
        assert array == json.dumps(entries, indent=2, ensure_ascii=True) + "\n", case
    assert ok(db, "--json", "audit", "--operation", "purge").stdout == "[]\n"


def test_a_diff_back_to_before_the_entity_existed_names_every_field_as_the_forward_one_does(db: str) -> None:
    """`diff --from NOW --to BEFORE-IT-EXISTED` printed no change ({} with --json), though
    the same diff the other way round listed every field from null."""
    ok(db, "policy", "create", "p", "--idle-timeout", "100")
    before, later = "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
    forward = as_json(db, "policy", "diff", "p", "--from", before, "--to", later)
    assert forward["idle_timeout"] == {"old": None, "new": 100}
    backward = as_json(db, "policy", "diff", "p", "--from", later, "--to", before)
    assert backward == {field: {"old": change["new"], "new": change["old"]} for field, change in forward.items()}
