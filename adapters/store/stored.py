"""A stream's events as they are stored: their state decoded but not opened, envelopes
still sealed (issue 14). What an erasure reads to find personal values stored in clear
by a release that did not seal them yet: those outlive the erasure of their subject's key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from eventsourcing.persistence import AggregateRecorder, Mapper, PersistenceError

from adapters.store.sealing import clear_values
from domain.errors import StoreUnavailable
from domain.personal import declared


def stored_states(
    recorder: AggregateRecorder, mapper: Mapper[uuid.UUID], aggregate_id: uuid.UUID
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(topic, state) of every event of the stream, oldest first. The library's own
    decoding (upcasts included) without the ledger mapper's opening of sealed values."""
    try:
        stored = recorder.select_events(aggregate_id)
    except PersistenceError as exc:
        raise StoreUnavailable(f"event store read failed: {exc}") from exc
    for event in stored:
        yield event.topic, vars(Mapper.to_domain_event(mapper, event))


def clear_history(
    recorder: AggregateRecorder, mapper: Mapper[uuid.UUID], aggregate_id: uuid.UUID, key: str
) -> tuple[int, int]:
    """(events, values): how many events of the stream hold how many declared personal
    values in clear. An event stored before it named its entity (`key`) is read as naming
    `key`: its values are this entity's all the same."""
    events = values = 0
    for topic, state in stored_states(recorder, mapper, aggregate_id):
        personals = declared(topic)
        if not personals:
            continue
        if state.get("key") is None:
            state = {**state, "key": key}
        found = clear_values(state, personals)
        if found:
            events += 1
            values += found
    return events, values
