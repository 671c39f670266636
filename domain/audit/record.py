"""An action's outcome as an event in the store.

Each record is a one-event stream named by the action id, so refused and failed attempts
are recorded without touching the entity's own stream, and the records sit in the same
append-only, hash-chained store as everything they describe.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain.actions.base import ActionResultMeta, ActionTriggerMeta
from domain.catalog import EntityType
from domain.personal import declare, declared, personal, personal_texts, withheld


class AuditRecord(Aggregate):
    class Recorded(Aggregate.Created):
        """An action ended; `entry` holds the audit row's fields."""

        # Stored without the action context's stamp: `entry` holds the same action id,
        # actor and operation, and a record is written on every command's path.
        stamped = False

        entry: dict[str, Any]

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    @classmethod
    def record(cls, entry: dict[str, Any]) -> AuditRecord:
        """The record of one action. Built directly, as the library's `_create` builds it
        (tests/domain/test_audit_record.py holds them equal): one is made on every
        command's path, and `_create` filters keyword arguments by signature per call."""
        # The library's metaclass makes `Recorded` a dataclass with `entry`; mypy sees the base's fields.
        event = cls.Recorded(  # type: ignore[call-arg]
            originator_topic=get_topic(cls),
            originator_id=uuid.UUID(entry["action_id"]),
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Recorded.create_timestamp(),
            entry=entry,
        )
        record = cls.__new__(cls)
        record.__base_init__(event.originator_id, event.originator_version, event.timestamp)
        record.entry = entry
        record.pending_events.append(event)
        return record


def audit_entry(
    meta: ActionResultMeta,
    trigger: ActionTriggerMeta,
    spec: dict[str, Any],
    entity_ids: Sequence[str] = (),
    domains: Collection[str] = (),
) -> dict[str, Any]:
    """The audit row of REFERENCE.md plus the actor and the action's input (a refused
    attempt leaves no other trace of what was asked). A batch action lists every entity
    it touched in `entity_ids`; its `entity_id` is only a bounded label. `domains`: the
    domains the action concerns (whose admins read the record; `domain_name` is the
    actor's). Records written before it existed have none."""
    entry = {
        **meta.to_json(),
        "request_id": trigger.request_id,
        "triggered_by": None if trigger.user_id is None else str(trigger.user_id),
        "access_key": trigger.access_key,
        "role": trigger.role_name,
        "domain_name": trigger.domain_name,
        "spec": spec,
    }
    if entity_ids:
        entry["entity_ids"] = list(entity_ids)
    entry["domains"] = sorted(domains)
    if entry["status"] != "success":  # a success's description is the word itself, never a message
        entry["description"] = without_personal(entry["description"], entry)
    return entry


def without_personal(description: str, entry: Mapping[str, Any]) -> str:
    """`description` with each personal value of the record's input replaced: a refusal's
    message may name one ("user ID not found"), and the description is stored in clear,
    where an erasure of the value's subject would not reach it. The input keeps it sealed."""
    found = personal_texts(declared(AuditRecord.Recorded), {"entry": entry})
    return withheld(description, (text for texts in found.values() for text in texts))


# Personal values inside the action's input (issue 14, docs/ERASURE.md): the same values
# the entities' events declare, sealed with the same subjects. One event type holds every
# action's record, so each declaration's subject is None unless the record is of its
# entity type (and then its paths, absent from other actions' inputs, find nothing there).
def _spec(state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    entry = state.get("entry")
    spec = entry.get("spec") if isinstance(entry, Mapping) else None
    return spec if isinstance(spec, Mapping) else None


def _of(state: Mapping[str, Any], entity_type: EntityType) -> Mapping[str, Any] | None:
    entry = state.get("entry")
    return _spec(state) if isinstance(entry, Mapping) and entry.get("entity_type") == entity_type else None


def user_action_subject(state: Mapping[str, Any]) -> str | None:
    """A user action's user: `spec.user_id`, or `spec.creator.user_id` for a create."""
    spec = _of(state, EntityType.USER)
    if spec is None:
        return None
    creator = spec.get("creator")
    user_id = spec.get("user_id") or (creator.get("user_id") if isinstance(creator, Mapping) else None)
    return None if user_id is None else f"user:{user_id}"


def group_action_subject(state: Mapping[str, Any]) -> str | None:
    """A group action's group: `spec.group_id` (a create names it too)."""
    spec = _of(state, EntityType.GROUP)
    group_id = None if spec is None else spec.get("group_id")
    return None if group_id is None else f"group:{group_id}"


def kernel_action_subject(state: Mapping[str, Any]) -> str | None:
    """A kernel fact's group (`spec.group_id`: only a start names it, and only a start
    holds personal values)."""
    spec = _of(state, EntityType.KERNEL)
    group_id = None if spec is None else spec.get("group_id")
    return None if group_id is None else f"group:{group_id}"


def fact_subject(fact: Mapping[str, Any]) -> str | None:
    """A batch fact's group: only a kernel start names its group, and only a start holds
    personal values. Each fact is sealed with its own group's key, so purging one group
    of a batch erases that group's facts only."""
    group_id = fact.get("group_id") if "user_id" in fact else None
    return None if group_id is None else f"group:{group_id}"


# The field names are those of User, Group and Kernel (domain.*.aggregate *_PERSONAL;
# tests/domain/test_personal_declarations.py checks they agree).
_USER = ("email", "full_name")
_GROUP = ("description", "integration_id", "dotfiles", "container_registry")  # dotfiles: its size and digest
_KERNEL = ("user_id", "access_key", "session_name")
declare(
    AuditRecord.Recorded,
    personal(
        *(f"entry.spec.{part}.{f}" for part in ("creator", "modifier") for f in _USER), subject=user_action_subject
    ),
    personal(
        *(f"entry.spec.{part}.{f}" for part in ("input", "modifier") for f in _GROUP),
        "entry.spec.user_uuids[*]",
        subject=group_action_subject,
    ),
    personal(*(f"entry.spec.{f}" for f in _KERNEL), subject=kernel_action_subject),
    personal(*_KERNEL, subject=fact_subject, each="entry.spec.actions[*]"),
)
