"""`/v1/tokens` over HTTP: issue (the plaintext once), list, revoke; a revoked or expired
token is refused on the very next request; no token or hash in the list or the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.http import auth
from domain.token import token_hash
from tests.adapters.http.api import Api

BASE = "/v1/tokens"
POLICIES = "/v1/keypair-resource-policies"


def _issue(api: Api, **extra: Any) -> Any:
    payload = {"user_id": str(api.users["user"]), "role": "user", "domain_name": "alpha", **extra}
    return api.post(BASE, payload)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_issue_list_revoke_and_the_token_stops_working(api: Api) -> None:
    issued = _issue(api, name="ci", expires_in="1h")
    assert issued.status_code == 201, issued.text
    body = issued.json()
    token, token_id = body["token"], body["token_id"]
    assert token.startswith("plp_") and issued.headers["ETag"] == '"1"'
    assert body["user_id"] == str(api.users["user"]) and body["role"] == "user" and body["name"] == "ci"
    assert body["revoked_at"] is None and body["expires_at"] is not None
    assert api.client.get(POLICIES, headers=_as(token)).status_code == 200

    listed = api.get(BASE)
    assert listed.status_code == 200
    assert token_id in [t["token_id"] for t in listed.json()["items"]]
    assert all("token" not in t for t in listed.json()["items"])
    one = api.get(f"{BASE}/{token_id}")
    assert one.status_code == 200 and one.headers["ETag"] == '"1"'
    assert one.json() == {k: v for k, v in body.items() if k != "token"}

    revoked = api.post(f"{BASE}/{token_id}/revoke", None)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and revoked.headers["ETag"] == '"2"'
    refused = api.client.get(POLICIES, headers=_as(token))
    assert refused.status_code == 401 and refused.json()["code"] == "token_authenticate_revoked"
    assert token_id not in [t["token_id"] for t in api.get(BASE).json()["items"]]
    every = api.get(BASE, params={"all": True}).json()["items"]
    assert [t["revoked_at"] is not None for t in every if t["token_id"] == token_id] == [True]
    again = api.post(f"{BASE}/{token_id}/revoke", None)
    assert again.status_code == 409
    unknown = api.post(f"{BASE}/00000000-0000-4000-8000-000000000000/revoke", None)
    assert unknown.status_code == 404 and unknown.json()["code"] == "token_not_found"


def test_the_plaintext_never_appears_in_the_list_or_the_audit_trail(api: Api) -> None:
    body = _issue(api, name="secret").json()
    token = body["token"]
    api.post(f"{BASE}/{body['token_id']}/revoke", None)
    for shown in (
        api.get(BASE, params={"all": True}).text,
        api.get(f"{BASE}/{body['token_id']}").text,
        api.get("/v1/audit").text,
        api.get(f"/v1/audit?entity_id={api.users['user']}").text,
    ):
        assert token not in shown and token_hash(token) not in shown
    trail = api.ledger.queries.audit_log(entity_type="token")
    assert [e.operation for e in trail][-2:] == ["issue", "revoke"]
    assert all(token not in repr(e) and token_hash(token) not in repr(e) for e in trail)
    # The harness's own tokens (issued through the service) are nowhere either.
    everything = api.get("/v1/audit").text
    assert not any(t in everything or token_hash(t) in everything for t in api.tokens.values())


def test_the_answer_holding_the_plaintext_is_not_to_be_stored_by_a_cache(api: Api) -> None:
    """The issue answer is the only place the token appears, yet it carried no
    `Cache-Control`: a proxy or client cache could keep it (RFC 6749 5.1 asks no-store of
    an answer holding a token). The other answers hold no secret and are left alone."""
    issued = _issue(api, name="cached")
    assert issued.status_code == 201 and issued.headers["Cache-Control"] == "no-store", issued.headers
    assert "Cache-Control" not in api.get(f"{BASE}/{issued.json()['token_id']}").headers


def test_idempotency_key_is_refused_so_no_plaintext_is_kept_for_a_replay(api: Api) -> None:
    before = api.get(BASE).json()["items"]
    refused = api.post(
        BASE,
        {"user_id": str(api.users["user"]), "role": "user", "domain_name": "alpha"},
        **{"Idempotency-Key": "issue-1"},
    )
    assert refused.status_code == 400 and refused.json()["field"] == "Idempotency-Key"
    assert api.get(BASE).json()["items"] == before


def test_only_a_superadmin_issues_lists_and_revokes(api: Api) -> None:
    own = api.get(BASE).json()["items"][0]["token_id"]
    for role in ("admin", "user", "service", "foreign_admin"):
        denied = api.post(
            BASE,
            {
                "user_id": str(api.users[role if role != "foreign_admin" else "user"]),
                "role": "superadmin",
                "domain_name": "alpha",
            },
            role=role,
        )
        assert denied.status_code == 403, (role, denied.text)
        assert api.get(BASE, role=role).json() == {"items": [], "next_after": None}
        hidden = api.get(f"{BASE}/{own}", role=role)
        assert hidden.status_code == 404 and hidden.json()["code"] == "token_not_found"
        assert api.post(f"{BASE}/{own}/revoke", None, role=role).status_code == 403
    assert api.client.get(POLICIES, headers=api.as_("superadmin")).status_code == 200


def test_the_list_pages_in_issue_order(api: Api) -> None:
    for n in range(3):
        _issue(api, name=f"t{n}")
    whole = api.get(BASE).json()
    assert whole["next_after"] is None and len(whole["items"]) == len(api.tokens) + 3
    seen: list[str] = []
    after: str | None = None
    while True:
        got = api.get(BASE, params={"limit": 4, **({} if after is None else {"after": after})}).json()
        seen.extend(t["token_id"] for t in got["items"])
        after = got["next_after"]
        if after is None:
            break
    assert seen == [t["token_id"] for t in whole["items"]]
    assert [t["name"] for t in whole["items"]][-3:] == ["t0", "t1", "t2"]
    assert api.get(BASE, params={"after": "-1"}).json()["field"] == "after"


def test_a_cursor_that_names_no_issued_token_is_refused_not_an_empty_last_page(api: Api) -> None:
    """A cursor past the store's head, or at a position where no token was issued, answered
    an empty page with no `next_after`, which a client paging through reads as the end of
    the list; the audit trail's cursor is refused alike. A token revoked since its page was
    read still places the next one."""
    first, second = (_issue(api, name=f"c{n}").json()["token_id"] for n in range(2))
    page = api.get(BASE, params={"limit": len(api.tokens) + 1}).json()
    assert page["items"][-1]["token_id"] == first and page["next_after"] is not None
    api.post(f"{BASE}/{first}/revoke", None)
    after = api.get(BASE, params={"after": page["next_after"]}).json()
    assert [t["token_id"] for t in after["items"]] == [second]
    head = api.ledger.app.recorder.max_notification_id() or 0
    for cursor in (str(head + 1000), str(int(page["next_after"]) + 1)):
        refused = api.get(BASE, params={"after": cursor})
        assert refused.status_code == 400 and refused.json()["field"] == "after", (cursor, refused.text)


def test_an_expired_token_is_401(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _issue(api, expires_in="1m").json()["token"]
    assert api.client.get(POLICIES, headers=_as(token)).status_code == 200

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(UTC) + timedelta(minutes=2)

    monkeypatch.setattr(auth, "datetime", Later)  # the clock authenticate is given
    expired = api.client.get(POLICIES, headers=_as(token))
    assert expired.status_code == 401 and expired.json()["code"] == "token_authenticate_expired"
    assert api.get(POLICIES).status_code == 200  # a token without expiry still works


def test_refusals_name_the_field(api: Api) -> None:
    assert api.post(BASE, [1, 2]).json()["field"] == "body"
    unknown = _issue(api, warp=1)
    assert unknown.status_code == 400 and unknown.json()["field"] == "warp"
    assert _issue(api, role="emperor").json()["field"] == "role"
    assert _issue(api, expires_in="forever").json()["field"] == "expires_in"
    elsewhere = api.post(BASE, {"user_id": str(api.foreign_user), "role": "user", "domain_name": "alpha"})
    assert elsewhere.status_code in (400, 404) and elsewhere.json()["field"] == "user_id"
    assert api.get(f"{BASE}/not-a-uuid").status_code == 400


def test_a_malformed_token_id_is_refused_in_the_ledgers_words(api: Api) -> None:
    """As a user's or a session's id is (not in the request parser's own words)."""
    for answer in (api.get(f"{BASE}/not-a-uuid"), api.post(f"{BASE}/not-a-uuid/revoke", None)):
        assert answer.status_code == 400 and answer.json()["field"] == "token_id"
        assert answer.json()["detail"] == "token_id: 'not-a-uuid' is not a UUID"
    assert api.get("/v1/users/not-a-uuid").json()["detail"] == "user_id: 'not-a-uuid' is not a UUID"
