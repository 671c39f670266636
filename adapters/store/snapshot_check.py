"""Snapshots: tagged when written, trusted on read only with their tag, and checked
against their events by `ledger verify`.

Snapshots are a cache of the events and are not chained: altered in the database, one
would change what `show --version` reads and what the next command decides on, and a
chained event could carry the forgery on. So each is stored with a tag, an HMAC-SHA256 of
its stream, version, topic and bytes under a key only the ledger holds (the subject key
`SNAPSHOT_SUBJECT`, wrapped by the master key like every other: a rotation keeps it). A
read that finds a snapshot without a matching tag (altered outside the ledger, or written
before snapshots were tagged) replays the stream's events instead.

`ledger verify` compares each stored snapshot with the state its stream's events give at
the same version (replayed without snapshots, as the ledger's own `_take_snapshots`
takes one), and names one whose tag does not match. Each snapshotted stream is replayed
once, up to its last snapshot: an auditor's walk, not a read path.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace
from typing import Any, Final

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import MapperDeserialisationError, PersistenceError, StoredEvent
from eventsourcing.utils import get_topic

from adapters.store.chain import stored_stream
from adapters.store.keys import SNAPSHOT_SUBJECT
from adapters.store.quoting import quote_identifier
from domain.errors import StoreUnavailable
from domain.sharedmap import plain_state
from projections.database import one_line

SNAPSHOT_TOPIC: Final = get_topic(Snapshot)  # every aggregate shares the library's one Snapshot class
# A tag is stored as a last member of the snapshot's JSON object, so the row stays JSON
# that any reader decodes: `{...,"_tag":"<64 hex>"}`.
_TAG_HEAD: Final = b',"_tag":"'
_TAG_SIZE: Final = len(_TAG_HEAD) + 64 + len(b'"}')


class UntrustedSnapshot(MapperDeserialisationError):
    """A stored snapshot a read must not use: `tampered` when its tag does not match what
    it holds, else it has no tag (written before snapshots were tagged, or stripped)."""

    def __init__(self, stored: StoredEvent, tampered: bool) -> None:
        why = "its tag does not match what it holds" if tampered else "it has no tag"
        super().__init__(f"snapshot of stream {stored.originator_id} at version {stored.originator_version}: {why}")
        self.tampered = tampered


def _tag(key: bytes, originator_id: uuid.UUID, version: int, topic: str, state: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    # Fixed-size fields first and the topic ended by a NUL: no two inputs read alike.
    mac.update(originator_id.bytes + version.to_bytes(8, "big", signed=True) + topic.encode() + b"\0")
    mac.update(state)
    return mac.hexdigest().encode()


def tag_snapshot(state: bytes, originator_id: uuid.UUID, version: int, key: bytes) -> bytes:
    """The stored bytes of a snapshot whose encoded state is `state` (a JSON object)."""
    return state[:-1] + _TAG_HEAD + _tag(key, originator_id, version, SNAPSHOT_TOPIC, state) + b'"}'


def tagged(stored: StoredEvent) -> bool:
    state = stored.state
    if not isinstance(state, bytes):  # SQLite keeps any type: a row rewritten as text
        return False
    return len(state) > _TAG_SIZE and state.endswith(b'"}') and state[-_TAG_SIZE:].startswith(_TAG_HEAD)


def untagged(stored: StoredEvent) -> StoredEvent:
    """The stored snapshot as it was encoded, its tag (if any) taken off unchecked."""
    if not tagged(stored):
        return stored
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, stored.state[:-_TAG_SIZE] + b"}")


def checked_snapshot(stored: StoredEvent, key: bytes | None) -> StoredEvent:
    """The stored snapshot without its tag, once the tag matches; `UntrustedSnapshot` if
    it does not, or there is none (a ledger without the key has tagged nothing)."""
    if not isinstance(stored.state, bytes):
        raise UntrustedSnapshot(stored, tampered=True)
    if not tagged(stored) or key is None:
        raise UntrustedSnapshot(stored, tampered=key is not None and tagged(stored))
    body = untagged(stored)
    expected = _tag(key, uuid.UUID(str(stored.originator_id)), stored.originator_version, stored.topic, body.state)
    if not hmac.compare_digest(stored.state[-_TAG_SIZE + len(_TAG_HEAD) : -2], expected):
        raise UntrustedSnapshot(stored, tampered=True)
    return body


@dataclass(frozen=True)
class BadSnapshot:
    stream: str
    version: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "version": self.version, "reason": self.reason}


def verify_store(app: Any, expect: tuple[int, str] | None = None) -> dict[str, Any]:
    """What `ledger verify` and `/v1/verify` answer: the chain's walk (`verify`), the
    snapshots' comparison, the subject keys' check and the append-only triggers' (`guard`),
    `ok` only when all four hold."""
    from adapters.store.chain import BadEvent, verify
    from adapters.store.key_check import check_keys
    from adapters.store.triggers import guard_faults

    try:
        report = verify(app.recorder, expect)
        if report.ok and report.checked == 0:
            # Every ledger holds its system policy's event from its first open on (`ledger
            # verify` refuses a place with no ledger): none at all is a ledger emptied, events
            # and links, behind its back, which the walk alone cannot tell from a new one.
            reason = "the ledger holds no event, though every ledger holds its system policy's: its events were deleted"
            report = replace(report, first_bad=BadEvent(1, None, None, "removed", reason))
        checked, bad = check_snapshots(app)
        keys_checked, own_keys, bad_keys = check_keys(app)  # not chained either: an erasure deletes key rows
        guard = guard_faults(app.recorder, app.config)  # every tampering takes them out of the way first
    except PersistenceError as exc:  # the store lost, not its events altered: no tamper alarm
        raise StoreUnavailable(f"event store read failed: {exc}") from exc
    return report.to_json() | {
        "snapshots": {"checked": checked, "bad": [s.to_json() for s in bad]},
        "keys": {"checked": keys_checked, "own": own_keys, "bad": [k.to_json() for k in bad_keys]},
        "guard": {"bad": guard},
        "ok": report.ok and not bad and not bad_keys and not guard,
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
    bad: list[BadSnapshot] = []
    for stream, version in rows:
        key = stored_stream(stream)
        if key is None or type(version) is not int:
            # SQLite keeps any text: no read finds such a row (the library looks a stream
            # up by its own spelling), and there is nothing to compare it with.
            reason = f"its stream id {stream!r} or version {version!r} is not as the ledger writes them"
            bad.append(BadSnapshot(str(stream), version if type(version) is int else -1, reason))
            continue
        versions.setdefault(key, []).append(version)
    for stream in sorted(versions, key=str):
        bad += _check_stream(app, stream, sorted(versions[stream]))
    return len(rows), bad


def _check_stream(app: Any, stream: uuid.UUID, versions: list[int]) -> list[BadSnapshot]:
    key = app.keys.key(SNAPSHOT_SUBJECT)
    snapshots: dict[int, Any] = {}
    reasons: dict[int, list[str]] = {}
    for stored in app.snapshots.recorder.select_events(stream, lte=versions[-1]):
        version, why = stored.originator_version, reasons.setdefault(stored.originator_version, [])
        if tagged(stored) and key is None:
            why.append("it is tagged, and the ledger's snapshot key is gone (deleted outside the ledger)")
        elif tagged(stored):
            try:
                checked_snapshot(stored, key)
            except UntrustedSnapshot:
                why.append("its tag does not match what it holds")
        # An untagged one (stored before snapshots were tagged) is compared all the same;
        # reads replay the events instead of it.
        try:
            snapshots[version] = app.mapper.opened(untagged(stored))
        except MapperDeserialisationError as exc:
            why.append(f"it cannot be read back: {one_line(exc)}")
    pending, aggregate = list(versions), None
    unchecked = "its stream has no event at that version"
    try:
        for event in app.events.get(stream, lte=versions[-1]):
            aggregate = event.mutate(aggregate)
            while pending and pending[0] == aggregate.version:
                version = pending.pop(0)
                if version in snapshots:
                    reason = _differs(aggregate, snapshots[version])
                    if reason is not None:
                        reasons.setdefault(version, []).append(reason)
    except PersistenceError:
        raise  # the store lost, not its events altered: `verify_store` says so
    except Exception:
        # Altered events can make any step of a replay raise (one that does not decode, a
        # version missing, another event's bytes): the chain's walk names the event; the
        # snapshots past it cannot be compared, which is not that they are missing.
        unchecked = "not compared: its stream's events do not replay up to it (the chain's walk names the event)"
    for version in pending:
        reasons.setdefault(version, []).append(unchecked)
    return [BadSnapshot(str(stream), v, "; ".join(why)) for v, why in sorted(reasons.items()) if why]


def _differs(aggregate: Any, snapshot: Any) -> str | None:
    """Why `snapshot` is not `aggregate`'s state (None: it is). A snapshot of an older
    class version is read as a load reads it (upcast), and compared in what it held:
    what its class added since (a Session's `kernels_started`) it has no value for."""
    cls = type(aggregate)
    expected = cls.Snapshot.take(aggregate).state
    plain_state(expected)  # as the ledger stores a snapshot
    actual = snapshot.state
    held = set(actual)
    if actual.get("class_version", 1) < getattr(cls, "class_version", 1):
        actual = cls.Snapshot.take(snapshot.mutate(None)).state  # the library's upcasts, as a load runs them
        keys = held - {"class_version"}
    else:
        keys = set(expected) | held
    differ = sorted(k for k in keys if expected.get(k) != actual.get(k))
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
