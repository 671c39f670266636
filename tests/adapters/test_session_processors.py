"""Issue 12 items 3 and 4 through the processors, on SQLite and PostgreSQL: the enqueue
gate's refusals, the start gate's decisions and reasons, group and domain limits,
LIMITED/UNLIMITED unlisted slots, cancel/terminate and their idempotent release, kernels
attached to admitted sessions, and who may do what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta
from domain.errors import (
    DuplicateSession,
    InsufficientPermission,
    InvalidAPIParameters,
    InvalidSessionState,
    ObjectNotFound,
    QuotaExceeded,
    VFolderHostNotAllowed,
)
from domain.session import Scope, SessionStatus
from domain.workload import CreateVFolderAction, StartKernelAction, TerminateKernelAction
from tests.adapters.sessions import PLATFORM, T0, SessionWorld, deleted_policy_world, run
from tests.policies import DEV_POLICY
from tests.projections.readmodels import clean_rebuild, dump


def _status(ledger: Ledger, sid: uuid.UUID) -> SessionStatus:
    return ledger.services.session.session(sid).status


def _running(ledger: Ledger, scope: Scope, scope_id: str) -> set[str]:
    return set(ledger.services.session.usage(scope, scope_id).running)


# The enqueue gate


def test_enqueue_makes_a_pending_session_under_the_effective_policy(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    sid = world.enqueue("2")
    detail = ledger.queries.session(sid)
    assert detail is not None
    assert detail.session.status == "PENDING"
    assert (detail.session.policy_name, detail.session.policy_source, detail.session.policy_version) == (
        "p",
        "keypair",
        world.version(),
    )
    assert [d.decision for d in detail.decisions] == ["enqueue"]
    assert set(ledger.services.session.usage(Scope.KEYPAIR, "AK").pending) == {str(sid)}
    # The enqueue decision keeps the numbers it weighed, as the start gate's do.
    world.modify_policy("p", max_pending_session_count=5, max_pending_session_resource_slots={"cpu": "8"})
    second = ledger.queries.session(world.enqueue("3"))
    assert second is not None
    weighed = [(c["limit"], c["slot"], c["requested"], c["used"], c["allowed"]) for c in second.decisions[0].checks]
    assert weighed == [
        ("max_containers_per_session", None, "1", "0", "1"),
        ("max_pending_session_count", None, "1", "1", "5"),
        ("max_pending_session_resource_slots", "cpu", "3", "2", "8"),
    ]
    with pytest.raises(DuplicateSession):
        world.enqueue(session_id=sid)


def test_enqueue_refuses_past_the_pending_count(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_pending_session_count=2)
    world.enqueue(), world.enqueue()
    with pytest.raises(QuotaExceeded) as refused:
        world.enqueue()
    assert (refused.value.limit, refused.value.scope, refused.value.scope_id) == (
        "max_pending_session_count",
        "keypair",
        "AK",
    )
    assert len(ledger.services.session.usage(Scope.KEYPAIR, "AK").pending) == 2


def test_an_enqueue_refusal_names_the_policys_version_as_every_decision_does(ledger: Ledger) -> None:
    """An admission and a deferral record the policy's name, source and version; the
    refusal said only `of policy 'p' (keypair)`, in the error and in the audit record that
    is all the ledger keeps of it: after the policy changed, which state refused was lost."""
    world = SessionWorld(ledger, max_pending_session_count=1)
    world.enqueue()
    version = world.version()
    with pytest.raises(QuotaExceeded) as refused:
        world.enqueue()
    named = f"of policy 'p' (keypair, version {version}): 1 pending + 1 > 1"
    assert refused.value.message.endswith(named)
    recorded = ledger.queries.audit_log(entity_type="session", status="error")
    assert [entry.description for entry in recorded] == [refused.value.message]


def test_enqueue_refuses_past_the_pending_slots_and_the_containers(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_pending_session_resource_slots={"cpu": "3"}, max_containers_per_session=2)
    world.enqueue("2")
    with pytest.raises(QuotaExceeded, match="cpu: pending 2 \\+ requested 2 > 3") as refused:
        world.enqueue("2")
    assert refused.value.limit == "max_pending_session_resource_slots"
    world.enqueue("1", cluster_size=2)
    with pytest.raises(QuotaExceeded) as containers:
        world.enqueue("0", cluster_size=3)
    assert containers.value.limit == "max_containers_per_session"


def test_a_cluster_size_the_sessions_read_model_cannot_hold_is_refused(ledger: Ledger) -> None:
    """A policy may allow up to 2**63-1 containers, and a cluster of 2**31 passed its gate,
    but the sessions read model keeps the size in an SQL integer (32 bits on PostgreSQL):
    the session was stored and its read model stalled there. Refused, naming the field."""
    world = SessionWorld(ledger, max_containers_per_session=2**63 - 1)
    with pytest.raises(InvalidAPIParameters) as refused:
        world.enqueue(cluster_size=2**31)
    assert refused.value.field == "cluster_size"
    largest = world.enqueue(cluster_size=2**31 - 1)
    assert [s.cluster_size for s in ledger.queries.sessions()] == [2**31 - 1]
    assert ledger.queries.session(largest) is not None


def test_enqueue_refuses_a_mount_on_a_host_no_level_grants(ledger: Ledger) -> None:
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": ["mount-in-session"]})
    vfolders = {}
    for host in ("local", "nfs"):
        vfolders[host] = uuid.uuid4()
        action = CreateVFolderAction(vfolder_id=vfolders[host], name=host, host=host, group_id=world.group_id)
        run(ledger, "workload", "create_vfolder", action, PLATFORM)
    world.enqueue(mounts=[vfolders["local"]])
    with pytest.raises(VFolderHostNotAllowed) as refused:
        world.enqueue(mounts=[vfolders["nfs"]])
    assert (refused.value.host, refused.value.permission) == ("nfs", "mount-in-session")
    world.modify_group(allowed_vfolder_hosts={"nfs": ["mount-in-session"]})  # the group grants it now
    world.enqueue(mounts=[vfolders["nfs"]])


def test_a_users_vfolder_may_be_mounted_on_a_grant_of_any_of_the_users_groups(ledger: Ledger) -> None:
    """REFERENCE (storage): `allowed_vfolder_hosts` is the union of the domain's, the
    group's (every group of the user, for the user's own vfolders) and the policy's. A
    user's vfolder (created by a keypair) was weighed against the session's group only; a
    project's vfolder (no owner) is weighed against that project's group, not the
    session's. The enqueue records which levels granted each mount."""
    from domain.group import ModifyGroupAction

    world = SessionWorld(ledger, allowed_vfolder_hosts={"nfs": ["create-vfolder"]})
    team = world.group("team", allowed_vfolder_hosts={"nfs": ["mount-in-session"]})
    members = {"user_update_mode": "add", "user_uuids": [str(world.user_id)]}
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=team, **members))
    mine, projects = uuid.uuid4(), uuid.uuid4()
    for vfolder, group_id, owner in ((mine, world.group_id, "AK"), (projects, team, None)):
        action = CreateVFolderAction(
            vfolder_id=vfolder, name=str(vfolder), host="nfs", group_id=group_id, owner_access_key=owner
        )
        run(ledger, "workload", "create_vfolder", action, PLATFORM)
    # The user's own vfolder, in a session of group g: granted by team, the user's other group.
    sid = world.enqueue(mounts=[mine])
    detail = ledger.queries.session(sid)
    assert detail is not None
    assert detail.decisions[0].grants == [
        {
            "vfolder_id": str(mine),
            "host": "nfs",
            "permission": "mount-in-session",
            "granted_by": [{"scope": "group", "scope_id": str(team)}],
        }
    ]
    # Team's vfolder is granted by team itself, in a session of g; once g grants nfs too, a
    # mount of team's vfolder is still granted by team alone.
    world.modify_group(allowed_vfolder_hosts={"nfs": ["mount-in-session"]})
    projects_grant = ledger.queries.session(world.enqueue(mounts=[projects]))
    assert projects_grant is not None
    assert projects_grant.decisions[0].grants[0]["granted_by"] == [{"scope": "group", "scope_id": str(team)}]
    # The user leaves team, and team stops granting nfs: neither grants any more.
    world.modify_group(allowed_vfolder_hosts={})
    leave = {"user_update_mode": "remove", "user_uuids": [str(world.user_id)]}
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=team, **leave))
    with pytest.raises(VFolderHostNotAllowed, match="neither the domain, any group of the user nor"):
        world.enqueue(mounts=[mine])
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=team, modifier={"allowed_vfolder_hosts": {}}))
    world.modify_group(allowed_vfolder_hosts={"nfs": ["mount-in-session"]})  # the session's group grants
    with pytest.raises(VFolderHostNotAllowed, match="neither the domain, its project's group nor"):
        world.enqueue(mounts=[projects])
    assert len(ledger.queries.sessions()) == 2


def test_a_vfolder_mounted_twice_in_one_enqueue_is_recorded_once(ledger: Ledger) -> None:
    """A repeated mount id is the same mount: collapsed in order, as a group's repeated
    member ids and a host listed twice are, where it was stored twice."""
    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": ["mount-in-session"]})
    first, second = uuid.uuid4(), uuid.uuid4()
    for vfolder in (first, second):
        action = CreateVFolderAction(vfolder_id=vfolder, name=str(vfolder), host="local", group_id=world.group_id)
        run(ledger, "workload", "create_vfolder", action, PLATFORM)
    sid = world.enqueue(mounts=[second, first, second, str(first)])
    assert ledger.services.session.session(sid).mounts == (second, first)


def test_enqueue_refuses_a_mount_of_a_purged_groups_or_another_domains_vfolder(ledger: Ledger) -> None:
    from domain.domains import CreateDomainAction
    from domain.group import CreateGroupAction, PurgeGroupAction

    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": ["mount-in-session"]})
    run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": "e"}))
    elsewhere = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "x", "domain_name": "e"})).data.id
    gone, vfolders = world.group("gone"), {}
    for group_id in (gone, elsewhere):
        vfolders[group_id] = uuid.uuid4()
        action = CreateVFolderAction(vfolder_id=vfolders[group_id], name="v", host="local", group_id=group_id)
        run(ledger, "workload", "create_vfolder", action, PLATFORM)
    run(ledger, "group", "purge_group", PurgeGroupAction(group_id=gone))
    # Both were mounted: one the purge removed, one weighed against domain d's grants.
    with pytest.raises(ObjectNotFound) as purged:
        world.enqueue(mounts=[vfolders[gone]])
    assert purged.value.code == "vfolder_not_found"
    with pytest.raises(InvalidAPIParameters) as foreign:
        world.enqueue(mounts=[vfolders[elsewhere]])
    assert foreign.value.field == "mounts" and "in domain 'e'" in str(foreign.value)
    assert ledger.services.session.usage(Scope.KEYPAIR, "AK").pending == {}


def test_an_enqueue_naming_nothing_is_refused_naming_the_field(ledger: Ledger) -> None:
    """Each reference the caller gave (the keypair, the group, a mounted vfolder) that names
    nothing is not found naming its field, as every other action's references are; the
    enqueue's were named by no field. A group stays GroupNotFound."""
    from domain.errors import GroupNotFound

    world = SessionWorld(ledger)
    with pytest.raises(ObjectNotFound) as keypair:
        world.enqueue(access_key="NOPE")
    with pytest.raises(GroupNotFound) as group:
        world.enqueue(group_id=uuid.uuid4())
    with pytest.raises(ObjectNotFound) as mount:
        world.enqueue(mounts=[uuid.uuid4()])
    named = [(e.value.code, e.value.field) for e in (keypair, group, mount)]
    assert named == [
        ("keypair_not_found", "access_key"),
        ("group_not_found", "group_id"),
        ("vfolder_not_found", "mounts"),
    ]
    owner = CreateVFolderAction(
        vfolder_id=uuid.uuid4(), name="v", host="local", group_id=world.group_id, owner_access_key="NOPE"
    )
    with pytest.raises(ObjectNotFound) as missing:
        run(ledger, "workload", "create_vfolder", owner, PLATFORM)
    assert (missing.value.code, missing.value.field) == ("keypair_not_found", "owner_access_key")
    assert ledger.queries.sessions() == []


# The start gate


def test_schedule_admits_within_the_session_limit_and_defers_with_every_reason(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=1, total_resource_slots={"cpu": "4"})
    first, second = world.enqueue("3"), world.enqueue("2")
    admitted = world.schedule(first)
    assert admitted.admitted and admitted.reasons == ()
    assert admitted.policy == {"name": "p", "source": "keypair", "version": world.version()}
    deferred = world.schedule(second)
    assert not deferred.admitted
    reasons = {
        (r.limit, r.scope.value, r.slot): (str(r.requested), str(r.used), str(r.allowed)) for r in deferred.reasons
    }
    assert reasons == {
        ("max_concurrent_sessions", "keypair", None): ("1", "1", "1"),
        ("total_resource_slots", "keypair", "cpu"): ("2", "3", "4"),
    }
    assert _status(ledger, second) is SessionStatus.PENDING
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(first)}
    # The decisions are recorded with the policy and the numbers they were made on.
    detail = ledger.queries.session(second)
    assert detail is not None
    (decision,) = [d for d in detail.decisions if d.decision == "deferred"]
    assert decision.policy["version"] == world.version()
    assert {c["limit"] for c in decision.checks} == {"max_concurrent_sessions", "total_resource_slots"}
    world.terminate(first)
    assert world.schedule(second).admitted


def test_an_unlisted_slot_is_zero_under_limited_and_unlimited_under_unlimited(ledger: Ledger) -> None:
    world = SessionWorld(ledger, total_resource_slots={"cpu": "4"}, default_for_unspecified="LIMITED")
    sid = world.enqueue("1", slots={"cuda.shares": "1"})
    result = world.schedule(sid)
    before = world.version()
    assert not result.admitted
    (reason,) = result.reasons
    assert (reason.slot, str(reason.allowed)) == ("cuda.shares", "0")
    world.modify_policy("p", default_for_unspecified="UNLIMITED")
    again = world.schedule(sid)
    assert again.admitted and again.policy["version"] == before + 1


def test_group_and_domain_limits_are_weighed(ledger: Ledger) -> None:
    world = SessionWorld(ledger, total_resource_slots={"cpu": "100"})
    world.modify_group(total_resource_slots={"cpu": "3"})
    world.modify_domain(total_resource_slots={"cpu": "5"})
    other_group = world.group("h")
    a, b = world.enqueue("2"), world.enqueue("2")
    assert world.schedule(a).admitted
    group_refusal = world.schedule(b)
    assert [(r.scope.value, r.scope_id) for r in group_refusal.reasons] == [("group", str(world.group_id))]
    c, d = world.enqueue("2", group_id=other_group), world.enqueue("2", group_id=other_group)
    assert world.schedule(c).admitted
    domain_refusal = world.schedule(d)
    assert [(r.scope.value, r.scope_id, str(r.used), str(r.allowed)) for r in domain_refusal.reasons] == [
        ("domain", "d", "4", "5")
    ]


def test_a_group_holding_sessions_or_kernels_does_not_move_to_another_domain(ledger: Ledger) -> None:
    """They were decided against its domain's limits and count in its domain's usage:
    moved, a pending one was still admitted against domain d's limits and counted in d's
    usage, and new ones were refused in the group."""
    from domain.domains import CreateDomainAction

    world = SessionWorld(ledger)
    world.modify_domain(total_resource_slots={"cpu": "1"})
    elsewhere = CreateDomainAction(creator={"name": "e", "total_resource_slots": {"cpu": "0"}})
    run(ledger, "domain", "create_domain", elsewhere)
    sid = world.enqueue()
    for held in ("1 pending session", "1 admitted session"):
        with pytest.raises(InvalidAPIParameters, match=f"{held} \\({sid}\\)") as refused:
            world.modify_group(domain_name="e")
        assert (refused.value.code, refused.value.field) == ("group_move_active_workload", "domain_name")
        assert ledger.queries.group(world.group_id).domain_name == "d"  # type: ignore[union-attr]
        if held == "1 pending session":
            assert world.schedule(sid).admitted  # in domain d, against its limits
    imported = _kernel(world, uuid.uuid4())  # a kernel of a session the ledger never admitted
    world.terminate(sid)
    with pytest.raises(InvalidAPIParameters, match=f"1 active kernel \\({imported}\\)"):
        world.modify_group(domain_name="e")
    _end_kernel(world, imported)
    world.modify_group(domain_name="e")  # holding nothing, it moves
    moved = ledger.queries.group(world.group_id)
    assert moved is not None and moved.domain_name == "e"
    with pytest.raises(InvalidAPIParameters, match="is in domain 'e'"):
        world.enqueue()


def test_an_admitted_session_refuses_a_purge_where_a_scheduled_kernel_would(ledger: Ledger) -> None:
    """It occupies its slots as a scheduled kernel does, so it is weighed in the purge's
    checks in their order: its mounts of the group's vfolders first, then itself, before
    the endpoints. It was weighed after all three: a mount of the group's vfolder, or an
    active endpoint beside it, was reported as an active kernel, or as the endpoint."""
    from domain.errors import (
        PurgeGroupActionActiveKernelsError,
        PurgeGroupActionVFoldersMountedToActiveKernelsError,
    )
    from domain.group import PurgeGroupAction
    from domain.workload import CreateEndpointAction

    world = SessionWorld(ledger, allowed_vfolder_hosts={"local": ["mount-in-session"]})
    vfolder = uuid.uuid4()
    create = CreateVFolderAction(vfolder_id=vfolder, name="data", host="local", group_id=world.group_id)
    run(ledger, "workload", "create_vfolder", create, PLATFORM)
    mounting = world.enqueue(mounts=[vfolder])
    assert world.schedule(mounting).admitted
    purge = PurgeGroupAction(group_id=world.group_id)
    with pytest.raises(PurgeGroupActionVFoldersMountedToActiveKernelsError, match=str(vfolder)):
        run(ledger, "group", "purge_group", purge)
    world.terminate(mounting)
    endpoint = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=world.group_id, name="e")
    run(ledger, "workload", "create_endpoint", endpoint, PLATFORM)
    plain = world.enqueue()
    assert world.schedule(plain).admitted
    with pytest.raises(PurgeGroupActionActiveKernelsError, match=f"1 admitted session still running.*{plain}"):
        run(ledger, "group", "purge_group", purge)
    assert _status(ledger, plain) is SessionStatus.RUNNING


def test_a_deleted_keypairs_pending_sessions_are_cancelled_with_it(ledger: Ledger) -> None:
    """They stayed PENDING, never to be admitted (keypair_not_found at every schedule),
    holding the keypair's pending places and the group's (a move was refused for them);
    and once the access key was created again, for another user, the new keypair's policy
    admitted them. Its admitted sessions run on."""
    from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction

    world = SessionWorld(ledger, max_pending_session_count=2)
    pending, admitted = world.enqueue(), world.enqueue()
    assert world.schedule(admitted).admitted
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))
    assert (_status(ledger, pending), _status(ledger, admitted)) == (SessionStatus.CANCELLED, SessionStatus.RUNNING)
    assert ledger.services.session.session(pending).end_reason == "keypair_deleted"  # not the platform's cancel
    for scope, scope_id in ((Scope.KEYPAIR, "AK"), (Scope.GROUP, str(world.group_id))):
        assert ledger.services.session.usage(scope, scope_id).pending == {}
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(admitted)}
    world.policy("big", total_resource_slots={"cpu": "1000"})
    again = CreateKeyPairAction(access_key="AK", user_id=world.user(), domain_name="d", resource_policy="big")
    run(ledger, "keypair", "create_keypair", again)
    with pytest.raises(InvalidSessionState):
        world.schedule(pending)


def test_a_deleted_groups_pending_sessions_are_cancelled_with_it(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They stayed PENDING, never to be admitted (group_inactive at every schedule), and
    held the keypair's pending places until cancelled one by one: with
    max_pending_session_count 1, the keypair could enqueue in no other group. They are
    cancelled in the delete's own append, naming why; an admitted session runs on, as
    Backend.AI's delete stops nothing."""
    from domain.group import DeleteGroupAction

    world = SessionWorld(ledger, max_pending_session_count=1)
    admitted = world.enqueue()
    assert world.schedule(admitted).admitted
    pending = world.enqueue()
    recorder: Any = ledger.app.recorder
    insert, appends = recorder.insert_events, []

    def counting(stored: Any, **kwargs: Any) -> Any:
        appends.append(len(stored))
        return insert(stored, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(recorder, "insert_events", counting)
        result = run(ledger, "group", "delete_group", DeleteGroupAction(group_id=world.group_id))
    assert len(appends) == 1  # the delete, the cancellation and the audit record together
    assert result.cancelled_sessions == (str(pending),)  # what the caller learns it ended
    assert (_status(ledger, pending), _status(ledger, admitted)) == (SessionStatus.CANCELLED, SessionStatus.RUNNING)
    assert ledger.services.session.session(pending).end_reason == "group_deleted"
    for scope, scope_id in ((Scope.KEYPAIR, "AK"), (Scope.GROUP, str(world.group_id))):
        assert ledger.services.session.usage(scope, scope_id).pending == {}
        assert _running(ledger, scope, scope_id) == {str(admitted)}
    other = world.group("other")
    assert _status(ledger, world.enqueue(group_id=other)) is SessionStatus.PENDING
    # The read model and the audit trail: one action, the group's delete, ended the session.
    rows = {s.session_id: s for s in ledger.queries.sessions()}
    assert (rows[str(pending)].status, rows[str(pending)].end_reason) == ("CANCELLED", "group_deleted")
    (deleted,) = [e for e in ledger.queries.history("group", str(world.group_id)) if e.event == "Deleted"]
    (cancelled,) = [e for e in ledger.queries.history("session", str(pending)) if e.event == "Cancelled"]
    assert cancelled.action_id == deleted.action_id is not None
    recorded = [e for e in ledger.queries.audit_log() if e.action_id == deleted.action_id]
    assert [(e.entity_type, e.operation, e.status) for e in recorded] == [("group", "delete", "success")]
    live = dump(ledger.read_models, [ledger.projections.sessions])
    assert live == {k: v for k, v in clean_rebuild(ledger).items() if k in live}
    with pytest.raises(InvalidSessionState):
        world.schedule(pending)


def test_a_purged_groups_pending_sessions_are_cancelled_naming_the_purge(ledger: Ledger) -> None:
    """A pending session occupies nothing (Backend.AI's purge checks skip PENDING
    kernels), so it refuses no purge: the purge cancels it in its own append, and nothing
    of the purged group counts any more. It read `cancelled`, as if the platform had
    cancelled it."""
    from domain.group import PurgeGroupAction

    world = SessionWorld(ledger, max_pending_session_count=1)
    pending = world.enqueue()
    result = run(ledger, "group", "purge_group", PurgeGroupAction(group_id=world.group_id))
    assert result.cancelled_sessions == (str(pending),)
    assert ledger.services.session.session(pending).end_reason == "group_purged"
    assert ledger.services.session.usage(Scope.KEYPAIR, "AK").pending == {}
    (cancelled,) = [e for e in ledger.queries.history("session", str(pending)) if e.event == "Cancelled"]
    recorded = [e for e in ledger.queries.audit_log() if e.action_id == cancelled.action_id]
    assert [(e.entity_type, e.operation) for e in recorded] == [("group", "purge")]
    assert {s.session_id: s.end_reason for s in ledger.queries.sessions()} == {str(pending): "group_purged"}
    assert _status(ledger, world.enqueue(group_id=world.group("other"))) is SessionStatus.PENDING


def test_a_delete_of_a_group_already_inactive_cancels_the_sessions_still_waiting(ledger: Ledger) -> None:
    """A group made inactive by a modify keeps its pending sessions (made active again,
    they are scheduled), as does one soft-deleted by an older release; its delete then
    records no change of the group, and left them PENDING."""
    from domain.group import DeleteGroupAction

    world = SessionWorld(ledger)
    paused, waiting = world.enqueue(), world.enqueue()
    world.modify_group(is_active=False)
    world.modify_group(is_active=True)
    assert world.schedule(paused).admitted
    world.modify_group(is_active=False)
    run(ledger, "group", "delete_group", DeleteGroupAction(group_id=world.group_id))
    assert ledger.services.session.session(waiting).end_reason == "group_deleted"
    assert ledger.services.session.usage(Scope.KEYPAIR, "AK").pending == {}
    assert _status(ledger, paused) is SessionStatus.RUNNING


def test_an_access_key_created_again_starts_with_none_of_the_deleted_keypairs_usage(ledger: Ledger) -> None:
    """The deleted keypair's admitted sessions run on, and its vfolders stay; the keypair
    created again under its access key (here for another user) is a new incarnation, and
    was refused for them: its max_concurrent_sessions counted the old sessions, its
    max_vfolder_count the old vfolders. They still count for their user, group and domain,
    and an old session's end still releases it."""
    from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction

    world = SessionWorld(
        ledger, max_concurrent_sessions=1, max_vfolder_count=1, allowed_vfolder_hosts={"local": ["create-vfolder"]}
    )

    def vfolder() -> None:
        action = CreateVFolderAction(
            vfolder_id=uuid.uuid4(), name="v", host="local", group_id=world.group_id, owner_access_key="AK"
        )
        run(ledger, "workload", "create_vfolder", action, PLATFORM)

    old = world.enqueue()
    assert world.schedule(old).admitted
    vfolder()
    run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))
    again = CreateKeyPairAction(access_key="AK", user_id=world.user(), domain_name="d", resource_policy="p")
    run(ledger, "keypair", "create_keypair", again)
    new = world.enqueue()
    decided = world.schedule(new)
    assert decided.admitted, [reason.describe() for reason in decided.reasons]
    vfolder()
    with pytest.raises(QuotaExceeded, match="1 owned \\+ 1 > 1"):
        vfolder()  # the new keypair's own count applies
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(new)}
    assert _running(ledger, Scope.GROUP, str(world.group_id)) == {str(old), str(new)}
    assert _running(ledger, Scope.USER, str(world.user_id)) == {str(old)}
    assert world.terminate(old).changed
    assert _running(ledger, Scope.GROUP, str(world.group_id)) == {str(new)}
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(new)}
    assert world.schedule(world.enqueue()).admitted is False  # the new keypair's one session


def test_sessions_of_a_deleted_keypair_run_on_under_its_policy_once_the_key_is_created_again(
    ledger: Ledger,
) -> None:
    """A session admitted under the deleted keypair's policy (idle 3600 s) was judged under
    the policy of the keypair created again under its access key (idle 60 s): due an hour
    early. It runs on under the deleted keypair's last policy, whose edits still apply,
    and through the next incarnation too; the new keypair's sessions run under theirs."""
    from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction

    world = SessionWorld(ledger, idle_timeout=3600, max_session_lifetime=0)
    world.policy("short", total_resource_slots={"cpu": "100"}, idle_timeout=60, max_session_lifetime=0)
    old = world.enqueue()
    assert world.schedule(old).admitted

    def again(policy: str) -> None:
        run(ledger, "keypair", "delete_keypair", DeleteKeyPairAction(access_key="AK"))
        created = CreateKeyPairAction(access_key="AK", user_id=world.user(), domain_name="d", resource_policy=policy)
        run(ledger, "keypair", "create_keypair", created)

    def due(now: datetime) -> dict[str, tuple[str, datetime]]:
        return {str(d.session_id): (d.policy, d.deadline) for d in ledger.queries.sessions_due(now)}

    def started(session_id: uuid.UUID) -> datetime:
        at = ledger.services.session.session(session_id).started_at
        assert at is not None
        return at

    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    again("short")
    new = world.enqueue()
    assert world.schedule(new).admitted
    assert due(started(new) + 2 * minute) == {str(new): ("short", started(new) + minute)}
    assert due(started(old) + hour)[str(old)] == ("p", started(old) + hour)
    world.modify_policy("p", idle_timeout=600)  # the old keypair's policy: its edits still apply
    assert due(started(old) + 10 * minute)[str(old)] == ("p", started(old) + 10 * minute)
    world.terminate(new)
    again("short")  # a third incarnation: the first one's session keeps the first one's policy
    world.modify_policy("short", idle_timeout=7200)
    assert due(started(old) + 10 * minute) == {str(old): ("p", started(old) + 10 * minute)}


@pytest.mark.parametrize("level", ["keypair", "user", "domain"])
def test_a_deleted_keypairs_sessions_stay_under_its_policy_once_that_policy_is_deleted(
    ledger: Ledger, ledger_url: str, level: str
) -> None:
    """The deleted keypair's session was judged under the domain's default `pp` (due at
    start + 1800 s) once nothing live named `pz` and `pz` was deleted, and `session due`
    named `pp` alone. It runs on under `pz` as `pz` last stood (due at start + 60 s),
    named as deleted with its version; the live keypair's session stays under `pp`, and
    neither a rebuild of the read models, another process nor the access key created
    again changes the answer."""
    from adapters.bootstrap import open_ledger

    world, deleted, live = deleted_policy_world(ledger, level)
    started = {sid: ledger.services.session.session(sid).started_at for sid in (deleted, live)}
    at = started[deleted] + timedelta(seconds=60)  # type: ignore[operator]
    version = world.version("pz")

    def due(opened: Ledger, now: datetime) -> dict[str, tuple[str, datetime, dict[str, object]]]:
        return {str(d.session_id): (d.policy, d.deadline, d.policy_ref) for d in opened.queries.sessions_due(now)}

    found = due(ledger, at)
    assert found == {str(deleted): ("pz", at, {"name": "pz", "source": level, "version": version, "deleted": True})}
    assert due(ledger, at - timedelta(microseconds=1)) == {}
    end = started[live] + timedelta(seconds=1800)  # type: ignore[operator]
    assert due(ledger, end)[str(live)] == (
        "pp",
        end,
        {"name": "pp", "source": "domain", "version": world.version("pp")},
    )
    ledger.runner.catch_up(ledger.runner.force([ledger.projections.sessions]))
    assert due(ledger, at) == found
    with open_ledger(ledger_url) as other:
        assert due(other, at) == found
    # The access key created again: the old session keeps pz, the new keypair has p.
    world.keypair("AKZ", "p")
    assert due(ledger, at) == found


def test_cancel_and_terminate_release_once(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    pending, running = world.enqueue(), world.enqueue()
    assert world.schedule(running).admitted
    with pytest.raises(InvalidSessionState):
        world.cancel(running)
    assert world.cancel(pending).changed
    assert not world.cancel(pending).changed  # release is idempotent
    assert world.terminate(running, "idle_timeout").changed
    assert not world.terminate(running).changed
    for scope, scope_id in ((Scope.KEYPAIR, "AK"), (Scope.GROUP, str(world.group_id)), (Scope.DOMAIN, "d")):
        usage = ledger.services.session.usage(scope, scope_id)
        assert usage.running == {} and usage.pending == {}
    assert _status(ledger, pending) is SessionStatus.CANCELLED
    ended = ledger.services.session.session(running)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "idle_timeout")


# Seed 001's policy applied


# Seed 001, 1.1, as given: its slot names "memory" and "gpu" are aliases of mem and cuda.device.
SEED_DEV_POLICY: dict[str, Any] = {k: v for k, v in DEV_POLICY.items() if k != "name"}


def test_seed_001_dev_policy_applies_each_limit_at_its_gate_under_the_seeds_slot_names(ledger: Ledger) -> None:
    """Seed 001's "policy application" scenarios with its own 1.1 policy: containers and the
    pending limits refuse at enqueue, total_resource_slots (the seed's "gpu", a slot it does
    not list under LIMITED) and max_concurrent_sessions defer at scheduling, idle_timeout
    makes a running session due, and a host the policy does not list refuses a mount."""
    world = SessionWorld(ledger, **SEED_DEV_POLICY)
    with pytest.raises(QuotaExceeded) as refused:
        world.enqueue("1", cluster_size=4)
    assert refused.value.limit == "max_containers_per_session"
    first = world.enqueue("6", slots={"memory": "40G"})
    for cpu, slots, slot in (("6", {}, "cpu"), ("1", {"memory": "30G"}, "mem")):
        with pytest.raises(QuotaExceeded, match=f"{slot}: pending ") as refused:
            world.enqueue(cpu, slots=slots)
        assert (refused.value.limit, refused.value.scope) == ("max_pending_session_resource_slots", "keypair")

    assert world.schedule(first).admitted  # 6 cpu and 40 GiB of 50 and 256 GiB
    over = (({"gpu": "5"}, "cuda.device", 5, 4), ({"cuda.shares": "1"}, "cuda.shares", 1, 0))
    for slots, slot, requested, allowed in over:
        decision = world.schedule(world.enqueue("1", slots=slots))
        assert not decision.admitted
        assert [(c.limit, c.slot, c.requested, c.allowed) for c in decision.reasons] == [
            ("total_resource_slots", slot, requested, allowed)
        ]
    more = [world.schedule(world.enqueue("1")) for _ in range(5)]
    assert [d.admitted for d in more] == [True] * 4 + [False]  # five running at most
    assert [c.limit for c in more[-1].reasons] == ["max_concurrent_sessions"]

    started = min(s.started_at for s in ledger.queries.sessions(status="RUNNING") if s.started_at is not None)
    assert ledger.queries.sessions_due(started + timedelta(seconds=3599)) == []
    due = ledger.queries.sessions_due(started + timedelta(seconds=3600))
    assert [(d.reason, d.deadline) for d in due] == [("idle_timeout", started + timedelta(seconds=3600))]

    mounts = {}
    for host in ("storage1", "storage3"):
        mounts[host] = uuid.uuid4()
        action = CreateVFolderAction(vfolder_id=mounts[host], name=host, host=host, group_id=world.group_id)
        run(ledger, "workload", "create_vfolder", action, PLATFORM)
    world.enqueue("0", mounts=[mounts["storage1"]])
    with pytest.raises(VFolderHostNotAllowed) as host_refused:
        world.enqueue("0", mounts=[mounts["storage3"]])
    assert (host_refused.value.host, host_refused.value.permission) == ("storage3", "mount-in-session")

    for _ in range(6):  # four sessions wait already (three deferred, one mounting): ten at most
        world.enqueue("0")
    with pytest.raises(QuotaExceeded) as refused:
        world.enqueue("0")
    assert refused.value.limit == "max_pending_session_count"


# Kernel facts


def _kernel(world: SessionWorld, sid: uuid.UUID) -> uuid.UUID:
    action = world.kernel_start(sid, started_at=T0)
    kernel_id = action.kernel_id
    result = run(world.ledger, "workload", "start_kernel", action, PLATFORM)
    # Marked when it counts in an admitted session: its terminate then detaches it.
    assert result.fields.get("attached_to_session", False) is (world.ledger.queries.session(sid) is not None)
    return kernel_id


def _end_kernel(world: SessionWorld, kernel_id: uuid.UUID) -> None:
    action = TerminateKernelAction(kernel_id=kernel_id, terminated_at=T0)
    run(world.ledger, "workload", "terminate_kernel", action, PLATFORM)


def test_a_session_ends_when_its_last_kernel_ends(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    sid = world.enqueue()
    assert world.schedule(sid).admitted
    kernels = [_kernel(world, sid), _kernel(world, sid)]
    entry = ledger.queries.sessions(status="RUNNING")[0]
    assert entry.kernels == 2
    _end_kernel(world, kernels[0])
    assert _status(ledger, sid) is SessionStatus.RUNNING
    _end_kernel(world, kernels[1])
    ended = ledger.services.session.session(sid)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "all_kernels_terminated")
    assert _running(ledger, Scope.KEYPAIR, "AK") == set()
    assert ledger.queries.session(sid).session.kernels == 0  # type: ignore[union-attr]


def test_a_kernel_of_a_pending_session_is_refused_and_one_of_an_unknown_session_is_a_plain_fact(
    ledger: Ledger,
) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=1)
    pending = world.enqueue()
    with pytest.raises(InvalidSessionState):
        _kernel(world, pending)
    imported = _kernel(world, uuid.uuid4())  # a session the ledger never admitted
    assert ledger.queries.kernel(imported) is not None
    assert world.schedule(pending).admitted  # the imported kernel counts toward nothing
    _end_kernel(world, imported)
    assert _status(ledger, pending) is SessionStatus.RUNNING


def test_a_kernel_naming_another_tenants_session_is_refused_and_leaves_it_running(ledger: Ledger) -> None:
    # Attached, the foreign kernel's end would end that session and release its quota.
    world = SessionWorld(ledger, max_concurrent_sessions=1)
    world.keypair("AK2", "p")
    theirs = world.enqueue(access_key="AK2")
    assert world.schedule(theirs).admitted
    ours = world.kernel_start(theirs)
    foreign_group = ours.model_copy(update={"group_id": world.group("other")})
    for action in (ours, foreign_group):  # another access key; another group too
        with pytest.raises(InvalidAPIParameters) as refused:
            run(ledger, "workload", "start_kernel", action, PLATFORM)
        assert refused.value.field == "session_id"
        assert ledger.queries.kernel(action.kernel_id) is None
    assert _status(ledger, theirs) is SessionStatus.RUNNING
    assert not world.schedule(world.enqueue(access_key="AK2")).admitted  # its quota still held


def test_a_batch_of_facts_attaches_and_detaches_in_their_order(ledger: Ledger) -> None:
    from domain.workload import RecordWorkloadBatchAction

    world = SessionWorld(ledger)
    sid, other = world.enqueue(), world.enqueue()
    assert world.schedule(sid).admitted and world.schedule(other).admitted
    k1, k2, imported = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    start = [world.kernel_start(s, k, T0) for k, s in ((k1, sid), (k2, sid), (imported, uuid.uuid4()))]
    facts: list[StartKernelAction | TerminateKernelAction] = [*start]
    facts += [TerminateKernelAction(kernel_id=k, terminated_at=T0) for k in (k1, k2, imported)]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=facts), PLATFORM)
    ended = ledger.services.session.session(sid)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "all_kernels_terminated")
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(other)}


def test_a_cluster_session_runs_until_every_kernel_of_its_cluster_has_run(ledger: Ledger) -> None:
    """Its first kernel ended before the second started: that ended the session, the
    second kernel's start was refused, and the group could be purged while it ran."""
    from domain.errors import PurgeGroupActionActiveKernelsError
    from domain.group import PurgeGroupAction

    world = SessionWorld(ledger, max_containers_per_session=2)
    sid = world.enqueue(cluster_size=2)
    assert world.schedule(sid).admitted
    k1, k2 = world.kernel_start(sid), world.kernel_start(sid)
    run(ledger, "workload", "start_kernel", k1, PLATFORM)
    run(ledger, "workload", "terminate_kernel", TerminateKernelAction(kernel_id=k1.kernel_id, terminated_at=T0))
    assert _status(ledger, sid) is SessionStatus.RUNNING
    with pytest.raises(PurgeGroupActionActiveKernelsError):
        run(ledger, "group", "purge_group", PurgeGroupAction(group_id=world.group_id))
    run(ledger, "workload", "start_kernel", k2, PLATFORM)
    run(ledger, "workload", "terminate_kernel", TerminateKernelAction(kernel_id=k2.kernel_id, terminated_at=T0))
    ended = ledger.services.session.session(sid)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "all_kernels_terminated")
    assert _running(ledger, Scope.KEYPAIR, "AK") == set()


def test_a_session_terminated_while_its_kernel_runs_occupies_until_the_kernel_ends(ledger: Ledger) -> None:
    """Terminated while its kernel still ran, the session released its usage at once: a
    second session was admitted past `max_concurrent_sessions` 1 and cpu 1 while the
    first one's kernel ran on with cpu 1. It is TERMINATING until its kernel ends."""
    from domain.actions.context import event_meta
    from domain.session import ScopeUsage, Session, usage_id
    from domain.workload import Kernel

    world = SessionWorld(ledger, max_concurrent_sessions=1, total_resource_slots={"cpu": "1"}, idle_timeout=60)
    first, second = world.enqueue(), world.enqueue()
    assert world.schedule(first).admitted
    kernel = _kernel(world, first)
    later = datetime.now(UTC) + timedelta(days=1)
    assert [d.session_id for d in ledger.queries.sessions_due(later)] == [first]
    result = world.terminate(first, "user_requested")
    assert result.changed and result.session.status is SessionStatus.TERMINATING
    assert (result.session.end_reason, result.session.ended_at) == ("user_requested", None)
    ledger.runner.catch_up()
    assert ledger.queries.kernel(kernel).status == "RUNNING"  # type: ignore[union-attr]
    for scope, scope_id in ((Scope.KEYPAIR, "AK"), (Scope.GROUP, str(world.group_id)), (Scope.DOMAIN, "d")):
        assert _running(ledger, scope, scope_id) == {str(first)}
    refused = world.schedule(second)
    assert not refused.admitted
    assert {(r.limit, r.slot) for r in refused.reasons} >= {
        ("max_concurrent_sessions", None),
        ("total_resource_slots", "cpu"),
    }
    # Being ended already: a second terminate and a cancel record nothing and keep its usage.
    assert not world.terminate(first, "again").changed
    assert not world.cancel(first).changed
    assert _status(ledger, first) is SessionStatus.TERMINATING
    assert _running(ledger, Scope.KEYPAIR, "AK") == {str(first)}
    assert [s.session_id for s in ledger.queries.sessions(status="terminating")] == [str(first)]
    assert ledger.queries.sessions_due(later) == []  # not due: being ended already
    _end_kernel(world, kernel)
    ended = ledger.services.session.session(first)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "user_requested")
    assert ended.ended_at is not None
    assert _running(ledger, Scope.KEYPAIR, "AK") == set()
    # The kernel's end, the session's and its release are one action's append.
    kernel_end = list(ledger.app.events.get(Kernel.id_for(str(kernel))))[-1]
    session_end = list(ledger.app.events.get(Session.id_for(str(first))))[-1]
    released = [
        list(ledger.app.events.get(usage_id(s, i)))[-1] for s, i in ((Scope.KEYPAIR, "AK"), (Scope.DOMAIN, "d"))
    ]
    assert isinstance(session_end, Session.Terminated)
    assert all(isinstance(e, ScopeUsage.Released) for e in released)
    assert {event_meta(e)["action_id"] for e in (kernel_end, session_end, *released)} == {
        event_meta(kernel_end)["action_id"]
    }
    assert world.schedule(second).admitted


def test_a_session_terminated_with_no_kernel_running_ends_at_once(ledger: Ledger) -> None:
    world = SessionWorld(ledger, max_concurrent_sessions=1)
    sid, other = world.enqueue(), world.enqueue()
    assert world.schedule(sid).admitted
    _end_kernel(world, _kernel(world, sid))  # its kernel ended: the session ended with it
    assert _status(ledger, sid) is SessionStatus.TERMINATED
    bare = world.enqueue()
    assert world.schedule(other).admitted  # no kernel ever started
    result = world.terminate(other, "idle_timeout")
    assert result.changed and result.session.status is SessionStatus.TERMINATED
    assert _running(ledger, Scope.KEYPAIR, "AK") == set()
    assert world.schedule(bare).admitted


def test_a_terminating_cluster_session_ends_when_its_started_kernels_end(ledger: Ledger) -> None:
    """Two of its three kernels started: terminated, it waits for those two only (the
    third can no more start on a session being ended)."""
    world = SessionWorld(ledger, max_containers_per_session=3)
    sid = world.enqueue(cluster_size=3)
    assert world.schedule(sid).admitted
    k1, k2 = _kernel(world, sid), _kernel(world, sid)
    assert world.terminate(sid, "user_requested").session.status is SessionStatus.TERMINATING
    with pytest.raises(InvalidSessionState):
        run(ledger, "workload", "start_kernel", world.kernel_start(sid), PLATFORM)
    _end_kernel(world, k1)
    assert _status(ledger, sid) is SessionStatus.TERMINATING
    _end_kernel(world, k2)
    ended = ledger.services.session.session(sid)
    assert (ended.status, ended.end_reason) == (SessionStatus.TERMINATED, "user_requested")
    assert _running(ledger, Scope.KEYPAIR, "AK") == set()


# Permissions


def _actor(role: str, domain: str) -> ActionTriggerMeta:
    return ActionTriggerMeta(user_id=uuid.uuid4(), access_key=f"AK{role}", role=role, domain_name=domain)


def test_admins_of_the_sessions_domain_may_cancel_and_terminate_only(ledger: Ledger) -> None:
    from domain.session import CancelSessionAction, EnqueueSessionAction, TerminateSessionAction

    world = SessionWorld(ledger)
    a, b = world.enqueue(), world.enqueue()
    enqueue = EnqueueSessionAction(
        session_id=uuid.uuid4(), access_key="AK", group_id=world.group_id, requested_slots={}
    )
    with pytest.raises(InsufficientPermission):
        run(ledger, "session", "enqueue_session", enqueue, _actor("admin", "d"))
    with pytest.raises(InsufficientPermission, match="may not"):
        run(ledger, "session", "cancel_session", CancelSessionAction(session_id=a), _actor("admin", "other"))
    with pytest.raises(InsufficientPermission):
        run(ledger, "session", "cancel_session", CancelSessionAction(session_id=a), _actor("user", "d"))
    assert run(ledger, "session", "cancel_session", CancelSessionAction(session_id=a), _actor("admin", "d")).changed
    terminate = TerminateSessionAction(session_id=b, reason="by admin")
    assert run(ledger, "session", "terminate_session", terminate, _actor("admin", "d")).changed
