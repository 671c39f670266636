"""What the action processors are wired with: permission checks, the audit trail, metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.domain import Aggregate
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from adapters.read.queries import AuditEntry, AuditOutcome
from adapters.store import LedgerApplication
from domain.actions import ActionStatus, ActionTriggerMeta, BaseAction, BaseBatchAction, ProcessResult, RunningAction
from domain.aggregates import ENTITY_KINDS
from domain.audit import AuditRecord, audit_entry
from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import DamagedEvent, UnknownEventType

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30)
METRIC_LABELS = ("entity_type", "operation_type", "status", "domain", "operation", "error_detail")
SEED_LABELS = ("entity_type", "operation", "status")  # seed 004's: `operation` is the operation type


class StoreEntityDomains:
    """`EntityDomains` from the current state of the entity's stream."""

    def __init__(self, app: LedgerApplication) -> None:
        self._app = app

    def domain_of(self, entity_type: str, entity_id: str) -> str | None:
        kind = ENTITY_KINDS.get(entity_type)
        if kind is None:
            return None
        try:
            stream = kind.id_for(entity_id)
        except ValueError:
            return None  # not an id of this kind: the service will say so
        try:
            entity = self._app.get(stream, Entity)
        except (UnknownEventType, DamagedEvent):
            # Unreadable here (a newer release's event, or one altered behind the ledger's
            # back), as the action found it: the record is still kept, the superadmin's as
            # for an entity not found.
            return None
        if not isinstance(entity, kind) or entity.is_deleted:
            return None
        return entity_domain(entity)


def entity_domain(entity: Entity) -> str | None:
    """The domain an entity is in (a domain is in itself; None for one in no domain)."""
    if entity.ENTITY_TYPE == EntityType.DOMAIN:
        return entity.key
    domain = entity.fields.get("domain_name")
    return domain if isinstance(domain, str) else None


class AuditMonitor:
    """Stores every outcome as an `AuditRecord` event, inside the action's context. A
    success that appends events is recorded in that same append (`record_with_events`,
    called by the store); any other outcome (refused, failed, nothing to append) is
    recorded alone once the action has ended.

    Each record names the domains its action concerns (`domains`): those of the entities
    it saved, or, for an outcome that saved nothing, of the entity it names as it stands;
    plus any domain it moves an entity into. A domain's admin reads the records of their
    domain by these, never by the actor's own domain: a superadmin of one domain acting
    in another, or an admin refused on a foreign entity, concerns the entity's domain."""

    def __init__(self, app: LedgerApplication) -> None:
        self._app = app
        self._domains = StoreEntityDomains(app)
        app.record_with_events = self.success_record

    async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        pass

    def success_record(self, running: RunningAction, saving: Sequence[Aggregate]) -> AuditRecord:
        action = running.action
        entity_id = _created_key(action, saving) or action.entity_id()
        domains = _saved_domains(saving) | action.target_domains()
        entry = audit_entry(running.success(entity_id), running.trigger, action.spec(), _ids(action), domains)
        return AuditRecord.record(entry)

    async def done(self, action: BaseAction, result: ProcessResult) -> None:
        if result.recorded:
            if result.meta.status is not ActionStatus.SUCCESS:
                # Its events and success record are committed; what failed came after.
                log.warning(
                    "action %s failed after its events and record were stored: %s",
                    result.meta.action_id,
                    result.meta.description,
                )
            return
        entry = audit_entry(result.meta, result.trigger, action.spec(), _ids(action), self._concerned(action))
        self._app.save(AuditRecord.record(entry))

    def _concerned(self, action: BaseAction) -> set[str]:
        """The domains an outcome that saved nothing concerns: its entity's as it stands (none
        when it does not exist: such a record is the superadmin's) and those it names as
        targets. A batch's entities are not looked up one by one."""
        domains = action.target_domains()
        entity_id = None if isinstance(action, BaseBatchAction) else action.entity_id()
        if entity_id is not None:
            found = self._domains.domain_of(action.entity_type(), entity_id)
            if found is not None:
                domains = {*domains, found}
        return domains


def _ids(action: BaseAction) -> Sequence[str]:
    return action.entity_ids() if isinstance(action, BaseBatchAction) else ()


def _saved_domains(saving: Sequence[Aggregate]) -> set[str]:
    """The domains of the entities an append saves."""
    found = (entity_domain(a) for a in saving if isinstance(a, Entity))
    return {domain for domain in found if domain is not None}


def _created_key(action: BaseAction, saving: Sequence[Aggregate]) -> str | None:
    """The key of the one entity of the action's type this append creates (an id the
    ledger chose: a new group's, an issued token's), as the action's result names it."""
    created = [
        a.entity_id
        for a in saving
        if isinstance(a, Entity) and action.entity_type() == a.ENTITY_TYPE and a.version == len(a.pending_events)
    ]
    return created[0] if len(created) == 1 else None


class PrometheusMonitor:
    """Backend.AI's action metrics (a counter and a duration histogram per outcome), and
    the three seed 004 names: `backend_action_total` (entity_type, operation, status),
    `backend_action_duration_seconds` (entity_type, operation) and
    `backend_action_errors_total` (entity_type, operation, error_type: the error's code;
    an action that did not succeed, refused by a validator included)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._count = Counter("backendai_action_count", "Actions processed", METRIC_LABELS, registry=self.registry)
        self._duration = Histogram(
            "backendai_action_duration_sec",
            "Duration of processed actions, in seconds",
            METRIC_LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._total = Counter(
            "backend_action_total", "Total number of action executions", SEED_LABELS, registry=self.registry
        )
        self._seconds = Histogram(
            "backend_action_duration_seconds",
            "Action execution time, in seconds",
            SEED_LABELS[:2],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "backend_action_errors_total",
            "Number of action execution errors",
            (*SEED_LABELS[:2], "error_type"),
            registry=self.registry,
        )
        # The children of one label set, looked up once (`labels()` validates and locks per call).
        self._children: dict[tuple[str, ...], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}

    async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        pass

    async def done(self, action: BaseAction, result: ProcessResult) -> None:
        m = result.meta
        self.observe(m.entity_type, m.operation, m.status, result.trigger.domain_name, m.error_code, m.duration)

    def observe(
        self,
        entity_type: str,
        operation: str,
        status: str,
        domain: str | None,
        error_code: str | None,
        duration: float,
    ) -> None:
        """Counts one outcome: a live one, or one replayed from the audit trail."""
        labels = (entity_type, operation, status, domain or "", f"{entity_type}_{operation}", error_code or "")
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = self._children_of(labels)
        counters, histograms = children
        for counter in counters:
            counter.inc()
        for histogram in histograms:
            histogram.observe(duration)

    def _children_of(self, labels: tuple[str, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(the counters, the histograms) one outcome with these labels adds to."""
        entity_type, operation, status, *_, error_code = labels
        counters = [self._count.labels(*labels), self._total.labels(entity_type, operation, status)]
        if status != ActionStatus.SUCCESS.value:
            counters.append(self._errors.labels(entity_type, operation, error_code))
        return tuple(counters), (self._duration.labels(*labels), self._seconds.labels(entity_type, operation))

    def replay(self, entries: Iterable[AuditEntry | AuditOutcome]) -> None:
        """Counts outcomes read back from the audit trail (what `ledger metrics` shows:
        every process's actions, not only this one's): whole entries, or only what is
        counted of them (`Queries.audit_outcomes`)."""
        for e in entries:
            self.observe(e.entity_type, e.operation, e.status, e.domain_name, e.error_code, e.duration)

    def exposition(self, *, every_process: bool = False) -> str:
        """The text exposition of this registry; with `every_process`, in a process that
        keeps its values in prometheus_client's multiprocess directory (each worker of
        `ledger serve --workers N`), the sum over every process writing there: a scrape
        answered by any worker counts the whole server, never one worker's share."""
        if every_process and values.ValueClass is not values.MutexValue:
            summed = CollectorRegistry()
            MultiProcessCollector(summed)  # type: ignore[no-untyped-call]  # the library leaves it untyped
            return generate_latest(summed).decode()
        return generate_latest(self.registry).decode()

    def samples(self) -> list[dict[str, Any]]:
        """The exposition's samples as data (`ledger --json metrics`): name, labels, value."""
        return [
            {"name": sample.name, "labels": dict(sample.labels), "value": sample.value}
            for family in self.registry.collect()
            for sample in family.samples
        ]
