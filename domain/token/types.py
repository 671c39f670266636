"""Values of a bearer token (issue 13): its hash, its lifetime and what it says of its holder.

The ledger never keeps a token itself, only its SHA-256 hex digest: the plaintext is made
once by `new_token`, handed to the caller once, and never stored, audited or logged.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.errors import InvalidAPIParameters

TOKEN_PREFIX = "plp_"  # says what a leaked string is (secret scanners key on prefixes)
MAX_EXPIRES_IN = 10 * 365 * 86400  # ten years: a bound, not a recommendation
MAX_TOKEN_LENGTH = 256  # what is presented is hashed only up to this length
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"([1-9][0-9]{0,9})([dhms])")


def new_token() -> str:
    """A fresh plaintext token: the prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest the ledger keeps instead of `token`."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_expires_in(raw: Any, field: str) -> int:
    """A lifetime like `30d`, `12h`, `90m` or `45s` (or a number of seconds) in seconds:
    at least one second, at most ten years."""
    if isinstance(raw, bool):
        raise InvalidAPIParameters("expected a duration like 30d, 12h or 90m", field=field)
    if isinstance(raw, int):
        seconds = raw
    else:
        match = _DURATION.fullmatch(raw.strip()) if isinstance(raw, str) else None
        if match is None:
            raise InvalidAPIParameters(
                f"expected a duration like 30d, 12h or 90m (a positive number and d, h, m or s), got {raw!r:.40}",
                field=field,
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_EXPIRES_IN:
        raise InvalidAPIParameters(f"must be between 1 second and 10 years (3650d), got {seconds} s", field=field)
    return seconds


@dataclass(frozen=True)
class TokenActor:
    """Who a valid token speaks for: the actor of every action it triggers."""

    token_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    domain_name: str
    access_key: str | None


@dataclass(frozen=True)
class TokenData:
    """A token as listed and returned: never its plaintext, never its hash."""

    token_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    domain_name: str
    access_key: str | None
    name: str | None
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return None if at is None else at.isoformat()

        return {
            "token_id": str(self.token_id),
            "user_id": str(self.user_id),
            "role": self.role,
            "domain_name": self.domain_name,
            "access_key": self.access_key,
            "name": self.name,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
        }
