"""Commands through HTTP (a real `ledger serve` on loopback) vs the in-process processor path.

Run: .venv/bin/python bench/http_api.py [--pairs 300] [--rounds 3] [--postgres [URL]]

Two equivalent ledgers (each with the HTTP harness's domains, users and tokens):
- http: a `ledger serve` subprocess (one worker) over the first; each client is a thread
  with its own keep-alive connection (the standard library's http.client) sending POST
  /v1/keypair-resource-policies then PATCH /v1/keypair-resource-policies/{name} (create +
  modify, as the superadmin's token); http-httpx: the same through httpx clients;
- in-process: the same create + modify actions run by the policy processors of the
  second ledger, opened in this process, as the same actor (each thread on its own event
  loop, like a server worker thread: `adapters.http.calls.run_coroutine`).
Each runs with 1 client and with 16 concurrent clients, `--pairs` pairs per client count
and round, the two paths alternating (their order swapped every round), so a shared
machine's drift hits both alike. Printed: medians over the rounds of commands/s, the
http / in-process ratio (goal with 1 client: >= 0.5), and p50/p99 latency per command
over every round (goal with 16 clients on SQLite: p99 < 50 ms).

SQLite files in a temporary folder by default; `--postgres` uses two fresh schemas in the
benches' database (`ledger_bench`, made when missing, on LEDGER_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432), dropped afterwards.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

# Named http_api.py, not http.py: as bench/'s first entry on sys.path, an `http` module
# here would shadow the standard library's for every script in the folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import http.client

import httpx
import psycopg
from concurrency import PG_DATABASE, postgres_ready  # bench/ is first on sys.path when run as a script

from adapters.bootstrap import Ledger, open_ledger
from adapters.http.calls import run_coroutine
from domain.actions import ActionTriggerMeta
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, ModifyKeyPairResourcePolicyAction

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the test harness imports starlette's TestClient, which warns
    from tests.adapters.http.api import HOME
    from tests.adapters.http.server import Server, Tokens, tokens_for

BASE = "/v1/keypair-resource-policies"
SLOTS = {"cpu": "8", "mem": "16g"}
SERVER = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
CLIENT_COUNTS = (1, 16)

Pair = Callable[[str], list[float]]  # runs create + modify of one policy; its two latencies


class HttpPath:
    """Create + modify through the server, one keep-alive connection per client thread."""

    def __init__(self, server: Server, tokens: Tokens) -> None:
        self.base = server.base
        self.headers = tokens.headers()
        self.local = threading.local()
        self.clients: list[httpx.Client] = []
        self.lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(base_url=self.base, headers=self.headers, timeout=30.0)
            with self.lock:
                self.clients.append(client)
        return client

    def pair(self, name: str) -> list[float]:
        client = self._client()
        t0 = time.perf_counter()
        created = client.post(BASE, json={"name": name, "total_resource_slots": SLOTS})
        t1 = time.perf_counter()
        modified = client.patch(f"{BASE}/{name}", json={"max_concurrent_sessions": 10})
        t2 = time.perf_counter()
        if created.status_code != 201 or modified.status_code != 200:
            raise SystemExit(f"http: {created.status_code} {created.text} / {modified.status_code} {modified.text}")
        return [t1 - t0, t2 - t1]

    def close(self) -> None:
        for client in self.clients:
            client.close()


class LeanHttpPath:
    """The same requests over the standard library's keep-alive `http.client`: what the
    server costs, without httpx's own per-request work (about 0.4 ms here, measured by
    running both against one server), which a platform's client need not pay."""

    def __init__(self, server: Server, tokens: Tokens) -> None:
        self.port = server.port
        self.headers = {**tokens.headers(), "Content-Type": "application/json"}
        self.local = threading.local()

    def _send(self, method: str, path: str, body: object) -> tuple[int, bytes]:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=json.dumps(body), headers=self.headers)
        answer = conn.getresponse()
        return answer.status, answer.read()

    def pair(self, name: str) -> list[float]:
        t0 = time.perf_counter()
        created = self._send("POST", BASE, {"name": name, "total_resource_slots": SLOTS})
        t1 = time.perf_counter()
        modified = self._send("PATCH", f"{BASE}/{name}", {"max_concurrent_sessions": 10})
        t2 = time.perf_counter()
        if created[0] != 201 or modified[0] != 200:
            raise SystemExit(f"http: {created} / {modified}")
        return [t1 - t0, t2 - t1]


class InProcessPath:
    """The same actions through the ledger's processors, as the superadmin token's actor."""

    def __init__(self, ledger: Ledger, tokens: Tokens) -> None:
        processors = ledger.processors.keypair_resource_policy
        self.create = processors.create_keypair_resource_policy
        self.modify = processors.modify_keypair_resource_policy
        user = tokens.users["superadmin"]
        self.meta = ActionTriggerMeta(user_id=user, access_key=None, role="superadmin", domain_name=HOME)

    def pair(self, name: str) -> list[float]:
        creator = {"name": name, "total_resource_slots": SLOTS}
        t0 = time.perf_counter()
        run_coroutine(self.create.wait_for_complete(CreateKeyPairResourcePolicyAction(creator=creator), self.meta))
        t1 = time.perf_counter()
        modify = ModifyKeyPairResourcePolicyAction(name=name, modifier={"max_concurrent_sessions": 10})
        run_coroutine(self.modify.wait_for_complete(modify, self.meta))
        t2 = time.perf_counter()
        return [t1 - t0, t2 - t1]


def run(pair: Pair, prefix: str, clients: int, pairs: int) -> tuple[float, list[float]]:
    """`pairs` create + modify pairs spread over `clients` threads: commands/s, latencies."""
    names = [f"{prefix}-{i}" for i in range(pairs)]
    shares = [names[c::clients] for c in range(clients)]

    def client(share: list[str]) -> list[float]:
        latencies: list[float] = []
        for name in share:
            latencies += pair(name)
        return latencies

    with ThreadPoolExecutor(clients) as pool:
        began = time.perf_counter()
        results = list(pool.map(client, shares))
        spent = time.perf_counter() - began
    return 2 * pairs / spent, [x for r in results for x in r]


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


@contextmanager
def locations(postgres: str | None) -> Iterator[tuple[str, str]]:
    """Two fresh, empty ledger locations (the server's, the in-process one)."""
    if postgres is None:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as folder:
            yield f"sqlite:///{folder}/http.db", f"sqlite:///{folder}/inprocess.db"
        return
    # The benches' own database (the test suite's databases come and go with its runs).
    if not postgres_ready(postgres):
        sys.exit(1)
    schemas = [f"bench_http_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        yield f"{postgres}/{PG_DATABASE}?schema={schemas[0]}", f"{postgres}/{PG_DATABASE}?schema={schemas[1]}"
    finally:
        with psycopg.connect(f"{postgres}/{PG_DATABASE}", autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="create+modify pairs per client count and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres", nargs="?", const=SERVER, default=None, metavar="URL", help=f"PostgreSQL server (default {SERVER})"
    )
    args = parser.parse_args()
    # A PostgreSQL ledger needs a master key (docs/ERASURE.md); a benchmark's is throwaway.
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    backend = "PostgreSQL" if args.postgres else "SQLite"
    rates: dict[tuple[str, int], list[float]] = {}
    latencies: dict[tuple[str, int], list[float]] = {}
    with ExitStack() as stack:
        http_url, local_url = stack.enter_context(locations(args.postgres))
        with open_ledger(http_url) as server_ledger:  # the server owns it from here on
            http_tokens = tokens_for(server_ledger)
        server = Server(http_url)
        stack.callback(server.close)
        server.start()
        local = stack.enter_context(open_ledger(local_url))
        paths: dict[str, Pair] = {}
        http = HttpPath(server, http_tokens)
        stack.callback(http.close)
        paths["http"] = LeanHttpPath(server, http_tokens).pair
        paths["http-httpx"] = http.pair
        paths["in-process"] = InProcessPath(local, tokens_for(local)).pair
        for name, pair in paths.items():  # warm-up, untimed: connections, caches, first imports
            run(pair, f"warm-{name}", 16, 32)
        for r in range(args.rounds):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))
            for clients in CLIENT_COUNTS:
                for name in order:
                    rate, measured = run(paths[name], f"{name}-r{r}-c{clients}", clients, args.pairs)
                    rates.setdefault((name, clients), []).append(rate)
                    latencies.setdefault((name, clients), []).extend(measured)

    print(f"HTTP commands on {backend} (create+modify pairs per client count and round: {args.pairs}, ", end="")
    print(f"rounds: {args.rounds}, medians; one server worker on loopback, keep-alive)")
    for clients in CLIENT_COUNTS:
        local_rate = statistics.median(rates["in-process", clients])
        print(f"  {clients:2d} client{'s' if clients > 1 else ' '}")
        for name in ("http", "http-httpx"):
            rate = statistics.median(rates[name, clients])
            goal = "   (goal: p99 < 50 ms on SQLite)" if clients == 16 and name == "http" else ""
            print(f"    {name:<19} {rate:8.0f} commands/s   {percentiles(latencies[name, clients])}{goal}")
        print(f"    in-process          {local_rate:8.0f} commands/s   {percentiles(latencies['in-process', clients])}")
        for name in ("http", "http-httpx"):
            pairs = list(zip(rates[name, clients], rates["in-process", clients], strict=True))
            ratio = statistics.median(a / b for a, b in pairs)
            per_round = " ".join(f"{a / b:.2f}" for a, b in pairs)
            goal = "   (goal >= 0.5)" if clients == 1 and name == "http" else ""
            print(f"    {name + ' / in-process':<19} {ratio:8.2f}x{goal}   (per round: {per_round})")


if __name__ == "__main__":
    main()
