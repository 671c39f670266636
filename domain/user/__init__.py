"""Users: aggregate, creator/modifier, actions and service."""

from domain.user.actions import (
    CreateUserAction,
    CreateUserActionResult,
    DeleteUserAction,
    DeleteUserActionResult,
    EraseUserAction,
    EraseUserActionResult,
    ModifyUserAction,
    ModifyUserActionResult,
    UserAction,
)
from domain.user.aggregate import User
from domain.user.service import UserService
from domain.user.types import UserCreator, UserData, UserModifier

__all__ = [
    "CreateUserAction",
    "CreateUserActionResult",
    "DeleteUserAction",
    "DeleteUserActionResult",
    "EraseUserAction",
    "EraseUserActionResult",
    "ModifyUserAction",
    "ModifyUserActionResult",
    "User",
    "UserAction",
    "UserCreator",
    "UserData",
    "UserModifier",
    "UserService",
]
