"""The token service: issue and revoke, and `authenticate`, which turns a presented
token into the actor it speaks for.

Only hashes are compared and stored. The stream is named by the hash, so a presented
token costs one stream read; the stored hash is still compared in constant time, so a
reader of the store that maps ids to streams learns nothing from timing.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime, timedelta

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.entity import Entity, entity_not_found
from domain.errors import ExpiredToken, InvalidAPIParameters, LedgerError, ObjectNotFound, RevokedToken, UnknownToken
from domain.keypair.aggregate import KeyPair
from domain.ports import AggregateStore, UnitOfWork, load_live
from domain.token.actions import IssueTokenAction, IssueTokenActionResult, RevokeTokenAction, RevokeTokenActionResult
from domain.token.aggregate import Token
from domain.token.types import MAX_TOKEN_LENGTH, TokenActor, new_token, token_hash
from domain.user.lookup import require_user_of

TOKEN = EntityType.TOKEN


def authenticate(store: AggregateStore, presented: str, now: datetime) -> TokenActor:
    """The actor `presented` speaks for, or UnknownToken, RevokedToken or ExpiredToken.
    The error never repeats the presented string."""
    if not presented or len(presented) > MAX_TOKEN_LENGTH:
        raise UnknownToken("the token is not one this ledger issued")
    digest = token_hash(presented)
    found = store.get(Token.id_for(digest), Entity)
    if not isinstance(found, Token) or not hmac.compare_digest(found.token_hash, digest):
        raise UnknownToken("the token is not one this ledger issued")
    if found.revoked_at is not None:
        raise RevokedToken(f"token {found.id} was revoked at {found.revoked_at.isoformat()}")
    expires_at = found.expires_at
    if expires_at is not None and now >= expires_at:
        raise ExpiredToken(f"token {found.id} expired at {expires_at.isoformat()}")
    actor = found.actor()
    gone = _holder_gone(store, found, actor)
    if gone is not None:
        raise RevokedToken(f"token {found.id} speaks for {gone}")
    return actor


def _holder_gone(store: AggregateStore, token: Token, actor: TokenActor) -> str | None:
    """Why the token no longer speaks for anyone (None: it does). A token is issued to a
    live user of its domain (and keypair of that user), as `issue_token` checks: once
    that no longer holds, or the user or keypair is one created again since (a new
    incarnation of the same id), the token must not act as them."""
    work = UnitOfWork(store)
    user_id, issued = str(actor.user_id), token.created_at
    try:
        user = require_user_of(work, user_id, actor.domain_name, "user_id")
    except ObjectNotFound:
        return f"user {user_id}, who is no longer a user of domain {actor.domain_name!r}"
    if _made_after(user, issued):
        return f"user {user_id} as they were before being created again"
    if actor.access_key is not None:
        try:
            keypair = _keypair_of(work, actor.access_key, user_id)
        except LedgerError:
            return f"keypair {actor.access_key}, which no longer belongs to user {user_id}"
        if _made_after(keypair, issued):
            return f"keypair {actor.access_key} as it was before being created again"
    return None


def _made_after(entity: Entity, moment: datetime | None) -> bool:
    """Whether `entity`'s incarnation was created after `moment`."""
    return moment is not None and entity.created_at is not None and entity.created_at > moment


def _keypair_of(work: UnitOfWork, access_key: str, user_id: str) -> KeyPair:
    """The live keypair `access_key` of user `user_id`, or an error naming `access_key`."""
    keypair = load_live(work, KeyPair, access_key, field="access_key")
    if keypair.fields["user_id"] != user_id:
        raise InvalidAPIParameters(f"keypair {access_key!r} belongs to another user", field="access_key")
    return keypair


class TokenService:
    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    @takes_action
    async def issue_token(self, action: IssueTokenAction) -> IssueTokenActionResult:
        plaintext = new_token()
        digest = token_hash(plaintext)
        issued_at = datetime.now(UTC)  # the expiry counts from here, not from a retry

        def issue() -> Token:
            work = UnitOfWork(self._store)
            user_id = str(action.user_id)
            require_user_of(work, user_id, action.domain_name, "user_id")
            if action.access_key is not None:
                _keypair_of(work, action.access_key, user_id)
            expires = None if action.expires_in is None else issued_at + timedelta(seconds=action.expires_in)
            fields = {
                "user_id": user_id,
                "role": action.role,
                "domain_name": action.domain_name,
                "access_key": action.access_key,
                "name": action.name,
                "expires_at": None if expires is None else expires.isoformat(),
                "revoked_at": None,
            }
            token = work.add(Token.issue(digest, fields))
            work.commit()
            return token

        token = self._store.run(issue, TOKEN, "issue")
        return IssueTokenActionResult(token.data(), plaintext)

    @takes_action
    async def revoke_token(self, action: RevokeTokenAction) -> RevokeTokenActionResult:
        def revoke() -> Token:
            work = UnitOfWork(self._store)
            found = work.get(action.token_id, Entity)
            if not isinstance(found, Token):
                raise entity_not_found(TOKEN, str(action.token_id))
            found.revoke()
            work.commit()
            return found

        return RevokeTokenActionResult(self._store.run(revoke, TOKEN, "revoke").data())


def token_id_of(presented: str) -> uuid.UUID:
    """The id of the token `presented` would be (for an operator holding a token)."""
    return Token.id_for(token_hash(presented))
