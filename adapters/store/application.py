"""The event store as the services see it: the library's application over the store a URL
names, every stored event stamped with the current action context (`StampingMapper`),
and the unit of work that saves a command's aggregates and runs it again on conflicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, CanInitAggregate, DomainEventProtocol, OriginatorVersionError, Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    MapperDeserialisationError,
    PersistenceError,
    Recording,
    StoredEvent,
)
from eventsourcing.utils import TopicError, get_topic

from adapters.store.cache import AggregateCache
from adapters.store.chain import seal_unchained
from adapters.store.config import StoreConfig
from adapters.store.keys import (
    SNAPSHOT_SUBJECT,
    WRONG_MASTER,
    SubjectKeys,
    finish_rotation,
    load_master_key,
    wrong_master,
)
from adapters.store.scope import current_write_scope
from adapters.store.sealing import MARK, open_state, seal_state
from adapters.store.snapshot_check import (
    SNAPSHOT_TOPIC,
    UntrustedSnapshot,
    checked_snapshot,
    tag_snapshot,
)
from adapters.store.stored import clear_history
from adapters.store.streams import existing_streams, stream_versions
from adapters.store.triggers import install_append_only_triggers, postgres_is_set_up
from domain.actions import RunningAction, running_action
from domain.actions.context import SYSTEM, action_context, current_context
from domain.domains.aggregate import Domain
from domain.entity import unknown_event
from domain.errors import ConcurrentModification, ConfigurationError, DamagedEvent, LedgerError, StoreUnavailable
from domain.group.aggregate import Group
from domain.keypair.aggregate import KeyPair
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy
from domain.personal import declared, erased_subject, erasing_topics
from domain.ports import VersionConflict
from domain.session.aggregate import Session
from domain.session.usage import ScopeUsage
from domain.sharedmap import plain_state
from domain.user.aggregate import User
from domain.workload.aggregate import Kernel
from domain.workload.storage import VFolderUsage
from projections.database import one_line

log = logging.getLogger(__name__)
_PURGED_TOPIC = get_topic(Group.Purged)


class HeadlessStream(Exception):
    """A stream whose first stored event is not its creation (removed or renumbered)."""


# What a replay of altered events raises: bytes that do not decode, a version skipped, a
# stream not begun by its creation.
REPLAY_DAMAGE = (MapperDeserialisationError, OriginatorVersionError, HeadlessStream)


def damaged(stream: uuid.UUID, exc: Exception) -> DamagedEvent:
    """The domain error for a stored event of `stream` that does not decode (its bytes
    altered or cut behind the ledger's back), or for a stream whose versions skip one (an
    event removed or renumbered) or that lacks its first: every read of a stream says it
    alike. The library's words (its exception, the event's topic) go to the log, not to
    the caller."""
    log.warning("a stored event of stream %s cannot be read: %s", stream, one_line(exc))
    if isinstance(exc, HeadlessStream):
        return DamagedEvent(
            f"stream {stream} does not begin with its creation (its first event was removed or renumbered): "
            "`ledger verify` names it"
        )
    if isinstance(exc, OriginatorVersionError):
        found, due = exc.args  # the library's: the version read, the one its replay needed
        return DamagedEvent(
            f"stream {stream} has no event at version {due} (the next stored is version {found}: "
            "one was removed or renumbered): `ledger verify` names it"
        )
    return DamagedEvent(
        f"a stored event of stream {stream} cannot be read (its stored bytes do not decode): `ledger verify` names it"
    )


@contextlib.contextmanager
def reading(stream: uuid.UUID) -> Iterator[None]:
    """Reads of `stream`'s stored events inside: one that does not decode, or a version
    missing, is `DamagedEvent`, a store that cannot be read (PostgreSQL gone)
    `StoreUnavailable`, as in `get`."""
    try:
        yield
    except REPLAY_DAMAGE as exc:
        raise damaged(stream, exc) from None
    except PersistenceError as exc:
        raise StoreUnavailable(f"event store read failed: {exc}") from exc


A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

SNAPSHOT_INTERVAL = 100
_MAX_BACKOFF = 0.25  # seconds: the longest pause between two attempts of a conflicting command
# A stored state holding no envelope is not walked when read (most events hold none).
_SEALED_MARK = json.dumps(MARK).encode()
# A usage set's snapshot holds every member (a domain's: each of its running sessions), so
# writing one costs in proportion: taken every 1000 events, a cold read replays at most
# that many, and the decision that writes one stays out of the 99th percentile.
USAGE_SNAPSHOT_INTERVAL = 1000
# orjson where it stores what the library's JSON transcoder would (adapters/store/transcoding.py).
TRANSCODER = "adapters.store.transcoding:FastJSONTranscoder"


class StampingMapper(Mapper[uuid.UUID]):
    """Stamps the action context (action id, request id, actor) on every stored event, and
    seals the personal values its type declares (`domain.personal`) under their subject's
    key, opening them again when reading (docs/ERASURE.md). `keys` is set by the
    application once its recorder exists; without keys nothing is sealed."""

    keys: SubjectKeys | None = None
    erased: Callable[[list[str]], None] | None = None  # drops this process's copies of erased subjects
    gone: Callable[[str], bool] | None = None  # whether a subject without a key was erased for good

    def to_stored_event(self, domain_event: DomainEventProtocol[uuid.UUID]) -> StoredEvent:
        # The library's steps (topic, state without originator id and version, class
        # version, transcoding), on one copy of the state: a bulk import maps thousands.
        state = vars(domain_event)
        cls = type(domain_event)
        if "meta" not in state and getattr(cls, "stamped", True):
            ctx = current_context() or SYSTEM
            # Events are frozen dataclasses; the stamp is added once, just before storing.
            object.__setattr__(domain_event, "meta", ctx.stamp())
        personals = declared(cls)
        if personals and self.keys is not None:
            keys, gone = self.keys, self.gone
            # The event itself keeps its values (the caller's aggregate holds it): the
            # sealed copy is what is stored.
            event_state = seal_state(state, personals, lambda subject: keys.ensure((subject,), gone)[subject])
        else:
            event_state = dict(state)
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        if cls is Snapshot and self.keys is not None:
            key = self.keys.ensure((SNAPSHOT_SUBJECT,))[SNAPSHOT_SUBJECT]
            stored_state = tag_snapshot(stored_state, originator_id, originator_version, key)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(cls),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        if stored_event.topic == SNAPSHOT_TOPIC and self.keys is not None:
            # A snapshot is used only as the ledger wrote it (adapters/store/snapshot_check.py).
            stored_event = checked_snapshot(stored_event, self.keys.key(SNAPSHOT_SUBJECT))
        return self.opened(stored_event)

    def opened(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        """The stored event decoded, its sealed values opened; a snapshot is given without
        its tag (`ledger verify` opens every stored snapshot, its tag taken off unchecked)."""
        try:
            domain_event = super().to_domain_event(stored_event)
        except TopicError:
            raise unknown_event(stored_event.topic, _which(stored_event)) from None
        if not _required_fields(type(domain_event)) <= vars(domain_event).keys():
            known = getattr(type(domain_event), "class_version", 1)
            stored = self._class_version(stored_event)  # the library drops it, upcasting only up
            if stored > known:  # a newer release reshaped this event: not damage, but unreadable here
                raise unknown_event(stored_event.topic, _which(stored_event), (stored, known))
            # Bytes that decode but are not an event of this topic (another event's, put
            # in its place in the database): said as bytes that do not decode, not left to
            # fail as an AttributeError wherever the event is applied.
            raise MapperDeserialisationError(f"the stored state of {stored_event.topic} lacks some of its fields")
        if self.keys is not None and _SEALED_MARK in stored_event.state:
            opened = open_state(vars(domain_event), self.keys.key, self.keys.made_after)
            object.__setattr__(domain_event, "__dict__", opened)
        if self.erased is not None and (subject := erased_subject(type(domain_event), vars(domain_event))):
            # Another process erased it: this one's copies go once it reads that (its
            # queries catch up first, so none answers with the subject's values after).
            self.erased([subject])
        return domain_event

    def _class_version(self, stored_event: StoredEvent) -> int:
        """The `class_version` a stored event was written as (1 when it names none); read
        only where an event lacks fields, so decoded a second time."""
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        version = self.transcoder.decode(state).get("class_version", 1)
        return version if isinstance(version, int) else 1


def _which(stored_event: StoredEvent) -> str:
    return f"the stored event of stream {stored_event.originator_id} at version {stored_event.originator_version}"


@functools.cache
def _required_fields(cls: type) -> frozenset[str]:
    """The fields an event of `cls` has no default for, upcast (the library's events are
    dataclasses; a class that is not has none to check)."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    return frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def _replay(aggregate_id: uuid.UUID, events: Iterable[Any]) -> Aggregate:
    """The aggregate `events` make, from its creation on: the ledger's one replay without a
    snapshot (`_load`, `replayed`). A stream not begun by its creation is `HeadlessStream`
    (the library's replay would only assert), an empty one `AggregateNotFoundError`."""
    # Our events all mutate; the library's projector re-checks that with a runtime
    # Protocol isinstance, which costs more than the mutation on Python 3.11.
    aggregate: Aggregate | None = None
    for event in events:
        if aggregate is None and not isinstance(event, CanInitAggregate):
            raise HeadlessStream(aggregate_id)
        aggregate = event.mutate(aggregate)
    if aggregate is None:
        raise AggregateNotFoundError(aggregate_id)
    return aggregate


_ERASURES_PAGE = 500  # erasing events read per query by `meet_erasures`


class LedgerApplication(Application[uuid.UUID]):
    """The event store and the aggregate store port the services use."""

    name = "Ledger"
    snapshotting_intervals = dict.fromkeys(
        (KeyPairResourcePolicy, KeyPair, Group, Kernel, Domain, User), SNAPSHOT_INTERVAL
    )
    snapshotting_intervals[Session] = SNAPSHOT_INTERVAL
    snapshotting_intervals |= dict.fromkeys((ScopeUsage, VFolderUsage), USAGE_SNAPSHOT_INTERVAL)
    # Eight writers of one policy through two ledgers, on this 2-vCPU machine with two
    # busy processes beside them, needed up to 24 attempts for one command (most land in
    # under 10): with 20, a few of 240 modifies gave up (`ConcurrentModification`).
    max_attempts = 50

    def __init__(self, config: StoreConfig, *, seal_legacy: bool = True) -> None:
        self.config = config
        config.check_sqlite_file()  # a path SQLite cannot open, or another application's file
        env = {
            **config.env,
            "MAPPER_TOPIC": "adapters.store.application:StampingMapper",
            "TRANSCODER_TOPIC": TRANSCODER,
        }
        set_up = config.kind == "postgresql" and postgres_is_set_up(config)
        if set_up:
            env["CREATE_TABLE"] = "no"  # see `postgres_is_set_up`
        super().__init__(env=env)
        self.cache = AggregateCache()
        self.keys = SubjectKeys(self.recorder, load_master_key(config))
        try:
            self.keys.create_table()  # and refuses a master key that does not open the ledger's keys
        except ConfigurationError as exc:
            if not finish_rotation(config, self.keys):
                if str(exc) == WRONG_MASTER:
                    raise ConfigurationError(wrong_master(config)) from None
                raise
        assert isinstance(self.mapper, StampingMapper)
        self.mapper.keys = self.keys
        self.mapper.erased = self.forget
        self.mapper.gone = self.purged_group
        # Copies outside the event store (cached HTTP responses): cleared by the process that
        # erases, right after its append commits (their tables are shared by every process).
        self.erasure_listeners: list[Callable[[list[str]], None]] = []
        # Housekeeping after an erasure that nothing read waits for (the key table's rewrite):
        # run by the erasing save alone, after its listeners, never retried (see `_follow`).
        self.erasure_followups: list[Callable[[list[str]], None]] = []
        # Listener calls that failed after their erasure committed, run again until they pass.
        self._unfinished_erasures: list[tuple[Callable[[list[str]], None], list[str]]] = []
        self._erasures_lock = threading.Lock()
        # The position up to which this process has met the erasures other processes stored
        # (`meet_erasures`); nothing is cached at open.
        self._erasures_met = self.recorder.max_notification_id() or 0
        # Builds a running action's success record from what its append saves (set by
        # the audit monitor; without it, records are the monitor's own appends).
        self.record_with_events: Callable[[RunningAction, Sequence[Aggregate]], Aggregate] | None = None
        if not set_up:
            install_append_only_triggers(self.recorder, config)
        if seal_legacy:  # `ledger verify` opens without: it must see an emptied chain, not seal it
            seal_unchained(self.recorder)  # events stored before the chain existed get their links

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """The library's save, minus its runtime Protocol checks per object (costly on
        Python 3.11 when a bulk import saves hundreds of aggregates at once). Raises only
        when nothing was stored (see `_after_commit`)."""
        processing = ProcessingEvent[uuid.UUID]()
        for aggregate in objs:
            if aggregate is not None:
                processing.events.extend(aggregate.collect_events())
                processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(kwargs)
        # The subject function sees the whole event (its originator id included).
        erased = [s for event in processing.events if (s := erased_subject(type(event), vars(event))) is not None]
        if erased:
            processing.saved_kwargs.update(erase=erased, keys=self.keys)
        recordings = self._record(processing)
        self._after_commit(processing, recordings, erased)
        return recordings

    def _after_commit(
        self, processing: ProcessingEvent[uuid.UUID], recordings: list[Recording[uuid.UUID]], erased: list[str]
    ) -> None:
        """What follows a committed append. The save has succeeded, so no failure here is
        raised: it would be taken for the append's (a conflict, and the command run again,
        or a failed write, though its events and audit record are stored)."""
        if erased:
            self.forget(erased)  # in memory, first: no later read of this process serves the values
            with self._erasures_lock:
                self._unfinished_erasures.extend((listener, erased) for listener in self.erasure_listeners)
        if self._unfinished_erasures:
            # A failure is logged, and run again by the next save and before a copy is served.
            with contextlib.suppress(StoreUnavailable):
                self.finish_erasures()
        scope = current_write_scope()
        if scope is not None:
            scope.note(recordings)
        try:
            self._take_snapshots(processing)
        except Exception:
            # Only an optimisation (SQLite's busy lock, say): reads replay the events, and
            # the next snapshot interval the aggregate crosses takes one.
            log.warning("snapshot not written after a committed append; reads replay its events", exc_info=True)
        try:
            self._notify(recordings)
        except Exception:
            log.exception("notifying the append of %d events failed after it committed", len(recordings))
        if erased:
            self._follow(erased)

    def _follow(self, erased: list[str]) -> None:
        """Runs the erasure's followups, outside `_erasures_lock`: every save of the process
        takes that lock while listeners are unfinished, so a followup's waits there (the key
        table's rewrite waits for older transactions and its lock) held up every command of
        the process, not the erasure's caller alone. A failure is logged: the erasure stands."""
        for followup in self.erasure_followups:
            try:
                followup(erased)
            except Exception:
                log.exception("erasure of %s committed; %s failed", erased, getattr(followup, "__qualname__", followup))

    def erased_after(self, position: int) -> bool:
        """Whether the store holds an erasing event (`domain.personal.erasing_topics`) after
        `position`: a copy of values made before it may hold what it erased."""
        return bool(self.recorder.select_notifications(start=position + 1, limit=1, topics=erasing_topics()))

    def meet_erasures(self) -> None:
        """Forgets this process's copies of the subjects other processes erased since it
        last looked, before a read that opens stored values (a cached key would open them
        in clear). Decoding an erasing event forgets its subject (`StampingMapper.opened`);
        the read models' catch-up cannot be relied on to decode it here, as their positions
        are shared and another process may have moved them past it."""
        met = self._erasures_met
        try:  # a closed ledger, a server gone: said as every read says it
            head = self.recorder.max_notification_id() or 0
            while met < head:
                found = self.recorder.select_notifications(
                    start=met, limit=_ERASURES_PAGE, stop=head, topics=erasing_topics(), inclusive_of_start=False
                )
                for notification in found:
                    try:
                        self.mapper.to_domain_event(notification)
                    except MapperDeserialisationError:  # altered behind the ledger's back: forget every key
                        self.keys.forget_all()
                        self.cache.clear()
                met = head if len(found) < _ERASURES_PAGE else found[-1].id
        except PersistenceError as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc
        self._erasures_met = max(self._erasures_met, met)

    def finish_erasures(self) -> None:
        """Runs again the erasure listeners that failed after their erasure committed.
        Raises StoreUnavailable while one still fails: a reader of what they drop (cached
        HTTP responses) calls this first, so it never serves an erased subject's values."""
        if not self._unfinished_erasures:  # emptied only once they have all passed
            return
        with self._erasures_lock:  # held while they run: no reader goes on before they end
            failed = []
            for listener, subjects in self._unfinished_erasures:
                try:
                    listener(subjects)
                except Exception:
                    log.exception(
                        "erasure of %s is committed, but dropping copies of its values failed (%s); "
                        "retried by the next save and before a cached response is served",
                        subjects,
                        getattr(listener, "__qualname__", listener),
                    )
                    failed.append((listener, subjects))
            self._unfinished_erasures = failed
        if failed:
            raise StoreUnavailable(f"copies of erased subjects' values could not be dropped yet: {failed[0][1]}")

    def close(self) -> None:
        close_reads = getattr(self.recorder, "close_direct_reads", None)
        if close_reads is not None:  # a SQLite ledger's per-thread read connections
            close_reads()
        super().close()

    def purged_group(self, subject: str) -> bool:
        """Whether `subject` is a purged group's: erased for good, since a purged group's id
        is never used again. A value sealed for it after the purge (the audit record of a
        kernel start the platform reports late, refused) must not get a new key, which no
        later erasure could reach: it is sealed under a key never stored, erased at once."""
        kind, _, raw = subject.partition(":")
        if kind != "group":
            return False
        try:
            stream = uuid.UUID(raw)
        except ValueError:
            return False
        last = self.recorder.select_events(stream, desc=True, limit=1)
        return bool(last) and last[0].topic == _PURGED_TOPIC

    def forget(self, subjects: list[str]) -> None:
        """Drops every copy this process holds of erased subjects: their keys and the
        cached aggregates (which may hold their values in clear)."""
        self.keys.forget(subjects)
        self.cache.clear()

    def _take_snapshots(self, processing_event: ProcessingEvent[uuid.UUID]) -> None:
        """At most one snapshot per aggregate and save, taken from the saved aggregate in
        memory (the library re-reads the stream for every interval crossed)."""
        if self.snapshots is None:
            return
        appended: dict[uuid.UUID, int] = {}
        for event in processing_event.events:
            appended[event.originator_id] = appended.get(event.originator_id, 0) + 1
        snapshots = []
        for aggregate_id, count in appended.items():
            aggregate = processing_event.aggregates[aggregate_id]
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and aggregate.version // interval > (aggregate.version - count) // interval:
                snapshot = type(aggregate).Snapshot.take(aggregate)  # type: ignore[attr-defined]
                plain_state(snapshot.state)  # a snapshot stores a shared map as the plain object it reads back as
                snapshots.append(snapshot)
        if snapshots:
            self.snapshots.put(snapshots)

    def get(self, aggregate_id: uuid.UUID, cls: type[A]) -> A | None:
        aggregate: Aggregate | None = self.cache.get(aggregate_id)
        if aggregate is None:
            generation = self.cache.generation  # before the read: an erasure meanwhile voids the copy
            try:
                aggregate = self._load(aggregate_id)
            except AggregateNotFoundError:
                return None
            except PersistenceError as exc:
                raise StoreUnavailable(f"event store read failed: {exc}") from exc
            except REPLAY_DAMAGE as exc:
                raise damaged(aggregate_id, exc) from None
            self.cache.put(aggregate, generation)
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} holds a {type(aggregate).__name__}, not a {cls.__name__}")
        scope = current_write_scope()
        if scope is not None:
            scope.read(aggregate_id, aggregate.version)
        return aggregate

    def _load(self, aggregate_id: uuid.UUID) -> Aggregate:
        # Snapshots exist only from SNAPSHOT_INTERVAL events on, so a shorter stream is
        # read whole in one query instead of a snapshot lookup plus a read.
        events = list(self.events.get(aggregate_id, limit=SNAPSHOT_INTERVAL))
        if len(events) == SNAPSHOT_INTERVAL:
            return self.replayed(aggregate_id)
        return _replay(aggregate_id, events)

    def replayed(self, aggregate_id: uuid.UUID, version: int | None = None) -> Aggregate:
        """The aggregate at `version` (None: its last) from the stream's last snapshot up
        to it and the events after; from the events alone when that snapshot is not one
        the ledger wrote as it is stored (no tag, or one that does not match)."""
        try:
            found: Aggregate = self.repository.get(aggregate_id, version=version)
            return found
        except UntrustedSnapshot as exc:
            # An untagged snapshot is expected in a ledger written before tags; a tag that
            # does not match is a row altered outside the ledger.
            log.log(logging.WARNING if exc.tampered else logging.DEBUG, "%s: its events are replayed", exc)
        except AssertionError:
            # The library's replay asserts that an aggregate exists after the first event:
            # said as damage only when the stream's first stored event is not its creation.
            first = list(self.events.get(aggregate_id, limit=1))
            if first and not isinstance(first[0], CanInitAggregate):
                raise HeadlessStream(aggregate_id) from None
            raise
        return _replay(aggregate_id, self.events.get(aggregate_id, lte=version))

    def save_all(self, *aggregates: Aggregate | None) -> None:
        saving = [a for a in aggregates if a is not None]
        attempt = self.cache.attempt
        # The saved copies were read (or made) before this save: an erasure committing
        # meanwhile (this one's included) voids them as it voids a read in flight.
        generation = self.cache.generation
        # An append checks the version its decision was made on; any other cached copy
        # the decision used is checked here, before anything is written.
        appending = {a.id for a in saving if a.pending_events}
        unconfirmed = {
            aggregate_id: version
            for aggregate_id, version in attempt.cached.items()
            if aggregate_id not in appending and aggregate_id not in attempt.confirmed
        }
        if unconfirmed:
            stored = stream_versions(self.recorder, unconfirmed)  # one query, not one per copy
            stale = [
                aggregate_id for aggregate_id, version in unconfirmed.items() if stored.get(aggregate_id) != version
            ]
            if stale:
                self.cache.drop(*stale)
                raise VersionConflict(f"cached copy of {stale[0]} is stale")
            attempt.confirmed |= unconfirmed.keys()
        scope = current_write_scope()
        if scope is not None and appending:
            scope.check(saving)
            record = scope.request_record(lambda stream: len(self.recorder.select_events(stream, limit=1)) > 0)
            if record is not None:
                saving.append(record)
        # The running action's success record goes in this very append (one transaction
        # per command; its events never exist without it).
        record_with_events = self.record_with_events
        running = running_action() if appending and record_with_events is not None else None
        if running is not None and running.recorded:
            running = None  # recorded by an earlier append of the same action
        if running is not None and record_with_events is not None:
            saving.append(record_with_events(running, saving))
        try:
            self.save(*saving)  # raises only before its commit: after it, failures are logged
        except IntegrityError as exc:
            self.cache.drop(*(a.id for a in saving))
            raise VersionConflict(str(exc)) from exc
        if running is not None:
            running.recorded = True
        for aggregate in saving:
            self.cache.put(aggregate, generation)
        attempt.confirmed |= appending

    def run(self, command: Callable[[], R], entity_type: str, operation: str) -> R:
        """Runs a command; see `adapters.store.cache` for why cached reads are safe."""
        attempt_state = self.cache.attempt
        fresh = False
        with action_context(None, entity_type, operation):
            for attempt in range(1, self.max_attempts + 1):
                attempt_state.begin(fresh=fresh)
                try:
                    result = command()
                except LedgerError:
                    if not attempt_state.needs_fresh_rerun:
                        raise
                    fresh = True  # the refusal rested on cached state: confirm it on fresh reads
                    continue
                except (IntegrityError, VersionConflict):
                    fresh = True
                    if attempt == self.max_attempts:
                        raise ConcurrentModification(
                            f"{entity_type} {operation}: gave up after {attempt} conflicting attempts"
                        ) from None
                    # Jittered, doubling backoff so that colliding writers spread out (a
                    # linear one let eight writers of one stream exhaust their attempts).
                    time.sleep(random.uniform(0, min(_MAX_BACKOFF, 0.001 * 2**attempt)))
                    continue
                except PersistenceError as exc:
                    raise StoreUnavailable(f"event store write failed: {exc}") from exc
                finally:
                    attempt_state.fresh = True
                if not attempt_state.needs_fresh_rerun:
                    return result
                fresh = True  # no append confirmed the cached state the answer used
        raise ConcurrentModification(f"{entity_type} {operation}: no stable answer after {self.max_attempts} attempts")

    @property
    def store(self) -> AggregateStoreAdapter:
        return AggregateStoreAdapter(self)


class AggregateStoreAdapter:
    """`domain.ports.AggregateStore` over the application."""

    def __init__(self, app: LedgerApplication) -> None:
        self.get = app.get
        self.save = app.save_all
        self.run = app.run
        self.existing = functools.partial(existing_streams, app.recorder)  # a batch's streams at once
        snapshots = None if app.snapshots is None else app.snapshots.recorder
        self.clear_history = functools.partial(clear_history, app.recorder, snapshots, app.mapper)  # for an erasure
        self.has_key = app.keys.stored  # for an erasure of a subject no entity's stream holds
