"""Sessions on the in-memory store (issue 12, items 3 and 4): the enqueue gate's refusals,
the start gate's answers and reasons, usage as sets released idempotently, a race
decided by the store's version check, and what is recorded of each decision."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import (
    DuplicateSession,
    GroupNotActive,
    InvalidAPIParameters,
    InvalidSessionState,
    ObjectNotFound,
    QuotaExceeded,
    VFolderHostNotAllowed,
)
from domain.group import DeleteGroupAction, GroupService
from domain.keypair_resource_policy import policy_id
from domain.session import Scope, Session, SessionStatus, usage_id
from domain.slots import INFINITY
from tests.domain.fakes import InMemoryStore, NoUsage
from tests.domain.session_world import World, run

G = 1024**3


def setup(**policy: Any) -> tuple[World, str, uuid.UUID]:
    """Domain d, policy p (the fields given), a user, keypair AK on p, a group."""
    world = World()
    world.policy("p", **policy)
    world.domain("d")
    world.keypair("AK", world.user("d"), "d", policy="p")
    return world, "AK", world.group("d")


def refused(call: Any, *args: Any, **kwargs: Any) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as refusal:
        call(*args, **kwargs)
    return refusal.value


# The enqueue gate


def test_an_enqueued_session_is_pending_and_held_by_its_keypair() -> None:
    world, ak, group = setup()
    sid = world.enqueue(ak, group, {"cpu": "1", "mem": "1g"})
    data = world.session(sid)
    assert (data.status, data.access_key, data.group_id, data.domain_name) == (SessionStatus.PENDING, ak, group, "d")
    assert data.requested_slots == {"cpu": Decimal(1), "mem": Decimal(G)}
    assert world.pending(Scope.KEYPAIR, ak) == {str(sid)}
    assert world.running(Scope.KEYPAIR, ak) == set()
    assert world.store.events(Session.id_for(str(sid))) == ["Created"]
    assert world.store.events(usage_id(Scope.KEYPAIR, ak)) == ["Created", "PendingAdded"]
    stored = world.store.get(Session.id_for(str(sid)), Session)
    assert stored is not None and stored.fields["enqueued_under"] == {"name": "p", "source": "keypair", "version": 1}


def test_pending_count_limit_refuses_the_one_over_and_stores_nothing() -> None:
    world, ak, group = setup(max_pending_session_count=2)
    world.enqueue(ak, group, {"cpu": "1"})
    world.enqueue(ak, group, {"cpu": "1"})
    sid = uuid.uuid4()
    refusal = refused(world.enqueue, ak, group, {"cpu": "1"}, session_id=sid)
    assert (refusal.limit, refusal.scope, refusal.scope_id) == ("max_pending_session_count", "keypair", ak)
    assert (refusal.code, refusal.status) == ("quota_exceeded", 412)
    assert "2 pending + 1 > 2" in refusal.message
    assert world.store.events(Session.id_for(str(sid))) == []
    assert len(world.pending(Scope.KEYPAIR, ak)) == 2


@pytest.mark.parametrize("cap", [None, 0])
def test_pending_count_null_or_zero_is_unlimited(cap: int | None) -> None:
    world, ak, group = setup(max_pending_session_count=cap)
    for _ in range(5):
        world.enqueue(ak, group, {"cpu": "1"})
    assert len(world.pending(Scope.KEYPAIR, ak)) == 5


def test_pending_slots_cap_only_the_slots_it_lists() -> None:
    world, ak, group = setup(max_pending_session_resource_slots={"cpu": "4", "mem": "0"})
    world.enqueue(ak, group, {"cpu": "3", "mem": "100g", "cuda.device": "8"})  # mem 0: unlimited; gpu unlisted
    refusal = refused(world.enqueue, ak, group, {"cpu": "2"})
    assert (refusal.limit, refusal.scope, refusal.scope_id) == ("max_pending_session_resource_slots", "keypair", ak)
    assert "cpu: pending 3 + requested 2 > 4" in refusal.message
    world.enqueue(ak, group, {"cpu": "1", "mem": "1000g"})  # exactly at the cap: accepted


def test_scheduling_frees_a_pending_place() -> None:
    world, ak, group = setup(max_pending_session_count=1, total_resource_slots={"cpu": "8"})
    sid = world.enqueue(ak, group, {"cpu": "1"})
    refused(world.enqueue, ak, group, {"cpu": "1"})
    assert world.schedule(sid).admitted
    world.enqueue(ak, group, {"cpu": "1"})


def test_cluster_size_over_max_containers_per_session_is_refused() -> None:
    world, ak, group = setup(max_containers_per_session=2)
    world.enqueue(ak, group, {"cpu": "1"}, cluster_size=2)
    refusal = refused(world.enqueue, ak, group, {"cpu": "1"}, cluster_size=3)
    assert (refusal.limit, refusal.scope_id) == ("max_containers_per_session", ak)


@pytest.mark.parametrize("granted_by", ["domain", "group", "policy"])
def test_a_mount_needs_mount_in_session_from_any_level(granted_by: str) -> None:
    grant = {"nfs": ["mount-in-session"]}
    world = World()
    world.policy("p", allowed_vfolder_hosts=grant if granted_by == "policy" else {"nfs": ["download-file"]})
    world.domain("d", allowed_vfolder_hosts=grant if granted_by == "domain" else {})
    world.keypair("AK", world.user("d"), "d", policy="p")
    group = world.group("d", allowed_vfolder_hosts=grant if granted_by == "group" else {"local": None})
    sid = world.enqueue("AK", group, {"cpu": "1"}, mounts=[world.vfolder(group, "nfs")])
    assert world.session(sid).status is SessionStatus.PENDING


def test_a_mount_on_a_host_no_level_grants_is_refused_naming_host_and_permission() -> None:
    world, ak, group = setup(allowed_vfolder_hosts={"nfs": ["upload-file", "download-file"]})
    world.modify_group(group, allowed_vfolder_hosts={"local": None})
    allowed, denied = world.vfolder(group, "local"), world.vfolder(group, "nfs")
    with pytest.raises(VFolderHostNotAllowed) as refusal:
        world.enqueue(ak, group, {"cpu": "1"}, mounts=[allowed, denied])
    assert (refusal.value.host, refusal.value.permission) == ("nfs", "mount-in-session")
    assert refusal.value.code == "vfolder_host_not_allowed" and str(denied) in refusal.value.message
    with pytest.raises(ObjectNotFound) as unknown:
        world.enqueue(ak, group, {"cpu": "1"}, mounts=[uuid.uuid4()])
    assert unknown.value.code == "vfolder_not_found"
    assert world.pending(Scope.KEYPAIR, ak) == set()


def test_enqueue_refuses_a_taken_id_an_unknown_keypair_and_a_group_elsewhere() -> None:
    world, ak, group = setup()
    sid = world.enqueue(ak, group, {"cpu": "1"})
    with pytest.raises(DuplicateSession):
        world.enqueue(ak, group, {"cpu": "1"}, session_id=sid)
    with pytest.raises(ObjectNotFound) as missing:
        world.enqueue("NOPE", group, {"cpu": "1"})
    assert missing.value.code == "keypair_not_found"
    world.domain("other")
    with pytest.raises(InvalidAPIParameters) as elsewhere:
        world.enqueue(ak, world.group("other"), {"cpu": "1"})
    assert elsewhere.value.field == "group_id"
    run(GroupService(world.store, NoUsage()).delete_group(DeleteGroupAction(group_id=group)))
    with pytest.raises(GroupNotActive):
        world.enqueue(ak, group, {"cpu": "1"})
    with pytest.raises(InvalidAPIParameters):
        world.enqueue(ak, group, {"cpu": "inf"})  # a request is finite


# The start gate


def test_max_concurrent_sessions_defers_with_the_reason_and_admits_after_a_release() -> None:
    world, ak, group = setup(max_concurrent_sessions=2, total_resource_slots={"cpu": "100"})
    first, second, third = (world.enqueue(ak, group, {"cpu": "1"}) for _ in range(3))
    assert world.schedule(first).admitted and world.schedule(second).admitted
    answer = world.schedule(third)
    assert not answer.admitted
    (reason,) = answer.reasons
    assert (reason.limit, reason.scope, reason.scope_id, reason.slot) == (
        "max_concurrent_sessions",
        "keypair",
        ak,
        None,
    )
    assert (reason.requested, reason.used, reason.allowed) == (1, 2, 2)
    assert world.session(third).status is SessionStatus.PENDING
    assert world.store.events(Session.id_for(str(third))) == ["Created", "Deferred"]
    world.terminate(first)
    assert world.schedule(third).admitted
    assert world.running(Scope.KEYPAIR, ak) == {str(second), str(third)}


def test_max_concurrent_sessions_zero_is_unlimited() -> None:
    world, ak, group = setup(max_concurrent_sessions=0, total_resource_slots={"cpu": "100"})
    for _ in range(40):
        assert world.schedule(world.enqueue(ak, group, {"cpu": "1"})).admitted


def test_sessions_count_not_kernels_and_globally_per_keypair() -> None:
    world, ak, group = setup(max_concurrent_sessions=2, max_containers_per_session=4, total_resource_slots={"cpu": "9"})
    other_group = world.group("d")
    assert world.schedule(world.enqueue(ak, group, {"cpu": "4"}, cluster_size=4)).admitted
    assert world.schedule(world.enqueue(ak, other_group, {"cpu": "1"})).admitted  # one session each
    answer = world.schedule(world.enqueue(ak, other_group, {"cpu": "1"}))
    assert [r.limit for r in answer.reasons] == ["max_concurrent_sessions"]  # both groups count


@pytest.mark.parametrize(("default", "admitted"), [("LIMITED", False), ("UNLIMITED", True)])
def test_an_unlisted_slot_is_zero_under_limited_and_unlimited_under_unlimited(default: str, admitted: bool) -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "8"}, default_for_unspecified=default)
    answer = world.schedule(world.enqueue(ak, group, {"cpu": "1", "cuda.device": "1"}))
    assert answer.admitted is admitted
    gpu = next(c for c in answer.checks if c.scope == "keypair" and c.slot == "cuda.device")
    assert gpu.allowed == (INFINITY if admitted else 0)
    if not admitted:
        assert [(r.slot, r.requested, r.used, r.allowed) for r in answer.reasons] == [("cuda.device", 1, 0, 0)]


def test_a_group_limit_is_shared_by_its_keypairs_and_unlisted_group_slots_are_unlimited() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "100", "mem": "100g"})
    world.keypair("AK2", world.user("d"), "d", policy="p")
    world.modify_group(group, total_resource_slots={"cpu": "4"})
    assert world.schedule(world.enqueue(ak, group, {"cpu": "3", "mem": "50g"})).admitted
    answer = world.schedule(world.enqueue("AK2", group, {"cpu": "2", "mem": "1g"}))
    assert [(r.scope, r.scope_id, r.slot, r.used, r.requested, r.allowed) for r in answer.reasons] == [
        ("group", str(group), "cpu", 3, 2, 4)
    ]
    assert world.schedule(world.enqueue("AK2", group, {"cpu": "1", "mem": "40g"})).admitted  # exactly 4


def test_a_domain_limit_spans_its_groups() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "100"})
    world.modify_domain("d", total_resource_slots={"cpu": "5"})
    other = world.group("d")
    assert world.schedule(world.enqueue(ak, group, {"cpu": "3"})).admitted
    answer = world.schedule(world.enqueue(ak, other, {"cpu": "3"}))
    assert [(r.scope, r.scope_id, r.used, r.allowed) for r in answer.reasons] == [("domain", "d", 3, 5)]
    assert world.running(Scope.DOMAIN, "d") == world.running(Scope.GROUP, str(group))


def test_every_reason_is_listed() -> None:
    world, ak, group = setup(max_concurrent_sessions=1, total_resource_slots={"cpu": "2"})
    world.modify_group(group, total_resource_slots={"cpu": "2"})
    world.modify_domain("d", total_resource_slots={"cpu": "2"})
    assert world.schedule(world.enqueue(ak, group, {"cpu": "1"})).admitted
    answer = world.schedule(world.enqueue(ak, group, {"cpu": "2"}))
    assert {(r.limit, r.scope) for r in answer.reasons} == {
        ("max_concurrent_sessions", "keypair"),
        ("total_resource_slots", "keypair"),
        ("total_resource_slots", "group"),
        ("total_resource_slots", "domain"),
    }
    assert all(r.describe().endswith("> allowed 2") for r in answer.reasons if r.slot == "cpu")


def test_the_admission_event_records_policy_version_and_numbers() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "8"})
    world.modify_policy("p", max_concurrent_sessions=5)
    sid = world.enqueue(ak, group, {"cpu": "2"})
    answer = world.schedule(sid)
    assert answer.policy == {"name": "p", "source": "keypair", "version": 2}
    event = world.store.streams[Session.id_for(str(sid))][-1]
    assert type(event).__name__ == "Admitted"
    assert event.policy == answer.policy
    assert {"limit": "max_concurrent_sessions", "scope": "keypair", "scope_id": ak, "slot": None}.items() <= (
        event.checks[0].items()
    )
    assert event.checks[0]["allowed"] == "5"
    cpu = next(c for c in event.checks if c["scope"] == "keypair" and c["slot"] == "cpu")
    assert (cpu["requested"], cpu["used"], cpu["allowed"]) == ("2", "0", "8")
    assert next(c for c in event.checks if c["scope"] == "group")["allowed"] == "Infinity"
    data = world.session(sid)
    assert data.status is SessionStatus.RUNNING and data.started_at is not None and data.decisions == 1
    for scope, scope_id in ((Scope.KEYPAIR, ak), (Scope.GROUP, str(group)), (Scope.DOMAIN, "d")):
        assert world.running(scope, scope_id) == {str(sid)}
    assert world.pending(Scope.KEYPAIR, ak) == set()
    assert len(world.store.events(policy_id("p"))) == 2  # reading a policy records nothing on it


def test_a_deferral_records_the_policy_and_reasons_and_usage_is_untouched() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "1"})
    sid = world.enqueue(ak, group, {"cpu": "2"})
    before = list(world.store.streams[usage_id(Scope.KEYPAIR, ak)])
    group_before = world.store.events(usage_id(Scope.GROUP, str(group)))
    answer = world.schedule(sid)
    event = world.store.streams[Session.id_for(str(sid))][-1]
    assert type(event).__name__ == "Deferred" and event.policy == answer.policy
    assert event.reasons == [r.to_json() for r in answer.reasons]
    assert world.store.streams[usage_id(Scope.KEYPAIR, ak)] == before
    assert group_before == ["Created", "PendingAdded"]  # the enqueue's: a purge cancels pending sessions
    assert world.store.events(usage_id(Scope.GROUP, str(group))) == group_before  # a deferral adds nothing
    assert world.store.events(usage_id(Scope.DOMAIN, "d")) == []  # no stream made for a deferral


def test_a_deferral_is_recorded_again_only_when_something_it_named_changed() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "2"})
    blocker = world.enqueue(ak, group, {"cpu": "2"})
    world.schedule(blocker)
    sid = world.enqueue(ak, group, {"cpu": "1"})
    assert world.schedule(sid).changed
    repeat = world.schedule(sid)
    assert not repeat.admitted and not repeat.changed and repeat.reasons
    world.modify_policy("p", total_resource_slots={"cpu": "2.5"})  # a new version, still too small
    assert world.schedule(sid).changed
    assert world.store.events(Session.id_for(str(sid))) == ["Created", "Deferred", "Deferred"]
    assert world.session(sid).decisions == 2


def test_scheduling_a_running_session_again_decides_nothing_and_an_ended_one_is_refused() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "8"})
    sid = world.enqueue(ak, group, {"cpu": "1"})
    first = world.schedule(sid)
    again = world.schedule(sid)
    assert again.admitted and not again.changed and again.policy == first.policy
    assert world.store.events(Session.id_for(str(sid))) == ["Created", "Admitted"]
    world.terminate(sid)
    with pytest.raises(InvalidSessionState) as ended:
        world.schedule(sid)
    assert ended.value.code == "session_invalid_state"


# Release


def test_release_twice_is_harmless() -> None:
    world, ak, group = setup(max_concurrent_sessions=1, total_resource_slots={"cpu": "8"})
    running = world.enqueue(ak, group, {"cpu": "2"})
    pending = world.enqueue(ak, group, {"cpu": "2"})
    world.schedule(running)
    assert world.terminate(running, "idle_timeout") and not world.terminate(running)
    assert world.cancel(pending) and not world.cancel(pending) and not world.terminate(pending)
    for scope, scope_id in ((Scope.KEYPAIR, ak), (Scope.GROUP, str(group)), (Scope.DOMAIN, "d")):
        usage = world.sessions.usage(scope, scope_id)
        assert (usage.pending, usage.running, usage.pending_total, usage.running_total) == ({}, {}, {}, {})
    assert world.store.events(usage_id(Scope.KEYPAIR, ak)) == [
        "Created",
        "PendingAdded",
        "PendingAdded",
        "Started",
        "Released",
        "Released",
    ]
    data = world.session(running)
    assert (data.status, data.end_reason) == (SessionStatus.TERMINATED, "idle_timeout")
    assert world.session(pending).status is SessionStatus.CANCELLED


def test_cancel_is_for_pending_sessions_and_terminate_ends_either() -> None:
    world, ak, group = setup(total_resource_slots={"cpu": "8"})
    sid = world.enqueue(ak, group, {"cpu": "1"})
    world.schedule(sid)
    with pytest.raises(InvalidSessionState):
        world.cancel(sid)
    assert world.running(Scope.KEYPAIR, ak) == {str(sid)}
    waiting = world.enqueue(ak, group, {"cpu": "1"})
    assert world.terminate(waiting, "withdrawn")
    assert world.pending(Scope.KEYPAIR, ak) == set()
    assert world.session(waiting).status is SessionStatus.TERMINATED


# A race, decided by the store's version check


class RacingStore(InMemoryStore):
    """Runs `interloper` once, just before the first save it sees: the saving command's
    reads are then stale, as when another process decided in between."""

    def __init__(self) -> None:
        super().__init__()
        self.interloper: Any = None

    def save(self, *aggregates: Any) -> None:
        interloper, self.interloper = self.interloper, None
        if interloper is not None:  # in its own thread: this one is inside an event loop
            thread = threading.Thread(target=interloper)
            thread.start()
            thread.join()
        super().save(*aggregates)


def test_two_decisions_for_the_last_place_admit_exactly_one() -> None:
    store = RacingStore()
    world = World(store)
    world.policy("p", max_concurrent_sessions=1, total_resource_slots={"cpu": "8"})
    world.domain("d")
    world.keypair("AK", world.user("d"), "d", policy="p")
    group = world.group("d")
    mine, theirs = world.enqueue("AK", group, {"cpu": "1"}), world.enqueue("AK", group, {"cpu": "1"})
    store.interloper = lambda: world.schedule(theirs)
    answer = world.schedule(mine)  # decided "admit" on stale usage, conflicted, decided again
    assert not answer.admitted and [r.limit for r in answer.reasons] == ["max_concurrent_sessions"]
    assert world.running(Scope.KEYPAIR, "AK") == {str(theirs)}


def test_a_release_racing_an_admission_is_not_lost() -> None:
    store = RacingStore()
    world = World(store)
    world.policy("p", max_concurrent_sessions=2, total_resource_slots={"cpu": "8"})
    world.domain("d")
    world.keypair("AK", world.user("d"), "d", policy="p")
    group = world.group("d")
    old, new = world.enqueue("AK", group, {"cpu": "1"}), world.enqueue("AK", group, {"cpu": "1"})
    world.schedule(old)
    store.interloper = lambda: world.terminate(old)
    assert world.schedule(new).admitted
    assert world.running(Scope.KEYPAIR, "AK") == {str(new)}
    assert world.sessions.usage(Scope.KEYPAIR, "AK").running_total == {"cpu": 1}


def test_a_user_with_two_keypairs_holds_what_one_policy_allows() -> None:
    """REFERENCE, enforcement: every level must pass, the user's (summed over the user's
    keypairs) among them. A second keypair on the same policy doubled what the user held."""
    world, first, group = setup(total_resource_slots={"cpu": "2"})
    user = uuid.UUID(_owner(world, first))
    second = world.keypair("AK2", user, "d", policy="p")
    one = world.enqueue(first, group, {"cpu": "2"})
    assert world.schedule(one).admitted  # one keypair: no user check beside the keypair's
    other = world.enqueue(second, group, {"cpu": "2"})
    deferred = world.schedule(other)
    assert not deferred.admitted
    assert [(r.limit, r.scope, r.scope_id, r.slot, r.used, r.requested, r.allowed) for r in deferred.reasons] == [
        ("total_resource_slots", Scope.USER, str(user), "cpu", Decimal(2), Decimal(2), Decimal(2))
    ]
    assert world.running(Scope.USER, str(user)) == {str(one)}
    world.terminate(one)
    assert world.running(Scope.USER, str(user)) == set()
    admitted = world.schedule(other)
    assert admitted.admitted and world.running(Scope.USER, str(user)) == {str(other)}
    # Another user's keypair on the same policy is not held back by this user's sessions.
    stranger = world.keypair("AK3", world.user("d"), "d", policy="p")
    assert world.schedule(world.enqueue(stranger, group, {"cpu": "2"})).admitted


def _owner(world: World, access_key: str) -> str:
    from domain.keypair import KeyPair

    keypair = world.store.get(KeyPair.id_for(access_key), KeyPair)
    assert keypair is not None
    return str(keypair.fields["user_id"])


def test_a_purge_is_refused_by_an_admitted_session_and_cancels_pending_ones() -> None:
    """A purge once ignored the group's sessions: an admitted one kept the domain's slots
    and a pending one the keypair's pending count, in a group that no longer existed."""
    from domain.errors import PurgeGroupActionActiveKernelsError
    from domain.group import PurgeGroupAction

    world, ak, group = setup(max_pending_session_count=2, total_resource_slots={"cpu": "4"})
    admitted, pending = world.enqueue(ak, group, {"cpu": "1"}), world.enqueue(ak, group, {"cpu": "1"})
    assert world.schedule(admitted).admitted
    service = GroupService(world.store, NoUsage())
    with pytest.raises(PurgeGroupActionActiveKernelsError, match=f"1 admitted session still running.*{admitted}"):
        run(service.purge_group(PurgeGroupAction(group_id=group)))
    assert world.session(pending).status is SessionStatus.PENDING  # the refused purge changed nothing
    world.terminate(admitted)
    run(service.purge_group(PurgeGroupAction(group_id=group)))
    assert world.session(pending).status is SessionStatus.CANCELLED
    assert world.pending(Scope.KEYPAIR, ak) == set() and world.pending(Scope.GROUP, str(group)) == set()
    assert world.store.events(usage_id(Scope.GROUP, str(group)))[-1] == "Closed"
    # The keypair's pending places are free again, in another group.
    other = world.group("d")
    assert world.session(world.enqueue(ak, other, {"cpu": "1"})).status is SessionStatus.PENDING
    world.enqueue(ak, other, {"cpu": "1"})
