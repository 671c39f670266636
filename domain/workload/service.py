"""The workload service: records facts on their entity and on their group's stream.

A kernel of a session the ledger admitted attaches to that session in the same append
(`domain.session.kernels`) and is marked so (its field `attached_to_session`); its
terminate detaches it, and the session's last kernel ends the session and releases its
usage. A kernel of a session the ledger never saw (imported history) is recorded as
before, counts toward no limit, and its terminate reads no session. A vfolder created
for an owner is checked against the storage limits (`domain.workload.storage`).

Every fact is applied through a `UnitOfWork`, so one fact and a batch of facts take the
same path and a batch is one atomic append. New ids are not read first: creating an id
that exists conflicts in the store, and the retry checks.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from domain.actions import takes_action
from domain.entity import Entity
from domain.errors import DuplicateWorkloadId, InvalidAPIParameters, LedgerError
from domain.group.aggregate import Group
from domain.ports import AggregateStore, UnitOfWork, load_live
from domain.session.aggregate import Session
from domain.session.kernels import attach_kernel, detach_kernel
from domain.workload.actions import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    RecordWorkloadBatchAction,
    RecordWorkloadBatchActionResult,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
    WorkloadAction,
    WorkloadActionResult,
)
from domain.workload.aggregate import Endpoint, Kernel, VFolder, _Workload, id_field
from domain.workload.storage import admit_vfolder

W = TypeVar("W", bound=_Workload)
_CREATIONS = (CreateVFolderAction, StartKernelAction, CreateEndpointAction)
ATTACHED = "attached_to_session"  # a kernel field: it counts in a session the ledger admitted


@runtime_checkable
class StreamIndex(Protocol):
    def existing(self, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The ids among `ids` whose stream holds an event."""


class _Facts:
    """Applies facts to the aggregates of one unit of work, one handler per action class."""

    def __init__(
        self, work: UnitOfWork, *, check_new_ids: bool, sessions: set[str], present: set[uuid.UUID] | None = None
    ) -> None:
        self.work = work
        self.check_new_ids = check_new_ids
        self.sessions = sessions  # of the sessions the kernels started here name, those the ledger enqueued
        # Skipping facts already recorded: the ids among the batch's new ones that exist
        # (None: nothing is skipped).
        self.present = present
        self.created: set[uuid.UUID] = set()  # new in this unit of work: the store cannot see a repeat
        self.unchanged = 0  # facts that stored nothing: recorded already, or stats overtaken

    def active_group(self, group_id: uuid.UUID) -> Group:
        group = load_live(self.work, Group, str(group_id), field="group_id")  # the fact's input names it
        group.require_active()
        return group

    def new(self, cls: type[W], key: uuid.UUID, fields: dict[str, Any]) -> W:
        aggregate_id = key  # a workload entity's stream id is its own UUID (`_Workload.id_for`)
        if self.check_new_ids or aggregate_id in self.created:
            existing = self.work.get(aggregate_id, Entity)
            if existing is not None:
                taken_by = str(existing.ENTITY_TYPE)
                article = "an" if taken_by[0] in "aeiou" else "a"  # "an endpoint" (it said "a endpoint")
                raise DuplicateWorkloadId(
                    f"{cls.ENTITY_TYPE} {key}: the id is taken by {article} {taken_by}", field=id_field(cls.ENTITY_TYPE)
                )
        self.created.add(aggregate_id)
        return self.work.add(cls.create_for(key, fields))

    def recorded(self, action: WorkloadAction) -> Entity | None:
        """The entity, when `action` is recorded on it exactly as given already."""
        if isinstance(action, _CREATIONS):
            if self.present is None or action.entity_uuid() not in self.present:
                return None
            found = self.work.get(action.entity_uuid(), Entity)
            wanted = _created_fields(action)
            same = found is not None and all(found.fields.get(k) == v for k, v in wanted.items())
            return found if same else None
        if isinstance(action, TerminateKernelAction):
            kernel = self.work.get(Kernel.id_for(str(action.kernel_id)), Kernel)
            if kernel is None:
                return None
            ended = (kernel.fields.get("terminated_at"), kernel.fields.get("status"))
            return kernel if ended == (action.terminated_at.isoformat(), action.status) else None
        if isinstance(action, DestroyEndpointAction):
            endpoint = self.work.get(Endpoint.id_for(str(action.endpoint_id)), Endpoint)
            return endpoint if endpoint is not None and endpoint.is_deleted else None
        return None  # a stats report: the kernel itself records a repeat as nothing

    def apply(self, action: WorkloadAction) -> Entity:
        if self.present is not None:
            done = self.recorded(action)
            if done is not None:
                self.unchanged += 1
                return done
        # Looked up by exact class in a dict: singledispatchmethod builds a bound wrapper
        # per call, a cost a bulk import pays per fact; a subclass of an action class
        # still finds its handler through the MRO (once per class).
        handler = _HANDLERS.get(type(action))
        if handler is None:
            handler = _handler_for(type(action))
        return handler(self, action)

    def _create_vfolder(self, a: CreateVFolderAction) -> Entity:
        group = self.active_group(a.group_id)
        fields = {"name": a.name, "host": a.host, "group_id": str(a.group_id)}
        if a.owner_access_key is not None:
            admit_vfolder(self.work, a.owner_access_key, group, str(a.vfolder_id), a.name, a.host)
            fields["owner_access_key"] = a.owner_access_key
        vfolder = self.new(VFolder, a.vfolder_id, fields)
        group.add_vfolder(vfolder.key)
        return vfolder

    def _start_kernel(self, a: StartKernelAction) -> Entity:
        group = self.active_group(a.group_id)
        if a.domain_name != group.fields["domain_name"]:
            # A kernel is reported under its group's domain: the month report groups by it.
            raise InvalidAPIParameters(
                f"the kernel's group {a.group_id} is in domain {group.fields['domain_name']!r}, not {a.domain_name!r}",
                field="domain_name",
            )
        fields = a.kernel_fields()
        attached = fields["session_id"] in self.sessions
        if attached:  # its terminate then knows to detach it, without reading for the session
            fields[ATTACHED] = True
        kernel = self.new(Kernel, a.kernel_id, fields)
        group.start_kernel(kernel.key, fields["mounts"])
        if attached:
            attach_kernel(self.work, fields["session_id"], kernel.key, fields["group_id"], fields["access_key"])
        return kernel

    def _report_kernel_stats(self, a: ReportKernelStatsAction) -> Entity:
        kernel = load_live(self.work, Kernel, str(a.kernel_id))
        if not kernel.report_stats(a.stats()):
            self.unchanged += 1
        return kernel

    def _terminate_kernel(self, a: TerminateKernelAction) -> Entity:
        kernel = load_live(self.work, Kernel, str(a.kernel_id))
        kernel.terminate(a.terminated_at.isoformat(), a.status)
        group = self.work.get(kernel.group_id, Group)
        if group is not None:
            group.end_kernel(kernel.key)
        if kernel.fields.get(ATTACHED):
            detach_kernel(self.work, kernel.fields["session_id"], kernel.key)
        return kernel

    def _create_endpoint(self, a: CreateEndpointAction) -> Entity:
        group = self.active_group(a.group_id)
        endpoint = self.new(Endpoint, a.endpoint_id, {"name": a.name, "group_id": str(a.group_id)})
        group.create_endpoint(endpoint.key)
        return endpoint

    def _destroy_endpoint(self, a: DestroyEndpointAction) -> Entity:
        endpoint = load_live(self.work, Endpoint, str(a.endpoint_id))
        endpoint.delete()
        group = self.work.get(uuid.UUID(endpoint.fields["group_id"]), Group)
        if group is not None:
            group.destroy_endpoint(endpoint.key)
        return endpoint


def _created_fields(action: CreateVFolderAction | StartKernelAction | CreateEndpointAction) -> dict[str, Any]:
    """What a creation stores, as its handler stores it (a kernel's state since aside)."""
    if isinstance(action, StartKernelAction):
        return {k: v for k, v in action.kernel_fields().items() if k not in ("status", "terminated_at", "last_stats")}
    fields: dict[str, Any] = {"name": action.name, "group_id": str(action.group_id)}
    if isinstance(action, CreateVFolderAction):
        fields["host"] = action.host
        if action.owner_access_key is not None:
            fields["owner_access_key"] = action.owner_access_key
    return fields


Handler = Callable[[_Facts, Any], Entity]
_HANDLERS: dict[type, Handler] = {
    CreateVFolderAction: _Facts._create_vfolder,
    StartKernelAction: _Facts._start_kernel,
    ReportKernelStatsAction: _Facts._report_kernel_stats,
    TerminateKernelAction: _Facts._terminate_kernel,
    CreateEndpointAction: _Facts._create_endpoint,
    DestroyEndpointAction: _Facts._destroy_endpoint,
}


def _handler_for(action_class: type) -> Handler:
    for base in action_class.__mro__[1:]:
        handler = _HANDLERS.get(base)
        if handler is not None:
            _HANDLERS[action_class] = handler
            return handler
    raise TypeError(f"no workload fact handler for {action_class.__name__}")


class WorkloadService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store
        # A store that can say which streams exist (the ledger's can) spares a bulk import
        # a read per kernel; another store is asked stream by stream.
        self._existing: StreamIndex | None = store if isinstance(store, StreamIndex) else None

    def _record(self, actions: Sequence[WorkloadAction], skip_recorded: bool = False) -> tuple[list[Entity], int]:
        """The entity each fact is on, and how many facts stored nothing (`_Facts.unchanged`)."""
        attempts = itertools.count(1)

        def record() -> tuple[list[Entity], int]:
            work = UnitOfWork(self._store)
            present = self._present(work, actions) if skip_recorded else None
            facts = _Facts(
                work, check_new_ids=next(attempts) > 1, sessions=self._enqueued(work, actions), present=present
            )
            touched = []
            for index, action in enumerate(actions):
                try:
                    touched.append(facts.apply(action))
                except LedgerError as refused:
                    refused.batch_index = index
                    raise
            facts.work.commit()
            return touched, facts.unchanged

        first = actions[0]
        return self._store.run(record, first.entity_type(), first.operation_type())

    def _enqueued(self, work: UnitOfWork, actions: Sequence[WorkloadAction]) -> set[str]:
        """Of the sessions the batch's kernel starts name, those the ledger enqueued (a
        session stream exists): asked once for the whole batch when the store can say
        (`StreamIndex`), else stream by stream. A session the ledger never saw (imported
        history) has no stream: its kernels attach to nothing."""
        streams = {
            Session.id_for(str(a.session_id)): str(a.session_id) for a in actions if isinstance(a, StartKernelAction)
        }
        return {streams[found] for found in self._streams_in(work, streams.keys())}

    def _present(self, work: UnitOfWork, actions: Sequence[WorkloadAction]) -> set[uuid.UUID]:
        """Of the ids the batch's creations name, those whose stream exists."""
        return self._streams_in(work, {a.entity_uuid() for a in actions if isinstance(a, _CREATIONS)})

    def _streams_in(self, work: UnitOfWork, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The ids among `ids` whose stream holds an event: asked once for them all when the
        store can say (`StreamIndex`) and there are several, else stream by stream."""
        if self._existing is not None and len(ids) > 1:
            return self._existing.existing(ids)
        return {i for i in ids if work.get(i, Entity) is not None}

    def _one(self, action: WorkloadAction) -> WorkloadActionResult:
        (entity,), _ = self._record([action])
        return WorkloadActionResult(entity.ENTITY_TYPE, entity.id, dict(entity.fields))

    async def record_batch(self, actions: Sequence[WorkloadAction]) -> int:
        """Records the facts in one atomic append: all land or none. Public because trusted
        code loads facts in bulk without an actor: it takes a plain list, not an action, so
        no permission check, audit record or metric applies; anything acting for a caller
        goes through the `record_workload_batch` processor instead. Returns how many facts
        stored something (a stats report overtaken by a later one stores nothing)."""
        if not actions:
            return 0
        touched, unchanged = self._record(actions)
        return len(touched) - unchanged

    @takes_action
    async def record_workload_batch(self, action: RecordWorkloadBatchAction) -> RecordWorkloadBatchActionResult:
        """`record_batch` as an action, so a batch is permission-checked, audited and measured."""
        if not action.actions:
            return RecordWorkloadBatchActionResult(0, action.entity_ids())
        touched, unchanged = self._record(action.actions, action.skip_recorded)
        return RecordWorkloadBatchActionResult(len(touched) - unchanged, action.entity_ids(), unchanged)

    @takes_action
    async def create_vfolder(self, action: CreateVFolderAction) -> WorkloadActionResult:
        return self._one(action)

    @takes_action
    async def start_kernel(self, action: StartKernelAction) -> WorkloadActionResult:
        return self._one(action)

    @takes_action
    async def report_kernel_stats(self, action: ReportKernelStatsAction) -> WorkloadActionResult:
        return self._one(action)

    @takes_action
    async def terminate_kernel(self, action: TerminateKernelAction) -> WorkloadActionResult:
        return self._one(action)

    @takes_action
    async def create_endpoint(self, action: CreateEndpointAction) -> WorkloadActionResult:
        return self._one(action)

    @takes_action
    async def destroy_endpoint(self, action: DestroyEndpointAction) -> WorkloadActionResult:
        return self._one(action)
