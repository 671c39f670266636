"""Read model of users (live and deleted), with how many keypairs each owns.

A user's row is keyed by its UUID (`EntityProjection`), fields as JSON. Its `email` and
`full_name` are personal data: of the entity read models only this table holds them
(usage reports join them at read time, storing no copy; the audit trail's action inputs
erase theirs in projections/audit.py). An event that erases the user's subject leaves
them ERASED in the row, which is what a rebuild then reads. A deleted user's row stays, marked deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.personal import erased_fields
from domain.user import User
from domain.user.aggregate import USER_FIELDS_PERSONAL
from projections.entities import EntityProjection
from projections.erasure import erasing_classes
from projections.projection import Handler, on


class UsersProjection(EntityProjection):
    name = "users"
    version = 2  # 2: an erasing event leaves the row's email and full name ERASED (issue 14)
    aggregate = User
    key_length = 36
    personal = USER_FIELDS_PERSONAL

    def computed_handlers(self) -> Mapping[type, Handler]:
        # The user's own erasing events (their subject is the user's): whichever the domain declares.
        erasing = {cls: self.erased for cls in erasing_classes() if getattr(User, cls.__name__, None) is cls}
        return {**super().computed_handlers(), **erasing}

    def erased(self, conn: Connection, event: Any, _position: int) -> None:
        """The user's personal fields as a rebuild now reads them; a delete too if it is one."""
        rows = self.rows
        found = conn.execute(sa.select(rows.c.fields).where(rows.c.stream_id == event.originator_id)).first()
        erased = {} if found is None else {"fields": erased_fields(found.fields, USER_FIELDS_PERSONAL)}
        deleted = {"is_deleted": True} if isinstance(event, User.Deleted) else {}
        self.touch(conn, event, **erased, **deleted)

    def extra_columns(self) -> list[sa.Column[Any]]:
        return [sa.Column("keypair_count", sa.Integer, nullable=False, default=0)]

    @on(User.KeyPairAdded, User.KeyPairRemoved)
    def keypairs_changed(self, conn: Connection, event: Any, _position: int) -> None:
        step = 1 if isinstance(event, User.KeyPairAdded) else -1
        self.touch(conn, event, keypair_count=self.rows.c.keypair_count + step)
