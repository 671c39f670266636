"""Groups (projects): aggregate, name index, creator/modifier, actions and service."""

from domain.errors import (
    PurgeGroupActionActiveEndpointsError,
    PurgeGroupActionActiveKernelsError,
    PurgeGroupActionVFoldersMountedToActiveKernelsError,
)
from domain.group.actions import (
    CreateGroupAction,
    CreateGroupActionResult,
    DeleteGroupAction,
    DeleteGroupActionResult,
    GroupAction,
    ModifyGroupAction,
    ModifyGroupActionResult,
    PurgeGroupAction,
    PurgeGroupActionResult,
)
from domain.group.aggregate import Group, GroupNameIndex
from domain.group.service import GroupService
from domain.group.types import GroupCreator, GroupData, GroupModifier, UserUpdateMode
from domain.group.usage import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
)

__all__ = [
    "CreateGroupAction",
    "CreateGroupActionResult",
    "DeleteGroupAction",
    "DeleteGroupActionResult",
    "Group",
    "GroupAction",
    "GroupCreator",
    "GroupData",
    "GroupModifier",
    "GroupNameIndex",
    "GroupService",
    "ModifyGroupAction",
    "ModifyGroupActionResult",
    "PurgeGroupAction",
    "PurgeGroupActionActiveEndpointsError",
    "PurgeGroupActionActiveKernelsError",
    "PurgeGroupActionResult",
    "PurgeGroupActionVFoldersMountedToActiveKernelsError",
    "UsagePerMonthAction",
    "UsagePerMonthActionResult",
    "UsagePerPeriodAction",
    "UsagePerPeriodActionResult",
    "UserUpdateMode",
]
