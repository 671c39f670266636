"""Actions and results of the token service (issue 13). Their inputs are what the audit
trail records: an issue's input is who the token is for, never the token, which the
service makes and only its result carries (kept out of its repr)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from domain.actions import BaseAction, BaseActionResult, Role
from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters
from domain.parsers import parse_access_key, text_parser
from domain.token.types import TokenData, parse_expires_in
from domain.validation import EntityName, UUIDField, field_of, nullable

MAX_TOKEN_NAME = 256


_ROLES = frozenset(role.value for role in Role)


def parse_role(raw: Any, field: str) -> str:
    """One of the roles, in any case. Anything but text is refused before it is looked up:
    a dict cannot be hashed, nor can a signalling NaN."""
    if isinstance(raw, Role):
        return raw.value
    allowed = ", ".join(role.value for role in Role)
    if not isinstance(raw, str):
        raise InvalidAPIParameters(f"must be a string, one of {allowed}", field=field)
    value = raw.strip().lower()
    if value not in _ROLES:
        raise InvalidAPIParameters(f"{raw!r:.40} is not one of {allowed}", field=field)
    return value


class TokenAction(BaseAction):
    @classmethod
    def entity_type(cls) -> str:
        return EntityType.TOKEN


class IssueTokenAction(TokenAction):
    """A token for `user_id` (a live user of `domain_name`) acting as `role`, and through
    `access_key` (a keypair of that user) when given. `expires_in`: seconds (a duration
    like 30d, 12h, 90m is read), None: never expires."""

    user_id: UUIDField
    role: Annotated[str, field_of(parse_role)]
    domain_name: EntityName
    access_key: Annotated[str | None, field_of(nullable(parse_access_key))] = None
    expires_in: Annotated[int | None, field_of(nullable(parse_expires_in))] = None
    name: Annotated[str | None, field_of(nullable(text_parser(MAX_TOKEN_NAME)))] = None

    def entity_id(self) -> str | None:
        # The token's id does not exist until it is issued: a refused or failed issue is
        # filed under the user it was for.
        return str(self.user_id)

    def target_domains(self) -> set[str]:
        return {self.domain_name}

    @classmethod
    def operation_type(cls) -> str:
        return "issue"


class RevokeTokenAction(TokenAction):
    token_id: UUIDField

    def entity_id(self) -> str | None:
        return str(self.token_id)

    @classmethod
    def operation_type(cls) -> str:
        return "revoke"


@dataclass(frozen=True)
class IssueTokenActionResult(BaseActionResult):
    """`token`: the plaintext, handed out this once; the ledger keeps only its hash."""

    data: TokenData
    token: str = field(repr=False)

    def entity_id(self) -> str | None:
        return str(self.data.token_id)


@dataclass(frozen=True)
class RevokeTokenActionResult(BaseActionResult):
    data: TokenData

    def entity_id(self) -> str | None:
        return str(self.data.token_id)
