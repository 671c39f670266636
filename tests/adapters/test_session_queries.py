"""The read side of sessions (issue 12 items 2 and 4) on SQLite and PostgreSQL: the
sessions read model's lists and filters, one session with its decisions, sessions_due at
its deadline edges (a policy edit applies at the next call), and the effective policy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from adapters.bootstrap import Ledger
from domain.errors import InvalidAPIParameters, LedgerError
from domain.keypair import KeyPair, ModifyKeyPairAction
from domain.session import DueReason, Session
from tests import policies
from tests.adapters import directory
from tests.adapters.sessions import SessionWorld
from tests.conftest import SUPERADMIN

US = timedelta(microseconds=1)


def test_sessions_are_listed_with_their_filters(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=2)
    world.keypair("AK2", "p")
    other = world.group("h")
    a, b = world.enqueue(), world.enqueue(access_key="AK2", group_id=other)
    c = world.enqueue()
    world.schedule(a), world.schedule(b)
    world.cancel(c)
    q = ledger.queries
    assert [s.session_id for s in q.sessions()] == [str(a), str(b), str(c)]
    assert [s.session_id for s in q.sessions(status="running")] == [str(a), str(b)]
    assert [s.session_id for s in q.sessions(access_key="AK2")] == [str(b)]
    assert [s.session_id for s in q.sessions(group_id=other)] == [str(b)]
    assert [s.session_id for s in q.sessions(status="CANCELLED", access_key="AK")] == [str(c)]
    assert [s.session_id for s in q.sessions(limit=1)] == [str(a)]
    entry = q.sessions(status="RUNNING")[0]
    assert (entry.access_key, entry.group_id, entry.domain_name, entry.requested_slots) == (
        "AK",
        str(world.group_id),
        "d",
        {"cpu": "1"},
    )
    assert (entry.policy_name, entry.policy_version, entry.decisions) == ("p", world.version(), 1)
    assert entry.started_at is not None and entry.ended_at is None
    ended = q.sessions(status="CANCELLED")[0]
    assert (ended.end_reason, ended.ended_at is not None) == ("cancelled", True)
    with pytest.raises(InvalidAPIParameters) as bad:
        q.sessions(status="ASLEEP")
    assert bad.value.field == "status"


def test_a_session_shows_every_decision_with_its_reasons(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=1)
    first, second = world.enqueue(), world.enqueue()
    world.schedule(first)
    world.schedule(second)
    v = world.version()
    world.modify_policy("p", max_concurrent_sessions=2)
    world.schedule(second)
    detail = ledger.queries.session(second)
    assert detail is not None
    assert [(d.decision, d.policy["version"]) for d in detail.decisions] == [
        ("enqueue", v),
        ("deferred", v),
        ("admitted", v + 1),
    ]
    (reason,) = detail.decisions[1].checks
    assert reason == {
        "limit": "max_concurrent_sessions",
        "scope": "keypair",
        "scope_id": "AK",
        "slot": None,
        "requested": "1",
        "used": "1",
        "allowed": "1",
    }
    assert detail.session.policy_version == v + 1 and detail.session.decisions == 2
    assert detail.to_json()["decisions"][2]["decision"] == "admitted"
    assert ledger.queries.session("00000000-0000-4000-8000-000000000000") is None


def test_sessions_due_at_the_deadline_edges(ledger: Ledger) -> None:
    world = SessionWorld(ledger, idle_timeout=60, max_session_lifetime=100)
    sid = world.enqueue()
    world.schedule(sid)
    entry = ledger.queries.sessions(status="RUNNING")[0]
    started = entry.started_at
    assert started is not None and started > entry.enqueued_at
    q = ledger.queries
    assert q.sessions_due(started + timedelta(seconds=60) - US) == []
    (due,) = q.sessions_due(started + timedelta(seconds=60))  # due AT the deadline
    assert (due.session_id, due.reason, due.deadline, due.policy) == (
        sid,
        DueReason.IDLE_TIMEOUT,
        started + timedelta(seconds=60),
        "p",
    )
    # Activity moves the idle deadline; the lifetime counts from the running start. (The
    # activity is within the ledger clock's tolerance: a report further ahead is refused.)
    world.activity(sid, started + timedelta(seconds=90))
    assert q.sessions_due(started + timedelta(seconds=100) - US) == []
    (lifetime,) = q.sessions_due((started + timedelta(seconds=100)).isoformat())
    assert (lifetime.reason, lifetime.deadline) == (DueReason.MAX_SESSION_LIFETIME, started + timedelta(seconds=100))
    # A policy edit applies at the next call; 0 is unlimited.
    world.modify_policy("p", max_session_lifetime=0, idle_timeout=0)
    assert q.sessions_due(started + timedelta(days=365)) == []
    world.modify_policy("p", idle_timeout=1)
    (idle,) = q.sessions_due(started + timedelta(seconds=91))
    assert (idle.reason, idle.deadline) == (DueReason.IDLE_TIMEOUT, started + timedelta(seconds=91))
    world.terminate(sid)
    assert q.sessions_due(started + timedelta(days=365)) == []


def test_an_activity_reported_ahead_of_the_ledgers_clock_is_refused_naming_at(ledger: Ledger) -> None:
    """One report dated years ahead (8999) held `idle_timeout` off until then: the session
    was never due again. A report more than MAX_CLOCK_AHEAD past the ledger's clock is
    refused naming `at` and records nothing; one within it (another host's clock a little
    ahead) is recorded."""
    from datetime import UTC, datetime

    from domain.times import MAX_CLOCK_AHEAD

    world = SessionWorld(ledger, idle_timeout=60)
    sid = world.enqueue()
    world.schedule(sid)
    for ahead in ("8999-01-01T00:00:00Z", datetime.now(UTC) + MAX_CLOCK_AHEAD + timedelta(minutes=1)):
        with pytest.raises(InvalidAPIParameters, match="ahead of the ledger's clock") as refused:
            world.activity(sid, ahead)
        assert refused.value.field == "at"
    assert ledger.services.session.session(sid).last_activity_at is None
    started = ledger.services.session.session(sid).started_at
    assert started is not None
    (due,) = ledger.queries.sessions_due(started + timedelta(seconds=60))
    assert due.reason is DueReason.IDLE_TIMEOUT
    near = datetime.now(UTC) + MAX_CLOCK_AHEAD - timedelta(minutes=1)
    assert world.activity(sid, near).changed
    assert ledger.services.session.session(sid).last_activity_at == near


def test_a_deleted_keypairs_running_sessions_keep_its_limits(ledger: Ledger) -> None:
    """Its sessions were judged by the system policy `default` once it was deleted: a
    lifetime of 60 s (and anything else its policy set) vanished with the keypair."""
    from domain.keypair import DeleteKeyPairAction
    from tests.adapters.sessions import run

    world = SessionWorld(ledger, max_session_lifetime=60)
    sid = world.enqueue()
    world.schedule(sid)
    (entry,) = ledger.queries.sessions(status="RUNNING")
    assert entry.started_at is not None
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))
    (due,) = ledger.queries.sessions_due(entry.started_at + timedelta(seconds=61))
    assert (due.session_id, due.reason, due.policy) == (sid, DueReason.MAX_SESSION_LIFETIME, "p")


def test_limits_reset_to_null_mean_unlimited_for_running_sessions(ledger: Ledger) -> None:
    """Seed 001, 2.3: max_session_lifetime and idle_timeout set to null mean unlimited,
    for a session already running under the policy (read again at the next call)."""
    world = SessionWorld(ledger, idle_timeout=60, max_session_lifetime=3600)
    sid = world.enqueue()
    world.schedule(sid)
    started = ledger.queries.sessions(status="RUNNING")[0].started_at
    assert started is not None
    assert [d.session_id for d in ledger.queries.sessions_due(started + timedelta(seconds=60))] == [sid]
    world.modify_policy("p", max_session_lifetime=None, idle_timeout=None)
    assert ledger.queries.effective_policy("AK").policy.idle_timeout is None
    assert ledger.queries.sessions_due(started + timedelta(days=3650)) == []
    world.modify_policy("p", max_session_lifetime=7200)  # one limit back: only it applies
    (due,) = ledger.queries.sessions_due(started + timedelta(days=3650))
    assert (due.reason, due.deadline) == (DueReason.MAX_SESSION_LIFETIME, started + timedelta(seconds=7200))


def test_sessions_due_lists_only_running_sessions_by_deadline(ledger: Ledger) -> None:
    world = SessionWorld(ledger, idle_timeout=10, max_concurrent_sessions=2)
    a, b, pending = world.enqueue(), world.enqueue(), world.enqueue()
    world.schedule(a), world.schedule(b)
    assert not world.schedule(pending).admitted
    started = {s.session_id: s.started_at for s in ledger.queries.sessions(status="RUNNING")}
    world.activity(a, started[str(a)] + timedelta(seconds=5))  # a's deadline now comes after b's
    due = ledger.queries.sessions_due(max(started.values()) + timedelta(seconds=60))  # type: ignore[type-var]
    assert [d.session_id for d in due] == [b, a]


def test_effective_policy_names_its_source_and_version(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    effective = ledger.queries.effective_policy("AK")
    assert (effective.name, effective.source.value, effective.version) == ("p", "keypair", world.version())
    world.modify_policy("p", idle_timeout=5)
    again = ledger.queries.effective_policy("AK")
    assert (again.version, again.policy.idle_timeout) == (effective.version + 1, 5)
    world.keypair("AKBARE")
    bare = ledger.queries.effective_policy("AKBARE")
    assert (bare.name, bare.source.value) == ("default", "system")
    assert bare.to_json()["source"] == "system"
    with pytest.raises(LedgerError) as missing:
        ledger.queries.effective_policy("AKNOBODY")
    assert missing.value.code == "keypair_not_found"


def test_effective_policy_of_a_keypair_an_older_release_named_freely(ledger: Ledger) -> None:
    """An older release took access keys a new one may not have (a bidi control); `keypair
    show` finds such a keypair, and its effective policy must be read too, not refused as
    a new name would be."""
    owner = {"user_id": str(uuid.uuid4()), "domain_name": "default", "resource_policy": "default"}
    ledger.app.save(KeyPair.create("AK\u202eX", owner))
    effective = ledger.queries.effective_policy("AK\u202eX")
    assert (effective.name, effective.source.value) == ("default", "keypair")


def test_the_four_levels_of_precedence_each_win_in_turn(ledger: Ledger) -> None:
    """Seed 001's order on both backends: the keypair's own policy, then its user's
    default, then its domain's default, then the system policy; a whole policy each time."""
    for name, sessions in (("kp-policy", 1), ("user-policy", 2), ("domain-policy", 3)):
        policies.create(ledger, name, max_concurrent_sessions=sessions)
    directory.create_domain(ledger, "prec", default_keypair_resource_policy="domain-policy")
    owner = uuid.UUID("0000000b-0000-4000-8000-00000000000b")
    directory.create_user(ledger, owner, "prec", default_keypair_resource_policy="user-policy")
    directory.create_keypair(ledger, "AKPREC", owner, "prec", "kp-policy")

    def effective() -> tuple[str, str, int]:
        found = ledger.queries.effective_policy("AKPREC")
        return found.name, found.source.value, found.policy.max_concurrent_sessions

    assert effective() == ("kp-policy", "keypair", 1)
    release = ModifyKeyPairAction(access_key="AKPREC", resource_policy=None)
    asyncio.run(ledger.processors.keypair.modify_keypair.wait_for_complete(release, SUPERADMIN))
    assert effective() == ("user-policy", "user", 2)
    directory.modify_user(ledger, owner, default_keypair_resource_policy=None)
    assert effective() == ("domain-policy", "domain", 3)
    directory.modify_domain(ledger, "prec", default_keypair_resource_policy=None)
    system = ledger.queries.keypair_resource_policy("default")
    assert system is not None
    assert effective() == ("default", "system", system.max_concurrent_sessions)


def test_a_sessions_history_names_who_decided(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=1)
    first, second = world.enqueue(), world.enqueue()
    world.schedule(first), world.schedule(second)
    world.terminate(first, "idle_timeout")
    history = ledger.queries.history("session", str(second))
    assert [e.event for e in history] == ["Created", "Deferred"]
    assert history[1].details["reasons"][0]["limit"] == "max_concurrent_sessions"
    assert history[1].actor["role"] == "service"
    ended = ledger.queries.history("session", str(first))
    assert [e.event for e in ended] == ["Created", "Admitted", "Terminated"]
    assert ended[2].details == {"reason": "idle_timeout"}


def test_sessions_page_after_a_cursor_even_one_that_left_the_filter(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=10)
    sessions = [str(world.enqueue()) for _ in range(5)]
    q = ledger.queries
    assert [s.session_id for s in q.sessions(after=sessions[1])] == sessions[2:]
    assert [s.session_id for s in q.sessions(after=sessions[1].upper(), limit=2)] == sessions[2:4]
    first = [s.session_id for s in q.sessions(status="PENDING", limit=2)]
    assert first == sessions[:2]
    world.schedule(uuid.UUID(sessions[1]))  # the cursor leaves the PENDING list meanwhile
    assert [s.session_id for s in q.sessions(status="PENDING", after=first[-1])] == sessions[2:]
    assert q.sessions(after=sessions[-1]) == []
    with pytest.raises(InvalidAPIParameters) as unknown:  # an empty page would pass for the end
        q.sessions(after="00000000-0000-0000-0000-000000000009")
    assert unknown.value.field == "after"
    with pytest.raises(InvalidAPIParameters) as bad:
        q.sessions(after="s1")
    assert bad.value.field == "after"


def test_a_session_made_before_a_pages_last_row_but_committed_after_it_is_on_the_next_page(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list was ordered by the Created event's time, the time it was made: an enqueue
    made before a page's last row but committed after the page was read (a slow command,
    another process, group commit reordering) sorted before the cursor, and a client
    paging on never saw it. The list is in the order sessions were recorded in."""
    world = SessionWorld(ledger, max_concurrent_sessions=10)
    first = [str(world.enqueue()) for _ in range(2)]
    q = ledger.queries
    page = q.sessions(limit=2)
    assert [s.session_id for s in page] == first
    made = page[0].enqueued_at - timedelta(seconds=1)  # before every row of the page
    with monkeypatch.context() as clock:
        clock.setattr(Session.Created, "create_timestamp", staticmethod(lambda: made))
        late = str(world.enqueue())
    rest = q.sessions(after=page[-1].session_id, limit=2)
    assert [s.session_id for s in rest] == [late]
    assert rest[0].enqueued_at == made  # the event's own time, shown as it was
    assert [s.session_id for s in q.sessions()] == [*first, late]
    assert [s.session_id for s in q.sessions(domain_name="d", after=first[0])] == [first[1], late]
