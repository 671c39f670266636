"""What the action processors are wired with: permission checks, the audit trail, metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from adapters.read.queries import AuditEntry
from adapters.store import LedgerApplication
from domain.actions import ActionTriggerMeta, BaseAction, BaseBatchAction, ProcessResult
from domain.aggregates import ENTITY_KINDS
from domain.audit import AuditRecord, audit_entry
from domain.catalog import EntityType
from domain.entity import Entity

DURATION_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30)
METRIC_LABELS = ("entity_type", "operation_type", "status", "domain", "operation", "error_detail")


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
        entity = self._app.get(stream, Entity)
        if not isinstance(entity, kind) or entity.is_deleted:
            return None
        if entity.ENTITY_TYPE == EntityType.DOMAIN:  # a domain is in itself
            return entity.key
        domain: str | None = entity.fields.get("domain_name")
        return domain


class AuditMonitor:
    """Stores every outcome as an `AuditRecord` event, inside the action's context."""

    def __init__(self, app: LedgerApplication) -> None:
        self._app = app

    async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        pass

    async def done(self, action: BaseAction, result: ProcessResult) -> None:
        entity_ids = action.entity_ids() if isinstance(action, BaseBatchAction) else ()
        self._app.save(AuditRecord.record(audit_entry(result.meta, result.trigger, action.spec(), entity_ids)))


class PrometheusMonitor:
    """Backend.AI's action metrics: a counter and a duration histogram per outcome."""

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
        self._count.labels(*labels).inc()
        self._duration.labels(*labels).observe(duration)

    def replay(self, entries: Iterable[AuditEntry]) -> None:
        """Counts outcomes read back from the audit trail (what `ledger metrics` shows:
        every process's actions, not only this one's)."""
        for e in entries:
            self.observe(e.entity_type, e.operation, e.status, e.domain_name, e.error_code, e.duration)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()
