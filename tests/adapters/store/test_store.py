"""The event store adapter: URLs, metadata stamps, snapshots, errors at the boundary."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.persistence import OperationalError
from eventsourcing.utils import get_topic
from psycopg_pool import PoolTimeout

from adapters.bootstrap import Ledger, open_ledger
from adapters.store import parse_url
from adapters.store.application import SNAPSHOT_INTERVAL
from adapters.store.config import ServerUnreachable
from domain.actions import ActionTriggerMeta
from domain.actions.context import event_meta
from domain.audit.record import AuditRecord
from domain.errors import InvalidAPIParameters, StoreUnavailable
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    KeyPairResourcePolicy,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
    policy_id,
)
from tests.conftest import SUPERADMIN
from tests.domain.fakes import ensure_user
from tests.proxy import CuttableProxy


def test_url_forms() -> None:
    assert parse_url("sqlite:///ledger.db").env["SQLITE_DBNAME"] == "ledger.db"
    assert parse_url("sqlite:////tmp/a/b.db").env["SQLITE_DBNAME"] == "/tmp/a/b.db"
    memory = parse_url("sqlite:///:memory:")
    assert "mode=memory" in memory.env["SQLITE_DBNAME"] and memory.read_model_url == "sqlite://"
    pg = parse_url("postgresql://alice:s3cret@db.internal:6543/ledger?schema=prod")
    assert (pg.env["POSTGRES_HOST"], pg.env["POSTGRES_PORT"], pg.env["POSTGRES_DBNAME"]) == (
        "db.internal",
        "6543",
        "ledger",
    )
    assert (pg.env["POSTGRES_USER"], pg.env["POSTGRES_PASSWORD"], pg.schema) == ("alice", "s3cret", "prod")


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path}/from-env.db")
    assert parse_url(None).env["SQLITE_DBNAME"] == f"{tmp_path}/from-env.db"


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "sqlite://", "nonsense"])
def test_unsupported_urls_are_domain_errors(url: str) -> None:
    with pytest.raises(InvalidAPIParameters) as raised:
        open_ledger(url)
    assert raised.value.field == "url"


def test_unreachable_postgres_is_a_domain_error() -> None:
    with pytest.raises(StoreUnavailable):
        open_ledger("postgresql://postgres@127.0.0.1:9/nowhere")


def test_a_postgresql_server_lost_after_opening_fails_commands_and_queries_at_once(postgres_url: str) -> None:
    """The library retries a read or an append ten times, each waiting out the pool's
    timeout for a connection: with the server gone a command took 20 s to fail and a
    query 50 s. A server that accepts no connection is now said at the first timeout."""
    upstream = urlsplit(postgres_url)
    proxy = CuttableProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432))
    with open_ledger(proxy.url(postgres_url)) as ledger:
        service = ledger.services.keypair_resource_policy
        create = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="before"))
        asyncio.run(service.create_keypair_resource_policy(create))
        proxy.cut()
        lost = "event store (write|read) failed: the PostgreSQL server does not answer: connection failed"
        create = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="after"))
        with pytest.raises(StoreUnavailable, match=lost):
            asyncio.run(service.create_keypair_resource_policy(create))
        with pytest.raises(StoreUnavailable, match=lost):
            ledger.queries.keypair_resource_policies()


def test_a_busy_postgresql_pool_is_waited_for_as_before(postgres_url: str) -> None:
    """A pool that times out while the server answers is busy, not lost: the library's own
    error, which it retries, not `ServerUnreachable`."""
    with open_ledger(postgres_url) as ledger:
        datastore = ledger.app.recorder.datastore  # type: ignore[attr-defined]
        # Take the whole pool with a generous wait (opening a connection on a loaded machine
        # can take longer than the short timeout); only the request under test uses 0.2 s.
        held = [datastore.pool.getconn(timeout=30) for _ in range(datastore.pool.max_size)]
        datastore.pool.timeout = 0.2
        try:
            with pytest.raises(OperationalError) as waited, datastore.get_connection():
                pass
            assert not isinstance(waited.value, ServerUnreachable)
            assert isinstance(waited.value.__cause__, PoolTimeout)
        finally:
            for conn in held:
                datastore.pool.putconn(conn)


def test_every_event_carries_action_request_and_actor(ledger: Ledger) -> None:
    meta = ActionTriggerMeta(
        user_id=uuid.UUID(int=7), access_key="AKAUDITOR", role="superadmin", domain_name="acme", request_id="req-42"
    )
    processors = ledger.processors.keypair_resource_policy
    creator = KeyPairResourcePolicyCreator(name="stamped")
    asyncio.run(
        processors.create_keypair_resource_policy.wait_for_complete(
            CreateKeyPairResourcePolicyAction(creator=creator), meta
        )
    )
    asyncio.run(
        processors.modify_keypair_resource_policy.wait_for_complete(
            ModifyKeyPairResourcePolicyAction(name="stamped", modifier={"idle_timeout": 60}), meta
        )
    )
    events = list(ledger.app.events.get(policy_id("stamped")))
    assert len(events) == 2
    stamps = [event_meta(event) for event in events]
    for stamp in stamps:
        assert stamp["request_id"] == "req-42"
        assert stamp["user_id"] == str(uuid.UUID(int=7))
        assert (stamp["access_key"], stamp["role"], stamp["domain_name"]) == ("AKAUDITOR", "superadmin", "acme")
        uuid.UUID(stamp["action_id"])
    assert stamps[0]["operation"] == "create" and stamps[1]["operation"] == "modify"
    assert stamps[0]["action_id"] != stamps[1]["action_id"]


def test_direct_service_calls_are_stamped_as_system(memory_ledger: Ledger) -> None:
    creator = KeyPairResourcePolicyCreator(name="direct")
    asyncio.run(
        memory_ledger.services.keypair_resource_policy.create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator=creator)
        )
    )
    (event,) = memory_ledger.app.events.get(policy_id("direct"))
    stamp = event_meta(event)
    assert stamp["role"] == "system" and "user_id" not in stamp  # unset fields are not stored
    uuid.UUID(stamp["action_id"])


def test_audit_records_carry_no_stamp_and_stamps_no_nulls(ledger: Ledger) -> None:
    """A record's entry already names the action and the actor: it is stored without the
    stamp every other event carries, and a stamp stores no field without a value."""
    meta = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
    create = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    asyncio.run(
        create.wait_for_complete(
            CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="lean")), meta
        )
    )
    stored = ledger.app.recorder.select_notifications(start=1, limit=10_000)
    record = next(n for n in stored if n.topic == get_topic(AuditRecord.Recorded))
    entry = vars(ledger.app.mapper.to_domain_event(record))
    assert "meta" not in entry and b'"meta"' not in record.state
    (policy_event,) = ledger.app.events.get(policy_id("lean"))
    stamp = event_meta(policy_event)
    assert stamp == {
        "action_id": entry["entry"]["action_id"],
        "role": "superadmin",
        "domain_name": "default",
        "entity_type": "keypair_resource_policy",
        "operation": "create",
    }


def test_long_streams_use_snapshots_and_replay_to_the_same_state(ledger: Ledger) -> None:
    asyncio.run(
        ledger.services.keypair_resource_policy.create_keypair_resource_policy(
            CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="busy"))
        )
    )
    keys = [f"AKSNAP{i:04d}" for i in range(SNAPSHOT_INTERVAL + 30)]
    owner = ensure_user(ledger.app.store, uuid.uuid4(), "d")
    for key in keys:
        asyncio.run(
            ledger.processors.keypair.create_keypair.wait_for_complete(
                CreateKeyPairAction(access_key=key, user_id=owner, domain_name="d", resource_policy="busy"),
                SUPERADMIN,
            )
        )
    for key in keys[:10]:
        asyncio.run(ledger.services.keypair.delete_keypair(DeleteKeyPairAction(access_key=key)))
    snapshots = list(ledger.app.snapshots.get(policy_id("busy")))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL]
    loaded = ledger.app.get(policy_id("busy"), KeyPairResourcePolicy)
    replayed = project_aggregate(None, ledger.app.events.get(policy_id("busy")))  # every event, no snapshot
    assert loaded is not None and sorted(loaded.keypairs) == keys[10:]
    assert loaded.keypairs == replayed.keypairs and loaded.fields == replayed.fields
    assert ledger.queries.keypair_resource_policy("busy") is not None


def _refuses_everything_once_closed(url: str) -> None:
    ledger = open_ledger(url)
    create = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(create))
    ledger.close()
    again = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="q"))
    calls = [
        lambda: ledger.queries.keypair_resource_policy("p"),
        lambda: ledger.queries.state_at("keypair_resource_policy", "p"),
        lambda: asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(again)),
        lambda: asyncio.run(
            ledger.processors.keypair_resource_policy.create_keypair_resource_policy.wait_for_complete(
                again, SUPERADMIN
            )
        ),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match=r"event store (read|write) failed: the ledger is closed"):
            call()


def test_a_closed_ledger_refuses_commands_and_queries_as_store_unavailable(ledger_url: str) -> None:
    """A SQLite ledger used after close() let the library's ConnectionPoolClosedError out
    of every command and query, no LedgerError; a PostgreSQL one said StoreUnavailable,
    but only after the library had retried each call ten times (2 s)."""
    _refuses_everything_once_closed(ledger_url)


def test_a_closed_in_memory_ledger_refuses_commands_and_queries_as_store_unavailable() -> None:
    _refuses_everything_once_closed("sqlite:///:memory:")
