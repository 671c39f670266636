"""Keypairs: an access key bound to a user, a domain and a keypair resource policy."""

from domain.keypair.actions import (
    CreateKeyPairAction,
    CreateKeyPairActionResult,
    DeleteKeyPairAction,
    DeleteKeyPairActionResult,
    KeyPairData,
    ModifyKeyPairAction,
    ModifyKeyPairActionResult,
)
from domain.keypair.aggregate import KeyPair
from domain.keypair.service import KeyPairService

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
