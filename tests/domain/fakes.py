"""An in-memory `AggregateStore`, so that what services and aggregates decide is tested
without a database (the backend tests check the same decisions on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate

from domain.errors import ConcurrentModification
from domain.ports import AggregateStore, UnitOfWork, VersionConflict

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")


class InMemoryStore:
    """Events per stream in a dict; a save checks each stream's version as the real store
    does, so a stale aggregate conflicts and `run` retries the command."""

    def __init__(self, max_attempts: int = 3) -> None:
        self.streams: dict[uuid.UUID, list[Any]] = {}
        self.max_attempts = max_attempts

    def get(self, aggregate_id: uuid.UUID, cls: type[A]) -> A | None:
        aggregate = None
        for event in self.streams.get(aggregate_id, []):
            aggregate = event.mutate(aggregate)
        if aggregate is None:
            return None
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} holds a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def save(self, *aggregates: Aggregate | None) -> None:
        batch = [a for a in aggregates if a is not None and a.pending_events]
        for aggregate in batch:
            first = aggregate.pending_events[0].originator_version
            if first != len(self.streams.get(aggregate.id, [])) + 1:
                raise VersionConflict(f"stream {aggregate.id} is at another version")
        for aggregate in batch:
            self.streams.setdefault(aggregate.id, []).extend(aggregate.collect_events())

    def run(self, command: Callable[[], R], entity_type: str, operation: str) -> R:
        for _ in range(self.max_attempts):
            try:
                return command()
            except VersionConflict:
                continue
        raise ConcurrentModification(f"{entity_type} {operation}: gave up")

    def events(self, aggregate_id: uuid.UUID) -> list[str]:
        """The event class names of one stream, in order."""
        return [type(event).__name__ for event in self.streams.get(aggregate_id, [])]


class NoUsage:
    """A `UsageReader` with no kernels."""

    def kernels(self, start: Any, end: Any, group_ids: Any, domain_name: Any = None) -> list[Any]:
        return []


def ensure_domain(store: AggregateStore, name: str) -> None:
    """The live domain `name` (created with no limits unless it lives): groups and
    keypairs name existing domains."""
    from domain.domains import Domain, DomainCreator

    def create() -> None:
        work = UnitOfWork(store)
        domain = work.get(Domain.id_for(name), Domain)
        if domain is None:
            work.add(Domain.create(name, DomainCreator(name=name).fields_json()))
        elif domain.is_deleted:
            domain.recreate(DomainCreator(name=name).fields_json())
        work.commit()

    store.run(create, "domain", "create")


def ensure_user(store: AggregateStore, user_id: uuid.UUID | str, domain_name: str) -> uuid.UUID:
    """The live user `user_id` of `domain_name` (the domain too): keypair owners and group
    members are existing users of the domain. Returns the id, so a call can stand in for it."""
    from domain.domains import Domain
    from domain.user import User, UserCreator

    ensure_domain(store, domain_name)
    key = str(user_id)

    def create() -> None:
        work = UnitOfWork(store)
        user = work.get(User.id_for(key), User)
        fields = UserCreator(user_id=key, domain_name=domain_name).fields_json()
        if user is None:
            work.add(User.create(key, fields))
        elif user.is_deleted:
            user.recreate(fields)
        domain = work.get(Domain.id_for(domain_name), Domain)
        assert domain is not None
        domain.add_user(key)
        work.commit()

    store.run(create, "user", "create")
    return uuid.UUID(key)
