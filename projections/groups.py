"""Read models of groups (live and soft-deleted; purged ones are gone) and their members."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.group import Group
from domain.group.aggregate import GROUP_FIELDS_PERSONAL
from domain.personal import ERASED, erased_fields
from projections.entities import EntityProjection
from projections.projection import on


class GroupsProjection(EntityProjection):
    name = "groups"
    version = 2  # 2: a purged group's row keeps its fields erased, as a rebuild reads them (issue 14)
    aggregate = Group
    key_length = 36
    personal = GROUP_FIELDS_PERSONAL

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.members = self.table(
            "members",
            sa.Column("group_id", sa.String(36), primary_key=True),
            sa.Column("user_id", sa.String(36), primary_key=True),
        )

    @on(Group.Deleted)
    def soft_deleted(self, conn: Connection, event: Any, position: int) -> None:
        self.modified(conn, event, position)  # a soft delete is a change of two fields

    @on(Group.Purged)
    def purged(self, conn: Connection, event: Any, _position: int) -> None:
        # The purge destroyed the group's key: the row keeps what a rebuild would read then.
        rows = self.rows
        found = conn.execute(sa.select(rows.c.fields).where(rows.c.stream_id == event.originator_id)).first()
        erased = {} if found is None else {"fields": erased_fields(found.fields, GROUP_FIELDS_PERSONAL)}
        self.touch(conn, event, is_deleted=True, **erased)
        conn.execute(sa.delete(self.members).where(self.members.c.group_id == str(event.originator_id)))

    @on(Group.MembersAdded)
    def members_added(self, conn: Connection, event: Any, _position: int) -> None:
        group_id = str(event.originator_id)
        # A purged group's member ids read ERASED; its rows go at the purge anyway.
        added = [{"group_id": group_id, "user_id": u} for u in event.user_ids if u != ERASED]
        if added:
            conn.execute(sa.insert(self.members), added)

    @on(Group.MembersRemoved)
    def members_removed(self, conn: Connection, event: Any, _position: int) -> None:
        members = self.members
        conn.execute(
            sa.delete(members).where(
                members.c.group_id == str(event.originator_id), members.c.user_id.in_(event.user_ids)
            )
        )
