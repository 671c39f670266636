"""The composition root: `open_ledger(url)` wires store, services, processors, queries."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Self
from zoneinfo import available_timezones

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import PersistenceError

from adapters.compaction import Compacted, compact
from adapters.http.idempotency import clear_after_erasures, sweep_after_erasures
from adapters.migrations import declare_domains_and_users
from adapters.monitors import AuditMonitor, PrometheusMonitor, StoreEntityDomains
from adapters.processors import Processors, Services
from adapters.read.queries import Queries
from adapters.read.usage import SqlUsageReader
from adapters.store import LedgerApplication, StoreConfig, parse_url
from adapters.store.chain import enable_group_commit
from adapters.store.keys import KEYS_TABLE
from adapters.store.stored import sealed_at
from domain.actions.context import system_context
from domain.actions.permissions import PermissionValidator
from domain.catalog import EntityType
from domain.errors import ConfigurationError, LedgerError, StoreUnavailable
from domain.keypair_resource_policy import (
    SYSTEM_POLICY,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
)
from domain.projection_ops import ProjectionOps, SkippedEvent
from domain.usage import KernelUsage, UsageReader, parse_timezone
from projections.database import ReadModelDatabase
from projections.projection import Projection
from projections.registry import build_projections, shared_projections
from projections.runner import ProjectionRunner
from projections.status import describe_stall, ways_out
from projections.usage import UsageProjection, zone_key

log = logging.getLogger(__name__)

GROUP_COMMIT_VARIABLE = "LEDGER_GROUP_COMMIT"
ERASURE_COMPACTION_WAIT = 2.0  # seconds an erasure's rewrite of the key table waits for older transactions
# ... and for its lock: every other session's use of the key table queues behind the
# rewrite while it waits (a pg_dump holds the table for its whole run).
ERASURE_LOCK_WAIT = 0.5


def group_commit_wanted(default: bool) -> bool:
    """$LEDGER_GROUP_COMMIT (on/off, 1/0, true/false, yes/no) when set, else `default`:
    off for an embedded ledger, on for `ledger serve`."""
    value = os.environ.get(GROUP_COMMIT_VARIABLE, "").strip().lower()
    if not value:
        return default
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ConfigurationError(f"${GROUP_COMMIT_VARIABLE}: {value!r} is not one of on, off")


class Ledger:
    def __init__(
        self,
        config: StoreConfig,
        timezone: str | None = None,
        *,
        build_pending: bool = True,
        group_commit: bool | None = None,
        seal_legacy: bool = True,
    ) -> None:
        self.config = config
        self.timezone = _timezone(timezone)
        with _exclusive_setup(config):
            self.app = _open_store(config, seal_legacy=seal_legacy)
            if group_commit_wanted(False) if group_commit is None else group_commit:
                enable_group_commit(self.app.recorder)
            self.read_models = ReadModelDatabase(config.read_model_url, config.connect_args)
            self.app.erasure_listeners.append(clear_after_erasures(self.read_models))
            self.projections = shared_projections(self.timezone)
            self.runner = _runner(self.app, self.read_models, self.projections.all(), self.timezone)
            self.app.erasure_listeners.append(self._erase_copies)
            self.app.erasure_followups.append(self._rewrite_keys)
            self.runner.setup()
            if seal_legacy:  # `ledger verify` opens without: an auditor's walk appends nothing
                self._ensure_system_policy()
                self._ensure_default_domain()
        if build_pending:
            # After the setup lock: a long build must not hold up other processes opening
            # the ledger (building it beside us is safe: see ProjectionRunner).
            self.runner.build_pending()
        usage = SqlUsageReader(self.read_models, self.runner, self.projections)
        # Usage reports read the usage read model, and the users one for the kernels' names:
        # a stalled one answers ReadModelStalled rather than a report with stale names.
        checked = RequiringUsageReader(usage, self.runner, [self.projections.usage, self.projections.users])
        self.services = Services(self.app.store, checked, self.timezone, self.runner)
        # Monitors' `done` runs in reverse order: metrics first, the audit record last.
        self.metrics = PrometheusMonitor()
        self.processors = Processors(
            self.services,
            validators=[PermissionValidator(StoreEntityDomains(self.app))],
            monitors=[AuditMonitor(self.app), self.metrics],
        )
        self.queries = Queries(self.read_models, self.runner, self.projections, self.app)

    def _erase_copies(self, subjects: list[str]) -> None:
        """After an erasure commits: the read models (and any forced rebuild under way)
        apply it now, instead of holding the erased values in clear until the next read or
        a follower gets to it (`_rewrite_keys` follows). Never fails the erasure, which is
        committed already: a failure is logged."""
        try:
            self._apply_erasures()
        except Exception:  # the erasure itself is committed: this is housekeeping
            log.exception("erasure of %s committed; updating the read models failed", subjects)

    def _apply_erasures(self) -> None:
        """Every read model of this database, of every zone, caught up, so it has applied
        every erasure stored; the tables replaced versions and rebuilds left, dropped."""
        # A forced rebuild left midway (killed, or running elsewhere) holds the values in
        # its own tables too, and only `rebuild --force` would take it further.
        self.runner.refresh()
        # The versions served first: caught up together with a build far behind, they
        # waited for the whole build, batch by batch from its position.
        self.runner.catch_up(self.runner.projections)
        self.runner.catch_up(self.runner.builds())
        self._erase_in_other_zones()
        # A stall's cause was written in clear from the values opened then.
        self.runner.withhold_erased_causes()
        # SQLite keeps the tables a version or rebuild replaced until a later drop, with
        # the rows they held then.
        self.runner.drop_retired_tables()

    def _rewrite_keys(self, subjects: list[str]) -> None:
        """After an erasure's copies are dropped (a followup: its waits are the erasure's
        caller's alone). SQLite: the WAL's old page images go. PostgreSQL: the key table is
        rewritten, so no old row version keeps the erased keys (the read models' are
        `ledger compact`'s: rewriting them locks each for a while). A short wait for older
        transactions: the erasure's caller is waiting. Never fails the erasure: logged."""
        try:
            rewritten = compact(self.config, [KEYS_TABLE], wait=ERASURE_COMPACTION_WAIT, lock_wait=ERASURE_LOCK_WAIT)
        except Exception:  # the erasure itself is committed: this is housekeeping
            log.exception("erasure of %s committed; rewriting the key table failed", subjects)
            return
        for done in rewritten:
            if done.skipped:
                log.warning(
                    "erasure of %s: %s %s; `ledger compact` (as its owner) does it",
                    subjects,
                    done.table,
                    done.skipped,
                )

    def compact(self) -> list[Compacted]:
        """Every erasure applied to the read models, then the tables where an erased value
        may outlive its row rewritten (`adapters.compaction`): an operator's step after
        erasures on PostgreSQL, which locks each table while it is rewritten."""
        self._apply_erasures()
        # The cached HTTP responses a killed eraser owed to drop are live rows: a rewrite keeps them.
        sweep_after_erasures(self.read_models, self.app.erased_after)
        # A read model stalled before an erasure never applied it: its live rows still hold
        # the erased values, which no rewrite removes. Said first, not called compacted.
        behind = [
            Compacted(
                f"{storage} (read model)",
                0.0,
                f"{describe_stall(stall)}, before an erasure: its rows still hold the values it erased; "
                f"{ways_out(stall, f'`ledger projections rebuild --force {stall.stable_name}`')}, then run again",
            )
            for storage, stall in sorted(self.runner.stalled.items())
            if self.app.erased_after(stall.position - 1)
        ]
        return behind + compact(self.config)

    def _erase_in_other_zones(self) -> None:
        """The usage read models of other time zones in this database (a report run with
        --timezone builds one) hold the kernels' sealed values in clear too: each is caught
        up now, and its forced rebuild under way if any, so that it applies the erasure
        instead of keeping them until a process of its zone next reads it. One of an older
        version (no process of its zone has opened with this code since an upgrade) cannot
        apply it: this code's version is built and switched in, and the older tables go, as
        such a process opening would do."""
        for zone in sorted(available_timezones()):
            found = self.runner.active.get(f"{UsageProjection.name}_{zone_key(zone)}")
            if zone == self.timezone or found is None or found[0] > UsageProjection.version:
                continue  # none in this database, or a newer one that newer code keeps
            try:
                runner = _runner(self.app, self.read_models, [shared_projections(zone).usage], zone)
                if found[0] == UsageProjection.version:
                    runner.refresh()
                else:
                    runner.setup()
                    runner.build_pending()
                runner.catch_up()
                # That zone's forced rebuild left midway holds the values in its own tables too.
                runner.catch_up(runner.builds())
            except Exception:  # one zone's failure leaves the others and the checkpoint to run
                log.exception("erasure committed; catching up the usage read model of %s failed", zone)

    def _ensure_system_policy(self) -> None:
        """Every ledger holds the undeletable system policy `default`."""

        def create() -> None:
            if self.app.get(KeyPairResourcePolicy.id_for(SYSTEM_POLICY), KeyPairResourcePolicy) is None:
                fields = KeyPairResourcePolicyCreator(name=SYSTEM_POLICY).fields_json()
                self.app.save(KeyPairResourcePolicy.create(SYSTEM_POLICY, fields))

        with system_context():  # no action: nothing names an action id without its audit row
            self.app.run(create, EntityType.KEYPAIR_RESOURCE_POLICY, "create")

    def _ensure_default_domain(self) -> None:
        """Every ledger holds the domain `default` (created once; an operator may delete it
        later). A ledger written before domains were entities gets it together with the
        domains and users its history names: see `adapters.migrations`."""
        declare_domains_and_users(self.app)

    def close(self) -> None:
        self.app.close()
        self.read_models.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_ledger(
    url: str | None = None,
    timezone: str | None = None,
    *,
    build_pending: bool = True,
    group_commit: bool | None = None,
    seal_legacy: bool = True,
) -> Ledger:
    """Opens the ledger at `url` (default: $LEDGER_DATABASE_URL, else sqlite:///ledger.db).
    Usage reports use `timezone` (default: $LEDGER_TIMEZONE, else UTC). `group_commit`:
    concurrent commands of this process share transactions (default: $LEDGER_GROUP_COMMIT,
    else off; see `adapters.store.group_commit`).

    A projection whose version in this code is newer than the active one is built before
    this returns, unless `build_pending` is false (then the first catch-up builds it; see
    `ProjectionRunner.setup` and `ledger projections rebuild`). `seal_legacy` false (what
    `ledger verify` opens with) appends nothing: events written before the hash chain existed
    are left unlinked (`ledger verify` reports them), and neither the system policy nor the
    domain `default` is created, so a ledger whose events were deleted behind its back is
    walked as it is, not appended to (which failed on the chain's links still there)."""
    return Ledger(
        parse_url(url), timezone, build_pending=build_pending, group_commit=group_commit, seal_legacy=seal_legacy
    )


@contextmanager
def projection_runner(config: StoreConfig, timezone: str) -> Iterator[ProjectionRunner]:
    """A runner over a ledger another process has set up (its tables, versions and
    tracking rows exist), without the read-model DDL of `Ledger`: on PostgreSQL that would
    queue behind, and deadlock with, the other process's batches. For rebuild workers."""
    with _exclusive_setup(config):
        app = _open_store(config)
    read_models = ReadModelDatabase(config.read_model_url, config.connect_args)
    try:
        zone = _timezone(timezone)
        runner = _runner(app, read_models, shared_projections(zone).all(), zone)
        runner.refresh()
        yield runner
    finally:
        read_models.close()
        app.close()


def _runner(
    app: LedgerApplication, read_models: ReadModelDatabase, projections: list[Projection], zone: str
) -> ProjectionRunner:
    """A runner that honours the skips recorded in the store and can build forced rebuilds."""
    return ProjectionRunner(
        read_models,
        app.recorder,
        app.mapper,
        projections,
        skip_log=lambda stable_name: recorded_skips(app, stable_name),
        factory=lambda metadata: build_projections(metadata, zone).all(),
        # Key gone and values sealed: an older release's values in clear had no key to lose.
        erased=lambda subject, at: not app.keys.stored(subject) and sealed_at(app.recorder, app.mapper, at, subject),
    )


def recorded_skips(app: LedgerApplication, stable_name: str) -> list[SkippedEvent]:
    """The events operators told the read model to skip, read from the store itself (not
    the aggregate cache: another process may have recorded one)."""
    try:
        ops: ProjectionOps = app.repository.get(ProjectionOps.id_for(stable_name))
    except AggregateNotFoundError:
        return []
    except PersistenceError as exc:
        raise StoreUnavailable(f"event store read failed: {exc}") from exc
    return list(ops.skipped)


class RequiringUsageReader:
    """A `UsageReader` that refuses (`ReadModelStalled`) when the read models it reads are stalled."""

    def __init__(self, reader: UsageReader, runner: ProjectionRunner, projections: Sequence[Projection]) -> None:
        self._reader = reader
        self._runner = runner
        self._projections = projections

    def kernels(
        self, start: datetime, end: datetime, group_ids: Iterable[str] | None, domain_name: str | None = None
    ) -> list[KernelUsage]:
        found = self._reader.kernels(start, end, group_ids, domain_name)
        self._runner.require(*self._projections)
        return found


def _open_store(config: StoreConfig, *, seal_legacy: bool = True) -> LedgerApplication:
    try:
        return LedgerApplication(config, seal_legacy=seal_legacy)
    except LedgerError:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"cannot open the event store: {exc}") from exc


def _timezone(name: str | None) -> str:
    # Only None is "not given": an empty zone (`--timezone "$UNSET"`) is refused, never the default.
    if name is not None:
        return parse_timezone(name)
    # A bad zone from the environment names the variable, not an option nobody typed.
    return parse_timezone(os.environ.get("LEDGER_TIMEZONE") or "UTC", field="LEDGER_TIMEZONE")


@contextmanager
def _exclusive_setup(config: StoreConfig) -> Iterator[None]:
    """On PostgreSQL, creates the schema and holds an advisory lock while tables, triggers
    and the system policy are set up, so processes opening one ledger at once do not race
    on DDL. SQLite's DDL here is all IF NOT EXISTS and needs no lock."""
    if config.kind != "postgresql":
        yield
        return
    from adapters.store.triggers import ensure_postgres_schema

    schema = config.schema or "public"
    with config.reach_postgres() as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ledger-setup:{schema}",))
        ensure_postgres_schema(conn, config)  # no DDL, so no privilege, when it exists
        yield
