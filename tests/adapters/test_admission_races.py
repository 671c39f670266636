"""Races on the limits counted as sets (issue 12), through the processors on SQLite and
PostgreSQL: N enqueues decided at once against `max_pending_session_count` K, and N
vfolder creations against `max_vfolder_count` K, each record exactly K; every other one
is refused with the limit it broke, and nothing of a refused one is stored."""

from __future__ import annotations

import uuid

import pytest

from adapters.bootstrap import Ledger
from domain.errors import QuotaExceeded
from domain.session import Scope
from domain.workload import CreateVFolderAction
from tests.adapters.sessions import PLATFORM, SessionWorld, run
from tests.races import decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit

N, K = 6, 2


def _refused_with(outcomes: list[BaseException | None], limit: str) -> int:
    refused = [o for o in outcomes if o is not None]
    assert all(isinstance(o, QuotaExceeded) and o.limit == limit for o in refused), refused
    return len(refused)


def test_n_enqueues_at_once_against_the_pending_count_record_exactly_k(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_pending_session_count=K)
    sids = [uuid.uuid4() for _ in range(N)]
    outcomes = decide_together(ledger, [lambda sid=sid: world.enqueue(session_id=sid) for sid in sids])
    assert _refused_with(outcomes, "max_pending_session_count") == N - K
    pending = set(ledger.services.session.usage(Scope.KEYPAIR, "AK").pending)
    assert pending == {str(sid) for sid, outcome in zip(sids, outcomes, strict=True) if outcome is None}
    assert len(ledger.queries.sessions(status="PENDING")) == K


def test_n_enqueues_at_once_against_the_pending_slots_record_what_fits(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_pending_session_resource_slots={"cpu": str(2 * K)})
    outcomes = decide_together(ledger, [lambda: world.enqueue("2") for _ in range(N)], order=[5, 4, 3, 2, 1, 0])
    assert _refused_with(outcomes, "max_pending_session_resource_slots") == N - K
    assert ledger.services.session.usage(Scope.KEYPAIR, "AK").pending_total == {"cpu": 2 * K}


def test_n_vfolders_at_once_against_max_vfolder_count_record_exactly_k(ledger: Ledger) -> None:
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": ["create-vfolder"]}, max_vfolder_count=K)
    ids = [uuid.uuid4() for _ in range(N)]

    def create(vfolder_id: uuid.UUID) -> None:
        action = CreateVFolderAction(
            vfolder_id=vfolder_id, name="vf", host="local", group_id=world.group_id, owner_access_key="AK"
        )
        run(ledger, "workload", "create_vfolder", action, PLATFORM)

    outcomes = decide_together(ledger, [lambda vfolder_id=vfolder_id: create(vfolder_id) for vfolder_id in ids])
    assert _refused_with(outcomes, "max_vfolder_count") == N - K
    stored = {v.vfolder_id for v in ledger.queries.vfolders(group_id=world.group_id)}
    assert stored == {str(v) for v, outcome in zip(ids, outcomes, strict=True) if outcome is None}


def test_n_schedules_at_once_over_two_keypairs_of_one_user_admit_what_the_policy_allows(ledger: Ledger) -> None:
    """The user level (REFERENCE: summed over the user's keypairs) holds under a race:
    schedules through AK and AK2, both the user's and on policy p, admit cpu 2K in all."""
    world = SessionWorld(ledger, total_resource_slots={"cpu": str(2 * K)}, max_concurrent_sessions=0)
    world.keypair("AK2", "p")
    sids = [world.enqueue("2", access_key="AK" if i % 2 else "AK2") for i in range(N)]
    outcomes = decide_together(ledger, [lambda sid=sid: world.schedule(sid) for sid in sids])
    assert outcomes == [None] * N
    user = ledger.services.session.usage(Scope.USER, str(world.user_id))
    assert user.running_total == {"cpu": 2 * K} and len(user.running) == K
    running = {s.session_id for s in ledger.queries.sessions(status="RUNNING")}
    assert {str(s) for s in running} == set(user.running)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("decision", ["enqueue", "schedule"])
def test_a_purge_racing_a_session_decision_never_leaves_a_session_in_a_purged_group(
    ledger: Ledger, order: list[int], decision: str
) -> None:
    """Both decide on the same state, then the store orders their saves: an enqueue that
    lands first is cancelled by the purge taken again; a schedule that lands first refuses
    the purge; a purge that lands first leaves the decision, taken again, nothing to do."""
    import asyncio

    from domain.errors import LedgerError
    from domain.group import PurgeGroupAction

    world = SessionWorld(ledger)
    group_id = world.group("doomed")
    waiting = world.enqueue(group_id=group_id) if decision == "schedule" else None

    def decide() -> None:
        if waiting is None:
            world.enqueue(group_id=group_id)
        else:
            world.schedule(waiting)

    def purge() -> None:
        asyncio.run(ledger.services.group.purge_group(PurgeGroupAction(group_id=group_id)))

    outcomes = decide_together(ledger, [decide, purge], order=order)
    assert all(o is None or isinstance(o, LedgerError) for o in outcomes), outcomes
    sessions = [s for s in ledger.queries.sessions() if str(s.group_id) == str(group_id)]
    assert len(sessions) == (1 if decision == "schedule" or outcomes[0] is None else 0), (outcomes, sessions)
    keypair = ledger.services.session.usage(Scope.KEYPAIR, "AK")
    if outcomes[1] is None:  # purged: nothing of the group's may still run or wait
        assert all(str(s.status) in ("CANCELLED", "TERMINATED") for s in sessions), sessions
        assert not any(keypair.holds(str(s.session_id)) for s in sessions)
    else:  # refused: the schedule landed first and its session runs
        assert decision == "schedule" and [str(s.status) for s in sessions] == ["RUNNING"], (outcomes, sessions)
        assert keypair.holds(str(sessions[0].session_id))


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("usage", ["new", "kept"])
def test_a_delete_racing_an_enqueue_never_leaves_a_pending_session_in_a_deleted_group(
    ledger: Ledger, order: list[int], usage: str
) -> None:
    """Both decide on the active group, then the store orders their saves: an enqueue that
    lands first is cancelled by the delete taken again; a delete that lands first refuses
    the enqueue taken again (group_inactive). An enqueue saved after the delete left a
    PENDING session no schedule could ever admit, holding the keypair's pending place.
    `usage`: the group's usage stream is made by the race, or kept from an ended session."""
    from domain.errors import GroupNotActive
    from domain.group import DeleteGroupAction

    world = SessionWorld(ledger)
    if usage == "kept":
        world.cancel(world.enqueue())
    sid = uuid.uuid4()

    def delete() -> None:
        run(ledger, "group", "delete_group", DeleteGroupAction(group_id=world.group_id))

    outcomes = decide_together(ledger, [lambda: world.enqueue(session_id=sid), delete], order=order)
    assert outcomes[1] is None, outcomes
    assert outcomes[0] is None or isinstance(outcomes[0], GroupNotActive), outcomes
    assert ledger.services.session.usage(Scope.KEYPAIR, "AK").pending == {}
    assert ledger.services.session.usage(Scope.GROUP, str(world.group_id)).pending == {}
    if outcomes[0] is None:
        assert ledger.services.session.session(sid).end_reason == "group_deleted"


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("usage", ["new", "kept"])
def test_a_move_racing_an_enqueue_never_leaves_a_session_in_the_old_domain(
    ledger: Ledger, order: list[int], usage: str
) -> None:
    """Both decide on a group holding nothing, then the store orders their saves: an
    enqueue that lands first refuses the move taken again; a move that lands first refuses
    the enqueue taken again (its keypair is in the old domain). `usage`: the group's usage
    stream is made by the race, or kept from an ended session."""
    from domain.domains import CreateDomainAction
    from domain.errors import InvalidAPIParameters

    world = SessionWorld(ledger)
    run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": "e"}))
    if usage == "kept":
        world.cancel(world.enqueue())

    outcomes = decide_together(ledger, [world.enqueue, lambda: world.modify_group(domain_name="e")], order=order)
    enqueued, moved = (o is None for o in outcomes)
    assert enqueued != moved, outcomes
    refused = outcomes[0] if moved else outcomes[1]
    assert isinstance(refused, InvalidAPIParameters), outcomes
    assert refused.field == ("group_id" if moved else "domain_name"), outcomes
    group = ledger.queries.group(world.group_id)
    assert group is not None and group.domain_name == ("e" if moved else "d")
    pending = ledger.services.session.usage(Scope.GROUP, str(world.group_id)).pending
    assert len(pending) == (0 if moved else 1), pending
