"""An action's outcome as an event in the store.

Each record is a one-event stream named by the action id, so refused and failed attempts
are recorded without touching the entity's own stream, and the records sit in the same
append-only, hash-chained store as everything they describe.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.domain import Aggregate

from domain.actions.base import ActionResultMeta, ActionTriggerMeta


class AuditRecord(Aggregate):
    class Recorded(Aggregate.Created):
        """An action ended; `entry` holds the audit row's fields."""

        entry: dict[str, Any]

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    @classmethod
    def record(cls, entry: dict[str, Any]) -> AuditRecord:
        return cls._create(cls.Recorded, id=uuid.UUID(entry["action_id"]), entry=entry)


def audit_entry(
    meta: ActionResultMeta, trigger: ActionTriggerMeta, spec: dict[str, Any], entity_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The audit row of REFERENCE.md plus the actor and the action's input (a refused
    attempt leaves no other trace of what was asked). A batch action lists every entity
    it touched in `entity_ids`; its `entity_id` is only a bounded label."""
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
    return entry
