"""Finding a live user of a domain, for the services that relate users to other entities
(groups, keypairs). Apart from the user service so that the group service can use it
while the user service uses the group aggregate (a user's delete leaves its groups)."""

from __future__ import annotations

from domain.catalog import EntityType
from domain.errors import InvalidAPIParameters, ObjectNotFound
from domain.ports import UnitOfWork, load_live
from domain.user.aggregate import User


def require_user_of(work: UnitOfWork, user_id: str, domain_name: str, field: str) -> User:
    """The live user `user_id` of domain `domain_name`, or an error naming `field`: not
    found when no such user lives, invalid when the user is in another domain."""
    try:
        user = load_live(work, User, user_id)
    except ObjectNotFound:
        raise ObjectNotFound(
            f"user {user_id} not found", entity_type=EntityType.USER, entity_id=user_id, field=field
        ) from None
    if user.domain_name != domain_name:
        raise InvalidAPIParameters(
            f"user {user_id} is in domain {user.domain_name!r}, not {domain_name!r}", field=field
        )
    return user
