"""Concurrent twins over HTTP: the same Idempotency-Key sent at once applies once and every
twin gets the first response; the same If-Match sent at once lets exactly one through."""

from __future__ import annotations

import sqlite3
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import open_ledger
from adapters.http import idempotency
from adapters.http.idempotency import IdempotentResponses, StoredResponse, responses
from adapters.store.chain import verify
from adapters.store.key_check import check_keys
from domain.errors import StoreUnavailable
from domain.idempotency import REQUEST_HASH_SUBJECT
from domain.user import EraseUserAction
from tests.adapters.http.api import Api, root_run
from tests.killing import dying_after_erasures, run_until_killed

BASE = "/v1/keypair-resource-policies"
TWINS = 8


def test_twins_with_one_key_apply_once_and_share_the_first_response(api: Api) -> None:
    body = {"name": "twin", "max_concurrent_sessions": 4}
    with ThreadPoolExecutor(TWINS) as pool:
        answers = list(pool.map(lambda _: api.post(BASE, body, **{"Idempotency-Key": "twin-1"}), range(TWINS)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    assert sum(1 for a in answers if "Idempotent-Replayed" not in a.headers) == 1
    assert [e["event"] for e in api.get(f"{BASE}/twin/history").json()] == ["Created"]
    audited = [e for e in api.ledger.queries.audit_log(entity_id="twin") if e.status == "success"]
    assert len(audited) == 1


def test_twins_with_one_if_match_let_exactly_one_through(api: Api) -> None:
    api.post(BASE, {"name": "race"})

    def modify(n: int) -> int:
        answer = api.patch(f"{BASE}/race", {"idle_timeout": 100 + n}, **{"If-Match": '"1"'})
        return int(answer.status_code)

    with ThreadPoolExecutor(TWINS) as pool:
        statuses = sorted(pool.map(modify, range(TWINS)))
    assert statuses == [200] + [412] * (TWINS - 1)
    assert [e["event"] for e in api.get(f"{BASE}/race/history").json()] == ["Created", "Modified"]


def test_a_response_lost_after_the_commit_is_never_applied_again(api: Api) -> None:
    key = {"Idempotency-Key": "lost-1"}
    first = api.post(BASE, {"name": "lost"}, **key)
    assert first.status_code == 201
    with api.ledger.read_models.begin() as conn:  # as if the process died before caching it
        conn.execute(responses.delete())
    again = api.post(BASE, {"name": "lost"}, **key)
    assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied"
    assert [e["event"] for e in api.get(f"{BASE}/lost/history").json()] == ["Created"]
    assert api.post(BASE, {"name": "other"}, **key).status_code == 422


def test_responses_older_than_a_day_are_pruned(api: Api) -> None:
    kept = IdempotentResponses(api.ledger.read_models, api.ledger.app.erased_after)
    kept.store("a" * 64, "h", StoredResponse(201, {}, "{}"), 0)
    assert kept.prune(datetime.now(UTC) + timedelta(hours=23)) == 0
    assert kept.prune(datetime.now(UTC) + timedelta(days=1, minutes=1)) == 1
    with api.ledger.read_models.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(responses)).scalar() == 0


def test_an_erasure_clears_every_cached_response(api: Api) -> None:
    """A cached response is a copy: it may hold an erased subject's values (issue 14)."""
    key = {"Idempotency-Key": "secret-group"}
    body = {"name": "secret", "domain_name": "alpha", "description": "a description to be erased"}
    created = api.post("/v1/groups", body, **key)
    assert created.status_code == 201, created.text
    with api.ledger.read_models.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(responses)).scalar() == 1
    assert api.post(f"/v1/groups/{created.json()['id']}/purge", None).status_code == 200
    with api.ledger.read_models.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(responses)).scalar() == 0
    again = api.post("/v1/groups", body, **key)
    assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied"
    assert "a description to be erased" not in again.text


def test_if_match_reveals_nothing_of_an_entity_the_caller_may_not_see(api: Api) -> None:
    """The version is compared inside the command, after its permission check: a foreign
    admin's If-Match, right or wrong, is the 404 of an unknown entity, never a 412."""
    created = api.post("/v1/groups", {"name": "hidden", "domain_name": "alpha"})
    group = created.json()["id"]
    unknown = api.patch(f"/v1/groups/{uuid.uuid4()}", {"description": "x"}, "foreign_admin", **{"If-Match": '"1"'})
    for tag in ('"1"', '"99"'):
        answer = api.patch(f"/v1/groups/{group}", {"description": "x"}, "foreign_admin", **{"If-Match": tag})
        assert answer.status_code == 404 and answer.json()["code"] == unknown.json()["code"]
    # A no-op change (nothing appended) still honours If-Match for a caller who may write.
    stale = api.patch(f"/v1/groups/{group}", {"name": "hidden"}, **{"If-Match": '"99"'})
    assert stale.status_code == 412 and stale.json()["code"] == "ledger_precondition_failed"
    current = api.patch(f"/v1/groups/{group}", {"name": "hidden"}, **{"If-Match": created.headers["ETag"]})
    assert current.status_code == 200 and current.json()["changed"] is False


def test_a_cached_response_is_not_served_while_an_erasure_could_not_clear_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure is committed when clearing the responses fails: it answers its success,
    and no cached response is served until the clearing, run again, has passed."""
    key = {"Idempotency-Key": "secret-group-2"}
    body = {"name": "secret2", "domain_name": "alpha", "description": "a description to be erased"}
    created = api.post("/v1/groups", body, **key)
    assert created.status_code == 201, created.text
    real_forget_all = idempotency._forget_all

    def locked(db: object) -> int:
        raise StoreUnavailable("read model database is locked")

    monkeypatch.setattr(idempotency, "_forget_all", locked)
    purged = api.post(f"/v1/groups/{created.json()['id']}/purge", None)
    assert purged.status_code == 200, purged.text
    refused = api.post("/v1/groups", body, **key)
    assert refused.status_code == 503 and "a description to be erased" not in refused.text
    monkeypatch.setattr(idempotency, "_forget_all", real_forget_all)
    again = api.post("/v1/groups", body, **key)
    assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied"
    assert "a description to be erased" not in again.text
    assert [e.status for e in api.ledger.queries.audit_log(operation="purge")] == ["success"]


def _cached(api: Api) -> int:
    with api.ledger.read_models.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(responses)).scalar() or 0)


def _secret_group(api: Api, key: str) -> tuple[dict[str, str], uuid.UUID]:
    body = {"name": key, "domain_name": "alpha", "description": "a description to be erased"}
    created = api.post("/v1/groups", body, **{"Idempotency-Key": key})
    assert created.status_code == 201, created.text
    assert _cached(api) == 1
    return body, uuid.UUID(created.json()["id"])


def test_a_response_an_erasure_follows_is_never_served_though_its_clearing_was_lost(api: Api) -> None:
    """The erasing process's clearing is in its memory only: lost with it, the response it
    owed to drop is found by the retry, which sees the erasure after it and drops it."""
    body, group = _secret_group(api, "secret-group-3")
    with dying_after_erasures(api.ledger.app):
        assert api.post(f"/v1/groups/{group}/purge", None).status_code == 200
    assert _cached(api) == 1
    again = api.post("/v1/groups", body, **{"Idempotency-Key": "secret-group-3"})
    assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied", again.text
    assert "erasure" in again.json()["detail"] and "a description to be erased" not in again.text
    assert _cached(api) == 0


def test_ledger_compact_drops_the_responses_a_dead_eraser_left(api: Api) -> None:
    """No server may start again and no client retry: `ledger compact`, the operator's step
    after erasures, rewrote the table with the owed response's row live in it, the erased
    description in clear."""
    _, group = _secret_group(api, "secret-group-6")
    with dying_after_erasures(api.ledger.app):
        assert api.post(f"/v1/groups/{group}/purge", None).status_code == 200
    assert _cached(api) == 1
    api.ledger.compact()
    assert _cached(api) == 0


def test_a_response_stored_after_an_erasure_cleared_the_table_does_not_stay(api: Api) -> None:
    """A response is written just after its request's commit: an erasure committed and
    cleared in between (another process, or another request of this one) left it stored,
    its erased values in clear in the database until a retry or a server start."""
    _, group = _secret_group(api, "secret-group-5")
    with api.ledger.read_models.connect() as conn:
        row = conn.execute(sa.select(responses)).one()
    assert api.post(f"/v1/groups/{group}/purge", None).status_code == 200
    assert _cached(api) == 0
    late = IdempotentResponses(api.ledger.read_models, api.ledger.app.erased_after)
    late.store(row.key, row.request_hash, StoredResponse(row.status, dict(row.headers), row.body), row.position)
    assert _cached(api) == 0


KILLED_ERASER = textwrap.dedent(
    """
    import asyncio, sys, time, uuid
    from adapters.bootstrap import open_ledger
    from domain.actions import ActionTriggerMeta
    from domain.group import PurgeGroupAction
    root = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
    with open_ledger(sys.argv[1]) as ledger:
        def killed_here(subjects):
            print("committed", flush=True)
            time.sleep(600)
        ledger.app.erasure_listeners.insert(0, killed_here)
        action = PurgeGroupAction(group_id=uuid.UUID(sys.argv[2]))
        asyncio.run(ledger.processors.group.purge_group.wait_for_complete(action, root))
    """
)


@pytest.mark.slow
def test_a_server_starting_drops_the_responses_a_killed_eraser_left(api: Api, ledger_url: str) -> None:
    body, group = _secret_group(api, "secret-group-4")
    assert run_until_killed(KILLED_ERASER, [ledger_url, str(group)], 1) == ["committed"]
    assert _cached(api) == 1  # the erasure is committed; the process that owed the clearing is gone
    IdempotentResponses(api.ledger.read_models, api.ledger.app.erased_after)  # what a server's start runs
    assert _cached(api) == 0
    again = api.post("/v1/groups", body, **{"Idempotency-Key": "secret-group-4"})
    assert again.status_code == 409 and "a description to be erased" not in again.text


def test_a_table_of_an_older_release_is_made_again(api: Api) -> None:
    """Its rows have no position to check against an erasure: copies, dropped."""
    with api.ledger.read_models.begin() as conn:
        conn.execute(sa.text("DROP TABLE http_idempotent_responses"))
        conn.execute(sa.text("CREATE TABLE http_idempotent_responses (key VARCHAR(64) PRIMARY KEY, body TEXT)"))
        conn.execute(sa.text("INSERT INTO http_idempotent_responses VALUES ('k', 'old')"))
    kept = IdempotentResponses(api.ledger.read_models, api.ledger.app.erased_after)
    assert _cached(api) == 0
    kept.store("b" * 64, "h", StoredResponse(201, {}, "{}"), 0)
    assert _cached(api) == 1


def test_a_server_starting_beside_a_writing_one_creates_the_table(tmp_path: Any) -> None:
    """Two `ledger serve` started at once on a SQLite ledger no server had run on: the one
    that came second failed its startup ("database is locked", twice) when the other
    committed between its check for the table and its CREATE, as a server catching up its
    read models does at once."""
    path = tmp_path / "l.db"
    with open_ledger(f"sqlite:///{path}") as ledger:

        def another_process_commits(*_args: Any, **_kwargs: Any) -> None:
            other = sqlite3.connect(path, timeout=0)
            try:
                with other:
                    other.execute("CREATE TABLE IF NOT EXISTS elsewhere (x)")
                    other.execute("INSERT INTO elsewhere VALUES (1)")
            except sqlite3.OperationalError:
                pass  # this process holds the write lock: nothing can commit in between
            finally:
                other.close()

        sa.event.listen(responses, "before_create", another_process_commits)
        try:
            IdempotentResponses(ledger.read_models, ledger.app.erased_after)
        finally:
            sa.event.remove(responses, "before_create", another_process_commits)
        with ledger.read_models.connect() as conn:
            assert sa.inspect(conn).has_table(responses.name)


def test_a_single_valued_header_given_twice_is_refused_not_read_as_its_first(api: Api) -> None:
    """Two Authorization, Idempotency-Key or X-Request-ID lines were read as the first, where
    a proxy in front may read the last (another token, another key): the request was stored
    under a key its sender may never have meant. Each is a 400 naming the header, and
    nothing is stored."""
    auth = ("Authorization", api.as_("superadmin")["Authorization"])
    head = api.ledger.app.recorder.max_notification_id()
    cases = {
        "Authorization": [auth, ("Authorization", api.as_("user")["Authorization"])],
        "Idempotency-Key": [auth, ("Idempotency-Key", "first"), ("Idempotency-Key", "second")],
        "X-Request-ID": [auth, ("X-Request-ID", "req-1"), ("X-Request-ID", "req-2")],
    }
    for header, headers in cases.items():
        answer = api.client.post(BASE, json={"name": f"twice-{header}"}, headers=headers)
        assert answer.status_code == 400, (header, answer.text)
        assert answer.json()["field"] == header and "more than once" in answer.json()["detail"], answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert api.ledger.app.recorder.max_notification_id() == head
    # The key was not taken by the refused request: a request of its own with it applies.
    alone = api.post(BASE, {"name": "twice-alone"}, **{"Idempotency-Key": "first"})
    assert alone.status_code == 201 and "Idempotent-Replayed" not in alone.headers, alone.text
    for path in (BASE, "/metrics"):  # a read, and the scrape (which documents the 400)
        read = api.client.get(path, headers=cases["Authorization"])
        assert read.status_code == 400 and read.json()["field"] == "Authorization", read.text
        documented = api.client.get("/openapi.json").json()["paths"][path]["get"]["responses"]
        assert "400" in documented, path


def test_a_key_sent_again_with_another_query_is_another_request(api: Api) -> None:
    """A purge's `accept_clear_history` is in its query: the same key and body with the other
    value was taken for the same request. Only erasing routes take a query (any other is
    refused), and an erasure takes what its retry could be compared with, so the hash is
    checked here, and the retries are told the request applied."""
    body = {"a": 1}
    hashes = {idempotency.request_hash("POST", "/v1/x", body, query) for query in ([], [("q", "1")], [("q", "2")])}
    assert len(hashes) == 3
    assert idempotency.request_hash("POST", "/v1/x", body, [("q", "1"), ("r", "2")]) == idempotency.request_hash(
        "POST", "/v1/x", body, [("r", "2"), ("q", "1")]
    )  # the parameters in any order
    gid = api.post("/v1/groups", {"name": "q", "domain_name": "alpha"}).json()["id"]
    headers = api.as_("superadmin", **{"Idempotency-Key": "purge-q"})
    first = api.client.post(f"/v1/groups/{gid}/purge?accept_clear_history=false", headers=headers)
    assert first.status_code == 200, first.text
    # The purge erased the group's key, so its cached answer is gone, and the key that sealed
    # its request's hash: a retry is told it applied, whatever its query.
    for query in ("false", "true"):
        again = api.client.post(f"/v1/groups/{gid}/purge?accept_clear_history={query}", headers=headers)
        assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied"
    # Without a query a request hashes as it always did (this hash was stored before the
    # query counted), so a key stored then still replays.
    assert (
        idempotency.request_hash("POST", "/v1/x", {"a": 1}, [])
        == "85de538a0f65540ac4252f056e1b7cbc37512d9c801b4069aafc235bfde9f832"
    )


def _stored_states(api: Api) -> bytes:
    notifications = api.ledger.app.recorder.select_notifications(start=1, limit=1_000_000)
    return b"".join(n.state for n in notifications)


def test_a_request_s_hash_cannot_test_a_guess_at_an_erased_value(api: Api) -> None:
    """The record of a request kept its body's SHA-256 in clear, for good: after the user's
    erasure, hashing a guessed body (the erased email among it) and finding it stored
    confirmed the guess. The hash is sealed under a key every erasure destroys."""
    user = str(uuid.uuid4())
    body = {"user_id": user, "domain_name": "alpha", "email": "ada.guessed@example.org", "full_name": "Ada G."}
    key = {"Idempotency-Key": "erased-user-1"}
    assert api.post("/v1/users", body, **key).status_code == 201
    guessed = idempotency.request_hash("POST", "/v1/users", body)
    assert guessed.encode() not in _stored_states(api)  # sealed from the start
    assert api.post("/v1/users", body, **key).status_code == 201  # replayed: readable till an erasure
    assert api.post("/v1/users", {**body, "full_name": "Other"}, **key).status_code == 422

    erase = api.post(f"/v1/users/{user}/erase", {"reason": "asked to be forgotten"})
    assert erase.status_code == 200, erase.text
    assert api.ledger.app.keys.key(REQUEST_HASH_SUBJECT) is None
    for retry in (body, {**body, "full_name": "Other"}):  # nothing left to compare either with
        again = api.post("/v1/users", retry, **key)
        assert again.status_code == 409 and again.json()["code"] == "idempotency_already_applied", again.text
        assert "erasure" in again.json()["detail"]
    # No erasing event names the destroyed key's subject: `verify` knows every erasure takes it.
    assert check_keys(api.ledger.app).bad == []

    # Requests after the erasure are compared again, under a new key; the chain and keys verify.
    later = {"Idempotency-Key": "after-erasure-1"}
    policy = {"name": "after-erasure"}
    assert api.post(BASE, policy, **later).status_code == 201
    assert api.post(BASE, {"name": "other"}, **later).status_code == 422
    assert verify(api.ledger.app).ok
    assert check_keys(api.ledger.app).bad == []


def test_an_erasure_in_another_process_takes_the_request_hashes_from_this_one_too(api: Api, ledger_url: str) -> None:
    """`ledger user erase` beside a running `ledger serve`: the server had the key sealing
    request hashes cached, and nothing made it read the erasing event (the eraser catches
    the shared read models up itself). So it still opened every hash recorded before the
    erasure (a guessed body was 422 or not), and sealed the hashes of later requests under
    the destroyed key (their retries were 409 once the server restarted)."""
    user = str(uuid.uuid4())
    body = {"user_id": user, "domain_name": "alpha", "email": "ada.elsewhere@example.org", "full_name": "Ada E."}
    key = {"Idempotency-Key": "erased-elsewhere-1"}
    assert api.post("/v1/users", body, **key).status_code == 201
    with open_ledger(ledger_url) as eraser:  # another process: a key cache of its own
        root_run(eraser, "user", "erase_user", EraseUserAction(user_id=uuid.UUID(user), reason="asked"))
    for retry in (body, {**body, "email": "someone.else@example.org"}):
        again = api.post("/v1/users", retry, **key)
        assert again.status_code == 409 and "erasure" in again.json()["detail"], again.text

    later = {"Idempotency-Key": "after-erasure-elsewhere"}
    assert api.post(BASE, {"name": "after-elsewhere"}, **later).status_code == 201
    api.ledger.app.keys.forget_all()  # as a restarted server holds no key
    assert api.post(BASE, {"name": "after-elsewhere"}, **later).status_code == 201
