"""Runtime limits (issue 12, item 4): sessions_due at its deadline edges, unlimited
values, the reason chosen, activity reports, and policy edits applied at the next call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.effective_policy import EffectivePolicy, PolicySource
from domain.errors import InvalidSessionState
from domain.keypair_resource_policy import KeyPairResourcePolicyCreator, KeyPairResourcePolicyData
from domain.session import DueReason, RunningSession, sessions_due
from domain.session.runtime import deadlines
from tests.domain.session_world import World

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)
US = timedelta(microseconds=1)


def policy(name: str = "p", **fields: Any) -> KeyPairResourcePolicyData:
    creator = KeyPairResourcePolicyCreator(name=name, **fields)
    return KeyPairResourcePolicyData.from_fields(name, T0, creator.fields_json())


def applied(data: KeyPairResourcePolicyData) -> EffectivePolicy:
    """`data` as the keypair's own policy, as the service resolves one."""
    return EffectivePolicy(data, PolicySource.KEYPAIR, 1)


def running(started: datetime = T0, last: datetime | None = None, access_key: str = "AK") -> RunningSession:
    return RunningSession(uuid.uuid4(), access_key, started, last)


def due(session: RunningSession, now: datetime, **fields: Any) -> list[tuple[DueReason, datetime]]:
    found = sessions_due([session], lambda _: applied(policy(**fields)), now)
    return [(d.reason, d.deadline) for d in found]


def test_idle_timeout_counts_from_the_start_until_activity_is_reported() -> None:
    idle = {"idle_timeout": 60, "max_session_lifetime": 0}
    assert due(running(), T0 + 60 * S, **idle) == [(DueReason.IDLE_TIMEOUT, T0 + 60 * S)]
    active = running(last=T0 + 50 * S)
    assert due(active, T0 + 60 * S, **idle) == []
    assert due(active, T0 + 110 * S, **idle) == [(DueReason.IDLE_TIMEOUT, T0 + 110 * S)]


def test_due_exactly_at_the_deadline_and_not_a_microsecond_before() -> None:
    session = running()
    for fields, deadline in (
        ({"idle_timeout": 30}, T0 + 30 * S),
        ({"max_session_lifetime": 90, "idle_timeout": 0}, T0 + 90 * S),
    ):
        assert due(session, deadline - US, **fields) == []
        assert [d for _, d in due(session, deadline, **fields)] == [deadline]
        assert [d for _, d in due(session, deadline + US, **fields)] == [deadline]


@pytest.mark.parametrize("unlimited", [0, None])
def test_zero_or_null_is_unlimited(unlimited: int | None) -> None:
    session = running(T0 - timedelta(days=3650))
    assert due(session, T0, idle_timeout=unlimited, max_session_lifetime=unlimited) == []


def test_lifetime_counts_from_the_running_start_whatever_the_activity() -> None:
    session = running(started=T0, last=T0 + 3599 * S)
    fields = {"max_session_lifetime": 3600, "idle_timeout": 600}
    assert due(session, T0 + 3600 * S, **fields) == [(DueReason.MAX_SESSION_LIFETIME, T0 + 3600 * S)]


def test_past_both_the_earlier_deadline_is_the_reason_and_a_tie_is_the_lifetime() -> None:
    session = running()
    assert due(session, T0 + 1000 * S, idle_timeout=100, max_session_lifetime=500)[0][0] is DueReason.IDLE_TIMEOUT
    assert due(session, T0 + 1000 * S, idle_timeout=500, max_session_lifetime=100)[0][0] is (
        DueReason.MAX_SESSION_LIFETIME
    )
    tie = deadlines(session, policy(idle_timeout=100, max_session_lifetime=100))
    assert [reason for _, reason in tie] == [DueReason.MAX_SESSION_LIFETIME, DueReason.IDLE_TIMEOUT]


def test_results_by_deadline_each_under_its_own_policy() -> None:
    policies = {"A": policy("a", idle_timeout=10), "B": policy("b", idle_timeout=20)}
    sessions = [running(access_key="B"), running(access_key="A"), running(access_key="A", last=T0 + 100 * S)]
    found = sessions_due(sessions, lambda session: applied(policies[session.access_key]), T0 + 50 * S)
    assert [(d.access_key, d.deadline, d.policy) for d in found] == [("A", T0 + 10 * S, "a"), ("B", T0 + 20 * S, "b")]
    assert found[0].to_json()["reason"] == "idle_timeout"


# Through the service: the running start, activity reports, edits at the next call


@pytest.fixture
def world() -> World:
    world = World()
    world.policy("p", total_resource_slots={"cpu": "8"}, idle_timeout=60, max_session_lifetime=0)
    world.domain("d")
    world.keypair("AK", world.user("d"), "d", policy="p")
    return world


def test_the_running_start_is_the_admission_and_edits_apply_at_the_next_call(world: World) -> None:
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    world.schedule(sid)
    data = world.session(sid)
    assert data.started_at is not None and data.started_at > data.enqueued_at
    session = RunningSession.of(data)
    now = data.started_at + 61 * S
    (found,) = world.sessions.sessions_due([session], now)
    assert (found.reason, found.deadline, found.policy) == (DueReason.IDLE_TIMEOUT, data.started_at + 60 * S, "p")
    world.modify_policy("p", idle_timeout=None, max_session_lifetime=30)
    (found,) = world.sessions.sessions_due([session], now)
    assert (found.reason, found.deadline) == (DueReason.MAX_SESSION_LIFETIME, data.started_at + 30 * S)
    world.modify_policy("p", max_session_lifetime=None)
    assert world.sessions.sessions_due([session], now) == []


def test_activity_moves_the_idle_deadline_and_only_forward(world: World) -> None:
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    with pytest.raises(InvalidSessionState):
        world.activity(sid, T0)  # pending: it has not started
    world.schedule(sid)
    started = world.session(sid).started_at
    assert started is not None
    assert world.activity(sid, started + 40 * S)
    assert not world.activity(sid, started + 10 * S)  # late report of older activity: nothing recorded
    data = world.session(sid)
    assert data.last_activity_at == started + 40 * S
    assert world.sessions.sessions_due([RunningSession.of(data)], started + 99 * S) == []
    assert len(world.sessions.sessions_due([RunningSession.of(data)], started + 100 * S)) == 1
    world.terminate(sid)
    assert not world.activity(sid, started + 200 * S)  # within MAX_CLOCK_AHEAD, after the end


def test_a_deleted_keypairs_running_sessions_fall_under_the_system_policy(world: World) -> None:
    world.modify_policy("default", idle_timeout=5)
    session = running(access_key="GONE")
    (found,) = world.sessions.sessions_due([session], T0 + 5 * S)
    assert (found.policy, found.deadline) == ("default", T0 + 5 * S)


@pytest.mark.parametrize("field", ["max_session_lifetime", "idle_timeout"])
@pytest.mark.parametrize("seconds", [3 * 10**11, 10**12, 2**63 - 1])
def test_a_limit_past_the_last_datetime_is_never_due(field: str, seconds: int) -> None:
    """A policy may allow up to 2**63-1 seconds; its deadline lies past year 9999, which
    once made sessions_due overflow for every caller."""
    other = "idle_timeout" if field == "max_session_lifetime" else "max_session_lifetime"
    session = running(T0, last=T0 + S)
    assert due(session, datetime(9999, 12, 31, 23, 59, tzinfo=UTC), **{field: seconds, other: 0}) == []
    # The other limit still applies.
    reason = DueReason(other)
    assert [r for r, _ in due(session, T0 + 3600 * S, **{field: seconds, other: 60})] == [reason]
