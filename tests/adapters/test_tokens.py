"""Tokens through the processors on both backends: issued by a superadmin only, audited
without the plaintext (inputs and results alike), never stored in any event, and
authenticated, revoked and expired against the real store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.bootstrap import Ledger
from domain.errors import ExpiredToken, InsufficientPermission, RevokedToken, UnknownToken
from domain.token import IssueTokenAction, RevokeTokenAction, Token, authenticate, token_hash
from tests.actions import DOMAIN, build_world, meta, run


def every_stored_byte(ledger: Ledger) -> bytes:
    notifications = ledger.app.recorder.select_notifications(start=1, limit=1_000_000)
    return b"\n".join(n.state for n in notifications)


def test_a_token_lives_authenticates_and_is_revoked_without_its_plaintext_stored(ledger: Ledger) -> None:
    world = build_world(ledger)
    action = IssueTokenAction(user_id=world.user, role="admin", domain_name=DOMAIN, expires_in="1h", name="ops")
    with pytest.raises(InsufficientPermission):
        run(ledger, "token", "issue_token", action, meta("admin"))
    issued = run(ledger, "token", "issue_token", action)
    store = ledger.app.store
    actor = authenticate(store, issued.token, datetime.now(UTC))
    assert (actor.user_id, actor.role, actor.domain_name) == (world.user, "admin", DOMAIN)
    assert store.get(issued.data.token_id, Token) is not None  # the id is the stream
    expires_at = issued.data.expires_at
    with pytest.raises(ExpiredToken):
        authenticate(store, issued.token, expires_at)
    with pytest.raises(UnknownToken):
        authenticate(store, issued.token[:-1], datetime.now(UTC))

    run(ledger, "token", "revoke_token", RevokeTokenAction(token_id=issued.data.token_id))
    with pytest.raises(RevokedToken):
        authenticate(store, issued.token, datetime.now(UTC))

    stored = every_stored_byte(ledger)
    assert issued.token.encode() not in stored and issued.token[4:].encode() not in stored
    assert token_hash(issued.token).encode() in stored
    audit = [row for row in ledger.queries.audit_log() if row.entity_type == "token"]
    assert [(row.operation, row.status) for row in audit] == [
        ("issue", "denied"),
        ("issue", "success"),
        ("revoke", "success"),
    ]
    assert audit[1].entity_id == str(issued.data.token_id)
    assert issued.token not in repr(audit)
