"""Read model of keypairs and the policy each one uses."""

from __future__ import annotations

from domain.keypair import KeyPair
from projections.entities import EntityProjection


class KeyPairsProjection(EntityProjection):
    name = "keypairs"
    version = 1
    aggregate = KeyPair
    key_length = 128
