"""Who may do what: one table of (entity type, operation) -> roles, and its validator.

A role listed in `anywhere` may act on any entity; a role in `own_domain` only on
entities of its own domain, both the domain the entity is in now (resolved from the
store) and any domain the action moves it into. What the table does not list is
refused: a new action must be given its row before anyone can run it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from domain.actions.base import ActionTriggerMeta, BaseAction, Role
from domain.catalog import EntityType
from domain.errors import ForeignEntity, InsufficientPermission


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
    # An admin's report covers their own domain's groups only (the group service filters it).
    (EntityType.GROUP, "usage_per_month"): DOMAIN_ADMINS,
    (EntityType.GROUP, "usage_per_period"): DOMAIN_ADMINS,
    (EntityType.DOMAIN, "create"): SUPERADMIN_ONLY,
    (EntityType.DOMAIN, "modify"): SUPERADMIN_ONLY,
    (EntityType.DOMAIN, "delete"): SUPERADMIN_ONLY,
    (EntityType.USER, "create"): DOMAIN_ADMINS,
    (EntityType.USER, "modify"): DOMAIN_ADMINS,
    (EntityType.USER, "delete"): DOMAIN_ADMINS,
    # Destroys a user's personal values for good, in every domain's history: the operator's call.
    (EntityType.USER, "erase"): SUPERADMIN_ONLY,
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
        entity_id = action.entity_id()
        if entity_id is not None:
            current = self._domains.domain_of(entity_type, entity_id)
            # An unknown entity: the service answers "not found". A foreign one is refused
            # without naming its domain: a caller learns nothing of what it may not see.
            if current is not None and current != meta.domain_name:
                raise ForeignEntity(
                    actor=_actor(meta), operation=operation, entity_type=entity_type, entity_id=entity_id
                )
        outside = sorted(d for d in action.target_domains() if d != meta.domain_name)
        if outside:  # domains the caller named: saying so reveals nothing
            raise self._refusal(action, meta, f" into another domain ({', '.join(outside)})")

    @staticmethod
    def _refusal(action: BaseAction, meta: ActionTriggerMeta, why: str) -> InsufficientPermission:
        return InsufficientPermission(
            actor=_actor(meta),
            operation=action.operation_type(),
            entity=f"{action.entity_type()} {action.entity_id() or '(new)'}",
            why=why,
        )


def _actor(meta: ActionTriggerMeta) -> str:
    return f"{meta.role_name} {meta.access_key or meta.user_id or '(anonymous)'}"


class ReadScope(enum.Enum):
    """How much of one kind of thing a role may read."""

    ALL = "all"
    DOMAIN = "domain"  # what belongs to the reader's domain
    OWN = "own"  # the reader's own: themselves, keypairs and sessions they own, groups they belong to


# Who may read what (issue 13): the read side of PERMISSIONS. A role a row does not list
# reads none of it, and is answered as if none of it existed (404, or an empty list).
READS: dict[str, dict[Role, ReadScope]] = {
    EntityType.KEYPAIR_RESOURCE_POLICY: {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.ALL},
    EntityType.KEYPAIR: {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN, Role.USER: ReadScope.OWN},
    EntityType.USER: {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN, Role.USER: ReadScope.OWN},
    EntityType.DOMAIN: {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN},
    EntityType.GROUP: {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN, Role.USER: ReadScope.OWN},
    EntityType.SESSION: {
        Role.SUPERADMIN: ReadScope.ALL,
        Role.SERVICE: ReadScope.ALL,  # the platform schedules and reaps every session
        Role.ADMIN: ReadScope.DOMAIN,
        Role.USER: ReadScope.OWN,
    },
    # Workload the platform reported: the platform and a superadmin read all of it, an
    # admin their domain's (a vfolder's or an endpoint's through its group), a user the
    # kernels they ran.
    EntityType.KERNEL: {
        Role.SUPERADMIN: ReadScope.ALL,
        Role.SERVICE: ReadScope.ALL,
        Role.ADMIN: ReadScope.DOMAIN,
        Role.USER: ReadScope.OWN,
    },
    EntityType.VFOLDER: {Role.SUPERADMIN: ReadScope.ALL, Role.SERVICE: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN},
    EntityType.ENDPOINT: {Role.SUPERADMIN: ReadScope.ALL, Role.SERVICE: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN},
    EntityType.TOKEN: {Role.SUPERADMIN: ReadScope.ALL},
    "usage": {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN},
    "audit": {Role.SUPERADMIN: ReadScope.ALL, Role.ADMIN: ReadScope.DOMAIN},  # actions concerning the domain
    "verify": {Role.SUPERADMIN: ReadScope.ALL},
    # The Prometheus exposition: its labels name every domain that acted.
    "metrics": {Role.SUPERADMIN: ReadScope.ALL, Role.SERVICE: ReadScope.ALL},
}


def read_scope(resource: str, role: Role) -> ReadScope | None:
    """How much of `resource` `role` reads; None: nothing."""
    return READS.get(resource, {}).get(role)


def may_read(
    resource: str, role: Role, reader_domain: str | None, reader_id: str | None, domain: str | None, owners: set[str]
) -> bool:
    """Whether a reader sees one thing of `resource`, in `domain`, owned by (or with the
    members) `owners`."""
    scope = read_scope(resource, role)
    if scope is ReadScope.ALL:
        return True
    if scope is ReadScope.DOMAIN:
        return domain is not None and domain == reader_domain
    if scope is ReadScope.OWN:
        return reader_id is not None and reader_id in owners
    return False
