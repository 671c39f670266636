"""Read model of the audit trail: one row per action outcome, indexed for the auditor's filters.

An action's input (`spec`) may hold personal values, sealed in the stored record under a
user's or a group's subject (domain/audit/record.py). Each row that holds some is listed
under its subjects in `subjects`; when an event erases a subject, those rows' values at
the declared paths become ERASED, which is what a rebuild then reads from the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.actions.base import batch_label
from domain.audit import AuditRecord
from domain.personal import Path, declared
from projections.erasure import erasing_classes, subject_erased_by, with_erased
from projections.projection import Batch, BatchProjection, Handler, on
from projections.sql import POSITION, BulkInsert, chunks

_TIMES = ("started_at", "ended_at")


class AuditProjection(BatchProjection):
    name = "audit"
    # 2: the position is SQLite's rowid (see `POSITION`).
    # 3: a batch's entities in their own indexed rows; its `entity_id` a bounded label
    #    (a comma-joined list of 300 ids broke PostgreSQL's B-tree index).
    # 4: the subjects whose personal values each row's spec holds, rewritten on erasure.
    # 5: the domains each action concerns, in their own indexed rows: what an admin reads.
    # 6: the domains' rows carry the action's start, indexed in the trail's order, so a page
    #    of a domain's trail walks an index range (it read and sorted all the domain's rows);
    #    entries indexed by entity id alone (an entity's trail without its type scanned them all).
    # 7: the trail is in the order of its records' positions, not its actions' starts (an
    #    action recorded after a page was read could start before that page's last one, and
    #    paging by start time passed it for good): indexes end in the position, a window is
    #    a filter on a walk in that order. The domains' rows indexed by position too: a
    #    page that holds a batch of several domains' facts asks which other domains it
    #    concerns by its position, which walked the whole table on every such page.
    #    A usage report over several groups is kept as a batch is: one row per `project:ID`,
    #    its `entity_id` a bounded label (the comma-joined scope of 73 groups broke the B-tree
    #    index on PostgreSQL and stalled the trail).
    version = 7
    cost = 0.1  # one row per action, not per event

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.entries = self.table(
            "entries",
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
            sa.Column("action_id", sa.String(36), nullable=False, unique=True),
            sa.Column("entity_type", sa.String(64), nullable=False),
            sa.Column("operation", sa.String(64), nullable=False),
            sa.Column("entity_id", sa.Text),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("duration", sa.Float, nullable=False),
            sa.Column("error_code", sa.String(128)),
            sa.Column("request_id", sa.String(256)),
            sa.Column("triggered_by", sa.String(36)),
            sa.Column("access_key", sa.String(256)),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("domain_name", sa.String(256)),
            sa.Column("spec", sa.JSON, nullable=False),
            # The auditor's questions, in the trail's order: one entity's trail, one actor's
            # doings. A window is a filter on the walk in position order (an index on the
            # start would make the page a sort of the whole window).
            sa.Index(None, "entity_type", "entity_id", "position"),
            sa.Index(None, "entity_id", "position"),
            sa.Index(None, "triggered_by", "position"),
            sa.Index(None, "access_key", "position"),
        )
        # Every entity a batch action touched, so an auditor finds the batch by any of them.
        self.batch_entities = self.table(
            "batch_entities",
            sa.Column("position", POSITION, nullable=False),
            sa.Column("entity_id", sa.Text, nullable=False),
            sa.Index(None, "entity_id", "position"),
        )
        # The domains each action concerns (its record's `domains`): a domain's admin reads
        # these rows, in the trail's order (the position: this table's key), filtered by
        # the entry's start (repeated here) for a window. A record written before records
        # named them has none here. By position too: which other domains a batch on an
        # admin's page concerns (its input is withheld from them if any).
        self.domains = self.table(
            "domains",
            sa.Column("domain_name", sa.String(256), primary_key=True),
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Index(None, "position", "domain_name"),
        )
        # The rows whose spec holds personal values sealed under a subject: what its
        # erasure rewrites. No value here is personal (a subject names an id the row holds).
        self.subjects = self.table(
            "subjects",
            sa.Column("subject", sa.String(128), primary_key=True),
            sa.Column("position", POSITION, primary_key=True, autoincrement=False),
        )
        # A row is the event's position, then its entry's values in the order of the columns after it.
        self._entry_columns = list(self.entries.columns.keys())[1:]
        self._insert = BulkInsert(self.entries)
        self._insert_entities = BulkInsert(self.batch_entities)
        self._insert_domains = BulkInsert(self.domains)
        self._insert_subjects = BulkInsert(self.subjects)
        self._personal = declared(AuditRecord.Recorded)

    def computed_handlers(self) -> Mapping[type, Handler]:
        return dict.fromkeys(erasing_classes(), self.apply_batch)  # routed to apply_batch anyway

    @on(AuditRecord.Recorded)
    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        rows: list[tuple[Any, ...]] = []
        entities: list[tuple[int, str]] = []
        domains: list[tuple[str, int, datetime]] = []
        subjects: list[tuple[str, int]] = []
        for position, event in batch:
            if type(event) is AuditRecord.Recorded:
                entry = event.entry
                ids = _batch_ids(entry)
                if ids:
                    entry = {**entry, "entity_id": batch_label(ids)}
                    entities.extend((position, entity_id) for entity_id in ids)
                rows.append(self._row(position, entry))
                started_at = datetime.fromisoformat(entry["started_at"])
                domains.extend((name, position, started_at) for name in entry.get("domains") or ())
                subjects.extend((subject, position) for subject in self._sealed_under(vars(event)))
            elif (subject := subject_erased_by(event)) is not None:
                # The rows before the erasure are written first: it may rewrite them.
                self._write(conn, rows, entities, domains, subjects)
                rows, entities, domains, subjects = [], [], [], []
                self._erase(conn, subject)
        self._write(conn, rows, entities, domains, subjects)

    def _write(
        self,
        conn: Connection,
        rows: list[tuple[Any, ...]],
        entities: list[tuple[int, str]],
        domains: list[tuple[str, int, datetime]],
        subjects: list[tuple[str, int]],
    ) -> None:
        self._insert(conn, rows)
        self._insert_entities(conn, entities)
        self._insert_domains(conn, domains)
        self._insert_subjects(conn, subjects)

    def _spec_paths(self, state: Mapping[str, Any], subject: str | None = None) -> list[tuple[Path, str]]:
        """The declared personal values of a record's state that lie in its spec (the one
        column that holds the action's input), each with its subject; paths relative to
        the spec. `subject`: only that subject's."""
        return [
            (path[2:], found)
            for declaration in self._personal
            for path, found in declaration.locate(state)
            if path[:2] == ("entry", "spec") and len(path) > 2 and subject in (None, found)
        ]

    def _sealed_under(self, state: Mapping[str, Any]) -> set[str]:
        return {subject for _path, subject in self._spec_paths(state)}

    def _erase(self, conn: Connection, subject: str) -> None:
        """The subject's values in the rows that hold some, as a rebuild now reads them: ERASED."""
        e, s = self.entries, self.subjects
        positions = list(conn.execute(sa.select(s.c.position).where(s.c.subject == subject)).scalars())
        for chunk in chunks(positions, 500):
            found = conn.execute(sa.select(e.c.position, e.c.entity_type, e.c.spec).where(e.c.position.in_(chunk)))
            changed = []
            for row in found:
                # The state the declarations' subjects and paths are computed from: the
                # record's entity type and spec are all they read.
                state = {"entry": {"entity_type": row.entity_type, "spec": row.spec}}
                paths = [path for path, _ in self._spec_paths(state, subject)]
                changed.append({"at": row.position, "erased": with_erased(row.spec, paths)})
            if changed:
                conn.execute(
                    sa.update(e).where(e.c.position == sa.bindparam("at")).values(spec=sa.bindparam("erased")), changed
                )
        conn.execute(sa.delete(s).where(s.c.subject == subject))

    def _row(self, position: int, entry: dict[str, Any]) -> tuple[Any, ...]:
        values = [datetime.fromisoformat(entry[c]) if c in _TIMES else entry.get(c) for c in self._entry_columns]
        return (position, *values)


def _batch_ids(entry: dict[str, Any]) -> list[str]:
    """The entities of a batch action's record. Records written before `entity_ids`
    existed packed them into `entity_id`, comma-joined (batch ids never hold commas). A
    scope action's record names its scope `TYPE:ID,ID,...` (a usage report over several
    groups, as many as it names): each `TYPE:ID` is one of its entities."""
    ids: list[str] = entry.get("entity_ids") or []
    entity_id = entry.get("entity_id") or ""
    if ids or "," not in entity_id:
        return ids
    if entry.get("operation") in _LEGACY_BATCH_OPERATIONS:
        return entity_id.split(",")
    if entry.get("operation") in _SCOPE_OPERATIONS:
        scope, _, scope_ids = entity_id.partition(":")
        return [f"{scope}:{each}" for each in scope_ids.split(",")]
    return ids


_LEGACY_BATCH_OPERATIONS = frozenset({"record_batch"})
_SCOPE_OPERATIONS = frozenset({"usage_per_month", "usage_per_period"})
