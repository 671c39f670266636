"""The auditor's read models checked by `ledger verify`: the audit trail and the history index.

`ledger audit` reads the audit read model, and `history` takes each event's time and actor
from the history read model: rows that the hash chain does not cover. A row deleted or
altered in the database hid an action from the audit trail, or put another actor on an
event, while `verify` said intact. So verify builds both read models again from the
events, in a scratch SQLite file, and compares them row by row with the ledger's, up to
the position both have reached (`projections rebuild --force audit history` mends them).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from domain.times import as_utc
from projections.database import ReadModelDatabase
from projections.registry import build_projections
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger
    from projections.projection import Projection

SHOWN = 3  # differing rows named per read model


@dataclass(frozen=True)
class BadReadModel:
    read_model: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"read_model": self.read_model, "reason": self.reason}


def check_read_models(ledger: Ledger) -> tuple[int, list[BadReadModel]]:
    """(how many rows were compared, the differences found)."""
    from adapters.bootstrap import recorded_skips

    live = [ledger.projections.audit, ledger.projections.history]
    app = ledger.app
    removed = _tail_removed(ledger)
    if removed is not None:
        return 0, [removed]  # the comparison would stop short of the removed events anyway
    with tempfile.TemporaryDirectory(prefix="ledger-verify-") as folder:
        scratch = ReadModelDatabase(f"sqlite:///{folder}/read_models.db", {})
        try:
            built = build_projections(sa.MetaData(), ledger.timezone)
            fresh: list[Projection] = [built.audit, built.history]
            runner = ProjectionRunner(
                scratch, app.recorder, app.mapper, fresh, skip_log=lambda name: recorded_skips(app, name)
            )
            runner.setup()
            runner.catch_up()
            reached = {s.name: s.position or 0 for s in runner.status()}
            ledger.runner.catch_up(live)
            live_reached = {s.name: s.position or 0 for s in ledger.runner.status() if s.stall is None}
            compared, bad = 0, []
            for mine, theirs in zip(live, fresh, strict=True):
                if mine.stable_name not in live_reached:
                    continue  # stalled: `projections status` says so
                bound = min(reached.get(theirs.stable_name, 0), live_reached[mine.stable_name])
                count, found = _compare(ledger.read_models, mine, scratch, theirs, bound)
                compared += count
                bad += [BadReadModel(mine.stable_name, reason) for reason in found]
        finally:
            scratch.engine.dispose()
    return compared, bad


def _tail_removed(ledger: Ledger) -> BadReadModel | None:
    """Read models record how far they have applied the events: one past the store's last
    event applied events that are gone. The tail of the store was deleted, links and all,
    which the chain's walk alone cannot tell from a shorter ledger."""
    head = ledger.app.recorder.max_notification_id() or 0
    ahead = [s for s in ledger.runner.status() if (s.position or 0) > head]
    if not ahead:
        return None
    furthest = max(ahead, key=lambda s: s.position or 0)
    reason = (
        f"it applied the events up to position {furthest.position}, but the store's last event is at {head}: "
        f"the events after {head} were removed, with their links"
    )
    return BadReadModel(furthest.name, reason)


def _compare(
    live_db: ReadModelDatabase, live: Projection, scratch_db: ReadModelDatabase, fresh: Projection, bound: int
) -> tuple[int, list[str]]:
    compared, found = 0, []
    live_tables = {t.name[len(live.storage_name) :]: t for t in live.metadata.sorted_tables if _of(t, live)}
    for table in (t for t in fresh.metadata.sorted_tables if _of(t, fresh)):
        suffix = table.name[len(fresh.storage_name) :]
        name = suffix.lstrip("_")
        keys = [c.name for c in table.primary_key.columns]
        theirs = _rows(scratch_db, table, keys, bound)
        mine = _rows(live_db, live_tables[suffix], keys, bound)
        compared += len(mine)
        told: list[str] = []
        for key in sorted(set(theirs) | set(mine), key=repr):
            if key not in mine:
                told.append(f"table {name}: no row {_key(keys, key)}, which the events give")
            elif key not in theirs:
                told.append(f"table {name}: a row {_key(keys, key)} that no event gives")
            elif mine[key] != theirs[key]:
                differ = ", ".join(c for c in mine[key] if mine[key][c] != theirs[key].get(c))
                told.append(f"table {name}: the row {_key(keys, key)} differs from its events in {differ}")
        found += told[:SHOWN] + ([f"table {name}: {len(told) - SHOWN} more rows differ"] if len(told) > SHOWN else [])
    return compared, found


def _key(names: list[str], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


def _of(table: sa.Table, projection: Projection) -> bool:
    return table.name.startswith(f"{projection.storage_name}_")


def _rows(db: ReadModelDatabase, table: sa.Table, keys: list[str], bound: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows up to `bound`, by primary key, each as plain values."""
    column = table.c.get("position")
    if column is None:
        column = table.c.get("number")  # the history's streams: the position of their first event
    statement = sa.select(table)
    if column is not None:
        statement = statement.where(column <= bound)
    with db.connect() as conn:
        rows = [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(statement)]
    return {tuple(row[k] for k in keys): row for row in rows}


def _plain(value: Any) -> Any:
    """A value as both backends read it back: UTC times, JSON as sorted text."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def verify_ledger(ledger: Ledger, expect: tuple[int, str] | None = None) -> dict[str, Any]:
    """What `ledger verify` and `/v1/verify` answer: the store's check (`verify_store`: the
    chain, snapshots and keys) and the auditor's read models, `ok` only when all hold."""
    from adapters.store.snapshot_check import verify_store

    result = verify_store(ledger.app, expect)
    if not result["ok"]:
        # Read models are built from the events with the keys: against a store already
        # found altered, a comparison says nothing more (and its reads may fail on it).
        return result | {"read_models": {"checked": 0, "bad": []}}
    checked, bad = check_read_models(ledger)
    return result | {
        "read_models": {"checked": checked, "bad": [b.to_json() for b in bad]},
        "ok": not bad,
    }
