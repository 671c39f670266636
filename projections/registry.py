"""Every projection the ledger keeps. Adding one: its module, then a field here."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

import sqlalchemy as sa

from domain.aggregates import ENTITIES
from projections.audit import AuditProjection
from projections.domains import DomainsProjection
from projections.groups import GroupsProjection
from projections.history import HistoryProjection
from projections.keypairs import KeyPairsProjection
from projections.policies import PoliciesProjection
from projections.projection import Projection
from projections.sessions import SessionsProjection
from projections.usage import UsageProjection
from projections.users import UsersProjection


@dataclass(frozen=True)
class ProjectionSet:
    policies: PoliciesProjection
    keypairs: KeyPairsProjection
    groups: GroupsProjection
    history: HistoryProjection
    usage: UsageProjection
    audit: AuditProjection
    sessions: SessionsProjection
    domains: DomainsProjection
    users: UsersProjection

    def all(self) -> list[Projection]:
        return [getattr(self, f.name) for f in fields(self)]


def build_projections(metadata: sa.MetaData, timezone: str = "UTC") -> ProjectionSet:
    return ProjectionSet(
        policies=PoliciesProjection(metadata),
        keypairs=KeyPairsProjection(metadata),
        groups=GroupsProjection(metadata),
        history=HistoryProjection(metadata, ENTITIES),
        usage=UsageProjection(metadata, timezone),
        audit=AuditProjection(metadata),
        sessions=SessionsProjection(metadata),
        domains=DomainsProjection(metadata),
        users=UsersProjection(metadata),
    )


_SHARED: dict[str, sa.MetaData] = {}
_SHARING = threading.Lock()


def shared_projections(timezone: str = "UTC") -> ProjectionSet:
    """The projections of a ledger, their tables shared with every other ledger of this
    process in the same zone (one MetaData per zone): SQLAlchemy's table objects are
    definitions only, and making them again was half the cost of opening a ledger."""
    with _SHARING:  # a table is looked up, then made: not twice at once
        return build_projections(_SHARED.setdefault(timezone, sa.MetaData()), timezone)
