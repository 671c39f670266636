"""Migrations of an older ledger's history, run once when a ledger is opened.

`declare_domains_and_users` (issue 12): before domains and users were entities, groups
and keypairs named domains and users freely. On first open, every domain and user the
stored events name becomes an entity, with the relations the services now keep: each
live group (not purged; a soft-deleted one too) on its domain's list, each live keypair
on its owner's, each user on its domain's, and each membership of a live group on the
member's stream too (`User.GroupJoined`, as the group service records them). Named
means: a group's or keypair's `domain_name` (created, recreated or moved), a keypair's
`user_id`, a group's members (the members still in it are its memberships).
A user's domain is the domain of the first keypair or group that named it, in the
order of the history (a user belongs to one domain; an older ledger may have named one
user in several, and the first one wins; its other keypairs stay on it anyway).

Only the group and keypair events that name something are read, from the recorder's
notification log in batches with a topic filter (the aggregates are not replayed), up
to the head seen when the migration starts; which of the named domains and users already
have a stream is asked a few hundred ids per query, so only those are loaded.
Everything is one atomic append under the system's action context, with the domain
`default`, an audit record and a `LedgerMigration` record of what was declared. The
`default` domain's stream is the guard: every ledger this code opened has one, so the
history is read once per ledger, and two processes opening an older ledger at once
migrate it once (the second one's append conflicts on the `default` stream; its retry
finds it and does nothing).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventsourcing.utils import get_topic

from adapters.store import LedgerApplication
from adapters.store.streams import existing_streams
from domain.actions.base import ActionResultMeta, ActionStatus
from domain.actions.context import current_context, system_context
from domain.audit import AuditRecord
from domain.catalog import EntityType
from domain.domains import Domain, DomainCreator
from domain.group import Group
from domain.keypair import KeyPair
from domain.ledger_migration import DOMAINS_AND_USERS, LedgerMigration
from domain.personal import ERASED
from domain.ports import UnitOfWork
from domain.shown import plural
from domain.user import User, UserCreator

BATCH = 2000
DEFAULT_DOMAIN = "default"
_READ = (
    Group.Created,
    Group.Modified,
    Group.MembersAdded,
    Group.MembersRemoved,
    Group.Purged,
    KeyPair.Created,
    KeyPair.Recreated,
    KeyPair.Deleted,
)


@dataclass
class Named:
    """What the history names, folded from its events in order."""

    domains: dict[str, None] = field(default_factory=dict)  # insertion order: first named first
    user_domains: dict[str, str] = field(default_factory=dict)  # user -> first domain naming it
    groups: dict[str, str] = field(default_factory=dict)  # live group -> its domain
    members: dict[str, dict[str, None]] = field(default_factory=dict)  # live group -> its members
    keypairs: dict[str, str] = field(default_factory=dict)  # live keypair -> its owner
    access_keys: dict[str, str] = field(default_factory=dict)  # keypair stream -> access key

    def is_empty(self) -> bool:
        return not (self.domains or self.user_domains)

    def fold(self, event: Any) -> None:
        stream = str(event.originator_id)
        if isinstance(event, Group.Created):
            self.domains.setdefault(event.fields["domain_name"], None)
            self.groups[stream] = event.fields["domain_name"]
        elif isinstance(event, Group.Modified) and "domain_name" in event.changes:
            moved_to = event.changes["domain_name"]["new"]
            self.domains.setdefault(moved_to, None)
            if stream in self.groups:
                self.groups[stream] = moved_to
        elif isinstance(event, Group.MembersAdded) and stream in self.groups:
            for user_id in event.user_ids:
                if user_id == ERASED:
                    continue  # a purged group's members: erased with it, they name no user
                self.user_domains.setdefault(str(user_id), self.groups[stream])
                self.members.setdefault(stream, {})[str(user_id)] = None
        elif isinstance(event, Group.MembersRemoved) and stream in self.members:
            for user_id in event.user_ids:
                self.members[stream].pop(str(user_id), None)
        elif isinstance(event, Group.Purged):
            self.groups.pop(stream, None)
            self.members.pop(stream, None)
        elif isinstance(event, KeyPair.Created | KeyPair.Recreated):
            if isinstance(event, KeyPair.Created):
                self.access_keys[stream] = event.key
            domain_name, user_id = event.fields["domain_name"], str(event.fields["user_id"])
            self.domains.setdefault(domain_name, None)
            self.user_domains.setdefault(user_id, domain_name)
            self.keypairs[self.access_keys[stream]] = user_id
        elif isinstance(event, KeyPair.Deleted):
            self.keypairs.pop(self.access_keys[stream], None)


def read_named(app: LedgerApplication, head: int) -> Named:
    """Folds the naming events up to `head`, read in batches of BATCH notifications."""
    topics = [get_topic(cls) for cls in _READ]
    named, position = Named(), 0
    while position < head:
        batch = app.recorder.select_notifications(
            start=position, limit=BATCH, stop=head, topics=topics, inclusive_of_start=False
        )
        if not batch:
            break
        for notification in batch:
            event = app.mapper.to_domain_event(notification)
            named.fold(event)
        position = batch[-1].id
    return named


def declare_domains_and_users(app: LedgerApplication) -> None:
    """Ensures the domain `default`; on a ledger written before domains existed, declares
    the domains and users its history names in the same append (the module docstring).

    The `default` domain's stream is the guard: this code creates it on every ledger it
    opens (an operator may delete the domain later; its stream stays), so a ledger without
    it was written by an older release. A fresh ledger gets the domain alone."""
    default_id = Domain.id_for(DEFAULT_DOMAIN)
    if app.get(default_id, Domain) is not None:
        return
    started, clock = datetime.now(UTC), time.perf_counter()
    named = read_named(app, app.recorder.max_notification_id() or 0)

    def create_default() -> None:
        if app.get(default_id, Domain) is None:
            app.save(Domain.create(DEFAULT_DOMAIN, DomainCreator(name=DEFAULT_DOMAIN).fields_json()))

    def migrate() -> None:
        if app.get(default_id, Domain) is not None:
            return  # another process migrated first: this one's append conflicted, and retried
        work = UnitOfWork(app.store)
        # Streams that hold nothing are created without a read each (one query per 500 ids).
        ids = [Domain.id_for(n) for n in (DEFAULT_DOMAIN, *named.domains)]
        ids += [User.id_for(u) for u in named.user_domains]
        fresh = set(ids) - existing_streams(app.recorder, ids)
        created: list[str] = []
        _domain(work, DEFAULT_DOMAIN, created, fresh)
        domains = {name: _domain(work, name, created, fresh) for name in named.domains}
        users = {
            user_id: _user(work, user_id, domain, created, fresh) for user_id, domain in named.user_domains.items()
        }
        for user_id, user in users.items():
            _domain(work, user.domain_name, created, fresh).add_user(user_id)  # the same loaded copy
        for group_id, domain_name in named.groups.items():
            domains[domain_name].add_group(group_id)
        for access_key, user_id in named.keypairs.items():
            users[user_id].add_keypair(access_key)
        for group_id, members in named.members.items():
            for user_id in members:
                users[user_id].join_group(group_id)
        summary = {
            "domains": sum(1 for kind in created if kind == EntityType.DOMAIN),
            "users": sum(1 for kind in created if kind == EntityType.USER),
            "groups": len(named.groups),
            "keypairs": len(named.keypairs),
        }
        work.add(LedgerMigration.done(DOMAINS_AND_USERS, summary))
        work.add(AuditRecord.record(_audit_entry(started, time.perf_counter() - clock, summary)))
        work.commit()

    if named.is_empty():
        with system_context():  # the ledger's own setup, as the system policy is (bootstrap)
            app.run(create_default, EntityType.DOMAIN, "create")
    else:
        app.run(migrate, EntityType.LEDGER_MIGRATION, "migrate")


def _domain(work: UnitOfWork, name: str, created: list[str], fresh: set[uuid.UUID]) -> Domain:
    """The domain `name`, declared (active, no limits, no default policy) unless live;
    `fresh`: ids known to have no stream yet (each is taken out when created)."""
    domain = None if _take(fresh, Domain.id_for(name)) else work.get(Domain.id_for(name), Domain)
    if domain is not None and not domain.is_deleted:
        return domain
    created.append(EntityType.DOMAIN)
    # A name read from stored events, accepted when they were: declared as it is, not
    # refused as a new name would be (`parse_new_name`); the fields hold no name.
    fields = DomainCreator.model_construct(name=name).fields_json()
    if domain is None:
        return work.add(Domain.create(name, fields))
    domain.recreate(fields)
    return domain


def _user(work: UnitOfWork, user_id: str, domain_name: str, created: list[str], fresh: set[uuid.UUID]) -> User:
    """The user `user_id`, declared in `domain_name` (no email, name or default) unless live."""
    user = None if _take(fresh, User.id_for(user_id)) else work.get(User.id_for(user_id), User)
    if user is not None and not user.is_deleted:
        return user
    created.append(EntityType.USER)
    # Its domain is a name read from stored events (as `_domain` declares it): not refused.
    fields = UserCreator.model_construct(user_id=uuid.UUID(user_id), domain_name=domain_name).fields_json()
    if user is None:
        return work.add(User.create(user_id, fields))
    user.recreate(fields)
    return user


def _take(ids: set[uuid.UUID], wanted: uuid.UUID) -> bool:
    if wanted in ids:
        ids.discard(wanted)
        return True
    return False


def _audit_entry(started: datetime, duration: float, summary: dict[str, Any]) -> dict[str, Any]:
    """The audit row of the migration: the system's doing, as the events' stamps say."""
    context = current_context()
    assert context is not None  # app.run opened it
    meta = ActionResultMeta(
        action_id=context.action_id,
        entity_type=EntityType.LEDGER_MIGRATION,
        operation="migrate",
        entity_id=DOMAINS_AND_USERS,
        status=ActionStatus.SUCCESS,
        description=(
            f"declared {plural(summary['domains'], 'domain')} and {plural(summary['users'], 'user')} named by"
            f" {plural(summary['groups'], 'group')} and {plural(summary['keypairs'], 'keypair')} of the history"
        ),
        started_at=started,
        ended_at=datetime.now(UTC),
        duration=duration,
    )
    return {
        **meta.to_json(),
        "request_id": None,
        "triggered_by": None,
        "access_key": None,
        "role": "system",
        "domain_name": None,
        "spec": {"migration": DOMAINS_AND_USERS},
    }
