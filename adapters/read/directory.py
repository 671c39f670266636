"""Domains and users read: one by its key, or a page of them, from their read models.

Like every query these catch the read models up first (read-your-writes) and refuse a
stalled one. Lists are ordered by their key (a domain's name, a user's UUID) and page
with `after` (the last key seen) and `limit`; filters run in SQL. Deleted domains and
users are not listed or shown (their history and time travel still are).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from adapters.read.arguments import checked
from adapters.read.paging import page_limit, starts_with
from adapters.read.rows import read_rows
from domain.domains import DomainData
from domain.parsers import parse_name, parse_uuid
from domain.times import as_utc
from domain.user import UserData
from projections.database import ReadModelDatabase
from projections.domains import DomainsProjection
from projections.projection import Projection
from projections.runner import ProjectionRunner
from projections.users import UsersProjection


@dataclass(frozen=True)
class DomainCounts:
    """How many live users and groups a domain holds: a delete is refused while either is not 0."""

    users: int
    groups: int


class DirectoryQueries:
    def __init__(
        self,
        read_models: ReadModelDatabase,
        runner: ProjectionRunner,
        domains: DomainsProjection,
        users: UsersProjection,
    ) -> None:
        self._db = read_models
        self._runner = runner
        self._domains = domains
        self._users = users

    def _rows(self, statement: sa.Executable, projection: Projection) -> list[sa.Row[Any]]:
        return read_rows(self._db, self._runner, statement, projection)

    @checked
    def domain(self, name: str) -> DomainData | None:
        """The live domain `name`, None if it does not exist or was deleted."""
        rows = self._rows(self._domains.live().where(self._domains.rows.c.key == name), self._domains)
        return _domain(rows[0]) if rows else None

    @checked
    def domain_counts(self, name: str) -> DomainCounts | None:
        """The live domain's user and group counts, None as `domain` would be."""
        rows = self._domains.rows
        statement = sa.select(rows.c.user_count, rows.c.group_count).where(
            rows.c.key == name, rows.c.is_deleted.is_(False)
        )
        found = self._rows(statement, self._domains)
        return DomainCounts(found[0].user_count, found[0].group_count) if found else None

    @checked
    def domains(
        self,
        *,
        name_prefix: str | None = None,
        active: bool | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[DomainData]:
        """Live domains ordered by name (the paging cursor `after` is the last name seen),
        those whose name starts with `name_prefix`, only active or inactive ones with `active`."""
        rows = self._domains.rows
        conditions: list[sa.ColumnElement[bool]] = []
        if name_prefix is not None:
            conditions.append(starts_with(rows.c.key, name_prefix))
        if active is not None:
            conditions.append(rows.c.fields["is_active"].as_boolean() == active)
        if after is not None:
            conditions.append(rows.c.key > after)
        statement = self._domains.live().where(*conditions).order_by(rows.c.key).limit(page_limit(limit))
        return [_domain(row) for row in self._rows(statement, self._domains)]

    @checked
    def user(self, user_id: uuid.UUID | str) -> UserData | None:
        """The live user, None if unknown or deleted; a malformed id is `InvalidAPIParameters`."""
        key = str(parse_uuid(user_id, "user_id"))
        rows = self._rows(self._users.live().where(self._users.rows.c.key == key), self._users)
        return _user(rows[0]) if rows else None

    @checked
    def user_keypair_count(self, user_id: uuid.UUID | str) -> int | None:
        """How many keypairs the live user owns (a delete is refused while it is not 0)."""
        rows = self._users.rows
        key = str(parse_uuid(user_id, "user_id"))
        statement = sa.select(rows.c.keypair_count).where(rows.c.key == key, rows.c.is_deleted.is_(False))
        found = self._rows(statement, self._users)
        return int(found[0].keypair_count) if found else None

    @checked
    def users(
        self,
        domain_name: str | None = None,
        *,
        after: uuid.UUID | str | None = None,
        limit: int | None = None,
    ) -> list[UserData]:
        """Live users ordered by UUID (the paging cursor `after` is the last one seen),
        those of `domain_name` only if given."""
        rows = self._users.rows
        conditions: list[sa.ColumnElement[bool]] = []
        if domain_name is not None:
            conditions.append(rows.c.fields["domain_name"].as_string() == parse_name(domain_name, "domain_name"))
        if after is not None:
            conditions.append(rows.c.key > str(parse_uuid(after, "after")))
        statement = self._users.live().where(*conditions).order_by(rows.c.key).limit(page_limit(limit))
        return [_user(row) for row in self._rows(statement, self._users)]


def _domain(row: sa.Row[Any]) -> DomainData:
    return DomainData.from_fields(row.key, as_utc(row.created_at), as_utc(row.modified_at), row.fields)


def _user(row: sa.Row[Any]) -> UserData:
    return UserData.from_fields(uuid.UUID(row.key), as_utc(row.created_at), as_utc(row.modified_at), row.fields)
