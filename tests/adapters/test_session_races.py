"""Session admission races on SQLite and PostgreSQL (issue 12): N schedules decided on
the same usage against a limit of K admit exactly K, in threads and in processes; a
release racing an admission is never lost. The session service runs over the ledger's
store directly (the processors are wired separately)."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.domains import CreateDomainAction, DomainService
from domain.group import CreateGroupAction
from domain.keypair import KeyPair
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyService
from domain.session import (
    EnqueueSessionAction,
    ScheduleSessionAction,
    Scope,
    SessionService,
    SessionStatus,
    TerminateSessionAction,
)
from tests.races import decide_together

pytestmark = pytest.mark.usefixtures("group_commit_mode")  # every race, with and without group commit

N, K = 6, 2


def _world(ledger: Ledger, max_concurrent: int, cpu: str = "100") -> uuid.UUID:
    """Policy p (the limits given), domain d, keypair AK on p, a group; its id."""
    store = ledger.app.store
    policy = {"name": "p", "max_concurrent_sessions": max_concurrent, "total_resource_slots": {"cpu": cpu}}
    asyncio.run(
        KeyPairResourcePolicyService(store).create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator=policy)
        )
    )
    asyncio.run(DomainService(store).create_domain(CreateDomainAction(creator={"name": "d"})))
    fields = {"user_id": str(uuid.uuid4()), "domain_name": "d", "resource_policy": "p"}
    store.run(lambda: store.save(KeyPair.create("AK", fields)), "keypair", "create")
    group = CreateGroupAction(input={"name": "g", "domain_name": "d"})
    group_id: uuid.UUID = asyncio.run(ledger.services.group.create_group(group)).data.id
    return group_id


def _enqueue(service: SessionService, group_id: uuid.UUID, count: int, cpu: str = "1") -> list[uuid.UUID]:
    sids = [uuid.uuid4() for _ in range(count)]
    for sid in sids:
        action = EnqueueSessionAction(session_id=sid, access_key="AK", group_id=group_id, requested_slots={"cpu": cpu})
        asyncio.run(service.enqueue_session(action))
    return sids


def _schedule(service: SessionService, sid: uuid.UUID) -> bool:
    admitted: bool = asyncio.run(service.schedule_session(ScheduleSessionAction(session_id=sid))).admitted
    return admitted


def _admitted(service: SessionService, sids: list[uuid.UUID]) -> set[uuid.UUID]:
    return {sid for sid in sids if service.session(sid).status is SessionStatus.RUNNING}


def test_n_schedules_at_once_against_a_session_limit_admit_exactly_k(ledger: Ledger) -> None:
    group_id = _world(ledger, max_concurrent=K)
    service = SessionService(ledger.app.store)
    sids = _enqueue(service, group_id, N)
    outcomes = decide_together(ledger, [lambda sid=sid: _schedule(service, sid) for sid in sids])
    assert outcomes == [None] * N
    admitted = _admitted(service, sids)
    assert len(admitted) == K
    for scope, scope_id in ((Scope.KEYPAIR, "AK"), (Scope.GROUP, str(group_id)), (Scope.DOMAIN, "d")):
        assert set(service.usage(scope, scope_id).running) == {str(sid) for sid in admitted}


def test_n_schedules_at_once_against_a_slot_limit_admit_exactly_k(ledger: Ledger) -> None:
    group_id = _world(ledger, max_concurrent=0, cpu=str(2 * K))
    service = SessionService(ledger.app.store)
    sids = _enqueue(service, group_id, N, cpu="2")
    decide_together(ledger, [lambda sid=sid: _schedule(service, sid) for sid in sids], order=list(reversed(range(N))))
    assert len(_admitted(service, sids)) == K
    assert service.usage(Scope.KEYPAIR, "AK").running_total == {"cpu": 2 * K}


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_a_release_racing_a_decision_is_never_lost(ledger: Ledger, order: list[int]) -> None:
    group_id = _world(ledger, max_concurrent=1)
    service = SessionService(ledger.app.store)
    old, new = _enqueue(service, group_id, 2)
    assert _schedule(service, old)
    terminate = TerminateSessionAction(session_id=old, reason="done")
    outcomes = decide_together(
        ledger, [lambda: asyncio.run(service.terminate_session(terminate)), lambda: _schedule(service, new)], order
    )
    assert outcomes == [None, None]
    # Decided on the usage before the release, the decision may be a deferral (a
    # deferral writes no usage, so a release saved between its read and its save need
    # not undo it); the release is kept either way, and the next decision sees it.
    status = service.session(new).status
    assert status in (SessionStatus.PENDING, SessionStatus.RUNNING)
    assert set(service.usage(Scope.KEYPAIR, "AK").running) <= {str(new)}
    if status is SessionStatus.PENDING:
        assert _schedule(service, new)
    assert set(service.usage(Scope.KEYPAIR, "AK").running) == {str(new)}
    assert service.session(old).status is SessionStatus.TERMINATED


def _schedule_in_process(url: str, sids: list[str]) -> None:
    with open_ledger(url) as ledger:
        service = SessionService(ledger.app.store)
        for sid in sids:
            _schedule(service, uuid.UUID(sid))


@pytest.mark.slow
def test_processes_scheduling_at_once_admit_exactly_k(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        group_id = _world(ledger, max_concurrent=K)
        sids = _enqueue(SessionService(ledger.app.store), group_id, N)
    spawn = multiprocessing.get_context("spawn")
    halves = [[str(sid) for sid in sids[i::2]] for i in range(2)]
    workers = [spawn.Process(target=_schedule_in_process, args=(ledger_url, half)) for half in halves]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with open_ledger(ledger_url) as ledger:
        service = SessionService(ledger.app.store)
        assert len(_admitted(service, sids)) == K
        assert len(service.usage(Scope.KEYPAIR, "AK").running) == K
