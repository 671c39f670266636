"""The effective keypair resource policy of a keypair (seed 001's precedence, issue 12).

In order, the first level that names a live policy wins: the policy assigned to the
keypair, its owner's default (`User.default_keypair_resource_policy`), its domain's
default, the system policy `default`. A whole policy is resolved, never field by field
(Slurm's association inheritance, not a merge).

A level that names a policy which is deleted (or never existed) is skipped, and the
skip is part of the answer (`skipped`): a decision taken under a lower level says why.
Deleting a policy some keypair, user or domain names is refused (`PolicyInUse`) once
every reference is recorded on the policy's stream, so a skip is the exception (a
reference written before that check existed, or a migrated ledger), never the rule.

`version` is the policy aggregate's version when it was read (the number of events on
its stream), so an admission records exactly which state of the policy it used. A
policy's `fallback_policy` (README: its slot limits apply where the policy lists none)
is loaded with it when live; `slot_limit` applies it.

A deleted keypair's admitted sessions run on under its last effective policy: its
delete records that policy's reference (`KeyPair.deleted_under`), and
`resolve_for_deleted` resolves that policy by name, live (its edits apply) or, once it
is deleted in turn, as it last stood (`deleted`). The precedence is not walked again:
nothing live names the policy any more, so deleting it, its user or the user's default
is allowed, and none of them may move the sessions to another policy.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.catalog import EntityType
from domain.domains.aggregate import Domain
from domain.entity import Entity, entity_not_found
from domain.keypair.aggregate import KeyPair
from domain.keypair_resource_policy.aggregate import SYSTEM_POLICY, KeyPairResourcePolicy
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from domain.ports import UnitOfWork, load_live
from domain.slots import INFINITY
from domain.user.aggregate import User
from domain.values import DefaultForUnspecified


class PolicySource(enum.StrEnum):
    """Which level named the effective policy (stored in admission events)."""

    KEYPAIR = "keypair"
    USER = "user"
    DOMAIN = "domain"
    SYSTEM = "system"


@dataclass(frozen=True)
class SkippedLevel:
    """A level that named a policy which is not live (`reason`: `deleted` or `unknown`)."""

    source: PolicySource
    name: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source.value, "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class EffectivePolicy:
    policy: KeyPairResourcePolicyData
    source: PolicySource
    version: int
    skipped: tuple[SkippedLevel, ...] = ()
    fallback: KeyPairResourcePolicyData | None = None
    fallback_version: int | None = None
    # The policy is deleted: `policy` holds its fields as they last stood (only a deleted
    # keypair's sessions run under one, `resolve_for_deleted`).
    deleted: bool = False

    @property
    def name(self) -> str:
        return self.policy.name

    def __getattr__(self, attribute: str) -> Any:
        """The policy's own fields read through (`.max_session_lifetime`): the contract's
        "policy data with `.source`". Only called for names the wrapper lacks."""
        if attribute.startswith("_") or "policy" not in self.__dict__:  # copying, pickling
            raise AttributeError(attribute)
        return getattr(self.policy, attribute)

    def slot_limit(self, slot: str) -> Decimal:
        """The policy's limit for one slot: its own value, else its fallback's, else 0
        under LIMITED and unlimited under UNLIMITED (REFERENCE: slot arithmetic)."""
        own = self.policy.total_resource_slots.get(slot)
        if own is not None:
            return own
        if self.fallback is not None:
            inherited = self.fallback.total_resource_slots.get(slot)
            if inherited is not None:
                return inherited
        return Decimal(0) if self.policy.default_for_unspecified is DefaultForUnspecified.LIMITED else INFINITY

    def label(self) -> str:
        """The policy as a refusal names it: a refusal's message (and the audit record that
        keeps it) is all the ledger keeps of it, and the policy may change after."""
        return f"policy {self.name!r} ({self.source.value}, version {self.version})"

    def ref_json(self) -> dict[str, Any]:
        """What a decision records of the policy it applied."""
        ref: dict[str, Any] = {"name": self.name, "source": self.source.value, "version": self.version}
        if self.fallback is not None:
            ref["fallback"] = {"name": self.fallback.name, "version": self.fallback_version}
        if self.skipped:
            ref["skipped"] = [level.to_json() for level in self.skipped]
        if self.deleted:
            ref["deleted"] = True
        return ref

    def to_json(self) -> dict[str, Any]:
        return {**self.policy.to_json(), **self.ref_json()}


def _data(policy: KeyPairResourcePolicy) -> KeyPairResourcePolicyData:
    assert policy.created_at is not None
    return KeyPairResourcePolicyData.from_fields(policy.name, policy.created_at, policy.fields)


def _live_policy(work: UnitOfWork, name: str) -> tuple[KeyPairResourcePolicy | None, str]:
    found = work.get(KeyPairResourcePolicy.id_for(name), Entity)
    if not isinstance(found, KeyPairResourcePolicy):
        return None, "unknown"
    if found.is_deleted:
        return None, "deleted"
    return found, ""


def live_entity(work: UnitOfWork, cls: type[Entity], aggregate_id: uuid.UUID) -> Any:
    """The live entity of `cls` on that stream, or None (absent, deleted, another kind)."""
    found = work.get(aggregate_id, Entity)
    return found if isinstance(found, cls) and not found.is_deleted else None


# The keypair fields the precedence reads: what a deleted incarnation of an access key
# keeps for its sessions still running once the key is created again (`ScopeUsage.Retired`).
PRECEDENCE_FIELDS = ("resource_policy", "user_id", "domain_name")
# Beside them there: the reference of the policy the keypair's delete recorded.
DELETED_UNDER = "deleted_under"


def _levels(work: UnitOfWork, fields: Mapping[str, Any]) -> Iterator[tuple[PolicySource, str | None]]:
    """Each level's named policy, in precedence order (None: the level names none or
    does not exist). Lazy: the owner is read only when the keypair names no live policy."""
    yield PolicySource.KEYPAIR, fields.get("resource_policy")
    user_id = fields.get("user_id")
    user = live_entity(work, User, User.id_for(str(user_id))) if user_id else None
    yield PolicySource.USER, user.default_policy if user is not None else None
    domain_name = fields.get("domain_name")
    domain = live_entity(work, Domain, Domain.id_for(domain_name)) if domain_name else None
    yield PolicySource.DOMAIN, domain.default_policy if domain is not None else None
    yield PolicySource.SYSTEM, SYSTEM_POLICY


def resolve_effective_policy(work: UnitOfWork, access_key: str) -> EffectivePolicy:
    """The effective policy of the live keypair `access_key` (its not-found error if none).

    Reads through `work`, so a command that decides on the result and saves in the same
    unit of work decides on one consistent state of every stream it read."""
    keypair = load_live(work, KeyPair, access_key)
    return resolve_for_keypair(work, keypair)


def resolve_for_keypair(work: UnitOfWork, keypair: KeyPair) -> EffectivePolicy:
    return resolve_for_fields(work, keypair.fields)


def _effective(
    work: UnitOfWork, policy: KeyPairResourcePolicy, source: PolicySource, skipped: tuple[SkippedLevel, ...]
) -> EffectivePolicy:
    fallback, fallback_version = None, None
    if policy.fallback is not None:
        linked, _ = _live_policy(work, policy.fallback)
        if linked is not None:
            fallback, fallback_version = _data(linked), linked.version
    return EffectivePolicy(
        _data(policy), source, policy.version, skipped, fallback, fallback_version, deleted=policy.is_deleted
    )


def resolve_for_fields(work: UnitOfWork, fields: Mapping[str, Any]) -> EffectivePolicy:
    """The effective policy of a keypair holding `fields` (`PRECEDENCE_FIELDS` are read):
    a live keypair's, or a deleted incarnation's whose delete recorded none (before it
    did, `resolve_for_deleted`)."""
    skipped: list[SkippedLevel] = []
    for source, name in _levels(work, fields):
        if name is None:
            continue
        policy, why = _live_policy(work, name)
        if policy is None:
            skipped.append(SkippedLevel(source, name, why))
            continue
        return _effective(work, policy, source, tuple(skipped))
    raise entity_not_found(EntityType.KEYPAIR_RESOURCE_POLICY, SYSTEM_POLICY)


def deleted_keypair_state(keypair: KeyPair) -> dict[str, Any]:
    """What a deleted keypair's sessions run on under: its `PRECEDENCE_FIELDS` and the
    policy reference its delete recorded (none in deletes recorded before it was)."""
    state = {name: keypair.fields.get(name) for name in PRECEDENCE_FIELDS}
    if keypair.deleted_under is not None:
        state[DELETED_UNDER] = dict(keypair.deleted_under)
    return state


def resolve_for_deleted(work: UnitOfWork, state: Mapping[str, Any]) -> EffectivePolicy:
    """The policy a deleted keypair's sessions run on under (`deleted_keypair_state`):
    the one its delete recorded, by name, with the level that named it then: live, as
    it stands now (an edit applies at the next decision, as for a live keypair's; a
    policy created again under the name is the one it names); deleted, as it last stood.
    A delete that recorded none (an older ledger's) walks the precedence over the
    keypair's last fields, as it was then."""
    under = state.get(DELETED_UNDER)
    if under is not None:
        found = work.get(KeyPairResourcePolicy.id_for(under["name"]), Entity)
        if isinstance(found, KeyPairResourcePolicy) and found.created_at is not None:
            skipped = tuple(
                SkippedLevel(PolicySource(level["source"]), level["name"], level["reason"])
                for level in under.get("skipped", ())
            )
            return _effective(work, found, PolicySource(under["source"]), skipped)
    return resolve_for_fields(work, state)
