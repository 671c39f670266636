"""Keypairs: an access key bound to a user, a domain and a keypair resource policy."""

from domain.keypair.actions import (
    CreateKeyPairAction,
    CreateKeyPairActionResult,
    DeleteKeyPairAction,
    DeleteKeyPairActionResult,
    ModifyKeyPairAction,
    ModifyKeyPairActionResult,
)
from domain.keypair.aggregate import KeyPair
from domain.keypair.service import KeyPairService
from domain.keypair.types import KeyPairData

__all__ = [
    "CreateKeyPairAction",
    "CreateKeyPairActionResult",
    "DeleteKeyPairAction",
    "DeleteKeyPairActionResult",
    "KeyPair",
    "KeyPairData",
    "KeyPairService",
    "ModifyKeyPairAction",
    "ModifyKeyPairActionResult",
]
