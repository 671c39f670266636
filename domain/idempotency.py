"""The record of an HTTP request sent with an `Idempotency-Key` (issue 13).

It is appended in the same transaction as the request's own events, so a request either
took effect together with its record or not at all: a retry finds the record and is never
applied twice, whatever crashed in between. The stream is named by the caller and the key
(keys are per caller); the record holds hashes and ids only, never the request's body.

The request's hash is sealed under the ledger's own subject REQUEST_HASH_SUBJECT, whose
key every erasure destroys: a hash of a body is a test of a guess at it (an erased email
hashed with the rest of a guessed body matches), and no one subject's key could seal it
(a body may name several, and the hash is computed before any is known).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from domain.catalog import EntityType
from domain.entity import Entity
from domain.errors import LedgerError
from domain.personal import declare, personal

REQUEST_HASH_SUBJECT = "ledger:request-hashes"
"""Seals every request hash; destroyed with every erasure (adapters.store.keys), so a
retry of a request applied before an erasure can no longer be compared with it."""


class IdempotentRequest(Entity):
    ENTITY_TYPE = EntityType.IDEMPOTENT_REQUEST

    class Accepted(Entity.Created):
        """The request was applied; `fields`: request_hash, method, path, action_id."""

    @classmethod
    def accept(cls, key: str, fields: dict[str, Any]) -> IdempotentRequest:
        return cls._create(cls.Accepted, id=cls.id_for(key), key=key, fields=fields)

    def duplicate(self) -> LedgerError:
        return LedgerError(f"idempotent request {self.id} already exists")


def request_key(caller: str, key: str) -> str:
    """The stored key of `key` sent by `caller`: a digest, so that neither a client's key nor
    its length reaches the store, and two callers' equal keys never meet."""
    return hashlib.sha256(f"{caller}\n{key}".encode("utf-8", "surrogatepass")).hexdigest()


def request_stream(caller: str, key: str) -> uuid.UUID:
    return IdempotentRequest.id_for(request_key(caller, key))


def _request_hashes(state: Mapping[str, Any]) -> str:
    return REQUEST_HASH_SUBJECT


declare(IdempotentRequest.Accepted, personal("fields.request_hash", subject=_request_hashes))
