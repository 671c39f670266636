"""VFolder host permissions: which storage hosts a policy or group may use, and how."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from domain.errors import InvalidAPIParameters
from domain.frozen import FrozenMapping
from domain.parsers import parse_name
from domain.shown import shown


class VFolderHostPermission(enum.StrEnum):
    """A string enum, as Backend.AI's: a permission read back equals its text
    ("mount-in-session" in a host's set), the form it is given and shown in."""

    CREATE = "create-vfolder"
    MODIFY = "modify-vfolder"
    DELETE = "delete-vfolder"
    MOUNT_IN_SESSION = "mount-in-session"
    UPLOAD_FILE = "upload-file"
    DOWNLOAD_FILE = "download-file"
    INVITE_OTHERS = "invite-others"
    SET_USER_PERM = "set-user-specific-permission"


ALL_VFOLDER_PERMISSIONS = frozenset(VFolderHostPermission)


def _parse_permissions(raw: object, field: str) -> frozenset[VFolderHostPermission]:
    if raw is None:
        return ALL_VFOLDER_PERMISSIONS
    items: Iterable[object] = [raw] if isinstance(raw, str | VFolderHostPermission) else raw  # type: ignore[assignment]
    if not isinstance(items, Iterable):
        raise InvalidAPIParameters("expected null or a list of permissions", field=field)
    result = set()
    for item in items:
        if isinstance(item, VFolderHostPermission):
            result.add(item)
            continue
        try:
            if not isinstance(item, str):  # str() of a huge int raises: only text is read
                raise ValueError(item)
            result.add(VFolderHostPermission(item.strip().lower()))
        except ValueError:
            allowed = ", ".join(p.value for p in VFolderHostPermission)
            raise InvalidAPIParameters(f"unknown permission {shown(item)}; allowed: {allowed}", field=field) from None
    return frozenset(result)


MAX_HOST_NAME = 256


class VFolderHostPermissionMap(FrozenMapping[frozenset[VFolderHostPermission]]):
    """Host name -> permissions. A list of hosts, or a host mapped to null, grants all."""

    __slots__ = ()

    @classmethod
    def from_user_input(cls, raw: object, field: str = "allowed_vfolder_hosts") -> VFolderHostPermissionMap:
        # A map built directly (`VFolderHostPermissionMap({"local": ["mount-in-session"]})`)
        # was never parsed: it is read like any mapping below (it was taken unchecked, so a
        # host with control characters was stored and a permission as text broke the write).
        if isinstance(raw, str):
            raise InvalidAPIParameters("expected a list of hosts or a mapping of hosts", field=field)
        if isinstance(raw, Mapping):
            pairs = list(raw.items())
        elif isinstance(raw, Iterable):
            pairs = [(host, None) for host in raw]
        else:
            raise InvalidAPIParameters("expected a list of hosts or a mapping of hosts", field=field)
        # Host names reach a 256-character column and every listing: parsed as names
        # (NFC, no control or invisible characters).
        data: dict[str, frozenset[VFolderHostPermission]] = {}
        given: dict[str, object] = {}  # each host as written, to tell a repeat from a clash
        for host, perms in pairs:
            name = parse_name(host, field, max_length=MAX_HOST_NAME)
            # Seed 003 writes {"local": "local"}: a host mapped to its own name grants all.
            granted = _parse_permissions(None if perms == host else perms, f"{field}.{name}")
            if name in data and (given[name] != host or data[name] != granted):
                # Two spellings of one host (NFC), or one host with two permission sets.
                raise InvalidAPIParameters(f"host {name!r} given twice", field=field)
            data[name], given[name] = granted, host
        if isinstance(raw, VFolderHostPermissionMap) and dict(raw.items()) == data:
            return raw  # already canonical: kept as it is
        return cls(data)

    @classmethod
    def from_json(cls, data: Mapping[str, list[str]]) -> VFolderHostPermissionMap:
        return cls({h: frozenset(VFolderHostPermission(p) for p in ps) for h, ps in data.items()})

    def to_json(self) -> dict[str, list[str]]:
        return {h: sorted(p.value for p in self._data[h]) for h in sorted(self._data)}

    def __repr__(self) -> str:
        # One built directly holds what it was given until it is parsed (`from_user_input`):
        # shown as given, where its JSON form (permission sets only) raised an error.
        shown_values = {
            host: sorted(p.value for p in perms)
            if isinstance(perms, frozenset) and all(isinstance(p, VFolderHostPermission) for p in perms)
            else perms
            for host, perms in sorted(self._data.items())
        }
        return f"{type(self).__name__}({shown_values!r})"
