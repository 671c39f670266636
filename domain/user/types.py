"""Creator, modifier and data of a user (issue 12). A user is named by its UUID and
belongs to one domain for life (moving a user would strand its keypairs in the old
domain: delete and create instead)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from domain.errors import InvalidAPIParameters
from domain.modifier import Modifier
from domain.parsers import parse_name, text_parser
from domain.validation import EntityName, LedgerModel, UUIDField, field_of, jsonable, nullable, tri_state_of
from domain.values import TriState

MAX_EMAIL = 254  # RFC 5321's longest path
MAX_EMAIL_LOCAL = 64
MAX_FULL_NAME = 256
# Characters an unquoted address never holds (quoted local parts are not accepted).
_EMAIL_SPECIALS = frozenset('<>()[],;:"\\')
_HOST_LABEL = re.compile(r"[\w-]{1,63}")  # \w: letters and digits of any script (IDN)


def parse_email(raw: Any, field: str) -> str:
    """A plausible address `local@host`: one line of visible characters (as a name), at
    most 254 characters, no whitespace, exactly one '@', a local part of 1..64 characters
    without <>()[],;:"\\, and a host of dot-separated labels of letters, digits and '-'.
    Kept as given (not lower-cased): it is shown, not used as a key."""
    email = parse_name(raw, field, max_length=MAX_EMAIL)
    if any(char.isspace() for char in email):
        raise InvalidAPIParameters("must not contain whitespace", field=field)
    local, at, host = email.partition("@")
    if not at or not local or not host or "@" in host:
        raise InvalidAPIParameters("is not an email address: expected one '@' between a name and a host", field=field)
    if len(local) > MAX_EMAIL_LOCAL or any(char in _EMAIL_SPECIALS for char in local):
        raise InvalidAPIParameters(
            f"the part before '@' must be 1 to {MAX_EMAIL_LOCAL} characters without <>()[],;:\"\\", field=field
        )
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidAPIParameters(
            "the host after '@' must be dot-separated labels of letters, digits and '-'", field=field
        )
    return email


parse_full_name = text_parser(MAX_FULL_NAME)  # one line of free text

Email = Annotated[str | None, field_of(nullable(parse_email))]
FullName = Annotated[str | None, field_of(nullable(parse_full_name))]
PolicyName = Annotated[str | None, field_of(nullable(parse_name))]


class UserCreator(LedgerModel):
    user_id: UUIDField
    domain_name: EntityName
    email: Email = None
    full_name: FullName = None
    default_keypair_resource_policy: PolicyName = None

    def fields_json(self) -> dict[str, Any]:
        return {f: jsonable(getattr(self, f)) for f in USER_FIELDS}


USER_FIELDS: tuple[str, ...] = tuple(f for f in UserCreator.model_fields if f != "user_id")


class UserModifier(Modifier):
    """Every field is left alone unless given; each can be nullified (None). The domain
    is not modifiable."""

    email: Annotated[TriState[str], tri_state_of(parse_email)] = TriState.nop()
    full_name: Annotated[TriState[str], tri_state_of(parse_full_name)] = TriState.nop()
    default_keypair_resource_policy: Annotated[TriState[str], tri_state_of(parse_name)] = TriState.nop()

    FIELDS = tuple(f for f in USER_FIELDS if f != "domain_name")


@dataclass(frozen=True)
class UserData:
    user_id: uuid.UUID
    domain_name: str
    email: str | None
    full_name: str | None
    default_keypair_resource_policy: str | None
    created_at: datetime
    modified_at: datetime

    @classmethod
    def from_fields(
        cls, user_id: uuid.UUID, created_at: datetime, modified_at: datetime, fields: dict[str, Any]
    ) -> UserData:
        return cls(
            user_id=user_id,
            domain_name=fields["domain_name"],
            email=fields.get("email"),
            full_name=fields.get("full_name"),
            default_keypair_resource_policy=fields.get("default_keypair_resource_policy"),
            created_at=created_at,
            modified_at=modified_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            **{f: jsonable(getattr(self, f)) for f in USER_FIELDS},
            "created_at": self.created_at.isoformat(),
            "modified_at": self.modified_at.isoformat(),
        }
