"""AuditRecord.record builds what the library's own constructor would."""

from __future__ import annotations

import uuid
from dataclasses import fields
from typing import Any

from domain.audit.record import AuditRecord


def test_a_record_is_what_the_library_would_build() -> None:
    action_id = uuid.uuid4()
    entry: dict[str, Any] = {"action_id": str(action_id), "status": "success", "spec": {"name": "p"}}
    fast = AuditRecord.record(entry)
    slow = AuditRecord._create(AuditRecord.Recorded, id=action_id, entry=entry)
    assert type(fast) is type(slow) is AuditRecord
    assert vars(fast).keys() == vars(slow).keys()
    assert (fast.id, fast.version, fast.entry) == (slow.id, slow.version, slow.entry)
    timestamp = fast.created_on
    assert fast.modified_on == timestamp
    (event,) = fast.collect_events()
    (expected,) = slow.collect_events()
    assert type(event) is type(expected)
    assert [f.name for f in fields(event)] == [f.name for f in fields(expected)]
    for name in (f.name for f in fields(event)):
        if name != "timestamp":
            assert getattr(event, name) == getattr(expected, name), name
    assert event.timestamp == timestamp and event.timestamp.tzinfo is not None
    # Replayed from its event, it is the record again.
    replayed = event.mutate(None)
    assert isinstance(replayed, AuditRecord) and replayed.entry == entry and replayed.version == 1
