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
from domain.group.types import GroupCreator, GroupData, GroupModifier

# Usage reports have their own package; the seeds import their actions from here.
from domain.usage import (
    UsagePerMonthAction,
    UsagePerMonthActionResult,
    UsagePerPeriodAction,
    UsagePerPeriodActionResult,
)
from domain.values import UserUpdateMode

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
