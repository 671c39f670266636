"""Snapshots against their events: the check `ledger verify` adds to the chain's.

Snapshots are a cache of the events and are not chained: altered in the database, one
would change what `show --version` reads and what the next command decides on, and a
chained event could carry the forgery on. Each stored snapshot is compared with the
state its stream's events give at the same version (replayed without snapshots, as the
ledger's own `_take_snapshots` takes one), so an altered snapshot is named. Each snapshotted
stream is replayed once, up to its last snapshot: an auditor's walk, not a read path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import MapperDeserialisationError

from adapters.store.quoting import quote_identifier
from domain.sharedmap import plain_state
from projections.database import one_line


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
    """(how many snapshots were compared, those that differ from their events). Each
    snapshotted stream is replayed once, compared at each of its snapshots on the way."""
    if app.snapshots is None:
        return 0, []
    recorder = app.snapshots.recorder
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(_select_all(recorder))
        rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in curs.fetchall()]  # dict rows on PG
    versions: dict[uuid.UUID, list[int]] = {}
    for stream, version in rows:
        versions.setdefault(uuid.UUID(str(stream)), []).append(int(version))
    bad: list[BadSnapshot] = []
    for stream in sorted(versions, key=str):
        bad += _check_stream(app, stream, sorted(versions[stream]))
    return len(rows), bad


def _check_stream(app: Any, stream: uuid.UUID, versions: list[int]) -> list[BadSnapshot]:
    try:
        snapshots = {s.originator_version: s for s in app.snapshots.get(stream, lte=versions[-1])}
    except MapperDeserialisationError as exc:
        why = f"it cannot be read back: {one_line(exc)}"
        return [BadSnapshot(str(stream), v, why) for v in versions]
    bad, pending, aggregate = [], list(versions), None
    try:
        for event in app.events.get(stream, lte=versions[-1]):
            aggregate = event.mutate(aggregate)
            while pending and pending[0] == aggregate.version:
                reason = _differs(aggregate, snapshots.get(pending.pop(0)))
                if reason is not None:
                    bad.append(BadSnapshot(str(stream), aggregate.version, reason))
    except MapperDeserialisationError:
        pass  # an event that cannot be read: the chain's walk names it; the rest are unchecked
    bad += [BadSnapshot(str(stream), v, "its stream has no event at that version") for v in pending]
    return bad


def _differs(aggregate: Any, snapshot: Any) -> str | None:
    """Why `snapshot` is not `aggregate`'s state (None: it is)."""
    if snapshot is None:
        return "it cannot be read back"
    expected = type(aggregate).Snapshot.take(aggregate).state
    plain_state(expected)  # as the ledger stores a snapshot
    actual = snapshot.state
    differ = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
    return f"it differs from its events in {', '.join(differ)}" if differ else None


def _select_all(recorder: Any) -> Any:
    """Every stored snapshot's stream and version, in the recorder's dialect."""
    schema = getattr(recorder.datastore, "schema", None)
    if schema is None:  # SQLite
        return f"SELECT originator_id, originator_version FROM {quote_identifier(recorder.events_table_name)}"
    from psycopg.sql import SQL, Identifier  # only PostgreSQL ledgers load psycopg

    return SQL("SELECT originator_id, originator_version FROM {}").format(
        Identifier(schema, recorder.events_table_name)
    )
