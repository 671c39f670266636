"""`policy modify` and `group modify`: a modify that changes nothing says so and stores
nothing; `--slot NAME=VALUE` changes one slot of total_resource_slots, keeping the others."""

from __future__ import annotations

from typing import Any

from tests.adapters.cli.helpers import as_json, given_domains, given_users, ledger, ok, refused, usage_error

GROUP = "0e0e0e0e-0000-4000-8000-000000000001"
U1 = "aaaaaaaa-0000-4000-8000-000000000001"


def policy_events(db: str, name: str = "p") -> list[str]:
    return [e["event"] for e in as_json(db, "policy", "history", name)]


def group_events(db: str) -> list[str]:
    return [e["event"] for e in as_json(db, "group", "history", GROUP)]


def audited(db: str) -> list[tuple[str, str]]:
    return sorted((e["operation"], e["status"]) for e in as_json(db, "audit"))


# Nothing to change


def test_policy_modify_to_the_current_values_is_unchanged_and_stores_no_event(db: str) -> None:
    ok(db, "policy", "create", "p", "--idle-timeout", "100", "--total-resource-slots", "cpu=4,mem=8g")
    out = ok(db, "policy", "modify", "p", "--idle-timeout", "100", "--total-resource-slots", "mem=8g,cpu=4").stdout
    assert out.splitlines()[0] == "keypair resource policy 'p' unchanged"
    assert "modified" not in out and "idle_timeout" in out  # the policy as it stands
    same = as_json(db, "policy", "modify", "p", "--max-concurrent-sessions", "30")  # the default
    assert isinstance(same, dict)
    assert (same["changed"], same["name"], same["idle_timeout"]) == (False, "p", 100)
    assert policy_events(db) == ["Created"]
    # Each attempt is still an audited action (its permission checked), only no event.
    assert audited(db) == [("create", "success"), ("modify", "success"), ("modify", "success")]


def test_policy_modify_without_options_is_unchanged(db: str) -> None:
    ok(db, "policy", "create", "p")
    assert ok(db, "policy", "modify", "p").stdout.startswith("keypair resource policy 'p' unchanged\n")
    assert as_json(db, "policy", "modify", "p")["changed"] is False
    assert policy_events(db) == ["Created"]
    assert "permission_forbidden" in refused(db, "--role", "user", "policy", "modify", "p")
    assert refused(db, "policy", "modify", "ghost") == (
        "error: keypair_resource_policy_not_found: keypair resource policy 'ghost' not found"
    )


def test_policy_modify_that_changes_says_so(db: str) -> None:
    ok(db, "policy", "create", "p", "--idle-timeout", "100")
    assert ok(db, "policy", "modify", "p", "--idle-timeout", "200").stdout.startswith(
        "modified keypair resource policy 'p'\n"
    )
    changed = as_json(db, "policy", "modify", "p", "--unset", "idle_timeout")
    assert (changed["changed"], changed["idle_timeout"]) == (True, None)
    assert as_json(db, "policy", "modify", "p", "--unset", "idle_timeout")["changed"] is False  # null already
    assert policy_events(db) == ["Created", "Modified", "Modified"]


def test_group_modify_to_the_current_values_is_unchanged_and_stores_no_event(db: str) -> None:
    given_users(db, U1, domain="d1")
    ok(db, "group", "create", "team", "--domain-name", "d1", "--id", GROUP, "--description", "x")
    out = ok(db, "group", "modify", GROUP, "--description", "x", "--active", "--name", "team").stdout
    assert out.splitlines()[0] == f"group 'team' ({GROUP}) unchanged"
    assert ok(db, "group", "modify", GROUP).stdout.startswith(f"group 'team' ({GROUP}) unchanged\n")
    assert as_json(db, "group", "modify", GROUP.upper(), "--remove-users", U1)["changed"] is False  # not a member
    assert group_events(db) == ["Created"]
    added = as_json(db, "group", "modify", GROUP, "--add-users", U1)
    assert added["changed"] is True
    assert as_json(db, "group", "modify", GROUP, "--add-users", U1)["changed"] is False  # a member already
    renamed = ok(db, "group", "modify", GROUP, "--name", "team-b").stdout
    assert renamed.splitlines()[0] == f"modified group 'team-b' ({GROUP})"
    assert group_events(db) == ["Created", "MembersAdded", "Modified"]
    assert "not found" in refused(db, "group", "modify", "0e0e0e0e-0000-4000-8000-0000000000ff")


# --slot NAME=VALUE


def slots(db: str, *command: str) -> Any:
    return as_json(db, *command)["total_resource_slots"]


def test_policy_slot_changes_one_slot_and_keeps_the_others(db: str) -> None:
    ok(db, "policy", "create", "p", "--total-resource-slots", "cpu=4,mem=8g,cuda.device=1")
    modified = as_json(db, "policy", "modify", "p", "--slot", "cpu=8")
    assert modified["changed"] is True
    assert modified["total_resource_slots"] == {"cpu": "8", "mem": "8589934592", "cuda.device": "1"}
    # An alias names the stored slot; a new slot is added; the same value changes nothing.
    both = slots(db, "policy", "modify", "p", "--slot", "memory=16g", "--slot", "cuda.shares=0.5")
    assert both == {"cpu": "8", "mem": "17179869184", "cuda.device": "1", "cuda.shares": "0.5"}
    assert as_json(db, "policy", "modify", "p", "--slot", "cpu=8")["changed"] is False
    # --total-resource-slots replaces the whole map.
    assert slots(db, "policy", "modify", "p", "--total-resource-slots", "cpu=2") == {"cpu": "2"}
    assert policy_events(db) == ["Created", "Modified", "Modified", "Modified"]
    history = as_json(db, "policy", "history", "p")
    assert history[1]["changes"]["total_resource_slots"]["old"]["mem"] == "8589934592"


def test_policy_slot_errors(db: str) -> None:
    ok(db, "policy", "create", "p", "--total-resource-slots", "cpu=4")
    both = usage_error(db, "policy", "modify", "p", "--total-resource-slots", "cpu=1", "--slot", "mem=1g")
    assert "either --total-resource-slots (the whole map) or --slot, not both" in both
    assert "expected NAME=VALUE" in usage_error(db, "policy", "modify", "p", "--slot", "cpu")
    assert "expected NAME=VALUE" in usage_error(db, "policy", "modify", "p", "--slot", "cpu=")
    assert "'mem' given twice" in usage_error(db, "policy", "modify", "p", "--slot", "mem=1g", "--slot", "memory=2g")
    assert "--slot: warp.drive: unknown slot" in refused(db, "policy", "modify", "p", "--slot", "warp.drive=1")
    assert "--slot: cpu: " in refused(db, "policy", "modify", "p", "--slot", "cpu=lots")
    assert "not found" in refused(db, "policy", "modify", "ghost", "--slot", "cpu=1")
    assert policy_events(db) == ["Created"]


def test_group_slot_changes_one_slot_and_keeps_the_others(db: str) -> None:
    given_domains(db, "d1")
    ok(db, "group", "create", "team", "--domain-name", "d1", "--id", GROUP, "--total-resource-slots", "cpu=4,mem=1g")
    assert slots(db, "group", "modify", GROUP, "--slot", "mem=2g") == {"cpu": "4", "mem": "2147483648"}
    assert as_json(db, "group", "modify", GROUP, "--slot", "cpu=4")["changed"] is False
    both = usage_error(db, "group", "modify", GROUP, "--total-resource-slots", "cpu=1", "--slot", "cpu=2")
    assert "not both" in both
    assert "not found" in refused(db, "group", "modify", "0e0e0e0e-0000-4000-8000-0000000000ff", "--slot", "cpu=1")
    assert group_events(db) == ["Created", "Modified"]


def test_modify_help_says_what_replaces_and_what_merges(db: str) -> None:
    for command in ("policy", "group"):
        text = " ".join(ledger(db, command, "modify", "--help").stdout.split())
        assert "Replace the whole slot map" in text and "--slot" in text and "keeping the others" in text


# Nullable fields on create


def test_policy_create_unset_creates_with_no_limit_as_http_can(db: str) -> None:
    # the options' help promised "--unset: no limit", and POST /v1/keypair-resource-policies
    # takes idle_timeout: null, but `policy create` had no --unset (a usage error)
    created = as_json(db, "policy", "create", "p", "--unset", "idle_timeout", "--unset", "max-session-lifetime")
    assert created["idle_timeout"] is None and created["max_session_lifetime"] is None
    assert created["max_concurrent_sessions"] == 30  # the others keep create's defaults
    assert "is both set and unset" in usage_error(
        db, "policy", "create", "q", "--idle-timeout", "5", "--unset", "idle_timeout"
    )
    assert "cannot be unset" in usage_error(db, "policy", "create", "q", "--unset", "max_concurrent_sessions")
