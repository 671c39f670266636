"""Bearer tokens (issue 13): aggregate, actions, service and `authenticate`."""

from domain.token.actions import (
    IssueTokenAction,
    IssueTokenActionResult,
    RevokeTokenAction,
    RevokeTokenActionResult,
    TokenAction,
)
from domain.token.aggregate import Token
from domain.token.service import TokenService, authenticate, token_id_of
from domain.token.types import TokenActor, TokenData, new_token, parse_expires_in, token_hash

__all__ = [
    "IssueTokenAction",
    "IssueTokenActionResult",
    "RevokeTokenAction",
    "RevokeTokenActionResult",
    "Token",
    "TokenAction",
    "TokenActor",
    "TokenData",
    "TokenService",
    "authenticate",
    "new_token",
    "parse_expires_in",
    "token_hash",
    "token_id_of",
]
