"""The domain service: load, let the aggregate decide, save.

Policies a domain names (its default, its allowed list) must be live keypair resource
policies when they are set; `require_policy` and `relink_default_policy` are shared with
the user service.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.actions import Role, current_context, takes_action
from domain.catalog import EntityType
from domain.domains.actions import (
    CreateDomainAction,
    CreateDomainActionResult,
    DeleteDomainAction,
    DeleteDomainActionResult,
    ModifyDomainAction,
    ModifyDomainActionResult,
)
from domain.domains.aggregate import Domain
from domain.domains.types import DomainData
from domain.errors import ObjectNotFound
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy
from domain.ports import AggregateStore, UnitOfWork, load_live
from domain.shown import shown

DOMAIN = EntityType.DOMAIN
DEFAULT_POLICY = "default_keypair_resource_policy"
ALLOWED_POLICIES = "allowed_keypair_resource_policies"


def domain_data(domain: Domain) -> DomainData:
    assert domain.created_at is not None and domain.changed_at is not None
    return DomainData.from_fields(domain.name, domain.created_at, domain.changed_at, domain.fields)


def require_policy(work: UnitOfWork, name: str, field: str) -> KeyPairResourcePolicy:
    """The live policy `name`, or a not-found error naming the field that named it."""
    try:
        return load_live(work, KeyPairResourcePolicy, name)
    except ObjectNotFound:
        raise ObjectNotFound(
            f"keypair resource policy {shown(name)} not found",
            entity_type=EntityType.KEYPAIR_RESOURCE_POLICY,
            entity_id=name,
            field=field,
        ) from None


def require_domain(work: UnitOfWork, name: str, field: str) -> Domain:
    """The live domain `name`, or a not-found error naming the field that named it (a
    typo never creates a domain)."""
    try:
        return load_live(work, Domain, name)
    except ObjectNotFound:
        raise ObjectNotFound(
            f"domain {shown(name)} not found", entity_type=DOMAIN, entity_id=name, field=field
        ) from None


def check_admin_may_assign(domain: Domain, policy: str | None, field: str) -> None:
    """An admin (the acting role) assigns only policies the domain allows; a superadmin,
    the platform or a direct service call (no context) may assign any live policy."""
    context = current_context()
    if policy is not None and context is not None and context.role == Role.ADMIN.value:
        domain.require_allows_policy(policy, field)


def require_policies(work: UnitOfWork, names: Iterable[str], field: str) -> None:
    for name in names:
        require_policy(work, name, field)


def relink_default_policy(work: UnitOfWork, referrer: str, old: str | None, new: str | None) -> None:
    """Moves `referrer`'s default-policy reference from `old` to `new` (`domain:NAME` or
    `user:UUID`) on the policies' streams, saved in the same append as the referrer, so
    deleting a policy that is someone's default is "in use" and cannot race."""
    if new is not None and new != old:
        require_policy(work, new, DEFAULT_POLICY).become_default_of(referrer)
    if old is not None and old != new:
        previous = work.get(KeyPairResourcePolicy.id_for(old), KeyPairResourcePolicy)
        if previous is not None:
            previous.stop_being_default_of(referrer)


class DomainService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    @takes_action
    async def create_domain(self, action: CreateDomainAction) -> CreateDomainActionResult:
        name, fields = action.creator.name, action.creator.fields_json()

        def create() -> Domain:
            work = UnitOfWork(self._store)
            domain = work.create(Domain, name, fields)  # refuses a live name
            relink_default_policy(work, f"domain:{name}", None, fields[DEFAULT_POLICY])
            require_policies(work, fields[ALLOWED_POLICIES] or [], ALLOWED_POLICIES)
            work.commit()
            return domain

        return CreateDomainActionResult(domain_data(self._store.run(create, DOMAIN, "create")))

    @takes_action
    async def modify_domain(self, action: ModifyDomainAction) -> ModifyDomainActionResult:
        name, modifier = action.domain_name, action.modifier

        def modify() -> tuple[Domain, bool]:
            work = UnitOfWork(self._store)
            domain = load_live(work, Domain, name)
            old_default = domain.default_policy
            # The patch merges into the map just loaded: a conflict retries on the newer one.
            changes = domain.modify(modifier.wanted_fields(domain.fields))
            if not changes:
                return domain, False
            relink_default_policy(work, f"domain:{name}", old_default, domain.default_policy)
            if ALLOWED_POLICIES in changes:
                # Only names new to the list are checked: a listed policy deleted since
                # stays listed harmlessly (it cannot be assigned while it does not exist).
                change = changes[ALLOWED_POLICIES]
                added = set(change["new"] or []) - set(change["old"] or [])
                require_policies(work, sorted(added), ALLOWED_POLICIES)
            work.commit()
            return domain, True

        domain, changed = self._store.run(modify, DOMAIN, "modify")
        return ModifyDomainActionResult(domain_data(domain), changed=changed)

    @takes_action
    async def delete_domain(self, action: DeleteDomainAction) -> DeleteDomainActionResult:
        def delete() -> DomainData:
            work = UnitOfWork(self._store)
            domain = load_live(work, Domain, action.domain_name)
            before = domain_data(domain)
            domain.delete()  # refuses a domain with live users or groups
            relink_default_policy(work, f"domain:{domain.name}", domain.default_policy, None)
            work.commit()
            return before

        return DeleteDomainActionResult(self._store.run(delete, DOMAIN, "delete"))
