"""Every aggregate class that keeps an entity's stream, by its entity type."""

from __future__ import annotations

from domain.domains import Domain
from domain.entity import Entity
from domain.group import Group
from domain.keypair import KeyPair
from domain.keypair_resource_policy import KeyPairResourcePolicy
from domain.session import Session
from domain.user import User
from domain.workload import Endpoint, Kernel, VFolder

ENTITIES: tuple[type[Entity], ...] = (
    KeyPairResourcePolicy,
    KeyPair,
    Group,
    Kernel,
    VFolder,
    Endpoint,
    Domain,
    User,
    Session,
)
ENTITY_KINDS: dict[str, type[Entity]] = {entity.ENTITY_TYPE: entity for entity in ENTITIES}
