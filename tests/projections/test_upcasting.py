"""Event schema evolution end to end: events stored by old code, read by today's code
through an upcaster, and a rebuilt projection version that uses what the upcaster added."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent

from adapters.bootstrap import Ledger
from domain.errors import ReadModelVersionMismatch
from projections.projection import Projection
from projections.runner import ProjectionRunner
from projections.tracking import tables_of
from tests.projections.devices import Device, DevicesV1, DevicesV2

TOPIC = "tests.projections.devices:Device.Registered"
# What version 1 of the code wrote for a registration: the transcoder's JSON of the event's
# state, with no `location` and no `class_version` (version 1 is the default).
OLD_STATE = (
    '{"timestamp":{"_type_":"datetime_iso","_data_":"2023-05-01T09:00:00+00:00"},'
    '"originator_topic":"tests.projections.devices:Device","name":"%s"}'
)
OLD_NAMES = ["lab-1", "lab-2", "edge-site-7"]


def device_id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"device:{name}")


def store_as_old_code(ledger: Ledger) -> None:
    events = [
        StoredEvent(originator_id=device_id(n), originator_version=1, topic=TOPIC, state=(OLD_STATE % n).encode())
        for n in OLD_NAMES
    ]
    ledger.app.recorder.insert_events(events)


def runner(ledger: Ledger, projection: Projection) -> ProjectionRunner:
    return ProjectionRunner(ledger.read_models, ledger.app.recorder, ledger.app.mapper, [projection])


def test_old_events_upcast_and_a_rebuilt_projection_uses_the_new_field(ledger: Ledger) -> None:
    store_as_old_code(ledger)
    old = DevicesV1(sa.MetaData())
    old_runner = runner(ledger, old)
    old_runner.setup()
    old_runner.catch_up()

    # Today's code reads the old events through the upcaster, and writes version 2 events.
    lab1 = ledger.app.repository.get(device_id("lab-1"))
    assert (lab1.name, lab1.location) == ("lab-1", "lab")
    ledger.app.save(Device.register("rack-9", location="dc-2"))
    (stored,) = ledger.app.recorder.select_events(device_id("rack-9"))
    assert b'"class_version":2' in stored.state and b'"location":"dc-2"' in stored.state

    # Today's read model version is built from position 0, then replaces version 1.
    new = DevicesV2(sa.MetaData())
    new_runner = runner(ledger, new)
    new_runner.setup()
    assert new_runner.pending() == [new]
    new_runner.catch_up()
    with ledger.read_models.connect() as conn:
        rows = {r.name: r.location for r in conn.execute(sa.select(new.rows))}
        assert tables_of(conn, old.versioned_name) == []
    assert rows == {"lab-1": "lab", "lab-2": "lab", "edge-site-7": "edge-site", "rack-9": "dc-2"}
    with pytest.raises(ReadModelVersionMismatch):
        old_runner.catch_up()
