"""Events as they are stored: their state decoded but not opened, envelopes still sealed
(issue 14). What an erasure reads to find personal values stored in clear by a release
that did not seal them yet: those outlive the erasure of their subject's key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Final

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import AggregateRecorder, ApplicationRecorder, Mapper, PersistenceError
from eventsourcing.utils import get_topic

from adapters.store.sealing import clear_values
from domain.errors import StoreUnavailable
from domain.personal import declarations, declared

_PAGE: Final = 1000
_SNAPSHOT: Final = get_topic(Snapshot)


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


def sealed_at(recorder: ApplicationRecorder, mapper: Mapper[uuid.UUID], position: int, subject: str) -> bool:
    """Whether the stored event at `position` holds `subject`'s personal values sealed,
    none in clear: an older release stored them in clear, under no key, and destroying
    no key erased them."""
    try:
        found = recorder.select_notifications(start=position, limit=1, stop=position)
    except PersistenceError as exc:
        raise StoreUnavailable(f"event store read failed: {exc}") from exc
    if not found:
        return True
    return clear_values(vars(Mapper.to_domain_event(mapper, found[0])), declared(found[0].topic), subject) == 0


def clear_history(
    recorder: ApplicationRecorder,
    snapshots: AggregateRecorder | None,
    mapper: Mapper[uuid.UUID],
    aggregate_id: uuid.UUID,
    key: str,
    subject: str,
) -> tuple[int, int]:
    """(events, values): how many stored events and snapshots hold how many personal
    values of `subject` in clear: the entity's own stream and snapshots (an event stored
    before it named its entity, `key`, is read as naming `key`: its values are this
    entity's all the same), and every other stream's, found by their declared subject
    (audit records' action inputs, a group's kernels)."""
    own = list(stored_states(recorder, mapper, aggregate_id))
    if snapshots is not None:
        own += stored_states(snapshots, mapper, aggregate_id)
    counts = [
        clear_values(state if state.get("key") is not None else {**state, "key": key}, declared(topic))
        for topic, state in own
    ]
    others = _others(recorder, mapper, aggregate_id, subject)
    counts += [clear_values(state, personals, subject) for state, personals in others]
    found = [count for count in counts if count]
    return len(found), sum(found)


def _others(
    recorder: ApplicationRecorder, mapper: Mapper[uuid.UUID], own: uuid.UUID, subject: str
) -> Iterator[tuple[Mapping[str, Any], tuple[Any, ...]]]:
    """The decoded states of other streams' events of a declared type that may name
    `subject`: a state whose bytes hold neither spelling of the subject's id cannot
    (subjects are read from ids stored in clear), so it is not decoded. A whole-ledger
    scan, paged: erasures are rare, and clear values can be anywhere an older release
    wrote them."""
    topics = [topic for topic in declarations() if topic != _SNAPSHOT]  # snapshots: not in the events table
    entity_id = subject.partition(":")[2]
    try:
        spellings = [entity_id.encode(), uuid.UUID(entity_id).hex.encode()]
    except ValueError:
        spellings = [entity_id.encode()]
    screen = mapper.compressor is None and mapper.cipher is None  # bytes readable as they are
    start = 1
    while True:
        try:
            page = recorder.select_notifications(start, _PAGE, topics=topics)
        except PersistenceError as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc
        for notification in page:
            if notification.originator_id == own:
                continue
            if screen and not any(spelling in notification.state for spelling in spellings):
                continue
            yield vars(Mapper.to_domain_event(mapper, notification)), declared(notification.topic)
        if len(page) < _PAGE:
            return
        start = page[-1].id + 1
