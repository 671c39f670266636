"""Runtime limits: which running sessions are past a deadline of their keypair's
effective policy (seed 001: idle_timeout, max_session_lifetime).

- `idle_timeout`: the last reported activity (or the running start, when none was
  reported) + idle_timeout.
- `max_session_lifetime`: the running start (admission) + max_session_lifetime; the time
  spent pending does not count (Backend.AI's BA-6571 fix).
- 0 or null is unlimited.
- A session is due AT its deadline: `now >= deadline` (the limit is a duration the
  session may use; at the deadline it has used all of it). So a check at exactly
  start + lifetime reports it.
- A session past both deadlines is reported once, with the earlier deadline's reason
  (a tie reports `max_session_lifetime`, the limit no activity can push back).

The policies are passed in, resolved by the caller at each call, so a policy edit applies
to running sessions at the next call; an `EffectivePolicy` is named in each due session
as it was resolved (`policy_ref`: name, source, version; `deleted` for a deleted
keypair's session run on under a policy deleted since). Listing the running sessions is
a read model's job (`RunningSession` is what it must hold per session).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from domain.effective_policy import EffectivePolicy
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from domain.session.types import DueReason, DueSession, RunningSession


def _deadline(start: datetime, seconds: int | None) -> datetime | None:
    """`start` + `seconds`; None when unlimited, or when the deadline lies past the last
    time a datetime holds (a policy may allow up to 2**63-1 seconds: such a session is
    never due)."""
    if not seconds or seconds <= 0:
        return None
    try:
        return start + timedelta(seconds=seconds)
    except OverflowError:
        return None


def deadlines(session: RunningSession, policy: KeyPairResourcePolicyData) -> list[tuple[datetime, DueReason]]:
    """The session's deadlines under `policy`, earliest first (lifetime first on a tie)."""
    found = []
    lifetime = _deadline(session.started_at, policy.max_session_lifetime)
    if lifetime is not None:
        found.append((lifetime, DueReason.MAX_SESSION_LIFETIME))
    idle = _deadline(session.last_activity_at or session.started_at, policy.idle_timeout)
    if idle is not None:
        found.append((idle, DueReason.IDLE_TIMEOUT))
    order = {DueReason.MAX_SESSION_LIFETIME: 0, DueReason.IDLE_TIMEOUT: 1}
    return sorted(found, key=lambda pair: (pair[0], order[pair[1]]))


def sessions_due(
    sessions: Iterable[RunningSession],
    policy_of: Callable[[RunningSession], EffectivePolicy],
    now: datetime,
) -> list[DueSession]:
    """The sessions due at `now`, by deadline then session id. `policy_of(session)` gives
    the effective policy the session runs under."""
    due = []
    for session in sessions:
        applied = policy_of(session)
        policy = applied.policy
        for deadline, reason in deadlines(session, policy):
            if now >= deadline:
                ref = applied.ref_json()
                due.append(DueSession(session.session_id, session.access_key, reason, deadline, policy.name, ref))
                break
    return sorted(due, key=lambda d: (d.deadline, str(d.session_id)))
