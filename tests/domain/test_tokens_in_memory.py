"""Bearer tokens on the in-memory store: issued for a live user (and their keypair), the
plaintext handed out once and never stored, authenticated by hash, refused when unknown,
revoked or expired."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.errors import (
    AuthenticationFailed,
    ExpiredToken,
    InvalidAPIParameters,
    ObjectNotFound,
    RevokedToken,
    TokenAlreadyRevoked,
    UnknownToken,
)
from domain.keypair import CreateKeyPairAction, KeyPairService
from domain.token import (
    IssueTokenAction,
    IssueTokenActionResult,
    RevokeTokenAction,
    Token,
    TokenService,
    authenticate,
    parse_expires_in,
    token_hash,
)
from tests.domain.fakes import InMemoryStore, ensure_user

USER = uuid.UUID(int=7)
OTHER = uuid.UUID(int=8)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    ensure_user(store, USER, "alpha")
    ensure_user(store, OTHER, "alpha")
    return store


def issue(store: InMemoryStore, **given: object) -> IssueTokenActionResult:
    action = IssueTokenAction(**{"user_id": USER, "role": "admin", "domain_name": "alpha", **given})
    return asyncio.run(TokenService(store).issue_token(action))


def now() -> datetime:
    return datetime.now(UTC)


def test_an_issued_token_authenticates_as_the_actor_it_names(store: InMemoryStore) -> None:
    issued = issue(store, name="ci runner")
    assert issued.token.startswith("plp_") and len(issued.token) > 40
    actor = authenticate(store, issued.token, now())
    assert (actor.user_id, actor.role, actor.domain_name, actor.access_key) == (USER, "admin", "alpha", None)
    assert actor.token_id == issued.data.token_id == Token.id_for(token_hash(issued.token))
    assert issued.data.name == "ci runner" and issued.data.expires_at is None
    assert store.events(issued.data.token_id) == ["TokenIssued"]


def test_two_issues_give_two_tokens(store: InMemoryStore) -> None:
    first, second = issue(store), issue(store)
    assert first.token != second.token and first.data.token_id != second.data.token_id


def test_the_plaintext_is_never_stored_only_its_hash(store: InMemoryStore) -> None:
    issued = issue(store, expires_in="1h")
    asyncio.run(TokenService(store).revoke_token(RevokeTokenAction(token_id=issued.data.token_id)))
    stored = repr([vars(event) for events in store.streams.values() for event in events])
    assert issued.token not in stored and issued.token.removeprefix("plp_") not in stored
    assert token_hash(issued.token) in stored
    assert issued.token not in repr(issued)  # nor in the result's repr (logs, tracebacks)


def test_unknown_revoked_and_expired_tokens_are_refused(store: InMemoryStore) -> None:
    for presented in ("", "plp_nonsense", "x" * 10_000, issue(store).token + "x"):
        with pytest.raises(UnknownToken):
            authenticate(store, presented, now())
    revoked = issue(store)
    asyncio.run(TokenService(store).revoke_token(RevokeTokenAction(token_id=revoked.data.token_id)))
    with pytest.raises(RevokedToken) as refused:
        authenticate(store, revoked.token, now())
    assert revoked.token not in str(refused.value) and refused.value.status == 401
    assert refused.value.code == "token_authenticate_revoked"
    expiring = issue(store, expires_in="90m")
    assert expiring.data.expires_at is not None
    authenticate(store, expiring.token, expiring.data.expires_at - timedelta(seconds=1))
    with pytest.raises(ExpiredToken):
        authenticate(store, expiring.token, expiring.data.expires_at)


def test_a_stream_of_another_kind_is_no_token(store: InMemoryStore) -> None:
    """A token whose hash would name a user's stream id is still unknown (ids are per kind)."""
    with pytest.raises(AuthenticationFailed):
        authenticate(store, str(USER), now())


def test_revoking_twice_or_an_unknown_id_is_refused(store: InMemoryStore) -> None:
    issued = issue(store)
    service = TokenService(store)
    revoked = asyncio.run(service.revoke_token(RevokeTokenAction(token_id=issued.data.token_id)))
    assert revoked.data.revoked_at is not None
    with pytest.raises(TokenAlreadyRevoked):
        asyncio.run(service.revoke_token(RevokeTokenAction(token_id=issued.data.token_id)))
    for unknown in (uuid.UUID(int=404), USER):
        with pytest.raises(ObjectNotFound) as missing:
            asyncio.run(service.revoke_token(RevokeTokenAction(token_id=unknown)))
        assert missing.value.code == "token_not_found"


def test_the_holder_must_be_a_live_user_of_the_domain_and_own_the_keypair(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound, match="user_id"):
        issue(store, user_id=uuid.UUID(int=404))
    ensure_user(store, uuid.UUID(int=9), "beta")
    with pytest.raises(ObjectNotFound, match=r"user_id: user .* not found in domain 'alpha'$"):
        issue(store, user_id=uuid.UUID(int=9))  # of domain beta: answered as unknown
    with pytest.raises(ObjectNotFound, match="access_key"):
        issue(store, access_key="AKABSENT")
    create = CreateKeyPairAction(access_key="AKOTHER", user_id=OTHER, domain_name="alpha")
    asyncio.run(KeyPairService(store).create_keypair(create))
    with pytest.raises(InvalidAPIParameters, match=r"access_key.*another user"):
        issue(store, access_key="AKOTHER")
    assert issue(store, user_id=OTHER, access_key="AKOTHER").data.access_key == "AKOTHER"


def test_a_token_stops_speaking_for_a_deleted_or_recreated_holder(store: InMemoryStore) -> None:
    """Only the token's own revocation and expiry were checked: a deleted user's admin
    token went on creating groups and listing the domain's users."""
    from domain.keypair import DeleteKeyPairAction
    from domain.user import DeleteUserAction, UserService

    create = CreateKeyPairAction(access_key="AKHELD", user_id=OTHER, domain_name="alpha")
    asyncio.run(KeyPairService(store).create_keypair(create))
    by_user, by_keypair = issue(store), issue(store, user_id=OTHER, access_key="AKHELD")
    assert authenticate(store, by_user.token, now()).user_id == USER
    asyncio.run(KeyPairService(store).delete_keypair(DeleteKeyPairAction(access_key="AKHELD")))
    with pytest.raises(RevokedToken, match="keypair AKHELD, which no longer belongs"):
        authenticate(store, by_keypair.token, now())
    asyncio.run(KeyPairService(store).create_keypair(create))  # the same key, made again
    with pytest.raises(RevokedToken, match="keypair AKHELD as it was before being created again"):
        authenticate(store, by_keypair.token, now())
    asyncio.run(UserService(store).delete_user(DeleteUserAction(user_id=USER)))
    with pytest.raises(RevokedToken, match="no longer a user of domain 'alpha'"):
        authenticate(store, by_user.token, now())
    ensure_user(store, USER, "alpha")  # the same id, a new incarnation
    with pytest.raises(RevokedToken, match="as they were before being created again"):
        authenticate(store, by_user.token, now())
    assert authenticate(store, issue(store).token, now()).user_id == USER  # a token issued to the new one


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), (60, 60), ("3650d", 3650 * 86400)],
)
def test_durations_are_read_in_seconds(raw: object, seconds: int) -> None:
    assert parse_expires_in(raw, "expires_in") == seconds


@pytest.mark.parametrize("raw", ["0d", "3651d", "-1h", "1w", "1.5h", "h", "", True, 0, 10**12, None, "30 d"])
def test_bad_durations_are_refused_naming_the_field(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="expires_in"):
        parse_expires_in(raw, "expires_in")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "root"),
        # Not text: a dict and a signalling NaN cannot even be hashed to be looked up.
        ("role", {}),
        ("role", Decimal("sNaN")),
        ("role", ["admin"]),
        ("role", None),
        ("role", b"admin"),
        ("name", "a\nb"),
        ("domain_name", ""),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidAPIParameters, match=field):
        IssueTokenAction(**{"user_id": USER, "role": "user", "domain_name": "alpha", field: value})
