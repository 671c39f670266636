"""Snapshots against their events: the check `ledger verify` adds to the chain's.

Snapshots are a cache of the events and are not chained: altered in the database, one
would change what `show --version` reads and what the next command decides on, and a
chained event could carry the forgery on. Each stored snapshot is compared with the
state its stream's events give at the same version (replayed without snapshots, as the
ledger's own `_take_snapshots` takes one), so an altered snapshot is named. The cost is a
replay of every snapshotted stream up to its snapshots: an auditor's walk, not a read path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import MapperDeserialisationError

from domain.sharedmap import plain_state


@dataclass(frozen=True)
class BadSnapshot:
    stream: str
    version: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "version": self.version, "reason": self.reason}


def verify_store(app: Any, expect: tuple[int, str] | None = None) -> dict[str, Any]:
    """What `ledger verify` and `/v1/verify` answer: the chain's walk (`verify`) and the
    snapshots' comparison, `ok` only when both hold."""
    from adapters.store.chain import verify

    report = verify(app.recorder, expect)
    checked, bad = check_snapshots(app)
    return report.to_json() | {
        "snapshots": {"checked": checked, "bad": [s.to_json() for s in bad]},
        "ok": report.ok and not bad,
    }


def check_snapshots(app: Any) -> tuple[int, list[BadSnapshot]]:
    """(how many snapshots were compared, those that differ from their events)."""
    if app.snapshots is None:
        return 0, []
    recorder = app.snapshots.recorder
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT originator_id, originator_version FROM {_table(recorder)}")
        rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in curs.fetchall()]  # dict rows on PG
    stored = sorted((str(row[0]), int(row[1])) for row in rows)
    bad = []
    for stream, version in stored:
        found = _compare(app, uuid.UUID(stream), version)
        if found is not None:
            bad.append(BadSnapshot(str(uuid.UUID(stream)), version, found))
    return len(stored), bad


def _table(recorder: Any) -> str:
    schema = getattr(recorder.datastore, "schema", None)
    name = recorder.events_table_name
    return f'"{schema}"."{name}"' if schema else f'"{name}"'


def _compare(app: Any, stream: uuid.UUID, version: int) -> str | None:
    """Why the snapshot of `stream` at `version` is not what its events give (None: it is)."""
    try:
        snapshots = list(app.snapshots.get(stream, gt=version - 1, lte=version))
        aggregate = None
        for event in app.events.get(stream, lte=version):
            aggregate = event.mutate(aggregate)
    except MapperDeserialisationError as exc:
        return f"it cannot be read back: {' '.join(str(exc).split())[:200]}"
    if len(snapshots) != 1 or aggregate is None or aggregate.version != version:
        return "its stream has no event at that version"
    expected = type(aggregate).Snapshot.take(aggregate).state
    plain_state(expected)
    actual = snapshots[0].state
    differ = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
    return f"it differs from its events in {', '.join(differ)}" if differ else None
