"""Queries answered from the read models, after catching up with every stored event."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from adapters.reports import SqlUsageReader
from domain.group.types import GroupData
from domain.keypair.actions import KeyPairData
from domain.keypair_resource_policy.types import KeyPairResourcePolicyData
from projections.engine import ProjectionRunner, ReadModels
from projections.registry import ReadModelSet


@dataclass(frozen=True)
class HistoryEntry:
    """One event in an entity's history. Readable as attributes or as a mapping."""

    position: int
    entity_type: str
    entity_id: str
    version: int
    event: str
    occurred_at: datetime
    action_id: str | None
    request_id: str | None
    actor: dict[str, Any]
    changes: dict[str, dict[str, Any]]
    details: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "occurred_at": self.occurred_at.isoformat()}


class Queries:
    def __init__(
        self,
        read_models: ReadModels,
        runner: ProjectionRunner,
        projections: ReadModelSet,
    ) -> None:
        self._db = read_models
        self._runner = runner
        self._policies = projections.policies
        self._keypairs = projections.keypairs
        self._groups = projections.groups
        self._history = projections.history
        self._usage = SqlUsageReader(read_models, runner, projections)

    def _rows(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        # Read-your-writes: every command that returned before this query is visible.
        self._runner.catch_up()
        with self._db.connect() as conn:
            return list(conn.execute(statement))

    def keypair_resource_policy(self, name: str) -> KeyPairResourcePolicyData | None:
        rows = self._rows(self._policies.live().where(self._policies.rows.c.key == name))
        return _policy(rows[0]) if rows else None

    def keypair_resource_policies(self) -> list[KeyPairResourcePolicyData]:
        return [_policy(row) for row in self._rows(self._policies.live().order_by(self._policies.rows.c.key))]

    def keypair(self, access_key: str) -> KeyPairData | None:
        rows = self._rows(self._keypairs.live().where(self._keypairs.rows.c.key == access_key))
        return KeyPairData.from_fields(rows[0].key, rows[0].fields) if rows else None

    def keypairs(self, resource_policy: str | None = None) -> list[KeyPairData]:
        statement = self._keypairs.live().order_by(self._keypairs.rows.c.key)
        found = [KeyPairData.from_fields(row.key, row.fields) for row in self._rows(statement)]
        return [k for k in found if resource_policy in (None, k.resource_policy)]

    def group(self, group_id: uuid.UUID | str) -> GroupData | None:
        """A group that exists, active or soft-deleted; None once purged or if unknown."""
        rows = self._rows(self._groups.live().where(self._groups.rows.c.key == str(group_id)))
        return _group(rows[0]) if rows else None

    def groups(self, domain_name: str | None = None) -> list[GroupData]:
        statement = self._groups.live()
        if domain_name is not None:
            statement = statement.where(self._groups.rows.c.fields["domain_name"].as_string() == domain_name)
        found = [_group(row) for row in self._rows(statement)]
        return sorted(found, key=lambda g: (g.domain_name, g.name))

    def group_members(self, group_id: uuid.UUID | str) -> set[uuid.UUID]:
        members = self._groups.members
        statement = sa.select(members.c.user_id).where(members.c.group_id == str(group_id))
        return {uuid.UUID(row.user_id) for row in self._rows(statement)}

    def usage_totals(
        self, first: date, last: date, group_id: uuid.UUID | str | None = None
    ) -> dict[str, dict[str, float]]:
        """Slot-seconds per group and slot over the local days [first, last]."""
        return self._usage.totals(first, last, None if group_id is None else str(group_id))

    def history(self, entity_type: str, entity_id: str) -> list[HistoryEntry]:
        entries = self._history.entries
        statement = (
            sa.select(entries)
            .where(entries.c.entity_type == entity_type, entries.c.entity_id == str(entity_id))
            .order_by(entries.c.position)
        )
        return [
            HistoryEntry(**{**row._asdict(), "occurred_at": _aware(row.occurred_at)}) for row in self._rows(statement)
        ]


def _group(row: sa.Row[Any]) -> GroupData:
    return GroupData.from_fields(uuid.UUID(row.key), _aware(row.created_at), _aware(row.modified_at), row.fields)


def _policy(row: sa.Row[Any]) -> KeyPairResourcePolicyData:
    return KeyPairResourcePolicyData.from_fields(row.key, _aware(row.created_at), row.fields)


def _aware(at: datetime) -> datetime:
    # SQLite returns naive datetimes; everything the ledger stores is UTC.
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)
