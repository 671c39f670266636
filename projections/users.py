"""Read model of users (live and deleted), with how many keypairs each owns.

A user's row is keyed by its UUID (`EntityProjection`), fields as JSON. Its `email` and
`full_name` are personal data: of the read models only this table holds them (usage
reports join them at read time, storing no copy), so erasing a user later has one read
model to clear. A deleted user's row stays, marked deleted.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.user import User
from projections.entities import EntityProjection
from projections.projection import on


class UsersProjection(EntityProjection):
    name = "users"
    version = 1
    aggregate = User
    key_length = 36

    def extra_columns(self) -> list[sa.Column[Any]]:
        return [sa.Column("keypair_count", sa.Integer, nullable=False, default=0)]

    @on(User.KeyPairAdded, User.KeyPairRemoved)
    def keypairs_changed(self, conn: Connection, event: Any, _position: int) -> None:
        step = 1 if isinstance(event, User.KeyPairAdded) else -1
        self.touch(conn, event, keypair_count=self.rows.c.keypair_count + step)
