"""VFolder host permissions: hosts, permission sets and their JSON form (domain.hosts)."""

from __future__ import annotations

import json

import pytest

from domain.errors import InvalidAPIParameters
from domain.hosts import ALL_VFOLDER_PERMISSIONS, VFolderHostPermission, VFolderHostPermissionMap

# VFolderHostPermissionMap


def test_a_list_of_hosts_grants_all_permissions() -> None:
    hosts = VFolderHostPermissionMap.from_user_input(["storage1", "storage2"])
    assert dict(hosts) == {"storage1": ALL_VFOLDER_PERMISSIONS, "storage2": ALL_VFOLDER_PERMISSIONS}
    assert len(ALL_VFOLDER_PERMISSIONS) == 8


def test_a_host_mapped_to_null_grants_all_permissions() -> None:
    hosts = VFolderHostPermissionMap.from_user_input({"local": None})
    assert dict(hosts) == {"local": ALL_VFOLDER_PERMISSIONS}


def test_a_host_mapped_to_permissions_grants_exactly_those() -> None:
    hosts = VFolderHostPermissionMap.from_user_input(
        {
            "nfs": ["create-vfolder", "MOUNT-IN-SESSION", VFolderHostPermission.UPLOAD_FILE],
            "ro": "download-file",
            "none": [],
        }
    )
    assert hosts["nfs"] == {
        VFolderHostPermission.CREATE,
        VFolderHostPermission.MOUNT_IN_SESSION,
        VFolderHostPermission.UPLOAD_FILE,
    }
    assert hosts["ro"] == {VFolderHostPermission.DOWNLOAD_FILE}
    assert hosts["none"] == frozenset()


def test_unknown_permission_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(InvalidAPIParameters, match="unknown permission 'format-disk'") as info:
        VFolderHostPermissionMap.from_user_input({"nfs": ["create-vfolder", "format-disk"]})
    assert info.value.field == "allowed_vfolder_hosts.nfs"
    for permission in VFolderHostPermission:
        assert permission.value in info.value.reason


@pytest.mark.parametrize("raw", ["storage1", 5, None, [""], ["  "], [None], [3], {"": None}])
def test_malformed_host_maps_are_refused(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        VFolderHostPermissionMap.from_user_input(raw)
    assert info.value.field == "allowed_vfolder_hosts"


def test_permissions_must_be_null_or_a_list() -> None:
    with pytest.raises(InvalidAPIParameters, match="list of permissions") as info:
        VFolderHostPermissionMap.from_user_input({"nfs": 7})
    assert info.value.field == "allowed_vfolder_hosts.nfs"


def test_host_map_json_is_sorted_and_round_trips() -> None:
    hosts = VFolderHostPermissionMap.from_user_input({"b": ["upload-file", "create-vfolder"], "a": None})
    encoded = hosts.to_json()
    assert list(encoded) == ["a", "b"]
    assert encoded["b"] == ["create-vfolder", "upload-file"]
    assert encoded["a"] == sorted(p.value for p in VFolderHostPermission)
    again = VFolderHostPermissionMap.from_json(json.loads(json.dumps(encoded)))
    assert again == hosts
    assert hash(again) == hash(hosts)
    assert VFolderHostPermissionMap.from_user_input(hosts) is hosts
    assert VFolderHostPermissionMap().to_json() == {}


def test_a_host_map_built_directly_shows_itself_before_it_is_parsed() -> None:
    """`repr(VFolderHostPermissionMap({"local": ["mount-in-session"]}))` raised
    AttributeError ('str' object has no attribute 'value'); `{"local": None}` a TypeError."""
    built = VFolderHostPermissionMap({"nas": None, "local": ["mount-in-session"]})
    assert repr(built) == "VFolderHostPermissionMap({'local': ['mount-in-session'], 'nas': None})"
    parsed = VFolderHostPermissionMap.from_user_input({"local": ["upload-file", "mount-in-session"]})
    assert repr(parsed) == "VFolderHostPermissionMap({'local': ['mount-in-session', 'upload-file']})"
