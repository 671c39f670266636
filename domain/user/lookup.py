"""Finding a live user of a domain, for the services that relate users to other entities
(groups, keypairs). Apart from the user service so that the group service can use it
while the user service uses the group aggregate (a user's delete leaves its groups)."""

from __future__ import annotations

from domain.catalog import EntityType
from domain.errors import ObjectNotFound
from domain.ports import UnitOfWork, load_live
from domain.user.aggregate import User


def require_user_of(work: UnitOfWork, user_id: str, domain_name: str, field: str) -> User:
    """The live user `user_id` of domain `domain_name`, or not found naming `field`: a user
    of another domain is answered as one that does not exist (the same words), so no
    caller learns from it whether a foreign user exists or which domain it is in."""
    try:
        user = load_live(work, User, user_id)
    except ObjectNotFound:
        user = None
    if user is None or user.domain_name != domain_name:
        raise ObjectNotFound(
            f"user {user_id} not found in domain {domain_name!r}",
            entity_type=EntityType.USER,
            entity_id=user_id,
            field=field,
        )
    return user
