"""`ledger session ...` and `ledger policy effective`: each decision printed with its
reasons (limit, scope, requested, used, allowed) in a table that fits 80 columns and in
--json; refusals as one line; the keypair given as --keypair (the root --access-key is the
actor)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from adapters.bootstrap import open_ledger
from domain.keypair import KeyPair
from tests.adapters.cli.helpers import as_json, labelled_utc, ledger, ok, refused, stdout_of, usage_error
from tests.adapters.sessions import SessionWorld, deleted_policy_world

S1, S2, S3 = (str(uuid.UUID(int=0x5E55 + i)) for i in range(3))


def _world(db: str, **limits: object) -> str:
    """Policy p (cpu 4 and the limits given) on keypair AK in domain d, group g: its id."""
    with open_ledger(db) as opened:
        world = SessionWorld(opened, total_resource_slots={"cpu": "4"}, **limits)
        return str(world.group_id)


def _enqueue(db: str, group: str, sid: str, *slots: str) -> str:
    args = [arg for slot in slots or ("cpu=1",) for arg in ("--slot", slot)]
    return stdout_of(db, "session", "enqueue", sid, "--keypair", "AK", "--group-id", group, *args)


def _fits(text: str) -> None:
    assert text.strip() and max(map(len, text.splitlines())) <= 80, text


def test_enqueue_and_schedule_print_each_decision_with_its_reasons(db: str) -> None:
    group = _world(db, max_concurrent_sessions=1)
    assert "enqueued session" in _enqueue(db, group, S1, "cpu=3")
    assert _enqueue(db, group, S2, "cpu=2").startswith(f"enqueued session {S2} (PENDING)\npolicy 'p' (keypair,")
    admitted = ledger(db, "session", "schedule", S1, columns=80)
    assert admitted.exit_code == 0, admitted.stderr
    assert admitted.stdout.startswith(f"admitted session {S1} (RUNNING)\npolicy 'p' (keypair, version ")
    assert "total_resource_slots.cpu" in admitted.stdout and "max_concurrent_sessions" in admitted.stdout
    _fits(admitted.stdout)
    deferred = ledger(db, "session", "schedule", S2, columns=80)
    assert deferred.exit_code == 0
    assert deferred.stdout.startswith(f"not admitted: session {S2} stays PENDING\npolicy 'p'")
    assert "2 reasons" in deferred.stdout
    _fits(deferred.stdout)
    rows = [line.split() for line in deferred.stdout.splitlines()]
    assert ["max_concurrent_sessions", "keypair", "AK", "1", "1", "1"] in rows
    assert ["total_resource_slots.cpu", "keypair", "AK", "2", "3", "4"] in rows
    data = as_json(db, "session", "schedule", S2)
    assert data["admitted"] is False and data["changed"] is False  # the same deferral again records nothing
    assert {(r["limit"], r["scope"], r["slot"], r["requested"], r["used"], r["allowed"]) for r in data["reasons"]} == {
        ("max_concurrent_sessions", "keypair", None, "1", "1", "1"),
        ("total_resource_slots", "keypair", "cpu", "2", "3", "4"),
    }


def test_show_names_the_levels_that_granted_each_mount(db: str) -> None:
    from domain.workload import CreateVFolderAction
    from tests.adapters.sessions import PLATFORM, run

    group = _world(db, allowed_vfolder_hosts={"nfs": ["mount-in-session"]})
    vfolder = uuid.uuid4()
    with open_ledger(db) as opened:
        action = CreateVFolderAction(vfolder_id=vfolder, name="data", host="nfs", group_id=group)
        run(opened, "workload", "create_vfolder", action, PLATFORM)
    ok(db, "session", "enqueue", S1, "--keypair", "AK", "--group-id", group, "--slot", "cpu=1", "--mount", str(vfolder))
    shown = ledger(db, "session", "show", S1, columns=80)
    assert f"  mount {str(vfolder)[:8]} on 'nfs': mount-in-session from keypair AK (policy 'p')\n" in shown.stdout
    _fits(shown.stdout)
    (grant,) = as_json(db, "session", "show", S1)["decisions"][0]["grants"]
    assert grant["granted_by"] == [{"scope": "keypair", "scope_id": "AK", "policy": "p"}]


def test_refusals_are_one_line(db: str) -> None:
    group = _world(db, max_pending_session_count=1)
    _enqueue(db, group, S1)
    line = refused(db, "session", "enqueue", S2, "--keypair", "AK", "--group-id", group, "--slot", "cpu=1")
    assert "quota_exceeded" in line and "max_pending_session_count" in line
    assert "not_found" in refused(db, "session", "schedule", S3)
    nobody = refused(db, "session", "enqueue", S3, "--keypair", "AKNOBODY", "--group-id", group, "--slot", "cpu=1")
    assert nobody == "error: keypair_not_found: --keypair: keypair 'AKNOBODY' not found"
    # A group that is not there is named by the option too (a GroupNotFound, of its own code).
    nowhere = refused(db, "session", "enqueue", S3, "--keypair", "AK", "--group-id", S1, "--slot", "cpu=1")
    assert nowhere == f"error: group_not_found: --group-id: group '{S1}' not found"
    # A malformed value is named by the option the user typed, not by the action's field.
    bad_key = refused(db, "session", "enqueue", S3, "--keypair", "A K", "--group-id", group, "--slot", "cpu=1")
    assert "--keypair:" in bad_key
    assert "--slot" in usage_error(
        db, "session", "enqueue", S3, "--keypair", "AK", "--group-id", group, "--slot", "cpu"
    )


def test_show_says_what_its_count_of_decisions_counts(db: str) -> None:
    """`session show` printed `decisions │ 1` above two decision tables, the enqueue's and
    the deferral's: the row is the count of start-gate decisions (admitted or deferred),
    which leaves the enqueue out. The row is named for what it counts."""
    group = _world(db, max_concurrent_sessions=1)
    for sid in (S1, S2):
        _enqueue(db, group, sid)
        ok(db, "session", "schedule", sid)
    shown = ledger(db, "session", "show", S2, columns=80).stdout
    rows = dict((cell.strip() for cell in line.split("│")[1:3]) for line in shown.splitlines() if line.count("│") == 3)
    assert rows["start-gate decisions"] == "1"
    assert "decisions" not in rows
    assert "enqueue" in shown and "deferred" in shown
    assert as_json(db, "session", "list")[1]["decisions"] == 1  # the JSON keeps its key


def test_show_list_and_the_end_of_a_session(db: str) -> None:
    group = _world(db, max_concurrent_sessions=1)
    for sid in (S1, S2, S3):
        _enqueue(db, group, sid)
    ok(db, "session", "schedule", S1)
    ok(db, "session", "schedule", S2)
    shown = ledger(db, "session", "show", S2, columns=80)
    assert shown.exit_code == 0
    _fits(shown.stdout)
    assert "deferred" in shown.stdout and "enqueue" in shown.stdout
    detail = as_json(db, "session", "show", S2)
    assert [d["decision"] for d in detail["decisions"]] == ["enqueue", "deferred"]
    assert detail["decisions"][1]["checks"][0]["limit"] == "max_concurrent_sessions"
    table = ledger(db, "session", "list", columns=80)
    _fits(table.stdout)
    assert "3 sessions" in table.stdout and labelled_utc(table.stdout, "started")
    assert [s["session_id"] for s in as_json(db, "session", "list", "--status", "RUNNING")] == [S1]
    page = as_json(db, "session", "list", "--keypair", "AK", "--limit", "2")
    assert [s["session_id"] for s in page["items"]] == [S1, S2] and page["next_after"] == S2
    assert as_json(db, "session", "list", "--group-id", str(uuid.uuid4())) == []
    assert stdout_of(db, "session", "cancel", S3) == f"cancelled session {S3}\n"
    assert stdout_of(db, "session", "cancel", S3) == f"session {S3} had already ended (unchanged)\n"
    assert stdout_of(db, "session", "terminate", S1, "--reason", "idle_timeout") == f"terminated session {S1}\n"
    ended = as_json(db, "session", "list", "--status", "TERMINATED")
    assert [(s["session_id"], s["end_reason"]) for s in ended] == [(S1, "idle_timeout")]


def test_a_session_terminated_while_its_kernel_runs_is_terminating_until_the_kernel_ends(db: str) -> None:
    """`session terminate` of a session whose kernel still ran released its usage at once:
    a second session was admitted past max_concurrent_sessions 1 while `kernel list`
    still showed the first one's kernel RUNNING."""
    group = _world(db, max_concurrent_sessions=1)
    _enqueue(db, group, S1), _enqueue(db, group, S2)
    ok(db, "session", "schedule", S1)
    owner = as_json(db, "session", "show", S1)["user_id"]
    kernel = str(uuid.uuid4())
    start = ("kernel-start", kernel, "--session-id", S1, "--session-name", "s", "--group-id", group, "--owner", owner)
    at = ("--started-at", "2025-01-01T00:00:00Z", "--domain-name", "d")
    ok(db, "--role", "service", "workload", *start, "--kernel-access-key", "AK", "--slots", "cpu=1", *at)
    terminating = ledger(db, "session", "terminate", S1, "--reason", "user_requested", columns=80)
    assert terminating.stdout == (
        f"terminating session {S1}\nits kernels still run: it holds its usage until the last one ends\n"
    )
    _fits(terminating.stdout)
    assert (
        stdout_of(db, "session", "terminate", S1, "--reason", "x")
        == f"session {S1} is already terminating (unchanged)\n"
    )
    assert stdout_of(db, "session", "cancel", S1) == f"session {S1} is already terminating (unchanged)\n"
    assert [k["kernel_id"] for k in as_json(db, "kernel", "list", "--status", "RUNNING")] == [kernel]
    shown = as_json(db, "session", "show", S1)
    assert (shown["status"], shown["end_reason"], shown["ended_at"], shown["kernels"]) == (
        "TERMINATING",
        "user_requested",
        None,
        1,
    )
    assert [s["session_id"] for s in as_json(db, "session", "list", "--status", "terminating")] == [S1]
    assert "TERMINATING" in " ".join(stdout_of(db, "session", "list", "--help").split())
    assert as_json(db, "session", "schedule", S2)["admitted"] is False  # S1 still counts
    ok(db, "--role", "service", "workload", "kernel-terminate", kernel, "--terminated-at", "2025-01-02T00:00:00Z")
    ended = as_json(db, "session", "show", S1)
    assert (ended["status"], ended["end_reason"], ended["kernels"]) == ("TERMINATED", "user_requested", 0)
    events = [e["event"] for e in as_json(db, "session", "history", S1)]
    assert events[-4:] == ["KernelAttached", "TerminationStarted", "KernelDetached", "Terminated"]
    assert as_json(db, "session", "schedule", S2)["admitted"] is True


def test_due_and_activity(db: str) -> None:
    group = _world(db, idle_timeout=60)
    _enqueue(db, group, S1)
    ok(db, "session", "schedule", S1)
    started = as_json(db, "session", "list")[0]["started_at"]
    assert as_json(db, "session", "due", "--now", started) == []
    # Activity is reported as it happens: at most MAX_CLOCK_AHEAD past the ledger's clock.
    active, deadline = (datetime.fromisoformat(started) + timedelta(seconds=s) for s in (30, 90))
    ok(db, "session", "activity", S1, "--at", active.isoformat())
    (due,) = as_json(db, "session", "due", "--now", deadline.isoformat())
    expected = deadline.isoformat().replace("+00:00", "Z")
    assert (due["session_id"], due["reason"], due["deadline"]) == (S1, "idle_timeout", expected)
    table = ledger(db, "session", "due", "--now", deadline.isoformat(), columns=80)
    _fits(table.stdout)
    assert "1 session due" in table.stdout and "idle_timeout" in table.stdout
    assert labelled_utc(table.stdout, "deadline")
    assert "unchanged" in stdout_of(db, "session", "activity", S1, "--at", started)
    assert "ahead of the ledger's clock" in refused(db, "session", "activity", S1, "--at", "2999-01-01T00:00:00Z")
    assert "--now" in refused(db, "session", "due", "--now", "yesterday")


def test_due_names_the_deleted_policy_a_deleted_keypairs_session_runs_on_under(db: str) -> None:
    """Keypair AKZ, on policy pz (60 s), was deleted, then pz: `session due` judged its
    session under the domain's default pp (1800 s) and named pp alone. It names pz, as
    deleted, with its version and the level that named it."""
    with open_ledger(db) as opened:
        world, sid, _ = deleted_policy_world(opened, "keypair")
        version, started = world.version("pz"), opened.services.session.session(sid).started_at
    assert started is not None
    at = (started + timedelta(seconds=60)).isoformat()
    (due,) = as_json(db, "session", "due", "--now", at)
    ref = {"name": "pz", "source": "keypair", "version": version, "deleted": True}
    assert (due["session_id"], due["policy"], due["policy_ref"]) == (str(sid), "pz", ref)
    table = ledger(db, "session", "due", "--now", at, columns=80)
    assert table.exit_code == 0, table.stderr
    _fits(table.stdout)
    wide = stdout_of(db, "session", "due", "--now", at)  # wide: the policy's column unfolded
    assert f"'pz' (keypair, version {version}, deleted)" in wide, wide


def test_a_policy_reference_names_a_deleted_policy_and_each_level_skipped() -> None:
    """The JSON of a decision or a due session said a level was skipped (a keypair
    deleted before its delete recorded its policy, whose policy was deleted since,
    falls to the next level) while the line printed named the policy applied alone."""
    from adapters.cli.session import _policy_ref

    skipped = [{"source": "keypair", "name": "pz", "reason": "deleted"}]
    ref = {"name": "pp", "source": "domain", "version": 3, "skipped": skipped}
    assert _policy_ref(ref) == "'pp' (domain, version 3); skipped 'pz' (keypair, deleted)"
    deleted = {"name": "pz", "source": "user", "version": 5, "deleted": True}
    assert _policy_ref(deleted) == "'pz' (user, version 5, deleted)"


def test_policy_effective(db: str) -> None:
    _world(db)
    text = ledger(db, "policy", "effective", "AK", columns=80)
    assert text.exit_code == 0
    assert text.stdout.startswith("keypair AK: policy 'p' (keypair, version ")
    _fits(text.stdout)
    data = as_json(db, "policy", "effective", "AK")
    assert (data["name"], data["source"], data["total_resource_slots"]) == ("p", "keypair", {"cpu": "4"})
    assert isinstance(data["version"], int)
    assert "keypair_not_found" in refused(db, "policy", "effective", "AKNOBODY")


def test_policy_effective_of_an_older_releases_access_key_prints_it_escaped(db: str) -> None:
    """An older release took an access key with a bidi control; its effective policy is
    read, and the key printed escaped, as every value the CLI shows."""
    with open_ledger(db) as opened:
        fields = {"user_id": str(uuid.uuid4()), "domain_name": "default", "resource_policy": "default"}
        opened.app.save(KeyPair.create("AK\u202eX", fields))
    text = ledger(db, "policy", "effective", "AK\u202eX", columns=80)
    assert text.exit_code == 0, text.stderr
    assert text.stdout.startswith("keypair AK\\u202eX: policy 'default' (keypair, version ")


def test_a_limit_taken_from_the_fallback_policy_is_explained_by_naming_it(db: str) -> None:
    """Policy p lists cpu only; its fallback fb lists mem 4g. A deferral for mem 8g printed
    "policy 'p' (keypair, version N)" over "allowed 4g", a limit `policy show p` has not:
    the policy that set it was named only in --json."""
    with open_ledger(db) as opened:
        world = SessionWorld(opened, total_resource_slots={"cpu": "4"})
        world.policy("fb", total_resource_slots={"mem": "4g"})
        world.modify_policy("p", fallback_policy="fb")
        group, fallback = str(world.group_id), f"fallback 'fb' (version {world.version('fb')})"
    _enqueue(db, group, S1, "cpu=1", "mem=8g")
    deferred = ledger(db, "session", "schedule", S1, columns=80)
    assert deferred.exit_code == 0, deferred.stderr
    assert deferred.stdout.splitlines()[1].endswith(f"), {fallback}"), deferred.stdout
    assert ["total_resource_slots.mem", "keypair", "AK", "8g", "0", "4g"] in [
        line.split() for line in deferred.stdout.splitlines()
    ]
    _fits(deferred.stdout)
    shown = ledger(db, "session", "show", S1, columns=80)
    # Both decisions, the enqueue's and the deferral's, name it.
    assert shown.exit_code == 0 and " ".join(shown.stdout.split()).count(fallback) == 2, shown.stdout
    _fits(shown.stdout)
    effective = stdout_of(db, "policy", "effective", "AK")
    assert effective.splitlines()[0].endswith(f"), {fallback}"), effective


def test_enqueue_help_says_the_keypair_is_not_the_actor(db: str) -> None:
    text = stdout_of(db, "session", "enqueue", "--help")
    assert "--keypair" in text and "actor" in text


def test_byte_slots_in_a_decision_read_in_binary_units(db: str) -> None:
    """A memory limit weighed was printed in bytes (3221225472 against 4294967296), which
    folded the limit's name at 80 columns; it reads as `policy show` writes it. --json
    keeps the exact numbers."""
    with open_ledger(db) as opened:
        group = str(SessionWorld(opened, total_resource_slots={"cpu": "4", "mem": "4g"}).group_id)
    _enqueue(db, group, S1, "cpu=1", "mem=3g")
    ok(db, "session", "schedule", S1)
    _enqueue(db, group, S2, "cpu=1", "mem=1536m")
    deferred = ledger(db, "session", "schedule", S2, columns=80)
    _fits(deferred.stdout)
    rows = [line.split() for line in deferred.stdout.splitlines()]
    assert ["total_resource_slots.mem", "keypair", "AK", "1536m", "3g", "4g"] in rows
    (reason,) = as_json(db, "session", "schedule", S2)["reasons"]
    assert (reason["requested"], reason["used"], reason["allowed"]) == ("1610612736", "3221225472", "4294967296")


def test_cancel_refuses_a_running_session_as_its_help_says(db: str) -> None:
    group = _world(db)
    _enqueue(db, group, S1)
    ok(db, "session", "schedule", S1)
    assert "terminate" in refused(db, "session", "cancel", S1)
    assert as_json(db, "session", "show", S1)["status"] == "RUNNING"
    # The help told the opposite (that a running session is terminated).
    assert "refused" in " ".join(stdout_of(db, "session", "cancel", "--help").split())


def test_history_shows_each_limit_weighed_as_the_decision_tables_do(db: str) -> None:
    """`session history` showed a decision's checks as Python reprs, in bytes:
    "{'limit': 'total_resource_slots', ..., 'slot': 'mem', 'requested': '8589934592', ...}",
    and a policy's fallback as "fallback={'name': 'fb', 'version': 2}"."""
    with open_ledger(db) as opened:
        world = SessionWorld(opened, total_resource_slots={"cpu": "4"})
        world.policy("fb", total_resource_slots={"mem": "4g"})
        world.modify_policy("p", fallback_policy="fb")
        group, version = str(world.group_id), world.version("fb")
    _enqueue(db, group, S1, "cpu=1", "mem=8g")
    ok(db, "session", "schedule", S1)
    text = " ".join(ledger(db, "session", "history", S1, columns=200).stdout.split())
    assert "{'" not in text and "None" not in text, text
    deferral = "keypair AK: total_resource_slots.mem: requested 8g, used 0, allowed 4g"
    assert deferral in text, text
    assert "keypair AK: max_pending_session_count: requested 1, used 0, allowed Infinity" in text, text
    assert f"fallback={{name=fb, version={version}}}" in text, text
    _fits(ledger(db, "session", "history", S1, columns=80).stdout)


def test_history_lists_a_sessions_events_as_the_api_does(db: str) -> None:
    """The HTTP API had /v1/sessions/{id}/history; the CLI had no `session history`."""
    group = _world(db)
    _enqueue(db, group, S1)
    ok(db, "session", "schedule", S1)
    ok(db, "session", "terminate", S1, "--reason", "user_requested")
    events = [e["event"] for e in as_json(db, "session", "history", S1.upper())]  # any case names it
    assert events == ["Created", "Admitted", "Terminated"]
    newest = as_json(db, "session", "history", S1, "--newest-first", "--limit", "1")
    assert [e["event"] for e in newest["items"]] == ["Terminated"]
    _fits(ledger(db, "session", "history", S1, columns=80).stdout)
    assert refused(db, "session", "history", S2).startswith("error: session_not_found:")
    assert "SESSION_ID: 'nope' is not a UUID" in refused(db, "session", "history", "nope")


def test_json_times_are_written_in_utc_z_as_the_http_api_writes_them(db: str) -> None:
    """`--json` wrote `+00:00` where the HTTP API writes `Z` for the same entry, and an
    action's input in the audit trail kept its caller's offset: two forms for a script."""
    group = _world(db, idle_timeout=60)
    _enqueue(db, group, S1)
    ok(db, "session", "schedule", S1)
    started = datetime.fromisoformat(as_json(db, "session", "list")[0]["started_at"])
    at = (started + timedelta(seconds=5)).astimezone(timezone(timedelta(hours=9)))
    ok(db, "session", "activity", S1, "--at", at.isoformat())
    sessions = as_json(db, "session", "list")
    assert sessions[0]["last_activity_at"] == at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    entries = [*as_json(db, "audit"), *map(json.loads, ok(db, "audit", "--jsonl").stdout.splitlines())]
    times = [e[name] for e in entries for name in ("started_at", "ended_at")]
    times += [e["occurred_at"] for e in as_json(db, "session", "history", S1)]
    times += [s[name] for s in sessions for name in ("enqueued_at", "started_at")]
    assert times and all(t.endswith("Z") and "+" not in t for t in times), times
    reported = [e["spec"]["at"] for e in entries if e["operation"] == "report_activity"]
    assert reported == [sessions[0]["last_activity_at"]] * 2, reported


def test_group_delete_and_purge_say_which_pending_sessions_they_cancelled(db: str) -> None:
    """A delete (or a purge) cancels the group's pending sessions in its own append; the
    command said only "deleted group ...", so an operator did not learn it ended them."""
    group = _world(db)
    _enqueue(db, group, S1)
    _enqueue(db, group, S2)
    said = stdout_of(db, "group", "delete", group).splitlines()
    assert said[1:] == [f"cancelled 2 pending sessions with the delete: {', '.join(sorted((S1, S2)))}"], said
    assert as_json(db, "group", "delete", group)["cancelled_sessions"] == []  # nothing left to cancel
    assert stdout_of(db, "group", "purge", group).splitlines()[1:] == []
    other = _world(db.replace(".db", "-2.db"))
    _enqueue(db.replace(".db", "-2.db"), other, S3)
    purged = as_json(db.replace(".db", "-2.db"), "group", "purge", other)
    assert purged["cancelled_sessions"] == [S3]


def test_a_keypair_delete_says_which_pending_sessions_it_cancelled(db: str) -> None:
    group = _world(db)
    _enqueue(db, group, S1)
    said = stdout_of(db, "keypair", "delete", "AK").splitlines()
    assert said == ["deleted keypair 'AK'", f"cancelled 1 pending session with the delete: {S1}"], said


def test_session_list_and_due_in_40_columns_name_the_columns_they_leave_out(db: str) -> None:
    """Rich dropped columns and cut the start time at 40 columns without a word."""
    group = _world(db, idle_timeout=60)
    _enqueue(db, group, S1)
    ok(db, "session", "schedule", S1)
    started = as_json(db, "session", "list")[0]["started_at"]
    listed = ledger(db, "session", "list", columns=40).stdout
    assert max(map(len, listed.splitlines())) <= 40 and started[:10] in listed and "RUNNING" in listed
    said = " ".join(line.strip() for line in listed.splitlines())
    assert "Left out to fit 40 columns: policy, slots, keypair" in said
    deadline = (datetime.fromisoformat(started) + timedelta(seconds=90)).isoformat()
    due = ledger(db, "session", "due", "--now", deadline, columns=40).stdout
    assert max(map(len, due.splitlines())) <= 40 and "idle_timeout" in due and deadline[:10] in due
    assert "Left out to fit 40 columns: policy" in " ".join(line.strip() for line in due.splitlines())


def test_a_deferral_in_40_columns_keeps_what_was_allowed(db: str) -> None:
    """At 40 columns rich dropped the allowed column of the reasons, and cut the title's
    policy name: what an operator reads a deferral for. Too narrow for the table, each
    reason is a block of `header: value` lines."""
    group = _world(db, max_concurrent_sessions=1)
    _enqueue(db, group, S1, "cpu=3"), _enqueue(db, group, S2, "cpu=2")
    ok(db, "session", "schedule", S1)
    deferred = ledger(db, "session", "schedule", S2, columns=40).stdout
    assert "\nlimit: total_resource_slots.cpu\nscope: keypair AK\nrequested: 2\nused: 3\nallowed: 4\n" in deferred
    assert "\nlimit: max_concurrent_sessions\n" in deferred and "'p'" in deferred
    assert "Left out" not in deferred
    wide = ledger(db, "session", "schedule", S2, columns=80).stdout
    assert "allowed" in wide and "allowed:" not in wide
