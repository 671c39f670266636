"""Read model of domains (live and deleted), with how many users and groups each holds.

A domain's row is its fields as JSON, keyed by its name (`EntityProjection`); the counts
follow the member events recorded on the domain's stream (`UserAdded`/`UserRemoved`,
`GroupAdded`/`GroupRemoved`), so `domain show` says what a delete would be refused for.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.domains import Domain
from projections.entities import EntityProjection
from projections.projection import on


class DomainsProjection(EntityProjection):
    name = "domains"
    version = 1
    aggregate = Domain

    def extra_columns(self) -> list[sa.Column[Any]]:
        return [
            sa.Column("user_count", sa.Integer, nullable=False, default=0),
            sa.Column("group_count", sa.Integer, nullable=False, default=0),
        ]

    @on(Domain.UserAdded, Domain.UserRemoved)
    def users_changed(self, conn: Connection, event: Any, _position: int) -> None:
        step = 1 if isinstance(event, Domain.UserAdded) else -1
        self.touch(conn, event, user_count=self.rows.c.user_count + step)

    @on(Domain.GroupAdded, Domain.GroupRemoved)
    def groups_changed(self, conn: Connection, event: Any, _position: int) -> None:
        step = 1 if isinstance(event, Domain.GroupAdded) else -1
        self.touch(conn, event, group_count=self.rows.c.group_count + step)
