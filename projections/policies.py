"""Read model of keypair resource policies, with how many keypairs use each."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.keypair_resource_policy import KeyPairResourcePolicy as Policy
from projections.entities import EntityProjection
from projections.projection import on


class PoliciesProjection(EntityProjection):
    name = "keypair_resource_policies"
    version = 1
    aggregate = Policy

    def extra_columns(self) -> list[sa.Column[Any]]:
        return [sa.Column("keypair_count", sa.Integer, nullable=False, default=0)]

    @on(Policy.KeyPairAssigned, Policy.KeyPairUnassigned)
    def keypairs_changed(self, conn: Connection, event: Any, _position: int) -> None:
        step = 1 if isinstance(event, Policy.KeyPairAssigned) else -1
        self.touch(conn, event, keypair_count=self.rows.c.keypair_count + step)
