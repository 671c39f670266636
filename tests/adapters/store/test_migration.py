"""A ledger written before domains and users were entities keeps opening: on first open,
the domains and users its groups and keypairs name are declared, with their relations
and the domain `default`, in one recorded migration under the system's name; once, even
when two processes open it at once. A fresh ledger gets the domain `default` alone."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import adapters.migrations as migrations
from adapters.bootstrap import Ledger, open_ledger
from adapters.migrations import declare_domains_and_users
from adapters.store import LedgerApplication, parse_url
from domain.actions.context import event_meta
from domain.domains import DeleteDomainAction, Domain
from domain.errors import DomainNotEmpty, UserInUse
from domain.group import Group, GroupCreator
from domain.keypair import KeyPair
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from domain.ledger_migration import DOMAINS_AND_USERS, LedgerMigration
from domain.user import DeleteUserAction, User
from domain.values import UserUpdateMode

U1, U2, U3, U4 = (uuid.UUID(int=0xA0 + i) for i in range(1, 5))
G1, G2, G3, G4 = (uuid.UUID(int=0x60 + i) for i in range(1, 5))


@pytest.fixture
def old_ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ledger as the release before domains and users wrote it: no domain `default`, no
    migration marker, groups and keypairs naming domains and users that are no entities."""
    with monkeypatch.context() as patched:
        patched.setattr(Ledger, "_ensure_default_domain", lambda self: None)
        with open_ledger(ledger_url) as ledger:
            write_old_history(ledger)
    yield ledger_url


def write_old_history(ledger: Ledger) -> None:
    app = ledger.app
    create = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
    asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))

    def group(group_id: uuid.UUID, domain: str, members: list[uuid.UUID]) -> Group:
        created = Group.create(str(group_id), GroupCreator(name=f"g{group_id.int}", domain_name=domain).fields_json())
        created.update_members(UserUpdateMode.ADD, [str(m) for m in members])
        return created

    g1, g2, g3, g4 = group(G1, "d1", [U1, U2]), group(G2, "d2", [U2, U3]), group(G3, "d1", []), group(G4, "d4", [U1])
    app.save(g1, g2, g3, g4)
    g2.update_members(UserUpdateMode.REMOVE, [str(U3)])  # U3 left: no membership of G2
    g3.modify({"domain_name": "d3"})  # moved: it belongs to d3 now
    g4.purge()  # gone: d4 is named, but holds no group, and U1 is in no group of it
    app.save(g2, g3, g4)
    keypairs = [
        KeyPair.create(access_key, {"user_id": str(owner), "domain_name": domain, "resource_policy": "p"})
        for access_key, owner, domain in (("AK1", U3, "d2"), ("AK2", U1, "d1"), ("AK3", U4, "d5"))
    ]
    app.save(*keypairs)
    keypairs[2].delete()
    app.save(keypairs[2])


def entity(app: LedgerApplication, cls: type[Any], key: str) -> Any:
    found = app.get(cls.id_for(key), cls)
    assert found is not None and not found.is_deleted, f"{cls.__name__} {key} is not live"
    return found


def assert_migrated(app: LedgerApplication) -> None:
    assert {d: sorted(entity(app, Domain, d).groups) for d in ("d1", "d2", "d3", "d4", "d5")} == {
        "d1": [str(G1)],
        "d2": [str(G2)],
        "d3": [str(G3)],
        "d4": [],
        "d5": [],
    }
    # A user's domain is the domain of the first group or keypair that named it.
    assert {str(u): entity(app, User, str(u)).domain_name for u in (U1, U2, U3, U4)} == {
        str(U1): "d1",
        str(U2): "d1",
        str(U3): "d2",
        str(U4): "d5",
    }
    assert sorted(entity(app, Domain, "d1").users) == sorted([str(U1), str(U2)])
    assert list(entity(app, Domain, "d2").users) == [str(U3)]
    assert list(entity(app, User, str(U3)).keypairs) == ["AK1"]
    assert list(entity(app, User, str(U1)).keypairs) == ["AK2"]
    assert entity(app, User, str(U4)).keypairs == {}  # its keypair was deleted
    # Each member still in a live group has the membership on its own stream too.
    assert {str(u): sorted(entity(app, User, str(u)).groups) for u in (U1, U2, U3, U4)} == {
        str(U1): [str(G1)],
        str(U2): sorted([str(G1), str(G2)]),
        str(U3): [],
        str(U4): [],
    }
    members = {str(g): sorted(entity(app, Group, str(g)).members) for g in (G1, G2, G3)}
    assert members == {str(G1): sorted([str(U1), str(U2)]), str(G2): [str(U2)], str(G3): []}
    marker = app.get(LedgerMigration.id_for(DOMAINS_AND_USERS), LedgerMigration)
    assert marker is not None
    assert marker.summary == {"domains": 6, "users": 4, "groups": 3, "keypairs": 2}  # `default` too
    assert entity(app, Domain, "default").groups == {}


def test_an_old_ledger_is_migrated_once_on_first_open(old_ledger: str) -> None:
    with open_ledger(old_ledger) as first:
        assert_migrated(first.app)
        head = first.app.recorder.max_notification_id()
    with open_ledger(old_ledger) as reopened:
        assert reopened.app.recorder.max_notification_id() == head  # nothing more written
        assert_migrated(reopened.app)
        assert entity(reopened.app, Domain, "default").name == "default"
        # The relations are the services' from now on.
        with pytest.raises(UserInUse):
            asyncio.run(reopened.services.user.delete_user(DeleteUserAction(user_id=U3)))
        with pytest.raises(DomainNotEmpty):
            asyncio.run(reopened.services.domain.delete_domain(DeleteDomainAction(domain_name="d3")))
        asyncio.run(reopened.services.domain.delete_domain(DeleteDomainAction(domain_name="d4")))
        # A migrated member's delete leaves the groups the migration recorded it in.
        asyncio.run(reopened.services.user.delete_user(DeleteUserAction(user_id=U2)))
        assert list(entity(reopened.app, Group, str(G1)).members) == [str(U1)]
        assert entity(reopened.app, Group, str(G2)).members == []


def test_the_migration_reads_in_batches_and_is_the_systems_doing(
    old_ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "BATCH", 2)  # several batches, a batch boundary inside a stream
    app = LedgerApplication(parse_url(old_ledger))
    try:
        head = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    with open_ledger(old_ledger) as ledger:
        assert_migrated(ledger.app)
        written = ledger.app.recorder.select_notifications(start=head + 1, limit=1000)
        events = [ledger.app.mapper.to_domain_event(n) for n in written]
        # Every event is the migration's: one action of the system, one append. Its audit
        # record names the action in its entry (records carry no stamp).
        audit = [e for e in events if type(e).__qualname__ == "AuditRecord.Recorded"]
        assert len(audit) == 1 and audit[0].entry["operation"] == "migrate" and audit[0].entry["role"] == "system"
        stamped = [e for e in events if e is not audit[0]]
        assert stamped and {(event_meta(e)["role"], event_meta(e)["operation"]) for e in stamped} == {
            ("system", "migrate")
        }
        assert {event_meta(e)["action_id"] for e in stamped} == {audit[0].entry["action_id"]}
        ledger.runner.catch_up()
        rows = ledger.queries.audit_log(entity_type="ledger_migration")
        assert [row.entity_id for row in rows] == [DOMAINS_AND_USERS]


def test_two_openers_deciding_at_once_migrate_once(old_ledger: str) -> None:
    """Both read the history; the first to save wins; the other conflicts on the marker
    (and the domains it would create), retries, and finds the migration done."""
    first, second = (LedgerApplication(parse_url(old_ledger)) for _ in range(2))
    try:
        real_save = first.save
        interleaved: list[bool] = []

        def save_after_the_other(*aggregates: Any, **kwargs: Any) -> Any:
            if not interleaved:
                interleaved.append(True)
                declare_domains_and_users(second)  # decides and saves while `first` waits
            return real_save(*aggregates, **kwargs)

        first.save = save_after_the_other  # type: ignore[method-assign]
        declare_domains_and_users(first)
        assert interleaved == [True]
        assert_migrated(first)
        assert_one_migration(first)
    finally:
        first.close()
        second.close()


def assert_one_migration(app: LedgerApplication) -> None:
    markers = list(app.events.get(LedgerMigration.id_for(DOMAINS_AND_USERS)))
    assert len(markers) == 1
    for name in ("default", "d1", "d2", "d3", "d4", "d5"):
        created = [e for e in app.events.get(Domain.id_for(name)) if type(e).__name__ == "Created"]
        assert len(created) == 1


def _open_at(url: str, barrier: Any) -> None:
    barrier.wait(timeout=60)
    with open_ledger(url, build_pending=False):
        pass


@pytest.mark.slow
def test_two_processes_opening_an_old_ledger_at_once_migrate_once(old_ledger: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    workers = [spawn.Process(target=_open_at, args=(old_ledger, barrier)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    app = LedgerApplication(parse_url(old_ledger))
    try:
        assert_migrated(app)
        assert_one_migration(app)
    finally:
        app.close()


def test_a_fresh_ledger_gets_the_domain_default_alone(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        head = ledger.app.recorder.max_notification_id()
        topics = [n.topic for n in ledger.app.recorder.select_notifications(start=1, limit=10)]
        assert topics == [
            "domain.keypair_resource_policy.aggregate:KeyPairResourcePolicy.Created",
            "domain.domains.aggregate:Domain.Created",
        ]
    with open_ledger(ledger_url) as reopened:
        assert reopened.app.recorder.max_notification_id() == head
        assert reopened.app.get(LedgerMigration.id_for(DOMAINS_AND_USERS), LedgerMigration) is None


def test_a_domain_named_dot_dot_by_old_history_is_still_declared(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`..` is refused as a new domain's name (no URL can name it), but an old group in
    domain `..` was accepted then: the migration still declares that domain, as stored."""
    with monkeypatch.context() as patched:
        patched.setattr(Ledger, "_ensure_default_domain", lambda self: None)
        with open_ledger(ledger_url) as ledger:
            ledger.app.save(Group.create(str(G1), GroupCreator(name="g", domain_name="..").fields_json()))
    with open_ledger(ledger_url) as migrated:
        assert list(entity(migrated.app, Domain, "..").groups) == [str(G1)]


@pytest.mark.parametrize("domain", ["..", "lab\u202e"])
def test_a_user_named_in_a_domain_old_history_accepted_is_still_declared(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, domain: str
) -> None:
    """A keypair of an older release in a domain a new name may not be (`..`, a bidi
    control) names its owner there: the migration declares the user in that domain, as
    stored, instead of refusing the name and leaving the ledger unopenable."""
    with monkeypatch.context() as patched:
        patched.setattr(Ledger, "_ensure_default_domain", lambda self: None)
        with open_ledger(ledger_url) as ledger:
            fields = {"user_id": str(U1), "domain_name": domain, "resource_policy": "default"}
            ledger.app.save(KeyPair.create("AK1", fields))
    with open_ledger(ledger_url) as migrated:
        assert entity(migrated.app, User, str(U1)).domain_name == domain
        assert list(entity(migrated.app, Domain, domain).users) == [str(U1)]
        assert list(entity(migrated.app, User, str(U1)).keypairs) == ["AK1"]
