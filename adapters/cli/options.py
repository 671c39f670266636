"""Option parsers and the option types several commands share.

Parsing is the CLI's job, validation the domain's: these check syntax only (valid JSON, a
`key=value` list with `=`, no key given twice), a malformed option being a usage error
(exit 2); a value the domain refuses is its `LedgerError` (exit 1).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from domain.errors import InvalidAPIParameters
from domain.parsers import json_float
from domain.values import ProjectType

if TYPE_CHECKING:
    from pydantic import BaseModel


# A domain error names a field; the CLI shows the option that sets it (adapters/cli/app.py
# renames it). A parameter named as the field needs nothing here; these are the parameters
# whose names differ from the field they set (the one the user gave wins).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("owner",),  # keypair create --owner, workload kernel-start --owner
    "access_key": ("kernel_access_key",),  # workload kernel-start
    "occupied_slots": ("slots",),  # workload kernel-start --slots
    "mounts": ("mount",),  # workload kernel-start --mount
    "total_resource_slots": ("slot",),  # a --slot patch that leaves the map invalid
    "total_resource_slots_patch": ("slot",),  # modify --slot NAME=VALUE
    "type": ("project_type",),  # group --type
    "is_active": ("active",),  # group --active/--inactive
    "dotfiles": ("dotfiles_file",),  # group --dotfiles-file
    "user_uuids": ("add_users", "remove_users", "replace_users"),  # group modify
    "user_update_mode": ("add_users", "remove_users", "replace_users"),
    "group_ids": ("group",),  # usage month --group
    "project_id": ("project",),  # usage period --project
    "url": ("db",),  # the root's --db
    "schema": ("db",),  # the schema in --db's URL
}


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it names a key twice (json.loads would keep the last)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise typer.BadParameter(f"key {key!r} given twice")
        seen[key] = value
    return seen


def parse_json(raw: str) -> Any:
    try:
        return json.loads(raw, object_pairs_hook=_refuse_duplicate_keys, parse_float=json_float)
    except ValueError as exc:  # JSONDecodeError, or a number beyond any range (`json_float`)
        raise typer.BadParameter(f"invalid JSON: {exc}") from None
    except RecursionError:  # `[[[[...` deeper than the parser's recursion limit
        raise typer.BadParameter("invalid JSON: nested too deeply") from None


def parse_slots_option(raw: str) -> dict[str, Any]:
    """`{"cpu": "4", "mem": "8g"}` or `cpu=4,mem=8g`; an empty string means no slots. A
    slot named twice is refused rather than letting the last one silently win."""
    if raw.lstrip().startswith("{"):
        parsed = parse_json(raw)
        if not isinstance(parsed, dict):
            raise typer.BadParameter("expected a JSON object")
        return parsed
    slots: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {item!r}")
        if key.strip() in slots:
            raise typer.BadParameter(f"key {key.strip()!r} given twice")
        slots[key.strip()] = value.strip()
    return slots


def parse_hosts_option(raw: str) -> Any:
    """A JSON list or object (`{"host": ["mount-in-session"]}`), or `host1,host2`."""
    if raw.lstrip().startswith(("[", "{")):
        parsed = parse_json(raw)
        if not isinstance(parsed, list | dict):
            raise typer.BadParameter("expected a JSON list or object")
        return parsed
    return [host.strip() for host in raw.split(",") if host.strip()]


def parse_registry_option(raw: str) -> dict[str, Any]:
    """`{"registry": "cr.example.com", "project": "team"}`; `{}` is no registry settings."""
    parsed = parse_json(raw)
    if not isinstance(parsed, dict):
        raise typer.BadParameter("expected a JSON object")
    return parsed


def parse_users_option(raw: str) -> list[str]:
    """`U1,U2`; an empty string is no users (`--replace-users ''` empties the group)."""
    return [user.strip() for user in raw.split(",") if user.strip()]


SlotsOption = Annotated[
    Any,
    typer.Option(parser=parse_slots_option, metavar="JSON|k=v,...", help="Resource slots."),
]
HostsOption = Annotated[
    Any,
    typer.Option(parser=parse_hosts_option, metavar="JSON|host,...", help="Allowed vfolder hosts."),
]
IntOption = Annotated[int | None, typer.Option(metavar="N")]
TotalSlotsOption = Annotated[
    Any,
    typer.Option(
        parser=parse_slots_option,
        metavar="JSON|k=v,...",
        help="Replace the whole slot map: slots not listed are dropped ('' for none). To change one slot: --slot.",
    ),
]
SlotOption = Annotated[
    list[str] | None,
    typer.Option(
        "--slot",
        metavar="NAME=VALUE",
        help="Change one slot, keeping the others (repeatable; not with --total-resource-slots).",
    ),
]


def parse_slot_assignments(items: list[str]) -> dict[str, str]:
    """`--slot NAME=VALUE` options as {name: value}, aliases (`memory`, `gpu`) under their
    stored names; a slot given twice (an alias beside its name too) is a usage error."""
    from domain.slots import SLOT_ALIASES

    slots: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = SLOT_ALIASES.get(key.strip(), key.strip())
        if not sep or not name or not value.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--slot")
        if name in slots:
            raise typer.BadParameter(f"slot {name!r} given twice", param_hint="--slot")
        slots[name] = value.strip()
    return slots


def slot_changes(replacement: dict[str, Any] | None, changes: list[str] | None) -> dict[str, str] | None:
    """The `--slot` changes of a modify, None if it has none: checked before anything is
    read, so giving them beside `--total-resource-slots` (the whole map) is a usage error."""
    if changes is None:
        return None
    if replacement is not None:
        raise typer.BadParameter("give either --total-resource-slots (the whole map) or --slot, not both")
    return parse_slot_assignments(changes)


# Group fields, as `group create` and `group modify` take them


def parse_project_type_option(raw: str) -> ProjectType:
    """A value (`model-store`) or, as creators and the HTTP API take it, the enum's name
    (`MODEL_STORE`), in any letter case."""
    try:
        parsed: ProjectType = ProjectType.parse(raw, field="type")
    except InvalidAPIParameters:
        raise typer.BadParameter(f"{raw!r} is not one of " + ", ".join(repr(t.value) for t in ProjectType)) from None
    return parsed


TypeOption = Annotated[
    ProjectType | None,
    typer.Option(
        "--type",
        parser=parse_project_type_option,
        metavar="<general|model-store>",
        help="Project type. Default on create: general.",
    ),
]
DescriptionOption = Annotated[str | None, typer.Option(metavar="TEXT", help="Free text, up to 512 characters.")]
ActiveOption = Annotated[
    bool | None,
    typer.Option("--active/--inactive", help="Whether the group takes new workload. Default on create: active."),
]
IntegrationOption = Annotated[str | None, typer.Option(metavar="ID", help="External system's id of the group.")]
DotfilesOption = Annotated[
    Path | None,
    typer.Option(
        "--dotfiles-file",
        metavar="PATH",
        exists=True,
        dir_okay=False,
        readable=True,
        help="File whose bytes become the group's dotfiles (up to 64 KiB).",
    ),
]
ResourcePolicyOption = Annotated[str | None, typer.Option(metavar="NAME", help="Resource policy name.")]
RegistryOption = Annotated[
    Any,
    typer.Option(
        parser=parse_registry_option, metavar="JSON", help='Container registry: {"registry": ..., "project": ...}.'
    ),
]


def users_option(help: str) -> Any:
    """A membership option of `group modify`: user UUIDs, comma-separated."""
    return typer.Option(parser=parse_users_option, metavar="UUID,...", help=help)


# `--unset FIELD`: the fields a modifier can set to null are its TriState ones.


def nullable_fields(modifier: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `modifier` that can be set to null: those typed `TriState[...]`. The
    commands spell theirs out (declaring options must not load the models); tests check
    them against this."""
    from domain.values import TriState

    return tuple(name for name, info in modifier.model_fields.items() if typing.get_origin(info.annotation) is TriState)


def unset_option(nullable: tuple[str, ...]) -> Any:
    """The `--unset FIELD` option of a modify command whose nullable fields are `nullable`."""
    return typer.Option(metavar="FIELD", help=f"Set a nullable field to null (repeatable): {', '.join(nullable)}.")


def unset_fields(names: list[str], given: dict[str, Any], nullable: tuple[str, ...]) -> dict[str, None]:
    """`--unset` names as modifier fields set to null; refused unless nullable and not also given."""
    fields = {name.strip().replace("-", "_") for name in names}
    for field in sorted(fields):
        if field not in nullable:
            raise typer.BadParameter(f"{field!r} cannot be unset; one of: {', '.join(nullable)}", param_hint="--unset")
        if field in given:
            raise typer.BadParameter(f"{field!r} is both set and unset", param_hint="--unset")
    return dict.fromkeys(fields)


# Time travel: `show --at/--version`, `diff --from --to`


AtOption = Annotated[
    str | None, typer.Option("--at", metavar="ISO", help="Show it as it stood at this time (UTC if no zone).")
]
VersionOption = Annotated[
    int | None,
    typer.Option("--version", metavar="N", help="Show it after its event N (its version: 1 is its first event)."),
]
FromOption = Annotated[str, typer.Option("--from", metavar="N|ISO", help="A version number or a time.")]
ToOption = Annotated[str, typer.Option("--to", metavar="N|ISO", help="A version number or a time.")]
