"""`ledger projections status | rebuild --force | skip` on a read model stalled by an event
an older release stored, on both backends: one-line errors (exit 1), recovery, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from adapters.bootstrap import open_ledger
from projections import usage as usage_module
from tests.adapters.cli.helpers import as_json, ledger, ok, usage_error
from tests.projections.commands import T0
from tests.projections.stalls import stalled_ledger

V = usage_module.UsageProjection.version  # the usage read model's, as status and skips name it


def refused(db: str, *args: str) -> str:
    result = ledger(db, *args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    *progress, line = result.stderr.splitlines()  # (a rebuild's progress bar goes to stderr too)
    assert "Traceback" not in result.stderr and all("error" not in p for p in progress)
    return line


def usage_row(db: str) -> dict[str, Any]:
    (found,) = [s for s in as_json(db, "projections", "status") if s["name"] == "usage_utc"]
    return found


@pytest.fixture
def stalled(ledger_url: str) -> int:
    with open_ledger(ledger_url) as opened:
        return stalled_ledger(opened)


def test_status_shows_the_stall_and_the_query_names_it(ledger_url: str, stalled: int) -> None:
    table = ok(ledger_url, "projections", "status").stdout
    assert f"stalled at position {stalled}: ValueError: Invalid isoformat string: 'yesterday'" in table
    row = usage_row(ledger_url)
    assert row["stalled"]["position"] == stalled and row["lag"] > 0 and row["skips"] == 0
    assert all(s["stalled"] is None for s in as_json(ledger_url, "projections", "status") if s["name"] != "usage_utc")
    line = refused(ledger_url, "usage", "month", "202410")
    assert line.startswith(f"error: ledger_read_model_stalled: read model usage_utc is stalled at position {stalled}")
    # The others answer, commands are accepted, the follower keeps going.
    ok(ledger_url, "policy", "create", "still-works")
    assert "still-works" in ok(ledger_url, "policy", "list").stdout
    # The follower keeps going; --once (for scripts) says a read model stays behind, exit 1.
    once = ledger(ledger_url, "projections", "run", "--once")
    assert once.exit_code == 1 and "read models at position" in once.stdout
    assert f"error: ledger_read_model_stalled: read model usage_utc is stalled at position {stalled}" in once.stderr


def test_a_rebuild_without_force_does_not_pass_a_stalled_read_model_for_mended(
    ledger_url: str, stalled: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`projections rebuild usage` (no --force) on the stalled read model said "nothing to
    rebuild: the read models are at this code's versions", exit 0, and left it stalled."""
    for args in (("usage",), ()):
        line = refused(ledger_url, "projections", "rebuild", *args)
        assert line.startswith(
            f"error: ledger_read_model_stalled: read model usage_utc is stalled at position {stalled}"
        )
        assert "projections rebuild --force usage_utc" in line and f"--position {stalled}" in line, line
    assert "nothing to rebuild" in ok(ledger_url, "projections", "rebuild", "history").stdout  # not stalled
    real = usage_module.parse_time
    monkeypatch.setattr(usage_module, "parse_time", lambda text: T0 if text == "yesterday" else real(text))
    # Its handler fixed, the rebuild tries the event again (as any new process would): it goes on.
    assert "nothing to rebuild" in ok(ledger_url, "projections", "rebuild", "usage").stdout
    row = usage_row(ledger_url)
    assert (row["stalled"], row["lag"]) == (None, 0)


def test_skip_refuses_other_positions_and_non_superadmins(ledger_url: str, stalled: int) -> None:
    line = refused(ledger_url, "projections", "skip", "usage", "--position", str(stalled - 1), "--reason", "x")
    assert line == (
        f"error: ledger_skip_not_stalled: read model usage_utc is not stalled at position {stalled - 1}: "
        f"it is stalled at {stalled} (version {V}); only the event it is stalled on can be skipped"
    )
    # A healthy read model was 'not stalled at position N: it is stalled at nowhere'.
    line = refused(ledger_url, "projections", "skip", "audit", "--position", str(stalled), "--reason", "x")
    assert line == "error: ledger_skip_not_stalled: read model audit is not stalled: there is no event to skip"
    line = refused(
        ledger_url, "--role", "admin", "projections", "skip", "usage", "--position", str(stalled), "--reason", "x"
    )
    assert line.startswith("error: permission_forbidden: admin")
    assert refused(ledger_url, "projections", "skip", "nope", "--position", "1", "--reason", "x").startswith(
        "error: ledger_invalid_parameters: NAME: no projection named 'nope'"
    )


def test_skip_recovers_and_stays_in_the_audit_trail(ledger_url: str, stalled: int) -> None:
    out = ok(ledger_url, "projections", "skip", "usage", "--position", str(stalled), "--reason", "bad time from 1.2")
    assert f"usage_utc v{V} skips the event at position {stalled}; now ok" in out.stdout
    row = usage_row(ledger_url)
    assert row["stalled"] is None and row["lag"] == 0
    assert (row["skips"], row["last_skip"]["position"], row["last_skip"]["reason"]) == (1, stalled, "bad time from 1.2")
    assert f"1 (last: position {stalled} of v{V}, bad time from 1.2)" in ok(ledger_url, "projections", "status").stdout
    assert len(as_json(ledger_url, "usage", "month", "202410")) == 1
    (entry,) = as_json(ledger_url, "audit", "--entity-type", "projection")
    assert (entry["operation"], entry["status"], entry["entity_id"]) == ("skip", "success", "usage_utc")
    assert entry["spec"] == {"projection": "usage_utc", "position": stalled, "reason": "bad time from 1.2"}
    # A forced rebuild from the first event steps over it again.
    assert f"rebuilt usage_utc v{V} (forced)" in ok(ledger_url, "projections", "rebuild", "--force", "usage").stdout
    assert usage_row(ledger_url)["stalled"] is None


def test_rebuild_force_fails_on_the_same_event_then_recovers_once_fixed(
    ledger_url: str, stalled: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = refused(ledger_url, "projections", "rebuild", "--force", "usage")
    assert line.startswith(f"error: ledger_read_model_stalled: rebuild of usage_utc stalled at position {stalled}")
    row = usage_row(ledger_url)
    assert row["rebuild_stalled"]["position"] == stalled and row["stalled"]["position"] == stalled
    assert f"rebuild at {stalled - 1}, stalled at position {stalled}" in ok(ledger_url, "projections", "status").stdout

    real = usage_module.parse_time

    def fixed(text: str | None) -> datetime | None:
        return T0 if text == "yesterday" else real(text)

    monkeypatch.setattr(usage_module, "parse_time", fixed)
    # The rebuild in progress resumes (a new process tries the event again) and is swapped in.
    data = as_json(ledger_url, "projections", "rebuild", "--force", "usage")
    assert (data["rebuilt"], data["forced"]) == (["usage_utc"], ["usage_utc"])
    row = usage_row(ledger_url)
    assert (row["stalled"], row["rebuild_position"], row["lag"]) == (None, None, 0)
    assert len(as_json(ledger_url, "usage", "month", "202410")) == 1
    assert "nothing to rebuild" in ok(ledger_url, "projections", "rebuild", "usage").stdout


# Usage read models of several time zones: `usage` names each of them

ZONE = "Pacific/Kiritimati"


@pytest.fixture
def stalled_in_two_zones(ledger_url: str) -> int:
    """The bad event stalls the usage read model of UTC and of Pacific/Kiritimati."""
    with open_ledger(ledger_url, ZONE) as opened:
        bad = stalled_ledger(opened)
    with open_ledger(ledger_url) as opened:
        opened.runner.catch_up()
    return bad


def stalls(db: str) -> dict[str, int | None]:
    found = as_json(db, "projections", "status")
    return {s["name"]: s["stalled"] and s["stalled"]["position"] for s in found if s["name"].startswith("usage")}


def test_skip_of_a_name_several_zones_share_takes_the_one_stalled_else_asks_for_the_full_name(
    ledger_url: str, stalled_in_two_zones: int
) -> None:
    """`usage` took the first zone's read model (usage_utc): with another zone's stalled, the
    skip was refused as 'not stalled', and its full name was 'no projection named'."""
    bad = stalled_in_two_zones
    assert stalls(ledger_url) == {"usage_pacific_kiritimati": bad, "usage_utc": bad}
    both = usage_error(ledger_url, "projections", "skip", "usage", "--position", str(bad), "--reason", "x")
    assert (
        "'usage' names 2 read models (usage_pacific_kiritimati, usage_utc); "
        "stalled: usage_pacific_kiritimati, usage_utc: give the full name"
    ) in both
    out = ok(ledger_url, "projections", "skip", "usage_utc", "--position", str(bad), "--reason", "x").stdout
    assert f"usage_utc v{V} skips the event at position {bad}; now ok" in out
    # One of them stalled: that one.
    out = ok(ledger_url, "projections", "skip", "usage", "--position", str(bad), "--reason", "y").stdout
    assert out == (
        f"usage_pacific_kiritimati v{V} skips the event at position {bad}; "
        "the processes that build it step over it as they catch up (this one does not build it)\n"
    )
    (entry,) = as_json(ledger_url, "audit", "--entity-type", "projection", "--entity-id", "usage_pacific_kiritimati")
    assert entry["spec"] == {"projection": "usage_pacific_kiritimati", "position": bad, "reason": "y"}
    with open_ledger(ledger_url, ZONE) as opened:  # its zone's process steps over the event
        opened.runner.catch_up()
    assert stalls(ledger_url) == {"usage_pacific_kiritimati": None, "usage_utc": None}
    # None stalled: the name is refused naming them all.
    none = usage_error(ledger_url, "projections", "skip", "usage", "--position", str(bad), "--reason", "x")
    assert "'usage' names 2 read models (usage_pacific_kiritimati, usage_utc), none stalled: give the full name" in none


def test_a_rebuild_of_another_zones_usage_read_model_says_which_process_builds_it(
    ledger_url: str, stalled_in_two_zones: int
) -> None:
    """`status` lists it, and `rebuild` said only 'no projection named'."""
    refusal = refused(ledger_url, "projections", "rebuild", "--force", "usage_pacific_kiritimati")
    assert "another time zone's usage read model" in refusal and "LEDGER_TIMEZONE" in refusal
    assert "no projection named 'nothing'" in refused(ledger_url, "projections", "rebuild", "nothing")


def test_status_says_a_rebuild_resumes_a_build_stalled_on_a_skipped_event(ledger_url: str, stalled: int) -> None:
    """A skip catches up the active version only: the forced rebuild's stall stayed shown
    as it was, as if the skip had not been taken, until a rebuild resumed it."""
    refused(ledger_url, "projections", "rebuild", "--force", "usage")
    ok(ledger_url, "projections", "skip", "usage", "--position", str(stalled), "--reason", "bad")
    table = ledger(ledger_url, "projections", "status", columns=400).stdout
    assert f"stalled at position {stalled}" in table
    assert "(skipped since: `ledger projections rebuild` steps over it)" in table
    assert f"rebuilt usage_utc v{V} (forced)" in ok(ledger_url, "projections", "rebuild", "usage").stdout
    assert "skipped since" not in ok(ledger_url, "projections", "status").stdout
