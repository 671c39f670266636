"""The token aggregate.

Events: TokenIssued (its Created: the hash as the key, and the holder's fields) and
TokenRevoked. The stream id is derived from the token's hash, so authenticating a
presented token is one stream read; that stream id is also the token's public id (one-way
from the hash, which is one-way from the token), so revoking by id is one read too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import LedgerError, TokenAlreadyRevoked
from domain.token.types import TokenActor, TokenData


class Token(Entity):
    ENTITY_TYPE = EntityType.TOKEN

    class TokenIssued(Entity.Created):
        """A token was issued; `key` is its SHA-256 hex digest, never the token."""

    class TokenRevoked(Entity.Event):
        def apply(self, aggregate: Token) -> None:
            aggregate.fields["revoked_at"] = self.timestamp.isoformat()

    @classmethod
    def issue(cls, token_hash: str, fields: dict[str, Any]) -> Token:
        return cls._create(cls.TokenIssued, id=cls.id_for(token_hash), key=token_hash, fields=fields)

    @property
    def token_hash(self) -> str:
        return self.key

    @property
    def entity_id(self) -> str:
        return str(self.id)  # the key is a secret's digest: a token is named by its stream id

    @property
    def expires_at(self) -> datetime | None:
        at = self.fields.get("expires_at")
        return None if at is None else datetime.fromisoformat(at)

    @property
    def revoked_at(self) -> datetime | None:
        at = self.fields.get("revoked_at")
        return None if at is None else datetime.fromisoformat(at)

    def revoke(self) -> None:
        if self.revoked_at is not None:
            raise TokenAlreadyRevoked(f"token {self.id} is already revoked")
        self.trigger_event(self.TokenRevoked)

    def actor(self) -> TokenActor:
        f = self.fields
        return TokenActor(self.id, uuid.UUID(f["user_id"]), f["role"], f["domain_name"], f.get("access_key"))

    def data(self) -> TokenData:
        f = self.fields
        assert self.created_at is not None
        return TokenData(
            token_id=self.id,
            user_id=uuid.UUID(f["user_id"]),
            role=f["role"],
            domain_name=f["domain_name"],
            access_key=f.get("access_key"),
            name=f.get("name"),
            issued_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
        )

    def duplicate(self) -> LedgerError:
        # 256 random bits never collide; this only guards the invariant.
        return LedgerError(f"token {self.id} already exists")
