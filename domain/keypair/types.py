"""The data of a keypair (a keypair has no creator or modifier: its actions carry its
few fields)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyPairData:
    access_key: str
    user_id: uuid.UUID
    domain_name: str
    resource_policy: str | None  # None: the precedence decides (domain.effective_policy)

    @classmethod
    def from_fields(cls, access_key: str, fields: dict[str, Any]) -> KeyPairData:
        return cls(
            access_key,
            uuid.UUID(fields["user_id"]),
            fields["domain_name"],
            fields.get("resource_policy"),
        )
