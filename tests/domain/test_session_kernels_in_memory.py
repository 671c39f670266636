"""Kernels of admitted sessions (issue 12, item 3): a kernel attaches to its running
session, the last one to end ends the session and releases its usage in the same unit of
work, and kernels of sessions the ledger never admitted are left alone."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import InvalidAPIParameters, InvalidSessionState
from domain.ports import UnitOfWork
from domain.session import Scope, Session, SessionStatus, attach_kernel, detach_kernel
from domain.session.usage import release_usage
from tests.domain.session_world import World


@pytest.fixture
def world() -> World:
    world = World()
    world.policy("p", total_resource_slots={"cpu": "8"}, max_containers_per_session=2)
    world.domain("d")
    world.keypair("AK", world.user("d"), "d", policy="p")
    return world


def attach(
    world: World, sid: uuid.UUID, kernel: str, group_id: str | None = None, access_key: str = "AK"
) -> Session | None:
    """Attaches as the session's own kernel unless another group is named."""
    work = UnitOfWork(world.store)
    if group_id is None:
        known = work.get(Session.id_for(str(sid)), Session)
        group_id = known.fields["group_id"] if known is not None else str(uuid.uuid4())
    session = attach_kernel(work, str(sid), kernel, group_id, access_key)
    work.commit()
    return session


def detach(world: World, sid: uuid.UUID, kernel: str) -> Session | None:
    work = UnitOfWork(world.store)
    session = detach_kernel(work, str(sid), kernel)
    work.commit()
    return session


def test_the_last_kernel_to_end_ends_the_session_and_releases_it(world: World) -> None:
    sid = world.enqueue("AK", world.group("d"), {"cpu": "2"}, cluster_size=2)
    world.schedule(sid)
    attach(world, sid, "k1")
    attach(world, sid, "k2")
    attach(world, sid, "k2")  # a repeated report records nothing
    detach(world, sid, "k1")
    assert world.session(sid).status is SessionStatus.RUNNING
    detach(world, sid, "k2")
    data = world.session(sid)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "all_kernels_terminated")
    assert world.running(Scope.KEYPAIR, "AK") == set() == world.running(Scope.DOMAIN, "d")
    assert world.store.events(Session.id_for(str(sid)))[2:] == [
        "KernelAttached",
        "KernelAttached",
        "KernelDetached",
        "KernelDetached",
        "Terminated",
    ]
    detach(world, sid, "k2")  # again: nothing
    assert world.store.events(Session.id_for(str(sid)))[-1] == "Terminated"


def test_a_cluster_session_ends_once_every_kernel_of_its_cluster_has_run(world: World) -> None:
    """The first kernel to start ended before the second started: the session stayed
    running for it (it ended the session, the second kernel's start was refused, and a
    purge went through while it ran)."""
    sid = world.enqueue("AK", world.group("d"), {"cpu": "2"}, cluster_size=2)
    world.schedule(sid)
    attach(world, sid, "k1")
    detach(world, sid, "k1")
    assert world.session(sid).status is SessionStatus.RUNNING
    attach(world, sid, "k2")
    detach(world, sid, "k2")
    data = world.session(sid)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "all_kernels_terminated")
    assert world.running(Scope.KEYPAIR, "AK") == set()


def test_a_kernel_needs_a_running_session_and_imported_ones_are_left_alone(world: World) -> None:
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    with pytest.raises(InvalidSessionState):
        attach(world, sid, "k1")  # pending: not admitted yet
    unknown = uuid.uuid4()
    assert attach(world, unknown, "k1") is None and detach(world, unknown, "k1") is None
    assert world.store.events(Session.id_for(str(unknown))) == []


def test_a_kernel_of_another_group_or_access_key_does_not_attach(world: World) -> None:
    # Else it would run on this session's admission and, ending, end the session and
    # release its quota for another tenant.
    world.keypair("AK2", world.user("d"), "d", policy="p")
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    world.schedule(sid)
    before = world.store.events(Session.id_for(str(sid)))
    for group_id, access_key in ((str(world.group("d")), "AK"), (None, "AK2")):
        with pytest.raises(InvalidAPIParameters) as refused:
            attach(world, sid, "k1", group_id, access_key)
        assert refused.value.field == "session_id"
    assert world.store.events(Session.id_for(str(sid))) == before
    assert world.session(sid).status is SessionStatus.RUNNING


def test_a_session_terminated_while_its_kernels_run_occupies_until_the_last_one_ends(world: World) -> None:
    """It released its usage at once, while its kernels ran on: TERMINATING keeps it,
    and the last kernel's end records the terminate's reason and releases it."""
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    world.schedule(sid)
    attach(world, sid, "k1")
    attach(world, sid, "k2")
    assert world.terminate(sid, "idle_timeout")
    data = world.session(sid)
    assert (data.status, data.end_reason, data.ended_at) == (SessionStatus.TERMINATING, "idle_timeout", None)
    assert world.running(Scope.KEYPAIR, "AK") == {str(sid)} == world.running(Scope.DOMAIN, "d")
    assert not world.terminate(sid, "again") and not world.cancel(sid)  # being ended: nothing
    with pytest.raises(InvalidSessionState):
        attach(world, sid, "k3")  # no kernel starts on a session being ended
    detach(world, sid, "k1")
    assert world.session(sid).status is SessionStatus.TERMINATING
    assert world.running(Scope.KEYPAIR, "AK") == {str(sid)}
    detach(world, sid, "k2")
    data = world.session(sid)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "idle_timeout")
    assert data.ended_at is not None
    assert world.running(Scope.KEYPAIR, "AK") == set() == world.running(Scope.DOMAIN, "d")
    assert world.store.events(Session.id_for(str(sid)))[2:] == [
        "KernelAttached",
        "KernelAttached",
        "TerminationStarted",
        "KernelDetached",
        "KernelDetached",
        "Terminated",
    ]


def test_a_session_an_older_ledger_terminated_under_running_kernels_reads_as_it_did(world: World) -> None:
    """Before TERMINATING, a terminate under running kernels recorded Terminated and
    released at once: such a stream still reads TERMINATED, and its kernels' ends record
    their detach and nothing more."""
    sid = world.enqueue("AK", world.group("d"), {"cpu": "1"})
    world.schedule(sid)
    attach(world, sid, "k1")
    work = UnitOfWork(world.store)
    session = work.get(Session.id_for(str(sid)), Session)
    assert session is not None
    session.trigger_event(Session.Terminated, reason="idle_timeout")  # as the older ledger did
    release_usage(work, session)
    work.commit()
    data = world.session(sid)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "idle_timeout")
    detach(world, sid, "k1")
    data = world.session(sid)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "idle_timeout")
    assert world.store.events(Session.id_for(str(sid)))[-2:] == ["Terminated", "KernelDetached"]
    assert world.running(Scope.KEYPAIR, "AK") == set()
