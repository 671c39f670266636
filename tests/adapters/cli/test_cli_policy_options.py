"""`policy create` and `policy modify` declare their shared options once: the same help on
both, and every number's help says its unit (seconds, a count, bytes)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup, TyperOption

from adapters.cli import app

UNITS = ("seconds", "a count", "bytes")


def options(command: str) -> dict[str, TyperOption]:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    policy = root.commands["policy"]
    assert isinstance(policy, TyperGroup)
    return {p.name: p for p in policy.commands[command].params if isinstance(p, TyperOption) and p.name}


def test_every_numeric_option_says_its_unit() -> None:
    for command in ("create", "modify"):
        numeric = {name: o for name, o in options(command).items() if o.metavar == "N"}
        assert len(numeric) == 9, sorted(numeric)
        for name, option in numeric.items():
            assert any(unit in (option.help or "").lower() for unit in UNITS), (command, name, option.help)


def test_create_and_modify_share_their_field_options() -> None:
    create, modify = options("create"), options("modify")
    replaced = {"total_resource_slots", "max_pending_session_resource_slots"}  # modify replaces the whole map
    shared = set(create) - replaced
    assert shared <= set(modify)
    for name in shared:
        assert (create[name].help, create[name].metavar) == (modify[name].help, modify[name].metavar), name
