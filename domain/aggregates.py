"""Every aggregate class that keeps an entity's stream, by its entity type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic

from domain.domains import Domain
from domain.entity import Entity
from domain.erasure import SubjectErasure as SubjectErasure  # its erasing events are registered on import
from domain.group import Group
from domain.group.aggregate import GROUP_FIELDS_PERSONAL, group_subject
from domain.keypair import KeyPair
from domain.keypair_resource_policy import KeyPairResourcePolicy
from domain.personal import declare, personal
from domain.session import Session
from domain.user import User
from domain.user.aggregate import USER_FIELDS_PERSONAL, user_subject
from domain.workload import Endpoint, Kernel, VFolder
from domain.workload.aggregate import KERNEL_FIELDS_PERSONAL, kernel_subject

ENTITIES: tuple[type[Entity], ...] = (
    KeyPairResourcePolicy,
    KeyPair,
    Group,
    Kernel,
    VFolder,
    Endpoint,
    Domain,
    User,
    Session,
)
ENTITY_KINDS: dict[str, type[Entity]] = {entity.ENTITY_TYPE: entity for entity in ENTITIES}


# Snapshots (issue 14, docs/ERASURE.md): a snapshot holds an aggregate's current `fields`,
# so it holds the same personal values as the events it folds, sealed with the same
# subjects. Every aggregate shares the library's one Snapshot class: each declaration's
# subject is None unless the snapshot is of its aggregate (`topic`). A group's members are
# the items of `state.members` (a list: Group class version 2).
_USER_TOPIC, _GROUP_TOPIC, _KERNEL_TOPIC = get_topic(User), get_topic(Group), get_topic(Kernel)


def _snapshot_of(state: Mapping[str, Any], topic: str) -> Mapping[str, Any] | None:
    inner = state.get("state")
    return inner if state.get("topic") == topic and isinstance(inner, Mapping) else None


def user_snapshot_subject(state: Mapping[str, Any]) -> str | None:
    inner = _snapshot_of(state, _USER_TOPIC)
    return None if inner is None else user_subject(inner)


def group_snapshot_subject(state: Mapping[str, Any]) -> str | None:
    inner = _snapshot_of(state, _GROUP_TOPIC)
    return None if inner is None else group_subject(inner)


def kernel_snapshot_subject(state: Mapping[str, Any]) -> str | None:
    inner = _snapshot_of(state, _KERNEL_TOPIC)
    return None if inner is None else kernel_subject(inner)


declare(
    Snapshot,
    personal(*(f"state.fields.{f}" for f in USER_FIELDS_PERSONAL), subject=user_snapshot_subject),
    personal(*(f"state.fields.{f}" for f in GROUP_FIELDS_PERSONAL), "state.members[*]", subject=group_snapshot_subject),
    personal(*(f"state.fields.{f}" for f in KERNEL_FIELDS_PERSONAL), subject=kernel_snapshot_subject),
)
