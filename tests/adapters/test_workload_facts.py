"""Workload facts (vfolders, kernels, endpoints) on SQLite and PostgreSQL: what is
refused, what a batch does when one fact is refused, and what a kernel keeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import (
    DuplicateWorkloadId,
    GroupNotActive,
    GroupNotFound,
    InvalidAPIParameters,
    KernelAlreadyTerminated,
    LedgerError,
    ObjectNotFound,
)
from domain.group import Group
from domain.workload import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    Endpoint,
    Kernel,
    ReportKernelStatsAction,
    TerminateKernelAction,
    VFolder,
)
from tests.adapters.groups import (
    create_endpoint,
    create_group,
    create_vfolder,
    delete_group,
    destroy_endpoint,
    events,
    head,
    kernel_action,
    modify_group,
    purge_group,
    start_kernel,
    stores_nothing,
    terminate_kernel,
)
from tests.adapters.kernels import start

GiB = 1024**3
NOW = datetime(2024, 10, 2, 8, 30, tzinfo=UTC)


def record(ledger: Ledger, action: Any) -> Any:
    """Runs one fact through the service method its action belongs to."""
    service = ledger.services.workload
    method = {
        "CreateVFolderAction": service.create_vfolder,
        "StartKernelAction": service.start_kernel,
        "ReportKernelStatsAction": service.report_kernel_stats,
        "TerminateKernelAction": service.terminate_kernel,
        "CreateEndpointAction": service.create_endpoint,
        "DestroyEndpointAction": service.destroy_endpoint,
    }[type(action).__name__]
    return asyncio.run(method(action))


def batch(ledger: Ledger, actions: list[Any]) -> int:
    return asyncio.run(ledger.services.workload.record_batch(actions))


def new_workload(group_id: uuid.UUID) -> list[Any]:
    """One of each fact that needs an active group."""
    return [
        kernel_action(group_id),
        CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group_id, name="serve"),
        CreateVFolderAction(vfolder_id=uuid.uuid4(), name="data", host="local", group_id=group_id),
    ]


def stats(kernel_id: uuid.UUID, **values: Any) -> ReportKernelStatsAction:
    return ReportKernelStatsAction(kernel_id=kernel_id, reported_at=NOW, **values)


def stored_kernel(ledger: Ledger, kernel_id: uuid.UUID) -> Kernel | None:
    return ledger.app.get(Kernel.id_for(str(kernel_id)), Kernel)


def stored_group(ledger: Ledger, group_id: uuid.UUID) -> Group:
    group = ledger.app.get(group_id, Group)
    assert group is not None
    return group


# Where new workload may go


@pytest.mark.parametrize("why", ["unknown", "purged"])
def test_new_workload_in_a_missing_group_is_refused(ledger: Ledger, why: str) -> None:
    if why == "unknown":
        group_id = uuid.uuid4()
    else:
        group_id = create_group(ledger).id
        purge_group(ledger, group_id)
    for action in new_workload(group_id):
        with stores_nothing(ledger), pytest.raises(GroupNotFound) as info:
            record(ledger, action)
        assert info.value.entity_id == str(group_id), type(action).__name__
        assert info.value.field == "group_id", type(action).__name__  # the input that named it
        with stores_nothing(ledger), pytest.raises(GroupNotFound):
            batch(ledger, [action])


def test_new_workload_in_a_soft_deleted_group_is_refused(ledger: Ledger) -> None:
    group = create_group(ledger)
    delete_group(ledger, group.id)
    for action in new_workload(group.id):
        with stores_nothing(ledger), pytest.raises(GroupNotActive):
            record(ledger, action)
    assert events(ledger, group.id) == ["Created", "Deleted"]
    assert GroupNotActive.status == 409


def test_workload_already_running_may_end_in_a_soft_deleted_group(ledger: Ledger) -> None:
    group = create_group(ledger)
    kernel = start_kernel(ledger, group.id)
    endpoint = create_endpoint(ledger, group.id)
    delete_group(ledger, group.id)
    terminate_kernel(ledger, kernel)
    destroy_endpoint(ledger, endpoint)
    assert stored_group(ledger, group.id).kernels == {}
    assert stored_group(ledger, group.id).endpoints == {}
    purge_group(ledger, group.id)


# Facts about things that do not exist, or no longer


def test_facts_about_unknown_kernels_and_endpoints_are_refused(ledger: Ledger) -> None:
    unknown = uuid.uuid4()
    for action in (
        TerminateKernelAction(kernel_id=unknown, terminated_at=NOW),
        stats(unknown, cpu_used=1),
        DestroyEndpointAction(endpoint_id=unknown),
    ):
        with stores_nothing(ledger), pytest.raises(ObjectNotFound) as info:
            record(ledger, action)
        assert info.value.entity_id == str(unknown)
        assert not isinstance(info.value, GroupNotFound)


def test_a_kernel_ends_once_and_an_endpoint_is_destroyed_once(ledger: Ledger) -> None:
    group = create_group(ledger)
    kernel = start_kernel(ledger, group.id)
    endpoint = create_endpoint(ledger, group.id)
    terminate_kernel(ledger, kernel)
    for status in ("TERMINATED", "CANCELLED"):
        with stores_nothing(ledger), pytest.raises(KernelAlreadyTerminated):
            terminate_kernel(ledger, kernel, status=status)
    destroy_endpoint(ledger, endpoint)
    with stores_nothing(ledger), pytest.raises(ObjectNotFound):
        destroy_endpoint(ledger, endpoint)
    kept = stored_kernel(ledger, kernel)
    assert kept is not None and kept.fields["status"] == "TERMINATED"
    assert KernelAlreadyTerminated.status == 409


def test_a_workload_id_is_used_once(ledger: Ledger) -> None:
    group = create_group(ledger)
    kernel = kernel_action(group.id)
    endpoint = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group.id, name="serve")
    vfolder = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="data", host="local", group_id=group.id)
    for action in (kernel, endpoint, vfolder):
        record(ledger, action)
        with stores_nothing(ledger), pytest.raises(DuplicateWorkloadId):
            record(ledger, action)
    # Not even once the kernel has ended or the endpoint is destroyed.
    terminate_kernel(ledger, kernel.kernel_id)
    with stores_nothing(ledger), pytest.raises(DuplicateWorkloadId):
        record(ledger, kernel)
    destroy_endpoint(ledger, endpoint.endpoint_id)
    with stores_nothing(ledger), pytest.raises(DuplicateWorkloadId):
        record(ledger, endpoint)
    assert stored_group(ledger, group.id).kernels == {}
    assert stored_group(ledger, group.id).endpoints == {}


def test_an_id_taken_by_another_kind_of_entity_is_a_domain_error(ledger: Ledger) -> None:
    """Group, vfolder, kernel and endpoint streams are all named by the caller's UUID."""
    group = create_group(ledger)
    vfolder = create_vfolder(ledger, group.id)
    kernel = start_kernel(ledger, group.id)
    for taken in (vfolder, group.id):
        for action in (
            kernel_action(group.id, kernel_id=taken),
            CreateEndpointAction(endpoint_id=taken, group_id=group.id, name="serve"),
            CreateVFolderAction(vfolder_id=taken, name="data", host="local", group_id=group.id),
        ):
            if taken == vfolder and isinstance(action, CreateVFolderAction):
                continue
            with stores_nothing(ledger), pytest.raises(DuplicateWorkloadId):
                record(ledger, action)
    with stores_nothing(ledger), pytest.raises(ObjectNotFound):
        terminate_kernel(ledger, vfolder)
    with stores_nothing(ledger), pytest.raises(ObjectNotFound):
        record(ledger, stats(group.id))
    with stores_nothing(ledger), pytest.raises(ObjectNotFound):
        destroy_endpoint(ledger, kernel)
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        start_kernel(ledger, kernel)  # a kernel's id is no group
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        modify_group(ledger, vfolder, description="not a group")
    with stores_nothing(ledger), pytest.raises(GroupNotFound):
        purge_group(ledger, kernel)
    with stores_nothing(ledger), pytest.raises(InvalidAPIParameters) as info:
        create_group(ledger, "clash", group_id=kernel)
    assert info.value.field == "group_id"


# Batches


def test_a_batch_lands_whole(ledger: Ledger) -> None:
    group = create_group(ledger)
    vfolder = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="data", host="local", group_id=group.id)
    kernel = kernel_action(group.id, mounts=[vfolder.vfolder_id])
    endpoint = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group.id, name="serve")
    facts = [
        vfolder,
        kernel,
        stats(kernel.kernel_id, cpu_used="1.5", mem_used=GiB),
        TerminateKernelAction(kernel_id=kernel.kernel_id, terminated_at=NOW),
        endpoint,
        DestroyEndpointAction(endpoint_id=endpoint.endpoint_id),
    ]
    before = head(ledger)
    assert batch(ledger, facts) == len(facts)
    assert head(ledger) > before
    kept = stored_kernel(ledger, kernel.kernel_id)
    assert kept is not None
    assert kept.fields["status"] == "TERMINATED"
    assert kept.fields["last_stats"]["mem_used"] == GiB
    assert stored_group(ledger, group.id).vfolders == {str(vfolder.vfolder_id): True}
    assert events(ledger, group.id) == [
        "Created",
        "VFolderAdded",
        "KernelStarted",
        "KernelEnded",
        "EndpointCreated",
        "EndpointDestroyed",
    ]
    with stores_nothing(ledger):
        assert batch(ledger, []) == 0


def _unknown_group(group_id: uuid.UUID, taken: Any) -> Any:
    return kernel_action(uuid.uuid4())


def _soft_deleted_group(group_id: uuid.UUID, taken: Any) -> Any:
    return CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=taken["inactive"], name="late")


def _existing_kernel_id(group_id: uuid.UUID, taken: Any) -> Any:
    return kernel_action(group_id, kernel_id=taken["kernel"])


def _ended_kernel(group_id: uuid.UUID, taken: Any) -> Any:
    return TerminateKernelAction(kernel_id=taken["ended"], terminated_at=NOW)


def _bad_end(group_id: uuid.UUID, taken: Any) -> Any:
    return TerminateKernelAction(kernel_id=uuid.uuid4(), terminated_at=NOW)


@pytest.mark.parametrize(
    ("third", "error"),
    [
        (_unknown_group, GroupNotFound),
        (_soft_deleted_group, GroupNotActive),
        (_existing_kernel_id, DuplicateWorkloadId),  # refused only when the store sees it
        (_ended_kernel, KernelAlreadyTerminated),
        (_bad_end, ObjectNotFound),
    ],
)
def test_a_batch_whose_third_fact_is_refused_stores_none_of_it(
    ledger: Ledger, third: Callable[[uuid.UUID, Any], Any], error: type[LedgerError]
) -> None:
    group = create_group(ledger, "busy")
    inactive = create_group(ledger, "inactive")
    delete_group(ledger, inactive.id)
    ended = start_kernel(ledger, group.id)
    terminate_kernel(ledger, ended)
    taken = {"kernel": start_kernel(ledger, group.id), "ended": ended, "inactive": inactive.id}
    vfolder = CreateVFolderAction(vfolder_id=uuid.uuid4(), name="data", host="local", group_id=group.id)
    kernel = kernel_action(group.id, mounts=[vfolder.vfolder_id])
    endpoint = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group.id, name="serve")
    group_before = events(ledger, group.id)
    with stores_nothing(ledger), pytest.raises(error):
        batch(ledger, [vfolder, kernel, third(group.id, taken), endpoint])
    assert stored_kernel(ledger, kernel.kernel_id) is None
    assert ledger.app.get(VFolder.id_for(str(vfolder.vfolder_id)), VFolder) is None
    assert ledger.app.get(Endpoint.id_for(str(endpoint.endpoint_id)), Endpoint) is None
    assert events(ledger, group.id) == group_before
    assert str(kernel.kernel_id) not in stored_group(ledger, group.id).kernels


def test_a_batch_cannot_use_one_new_id_twice(ledger: Ledger) -> None:
    group = create_group(ledger, "first")
    other = create_group(ledger, "second")
    kernel_id = uuid.uuid4()
    shared = uuid.uuid4()
    for facts in (
        [kernel_action(group.id, kernel_id=kernel_id), kernel_action(group.id, kernel_id=kernel_id)],
        # The same kernel in two groups would leave one group with a kernel that never ends.
        [kernel_action(group.id, kernel_id=kernel_id), kernel_action(other.id, kernel_id=kernel_id)],
        [
            CreateVFolderAction(vfolder_id=shared, name="data", host="local", group_id=group.id),
            kernel_action(group.id, kernel_id=shared),
        ],
        [
            CreateEndpointAction(endpoint_id=shared, group_id=group.id, name="a"),
            CreateEndpointAction(endpoint_id=shared, group_id=other.id, name="b"),
        ],
    ):
        with stores_nothing(ledger), pytest.raises(DuplicateWorkloadId):
            batch(ledger, facts)
    assert stored_kernel(ledger, kernel_id) is None
    assert stored_group(ledger, group.id).kernels == {}
    assert stored_group(ledger, other.id).kernels == {}
    purge_group(ledger, group.id)
    purge_group(ledger, other.id)


# What a kernel keeps


def test_stats_and_termination_are_recorded_on_the_kernel(ledger: Ledger) -> None:
    group = create_group(ledger)
    vfolder = create_vfolder(ledger, group.id)
    action = kernel_action(group.id, mounts=[vfolder])
    started = record(ledger, action)
    kernel_id = action.kernel_id
    fields = stored_kernel(ledger, kernel_id).fields  # type: ignore[union-attr]
    assert started.fields == fields
    assert (started.entity, started.id) == ("kernel", kernel_id)
    assert fields["status"] == "RUNNING"
    assert fields["group_id"] == str(group.id)
    assert fields["mounts"] == [str(vfolder)]
    assert fields["occupied_slots"] == {"cpu": "2", "mem": str(4 * GiB)}
    assert fields["started_at"] == "2024-10-01T12:00:00+00:00"
    assert (fields["image"], fields["agent"], fields["access_key"]) == ("python:3.11", "agent-1", "AKTEST")
    assert fields["terminated_at"] is None and fields["last_stats"] is None
    assert stored_group(ledger, group.id).kernels == {str(kernel_id): [str(vfolder)]}

    record(ledger, stats(kernel_id, cpu_used=1, mem_used=GiB))
    latest = record(
        ledger,
        ReportKernelStatsAction(
            kernel_id=kernel_id,
            reported_at="2024-10-02T09:00:00Z",
            cpu_used="2.25",
            mem_used=2 * GiB,
            io_read=10,
            io_write=20,
            disk_used=30,
        ),
    )
    expected_stats = {
        "reported_at": "2024-10-02T09:00:00+00:00",
        "cpu_used": "2.25",
        "mem_used": 2 * GiB,
        "io_read": 10,
        "io_write": 20,
        "disk_used": 30,
    }
    assert stored_kernel(ledger, kernel_id).fields["last_stats"] == expected_stats  # type: ignore[union-attr]
    assert latest.fields["last_stats"] == expected_stats
    assert Decimal(expected_stats["cpu_used"]) == Decimal("2.25")

    ended = record(
        ledger, TerminateKernelAction(kernel_id=kernel_id, terminated_at="2024-10-02T10:00:00", status="cancelled")
    )
    fields = stored_kernel(ledger, kernel_id).fields  # type: ignore[union-attr]
    assert ended.fields == fields
    assert fields["status"] == "CANCELLED"
    assert fields["terminated_at"] == "2024-10-02T10:00:00+00:00"  # a time without zone is UTC
    assert fields["last_stats"] == expected_stats  # the last report is kept
    assert stored_group(ledger, group.id).kernels == {}
    assert [e.event for e in ledger.queries.history("kernel", str(kernel_id))] == [
        "Created",
        "StatsReported",
        "StatsReported",
        "Terminated",
    ]
    assert events(ledger, group.id) == ["Created", "VFolderAdded", "KernelStarted", "KernelEnded"]


# Bad input (no store needed)


@pytest.mark.parametrize(
    ("factory", "fields", "field"),
    [
        (TerminateKernelAction, {"kernel_id": "not-a-uuid", "terminated_at": NOW}, "kernel_id"),
        (TerminateKernelAction, {"kernel_id": uuid.uuid4(), "terminated_at": NOW, "status": "RUNNING"}, "status"),
        (TerminateKernelAction, {"kernel_id": uuid.uuid4(), "terminated_at": "yesterday"}, "terminated_at"),
        (ReportKernelStatsAction, {"kernel_id": uuid.uuid4(), "reported_at": NOW, "cpu_used": -1}, "cpu_used"),
        (ReportKernelStatsAction, {"kernel_id": uuid.uuid4(), "reported_at": NOW, "cpu_used": "nan"}, "cpu_used"),
        (ReportKernelStatsAction, {"kernel_id": uuid.uuid4(), "reported_at": NOW, "mem_used": -5}, "mem_used"),
        (CreateEndpointAction, {"endpoint_id": uuid.uuid4(), "group_id": "g", "name": "e"}, "group_id"),
        (CreateVFolderAction, {"vfolder_id": uuid.uuid4(), "name": "", "host": "h", "group_id": uuid.uuid4()}, "name"),
        (DestroyEndpointAction, {}, "endpoint_id"),
    ],
)
def test_bad_fact_input_names_the_field(factory: Any, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        factory(**fields)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"occupied_slots": {"bogus": 1}}, "occupied_slots"),
        ({"mounts": ["not-a-uuid"]}, "mounts"),
        ({"mounts": "one-string"}, "mounts"),
        ({"started_at": 12}, "started_at"),
        ({"user_id": "someone"}, "user_id"),
    ],
)
def test_bad_kernel_start_names_the_field(changes: dict[str, Any], field: str) -> None:
    good = kernel_action(uuid.uuid4())
    raw = {name: getattr(good, name) for name in type(good).model_fields}
    with pytest.raises(InvalidAPIParameters) as info:
        type(good)(**{**raw, **changes})
    assert info.value.field is not None and info.value.field.split(".")[0] == field


def test_a_kernel_keeps_its_latest_stats_whatever_order_the_reports_arrive_in(ledger_url: str) -> None:
    """The report showed the stats received last, not the latest: an older report arriving
    late (or repeated by a resumed import) replaced a newer one, and a report dated after
    the kernel ended replaced its final usage."""
    from datetime import timedelta

    from domain.errors import InvalidAPIParameters
    from domain.workload import ReportKernelStatsAction, TerminateKernelAction
    from tests.actions import T0, build_world, run, stream_lengths

    def report(kernel: Any, hours: float, cpu: str) -> None:
        action = ReportKernelStatsAction(kernel_id=kernel, reported_at=T0 + timedelta(hours=hours), cpu_used=cpu)
        run(ledger, "workload", "report_kernel_stats", action)

    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)  # its kernel started at T0
        report(world.kernel, 2, "200")
        before = stream_lengths(ledger)
        report(world.kernel, 1, "100")  # overtaken on its way: superseded
        report(world.kernel, 2, "200")  # repeated
        assert stream_lengths(ledger) == before  # neither recorded anything on the kernel
        kernel = ledger.queries.kernel(world.kernel)
        assert kernel is not None and kernel.last_stats is not None and kernel.last_stats["cpu_used"] == "200"
        for hours, reason in ((-1, "before the kernel started"), (30, "after the kernel ended")):
            if hours > 0:
                ended = TerminateKernelAction(kernel_id=world.kernel, terminated_at=T0 + timedelta(hours=3))
                run(ledger, "workload", "terminate_kernel", ended)
            with pytest.raises(InvalidAPIParameters, match=reason) as refused:
                report(world.kernel, hours, "99999")
            assert refused.value.field == "reported_at"
        report(world.kernel, 2.5, "250")  # late, but from before the end: the latest
        kernel = ledger.queries.kernel(world.kernel)
        assert kernel is not None and kernel.last_stats is not None and kernel.last_stats["cpu_used"] == "250"


@pytest.mark.parametrize("order", [("100", "200"), ("200", "100")])
def test_two_reports_of_one_instant_keep_the_larger_whatever_their_order(ledger_url: str, order: Any) -> None:
    """At one instant the later arrival used to win: an import run again re-recorded both
    reports (each differed from the one before it), and another order kept other stats."""
    from datetime import timedelta

    from domain.workload import ReportKernelStatsAction
    from tests.actions import T0, build_world, run, stream_lengths

    def report(kernel: Any, cpu: str) -> None:
        action = ReportKernelStatsAction(kernel_id=kernel, reported_at=T0 + timedelta(hours=1), cpu_used=cpu)
        run(ledger, "workload", "report_kernel_stats", action)

    with open_ledger(ledger_url) as ledger:
        world = build_world(ledger)
        for cpu in order:
            report(world.kernel, cpu)
        kernel = ledger.queries.kernel(world.kernel)
        assert kernel is not None and kernel.last_stats is not None and kernel.last_stats["cpu_used"] == "200"
        before = stream_lengths(ledger)
        for cpu in order:  # the same reports again, as a resumed import sends them
            report(world.kernel, cpu)
        assert stream_lengths(ledger) == before


def test_a_window_bound_finer_than_a_microsecond_keeps_the_kernels_it_holds(ledger: Ledger) -> None:
    """RFC 3339 allows any number of fractional digits (a .NET platform sends seven); times
    are kept to the microsecond, and Python's parser drops the digits past the sixth. A
    bound cut down that way moved below the instant it named: `until=…00.0000001` left out
    a kernel started at …00 exactly, and `since=…59.9999999` listed one started at
    …59.999999, before it. Every stored start is a whole microsecond, so a bound is the
    first microsecond at or after it."""
    group = create_group(ledger).id
    at_second = start(ledger, group, datetime(2024, 10, 1, 12, 0, tzinfo=UTC))
    last_micro = start(ledger, group, datetime(2024, 10, 1, 12, 0, 59, 999999, tzinfo=UTC))

    def listed(**window: str) -> list[str]:
        return [k.kernel_id for k in ledger.queries.kernels(**window)]

    assert listed(until="2024-10-01T12:00:00.0000001Z") == [at_second]
    assert listed(since="2024-10-01T12:00:00.0000001Z") == [last_micro]
    assert listed(since="2024-10-01T12:00:59.9999991Z") == []
    assert listed(until="2024-10-01T12:00:59.9999991Z") == [at_second, last_micro]
    # Digits past the sixth that are zeros name the microsecond itself.
    assert listed(until="2024-10-01T12:00:00.0000000Z") == []
    assert listed(since="2024-10-01T12:00:59.9999990Z") == [last_micro]
