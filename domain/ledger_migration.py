"""The record that a one-time migration of the stored history was made.

`LedgerMigration` streams have fixed ids, one per migration. The migration's own writes
and this record's creation are one atomic append, so two processes opening an older
ledger at once migrate it once: the second one's append conflicts on this stream, and
its retry finds the record and does nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate

from domain.catalog import EntityType
from domain.entity import stream_id

# Issue 12: the domains and users an older ledger's groups and keypairs name.
DOMAINS_AND_USERS = "domains-and-users"


class LedgerMigration(Aggregate):
    class Done(Aggregate.Created):
        """The migration `name` was applied; `summary` says what it wrote (counts)."""

        name: str
        summary: dict[str, Any]

    def __init__(self, name: str, summary: dict[str, Any]) -> None:
        self.name = name
        self.summary = summary

    @staticmethod
    def id_for(name: str) -> uuid.UUID:
        return stream_id(EntityType.LEDGER_MIGRATION, name)

    @classmethod
    def done(cls, name: str, summary: dict[str, Any]) -> LedgerMigration:
        return cls._create(cls.Done, id=cls.id_for(name), name=name, summary=summary)
