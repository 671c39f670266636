"""A real `ledger serve` process on a loopback port, driven over the network with httpx:
authentication failures (a revocation takes effect on the very next request), ETag and
If-Match, a POST retried after its response was lost, the operator endpoints and
`--workers 2`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.bootstrap import Ledger
from domain.token import RevokeTokenAction
from domain.token.service import token_id_of
from tests.adapters.http.api import HOME, issue, root_run
from tests.adapters.http.server import HOST, Server, Tokens, populated, serving
from tests.conftest import BACKENDS, PROJECT, fresh_url, require_postgres

pytestmark = pytest.mark.slow
BASE = "/v1/keypair-resource-policies"


@dataclass
class Live:
    ledger: Ledger  # the same ledger, opened in this process (the operator's side)
    tokens: Tokens
    server: Server
    client: httpx.Client

    def headers(self, role: str = "superadmin", **extra: str) -> dict[str, str]:
        return self.tokens.headers(role, **extra)


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    """One server per backend for the module (each test uses its own names and tokens)."""
    backend = str(request.param)
    if backend == "postgresql":
        require_postgres()
    with (
        fresh_url(backend) as url,
        populated(url) as (ledger, tokens),
        serving(url) as server,
        httpx.Client(base_url=server.base, timeout=10.0) as client,
    ):
        yield Live(ledger, tokens, server, client)


def _name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def test_authentication_failures_are_401(live: Live) -> None:
    missing = live.client.get(BASE)
    assert missing.status_code == 401 and missing.json()["code"] == "token_authenticate_missing"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = live.client.get(BASE, headers={"Authorization": "Bearer plp_not_a_token"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "token_authenticate_unknown"
    assert "plp_not_a_token" not in unknown.text

    # Revoked by the operator while the server runs: the very next request is refused.
    user = live.tokens.users["admin"]
    token = issue(live.ledger, user, "admin", HOME, name="to revoke")
    bearer = {"Authorization": f"Bearer {token}"}
    assert live.client.get(f"{BASE}/default", headers=bearer).status_code == 200
    root_run(live.ledger, "token", "revoke_token", RevokeTokenAction(token_id=token_id_of(token)))
    revoked = live.client.get(f"{BASE}/default", headers=bearer)
    assert revoked.status_code == 401 and revoked.json()["code"] == "token_authenticate_revoked"
    assert live.client.get(f"{BASE}/default", headers=live.headers("admin")).status_code == 200

    short = issue(live.ledger, user, "admin", HOME, name="short", expires_in=1)
    issued = datetime.now(UTC)
    while (datetime.now(UTC) - issued).total_seconds() < 1.0:
        time.sleep(0.1)
    expired = live.client.get(f"{BASE}/default", headers={"Authorization": f"Bearer {short}"})
    assert expired.status_code == 401 and expired.json()["code"] == "token_authenticate_expired"


def test_etag_and_if_match(live: Live) -> None:
    name = _name()
    created = live.client.post(BASE, json={"name": name}, headers=live.headers())
    assert created.status_code == 201, created.text
    tag = created.headers["ETag"]
    got = live.client.get(f"{BASE}/{name}", headers=live.headers())
    assert got.headers["ETag"] == tag
    changed = live.client.patch(f"{BASE}/{name}", json={"idle_timeout": 60}, headers=live.headers(**{"If-Match": tag}))
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    stale = live.client.patch(f"{BASE}/{name}", json={"idle_timeout": 90}, headers=live.headers(**{"If-Match": tag}))
    assert stale.status_code == 412 and stale.json()["code"] == "ledger_precondition_failed"
    assert live.client.get(f"{BASE}/{name}", headers=live.headers()).json()["idle_timeout"] == 60
    gone = live.client.delete(f"{BASE}/{name}", headers=live.headers(**{"If-Match": changed.headers["ETag"]}))
    assert gone.status_code == 200


def _raw_post(server: Server, path: str, payload: str, headers: dict[str, str]) -> socket.socket:
    """Sends a POST on a bare connection and returns it unread (the caller drops it)."""
    body = payload.encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{server.port}", "Content-Type: application/json"]
    lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock = socket.create_connection((HOST, server.port), timeout=10)
    sock.sendall("\r\n".join(lines).encode() + body)
    return sock


def _history(live: Live, name: str) -> list[dict[str, Any]]:
    found = live.client.get(f"{BASE}/{name}/history", headers=live.headers())
    assert found.status_code == 200, found.text
    entries: list[dict[str, Any]] = found.json()
    return entries


def _wait_until_exists(live: Live, name: str) -> None:
    deadline = time.monotonic() + 10
    while live.client.get(f"{BASE}/{name}", headers=live.headers()).status_code != 200:
        assert time.monotonic() < deadline, f"{name} was never created"
        time.sleep(0.02)


def test_a_post_whose_response_was_lost_is_retried_once(live: Live) -> None:
    # Cut right after sending: the first may or may not have run; the retry is answered
    # either way, and the policy is created once.
    name = _name()
    key = {"Idempotency-Key": f"cut-{name}"}
    payload = f'{{"name": "{name}", "idle_timeout": 7}}'
    _raw_post(live.server, BASE, payload, live.headers(**key)).close()
    retried = live.client.post(BASE, json={"name": name, "idle_timeout": 7}, headers=live.headers(**key))
    assert retried.status_code == 201, retried.text
    assert retried.json()["name"] == name and retried.json()["idle_timeout"] == 7
    assert [e["event"] for e in _history(live, name)].count("Created") == 1

    # Applied, but its response never read: the retry is the first response, replayed.
    name = _name()
    key = {"Idempotency-Key": f"lost-{name}"}
    sock = _raw_post(live.server, BASE, f'{{"name": "{name}"}}', live.headers(**key))
    try:
        _wait_until_exists(live, name)
    finally:
        sock.close()
    replayed = live.client.post(BASE, json={"name": name}, headers=live.headers(**key))
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.headers["ETag"] == '"1"'
    assert replayed.json() == live.client.get(f"{BASE}/{name}", headers=live.headers()).json()
    assert [e["event"] for e in _history(live, name)] == ["Created"]


def test_operator_endpoints_and_documents(live: Live) -> None:
    assert live.client.post(BASE, json={"name": _name()}, headers=live.headers()).status_code == 201
    ready = live.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["head"] > 0
    assert live.client.get("/metrics").status_code == 401  # its labels name every domain that acted
    metrics = live.client.get("/metrics", headers=live.headers())
    assert metrics.status_code == 200
    assert "ledger_http_requests" in metrics.text and "backendai_action_count" in metrics.text
    document = live.client.get("/openapi.json")
    assert document.status_code == 200 and BASE in document.json()["paths"]
    docs = live.client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_head_and_allow_over_the_network(live: Live) -> None:
    """uvicorn sends no body for HEAD whatever the app does: the headers are the GET's."""
    name = _name()
    assert live.client.post(BASE, json={"name": name}, headers=live.headers()).status_code == 201
    for path in ("/healthz", f"{BASE}/{name}"):
        got = live.client.get(path, headers=live.headers())
        head = live.client.head(path, headers=live.headers())
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-length"] == got.headers["content-length"], path
        assert head.headers.get("etag") == got.headers.get("etag"), path
    refused = live.client.put(f"{BASE}/{name}", headers=live.headers())
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, PATCH, DELETE"


def test_every_scrape_of_two_workers_counts_the_whole_server() -> None:
    """With --workers 2 a scrape is answered by whichever worker takes it, and each counted
    only its own actions: the totals swung between scrapes (9, then 11, of 20 creates),
    which Prometheus reads as counter resets."""
    with fresh_url("sqlite") as url, populated(url) as (_, tokens), serving(url, workers=2) as server:
        for _ in range(20):
            # A connection per request, so the kernel hands them to either worker.
            with httpx.Client(base_url=server.base, timeout=10.0) as client:
                created = client.post(BASE, json={"name": _name()}, headers=tokens.headers())
                assert created.status_code == 201, created.text
        seen = set()
        for _ in range(10):
            with httpx.Client(base_url=server.base, timeout=10.0) as client:
                scraped = client.get("/metrics", headers=tokens.headers())
            assert scraped.status_code == 200
            families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
            creates = [
                s.value
                for s in families["backend_action"].samples
                if s.name == "backend_action_total"
                and s.labels["operation"] == "create"
                and s.labels["status"] == "success"
            ]
            seen.add(sum(creates))
        assert seen == {20.0}


def test_two_workers_start_and_serve() -> None:
    # SQLite only: two processes on one file is the harder case, and PostgreSQL has two
    # servers on one ledger in test_http_durability.
    with fresh_url("sqlite") as url, populated(url) as (_, tokens), serving(url, workers=2) as server:
        names = [_name() for _ in range(6)]
        for name in names:
            # A connection per request, so the kernel may hand them to either worker.
            with httpx.Client(base_url=server.base, timeout=10.0) as client:
                created = client.post(BASE, json={"name": name}, headers=tokens.headers())
                assert created.status_code == 201, created.text
        with httpx.Client(base_url=server.base, timeout=10.0) as client:
            assert client.get("/readyz").status_code == 200
            listed = client.get(BASE, params={"name_prefix": "p-"}, headers=tokens.headers()).json()
            assert sorted(p["name"] for p in listed["items"]) == sorted(names)


def test_the_workers_of_a_killed_server_stop_and_free_its_port() -> None:
    """`kill -9` of a `--workers 2` server (an operator, the OOM killer) left its workers
    serving for good, with the code they had loaded, and holding the port: the restarted
    server then failed with `cannot listen on ...: Address already in use`."""
    with fresh_url("sqlite") as url, populated(url), serving(url, workers=2) as server:
        workers = [pid for pid in _children(server.pid) if b"spawn_main" in _cmdline(pid)]
        assert len(workers) == 2
        killed = server.pid
        os.kill(killed, signal.SIGKILL)
        server.process.wait(timeout=10)  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "the workers of the killed server go on serving"
            time.sleep(0.1)
        # Its metrics folder outlived it (its removal never ran); the next server tidies it.
        assert list(Path(tempfile.gettempdir()).glob(f"ledger-metrics-{killed}-*"))
        server.start()  # on the same port
        with httpx.Client(base_url=server.base, timeout=10.0) as client:
            assert client.get("/healthz").status_code == 200
        assert not list(Path(tempfile.gettempdir()).glob(f"ledger-metrics-{killed}-*"))


def test_a_worker_whose_server_died_while_it_was_starting_stops() -> None:
    """On a loaded machine the second worker may still be starting when the server is
    killed: it found itself orphaned already at start, watched nothing, and served for good
    (the test above then timed out in a full run)."""
    watching = (
        "import time; from adapters.http.app import _stop_when_orphaned; "
        f"_stop_when_orphaned('{os.getpid() + 10**7}'); time.sleep(60)"  # a supervisor that is not its parent
    )
    worker = subprocess.Popen([sys.executable, "-c", watching], cwd=PROJECT)
    try:
        assert worker.wait(timeout=30) == -signal.SIGTERM
    finally:
        worker.kill()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_stopped_by_sigterm_exits_0(workers: int) -> None:
    """A service manager stops a server with SIGTERM, after which it exits 0, as a follower
    does and `--workers 2` did; one worker died of the signal uvicorn raised again once it
    had shut down (exit 143 to a shell), as if it had been killed."""
    with fresh_url("sqlite") as url, populated(url), serving(url, workers=workers) as server:
        assert server.process is not None
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0, server.output()
