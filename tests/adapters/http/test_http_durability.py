"""Durability of the HTTP write path against a real server: 16 clients issue commands,
the server is killed with SIGKILL midway and restarted, the clients retry what was not
acknowledged (the same Idempotency-Key on a POST); then every acknowledged command is in
the store, none is applied twice, and the hash chain verifies. And two servers on one
PostgreSQL ledger: a read on one with `min_position` sees the write made on the other."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.store.chain import verify
from tests.adapters.http.server import Server, Tokens, populated, serving_many
from tests.conftest import fresh_url

pytestmark = pytest.mark.slow
BASE = "/v1/keypair-resource-policies"
CLIENTS = 16
POLICIES = 5  # per client, each created then modified
RETRY_FOR = 30.0  # seconds a client keeps retrying one command through the outage


@dataclass
class Acks:
    """What the server acknowledged (a 2xx, or the 409 that says the keyed POST was applied)."""

    created: set[str] = field(default_factory=set)
    modified: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0
    retried: int = 0

    def create_acked(self, name: str) -> None:
        with self.lock:
            self.created.add(name)
            self.count += 1

    def modify_acked(self, name: str, sessions: int) -> None:
        with self.lock:
            self.modified[name] = sessions
            self.count += 1


def _send(client: httpx.Client, acks: Acks, request: httpx.Request) -> httpx.Response:
    """The request until it is answered: a cut connection or a refused one is retried
    as is (same body, same Idempotency-Key)."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return client.send(request)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            with acks.lock:
                acks.retried += 1
            time.sleep(0.1)


def _client_work(base: str, tokens: Tokens, client_no: int, acks: Acks) -> None:
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for i in range(POLICIES):
            name = f"c{client_no:02d}-{i}"
            headers = tokens.headers(**{"Idempotency-Key": f"create-{name}"})
            create = client.build_request("POST", BASE, json={"name": name}, headers=headers)
            created = _send(client, acks, create)
            applied = created.status_code == 409 and created.json()["code"] == "idempotency_already_applied"
            assert created.status_code == 201 or applied, created.text
            acks.create_acked(name)
            sessions = 100 + i
            body = {"max_concurrent_sessions": sessions}
            modify = client.build_request("PATCH", f"{BASE}/{name}", json=body, headers=tokens.headers())
            modified = _send(client, acks, modify)
            assert modified.status_code == 200, modified.text
            acks.modify_acked(name, sessions)


def test_acknowledged_commands_survive_kill_9(backend: str) -> None:
    with fresh_url(backend) as url, populated(url) as (ledger, tokens):
        server = Server(url)
        try:
            server.start()
            acks = Acks()
            with ThreadPoolExecutor(CLIENTS) as pool:
                work = [pool.submit(_client_work, server.base, tokens, n, acks) for n in range(CLIENTS)]
                total = CLIENTS * POLICIES * 2
                while acks.count < total // 2 and not any(w.done() for w in work):
                    time.sleep(0.005)
                at_kill = acks.count
                server.kill()
                server.start()  # same URL, same port: the clients find it again
                for w in work:
                    w.result()
            assert at_kill < total, "the server was killed after the work was done"

            with httpx.Client(base_url=server.base, timeout=10.0) as client:
                for name in sorted(acks.created):
                    history = client.get(f"{BASE}/{name}/history", headers=tokens.headers())
                    assert history.status_code == 200, history.text
                    events = [e["event"] for e in history.json()]
                    assert events == ["Created", "Modified"], (name, events)
                    got = client.get(f"{BASE}/{name}", headers=tokens.headers()).json()
                    assert got["max_concurrent_sessions"] == acks.modified[name]
                listed = client.get(BASE, params={"name_prefix": "c"}, headers=tokens.headers())
                assert sorted(p["name"] for p in listed.json()["items"]) == sorted(acks.created)
        finally:
            server.close()
        assert len(acks.created) == len(acks.modified) == CLIENTS * POLICIES
        # What `ledger verify` walks: the hash chain over every stored event.
        report = verify(ledger.app.recorder)
        assert report.ok and report.checked > 2 * CLIENTS * POLICIES, report.to_json()


def test_reads_on_one_server_see_writes_made_on_the_other(postgres_url: str) -> None:
    with populated(postgres_url) as (_, tokens), serving_many(postgres_url, 2) as servers:

        def work(worker: int) -> int:
            checked = 0
            with httpx.Client(timeout=10.0) as client:
                for i in range(6):
                    name = f"w{worker}-{i}"
                    writer, reader = servers[(worker + i) % 2], servers[(worker + i + 1) % 2]
                    created = client.post(f"{writer.base}{BASE}", json={"name": name}, headers=tokens.headers())
                    assert created.status_code == 201, created.text
                    position = int(created.headers["Ledger-Position"])
                    seen = client.get(
                        f"{reader.base}{BASE}",
                        params={"name_prefix": name, "min_position": position},
                        headers=tokens.headers(),
                    )
                    assert seen.status_code == 200 and [p["name"] for p in seen.json()["items"]] == [name]
                    changed = client.patch(
                        f"{reader.base}{BASE}/{name}", json={"idle_timeout": 60 + i}, headers=tokens.headers()
                    )
                    assert changed.status_code == 200, changed.text
                    position = int(changed.headers["Ledger-Position"])
                    got = client.get(
                        f"{writer.base}{BASE}/{name}", params={"min_position": position}, headers=tokens.headers()
                    )
                    assert got.status_code == 200 and got.json()["idle_timeout"] == 60 + i
                    checked += 2
            return checked

        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(work, range(4))) == 4 * 6 * 2
