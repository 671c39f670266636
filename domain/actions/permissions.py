"""Who may do what: one table of (entity type, operation) -> roles, and its validator.

A role listed in `anywhere` may act on any entity; a role in `own_domain` only on
entities of its own domain, both the domain the entity is in now (resolved from the
store) and any domain the action moves it into. What the table does not list is
refused: a new action must be given its row before anyone can run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.actions.base import ActionTriggerMeta, BaseAction, Role
from domain.catalog import EntityType
from domain.errors import InsufficientPermission


@dataclass(frozen=True)
class Rule:
    anywhere: frozenset[Role]
    own_domain: frozenset[Role] = frozenset()

    def allows(self, role: Role) -> bool:
        return role in self.anywhere or role in self.own_domain


SUPERADMIN_ONLY = Rule(frozenset({Role.SUPERADMIN}))
DOMAIN_ADMINS = Rule(frozenset({Role.SUPERADMIN}), frozenset({Role.ADMIN}))
PLATFORM = Rule(frozenset({Role.SERVICE, Role.SUPERADMIN}))  # the platform reports workload facts
# The platform drives sessions; an admin may also end a session of their own domain.
PLATFORM_OR_DOMAIN_ADMINS = Rule(frozenset({Role.SERVICE, Role.SUPERADMIN}), frozenset({Role.ADMIN}))

PERMISSIONS: dict[tuple[str, str], Rule] = {
    (EntityType.KEYPAIR_RESOURCE_POLICY, "create"): SUPERADMIN_ONLY,
    (EntityType.KEYPAIR_RESOURCE_POLICY, "modify"): SUPERADMIN_ONLY,
    (EntityType.KEYPAIR_RESOURCE_POLICY, "delete"): SUPERADMIN_ONLY,
    (EntityType.KEYPAIR, "create"): DOMAIN_ADMINS,
    (EntityType.KEYPAIR, "modify"): DOMAIN_ADMINS,
    (EntityType.KEYPAIR, "delete"): DOMAIN_ADMINS,
    (EntityType.GROUP, "create"): DOMAIN_ADMINS,
    (EntityType.GROUP, "modify"): DOMAIN_ADMINS,
    (EntityType.GROUP, "delete"): DOMAIN_ADMINS,
    (EntityType.GROUP, "purge"): DOMAIN_ADMINS,
    (EntityType.GROUP, "usage_per_month"): SUPERADMIN_ONLY,
    (EntityType.GROUP, "usage_per_period"): SUPERADMIN_ONLY,
    (EntityType.DOMAIN, "create"): SUPERADMIN_ONLY,
    (EntityType.DOMAIN, "modify"): SUPERADMIN_ONLY,
    (EntityType.DOMAIN, "delete"): SUPERADMIN_ONLY,
    (EntityType.USER, "create"): DOMAIN_ADMINS,
    (EntityType.USER, "modify"): DOMAIN_ADMINS,
    (EntityType.USER, "delete"): DOMAIN_ADMINS,
    (EntityType.VFOLDER, "create"): PLATFORM,
    (EntityType.KERNEL, "start"): PLATFORM,
    (EntityType.KERNEL, "report_stats"): PLATFORM,
    (EntityType.KERNEL, "terminate"): PLATFORM,
    (EntityType.ENDPOINT, "create"): PLATFORM,
    (EntityType.ENDPOINT, "destroy"): PLATFORM,
    (EntityType.WORKLOAD, "record_batch"): PLATFORM,
    (EntityType.SESSION, "enqueue"): PLATFORM,
    (EntityType.SESSION, "schedule"): PLATFORM,
    (EntityType.SESSION, "report_activity"): PLATFORM,
    (EntityType.SESSION, "cancel"): PLATFORM_OR_DOMAIN_ADMINS,
    (EntityType.SESSION, "terminate"): PLATFORM_OR_DOMAIN_ADMINS,
    # Stepping a read model over an event drops that event from it for good: the operator's call.
    (EntityType.PROJECTION, "skip"): SUPERADMIN_ONLY,
    # A token makes its holder whoever it names: only a superadmin hands them out (issue 13).
    (EntityType.TOKEN, "issue"): SUPERADMIN_ONLY,
    (EntityType.TOKEN, "revoke"): SUPERADMIN_ONLY,
}


class EntityDomains(Protocol):
    """The domain an existing entity belongs to (None when it does not exist)."""

    def domain_of(self, entity_type: str, entity_id: str) -> str | None: ...


class PermissionValidator:
    def __init__(self, domains: EntityDomains, table: dict[tuple[str, str], Rule] | None = None) -> None:
        self._domains = domains
        self._table = PERMISSIONS if table is None else table

    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        entity_type, operation = action.entity_type(), action.operation_type()
        rule = self._table.get((entity_type, operation))
        role = Role(meta.role_name)
        if rule is None or not rule.allows(role):
            raise self._refusal(action, meta, "")
        if role in rule.anywhere:
            return
        domains = set(action.target_domains())
        entity_id = action.entity_id()
        if entity_id is not None:
            current = self._domains.domain_of(entity_type, entity_id)
            if current is not None:  # an unknown entity: the service answers "not found"
                domains.add(current)
        if any(domain != meta.domain_name for domain in domains):
            outside = ", ".join(sorted(d for d in domains if d != meta.domain_name))
            raise self._refusal(action, meta, f" outside their domain ({outside})")

    @staticmethod
    def _refusal(action: BaseAction, meta: ActionTriggerMeta, why: str) -> InsufficientPermission:
        return InsufficientPermission(
            actor=f"{meta.role_name} {meta.access_key or meta.user_id or '(anonymous)'}",
            operation=action.operation_type(),
            entity=f"{action.entity_type()} {action.entity_id() or '(new)'}",
            why=why,
        )
