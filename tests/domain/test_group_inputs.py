"""Creator, modifier and action validation of groups (REFERENCE.md, Group), plus fuzzing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidAPIParameters
from domain.group import CreateGroupAction, GroupCreator, GroupModifier, ModifyGroupAction, UserUpdateMode
from domain.group.types import GROUP_FIELDS
from domain.hosts import ALL_VFOLDER_PERMISSIONS, VFolderHostPermission
from domain.parsers import MAX_DOTFILES
from domain.values import OptionalState, ProjectType, TriState

BASE = {"name": "team", "domain_name": "default"}
NOT_NULLABLE_IN_MODIFIER = sorted(set(GROUP_FIELDS) - {"description", "container_registry"})


def creator(**fields: Any) -> GroupCreator:
    return GroupCreator(**{**BASE, **fields})


def refused(factory: Any, field: str, **fields: Any) -> InvalidAPIParameters:
    """Constructs, expecting InvalidAPIParameters naming `field` (or a part of it)."""
    with pytest.raises(InvalidAPIParameters) as info:
        factory(**fields)
    named = info.value.field
    assert named is not None and (named == field or named.startswith(field + ".")), (named, field)
    return info.value


def test_the_field_list_is_the_reference_one() -> None:
    assert set(GROUP_FIELDS) == {
        "name",
        "domain_name",
        "type",
        "description",
        "is_active",
        "integration_id",
        "total_resource_slots",
        "allowed_vfolder_hosts",
        "dotfiles",
        "resource_policy",
        "container_registry",
    }
    assert set(GroupModifier.model_fields) == {*GROUP_FIELDS, "total_resource_slots_patch"}


# Good input


@pytest.mark.parametrize(
    "name",
    ["a", "x" * 64, "데이터-팀.v2", "équipe_1", "dev.team-2024", "Ünïcödé", "..", "名前"],
)
def test_slugs_of_up_to_64_unicode_letters_digits_dots_dashes_are_names(name: str) -> None:
    assert creator(name=name).name == name
    assert GroupModifier(name=name).name == OptionalState.update(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("general", ProjectType.GENERAL),
        ("GENERAL", ProjectType.GENERAL),
        ("model-store", ProjectType.MODEL_STORE),
        ("MODEL_STORE", ProjectType.MODEL_STORE),
        ("Model-Store", ProjectType.MODEL_STORE),
        (" model_store ", ProjectType.MODEL_STORE),
        (ProjectType.MODEL_STORE, ProjectType.MODEL_STORE),
    ],
)
def test_type_by_name_or_value_in_any_case(raw: Any, expected: ProjectType) -> None:
    assert creator(type=raw).type is expected
    assert GroupModifier(type=raw).type == OptionalState.update(expected)


def test_creator_defaults_and_edges() -> None:
    c = GroupCreator(**BASE)
    assert (c.type, c.description, c.is_active, c.integration_id) == (ProjectType.GENERAL, None, True, None)
    assert (c.total_resource_slots, c.allowed_vfolder_hosts) == ({}, {})
    assert (c.dotfiles, c.resource_policy, c.container_registry) == (b"", "default", None)
    assert creator(description="d" * 512).description == "d" * 512
    assert creator(integration_id="i" * 512).integration_id == "i" * 512
    assert creator(dotfiles=b"\x00" * MAX_DOTFILES).dotfiles == b"\x00" * MAX_DOTFILES
    assert creator(dotfiles="é" * (MAX_DOTFILES // 2)).dotfiles == "é".encode() * (MAX_DOTFILES // 2)
    assert creator(dotfiles=bytearray(b"rc")).dotfiles == b"rc"
    assert creator(container_registry={}).container_registry == {}
    assert creator(container_registry={"registry": "cr.io", "project": "p"}).container_registry == {
        "registry": "cr.io",
        "project": "p",
    }
    assert creator(is_active="False").is_active is False
    assert creator(is_active=" true ").is_active is True
    assert creator(total_resource_slots={"cpu": "1.5", "memory": "1g"}).total_resource_slots == {
        "cpu": Decimal("1.5"),
        "mem": Decimal(1024**3),
    }
    hosts = creator(allowed_vfolder_hosts={"local": "local", "nfs": ["upload-file"], "s3": None})
    assert hosts.allowed_vfolder_hosts == {
        "local": ALL_VFOLDER_PERMISSIONS,
        "nfs": {VFolderHostPermission.UPLOAD_FILE},
        "s3": ALL_VFOLDER_PERMISSIONS,
    }
    assert creator(allowed_vfolder_hosts=["a", "b"]).allowed_vfolder_hosts == {
        "a": ALL_VFOLDER_PERMISSIONS,
        "b": ALL_VFOLDER_PERMISSIONS,
    }


def test_modifier_leaves_everything_alone_by_default_and_nullifies_two_fields() -> None:
    m = GroupModifier()
    assert all(getattr(m, f).is_nop() for f in GROUP_FIELDS)
    assert m.fields_json() == {}
    m = GroupModifier(description=None, container_registry=TriState.nullify())
    assert m.description == TriState.nullify() and m.container_registry == TriState.nullify()
    assert m.fields_json() == {"description": None, "container_registry": None}
    m = GroupModifier(description=OptionalState.nop(), name=OptionalState.update("new"))
    assert m.fields_json() == {"name": "new"}


def test_action_accepts_strings_enums_and_optional_states() -> None:
    group_id, user = uuid.uuid4(), uuid.uuid4()
    plain = ModifyGroupAction(group_id=str(group_id), user_update_mode="Replace", user_uuids=[str(user).upper()])
    states = ModifyGroupAction(
        group_id=group_id,
        user_update_mode=OptionalState.update(UserUpdateMode.REPLACE),
        user_uuids=OptionalState.update([user]),
    )
    assert plain == states
    assert plain.user_update_mode == OptionalState.update(UserUpdateMode.REPLACE)
    assert plain.user_uuids == OptionalState.update([user])
    assert ModifyGroupAction(group_id=group_id).user_update_mode.is_nop()
    create = CreateGroupAction(input={**BASE, "type": "model-store"}, group_id=str(group_id))
    assert create.input == creator(type="model-store") and create.group_id == group_id


# Bad input: every field, each error naming it

BAD_COMMON: list[tuple[str, Any]] = [
    ("name", ""),
    ("name", "x" * 65),
    ("name", "has space"),
    ("name", "a/b"),
    ("name", "back\\slash"),
    ("name", "tab\tname"),
    ("name", "new\nline"),
    ("name", "bang!"),
    ("name", 5),
    ("name", b"bytes"),
    ("domain_name", ""),
    ("domain_name", "d" * 257),
    ("domain_name", "nul\x00"),
    ("domain_name", 7),
    ("type", "gpu"),
    ("type", ""),
    ("type", 1),
    ("description", "d" * 513),
    ("description", 5),
    ("description", b"bytes"),
    ("is_active", 1),
    ("is_active", 0),
    ("is_active", "yes"),
    ("is_active", "on"),
    ("is_active", []),
    ("integration_id", "i" * 513),
    ("integration_id", 42),
    ("total_resource_slots", {"bogus": 1}),
    ("total_resource_slots", {"cpu": "-1"}),
    ("total_resource_slots", {"mem": "lots"}),
    ("total_resource_slots", {"cpu": "nan"}),
    ("total_resource_slots", {"cpu": True}),
    ("total_resource_slots", {"mem": "1g", "memory": "2g"}),
    ("total_resource_slots", "cpu=4"),
    ("total_resource_slots", [1]),
    ("allowed_vfolder_hosts", "local"),
    ("allowed_vfolder_hosts", {"local": ["fly"]}),
    ("allowed_vfolder_hosts", {"": None}),
    ("allowed_vfolder_hosts", {1: None}),
    ("allowed_vfolder_hosts", 5),
    ("dotfiles", b"x" * (MAX_DOTFILES + 1)),
    ("dotfiles", "é" * (MAX_DOTFILES // 2 + 1)),  # 32 Ki characters, over 64 KiB as bytes
    ("dotfiles", 5),
    ("dotfiles", ["rc"]),
    ("resource_policy", ""),
    ("resource_policy", 3),
    ("container_registry", {"registry": "docker.io", "extra": "x"}),
    ("container_registry", {"registry": 5}),
    ("container_registry", {1: "x", "other": "y"}),
    ("container_registry", "docker.io"),
    ("container_registry", ["registry"]),
]


@pytest.mark.parametrize(("field", "value"), BAD_COMMON)
def test_bad_creator_field_is_refused_naming_it(field: str, value: Any) -> None:
    refused(GroupCreator, field, **{**BASE, field: value})


@pytest.mark.parametrize(("field", "value"), BAD_COMMON)
def test_bad_modifier_field_is_refused_naming_it(field: str, value: Any) -> None:
    refused(GroupModifier, field, **{field: value})
    refused(GroupModifier, field, **{field: OptionalState.update(value)})
    # Inside an action, as a dict, the inner field is named.
    refused(ModifyGroupAction, field, group_id=uuid.uuid4(), modifier={field: value})
    refused(CreateGroupAction, field, input={**BASE, field: value})


@pytest.mark.parametrize("field", ["name", "domain_name"])
def test_creator_requires_name_and_domain(field: str) -> None:
    fields = dict(BASE)
    del fields[field]
    refused(GroupCreator, field, **fields)
    refused(CreateGroupAction, field, input=fields)


@pytest.mark.parametrize("field", ["type", "is_active", "total_resource_slots", "allowed_vfolder_hosts", "dotfiles"])
def test_creator_fields_with_defaults_are_not_nullable(field: str) -> None:
    refused(GroupCreator, field, **{**BASE, field: None})


@pytest.mark.parametrize("field", NOT_NULLABLE_IN_MODIFIER)
def test_only_description_and_registry_can_be_nullified(field: str) -> None:
    refused(GroupModifier, field, **{field: None})
    refused(GroupModifier, field, **{field: TriState.nullify()})


def test_unknown_fields_are_refused_naming_them() -> None:
    refused(GroupCreator, "colour", **BASE, colour="red")
    refused(GroupModifier, "colour", colour="red")
    refused(ModifyGroupAction, "colour", group_id=uuid.uuid4(), modifier={"colour": "red"})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"group_id": "not-a-uuid"}, "group_id"),
        ({"group_id": None}, "group_id"),
        ({}, "group_id"),
        ({"group_id": uuid.uuid4(), "user_update_mode": "merge"}, "user_update_mode"),
        ({"group_id": uuid.uuid4(), "user_update_mode": 3}, "user_update_mode"),
        ({"group_id": uuid.uuid4(), "user_update_mode": None}, "user_update_mode"),
        ({"group_id": uuid.uuid4(), "user_uuids": "a-single-string"}, "user_uuids"),
        ({"group_id": uuid.uuid4(), "user_uuids": ["user-uuid-1"]}, "user_uuids"),
        ({"group_id": uuid.uuid4(), "user_uuids": [str(uuid.uuid4()), 5]}, "user_uuids"),
        ({"group_id": uuid.uuid4(), "user_uuids": {"a": 1}}, "user_uuids"),
        ({"group_id": uuid.uuid4(), "user_uuids": None}, "user_uuids"),
        ({"group_id": uuid.uuid4(), "modifier": "name=x"}, "modifier"),
        ({"group_id": uuid.uuid4(), "modifier": {"name": "a b"}}, "name"),
    ],
)
def test_bad_modify_action_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    refused(ModifyGroupAction, field, **fields)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input": BASE, "group_id": "nope"}, "group_id"),
        ({"input": "team"}, "input"),
        ({}, "input"),
    ],
)
def test_bad_create_action_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    refused(CreateGroupAction, field, **fields)


# Fuzz: whatever comes in, only InvalidAPIParameters comes out

_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals()
    | st.text(max_size=80)
    | st.binary(max_size=80)
    | st.sampled_from(
        [
            "inf",
            "-1",
            "1e999999",
            "16g",
            "general",
            "MODEL_STORE",
            "local",
            "registry",
            "add",
            "replace",
            "true",
            str(uuid.uuid4()),
        ]
    )
    | st.sampled_from([65, 513, MAX_DOTFILES + 1]).map(lambda n: "x" * n)  # just over each limit
)
_keys = st.text(max_size=12) | st.integers() | st.sampled_from(["cpu", "mem", "registry", "project", "local"])
_values = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys, children, max_size=4)
        | st.dictionaries(_keys, st.text(max_size=8), max_size=4)
    ),  # shaped like slots, hosts, registries
    max_leaves=12,
)
_field_names = st.sampled_from([*GROUP_FIELDS, "user_update_mode", "user_uuids", "group_id"]) | st.text(max_size=10)
_states = (
    _values
    | _values.filter(lambda v: v is not None).map(OptionalState.update)
    | _values.map(TriState)
    | st.just(OptionalState.nop())
)


def _only_invalid_parameters(factory: Any, fields: dict[str, Any]) -> None:
    try:
        factory(**fields)
    except InvalidAPIParameters as exc:
        assert exc.field, fields
    except Exception as exc:  # anything else is a bug
        raise AssertionError(f"{type(exc).__name__} escaped {factory.__name__}({fields!r}): {exc}") from exc


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_field_names, _values, max_size=6), st.booleans())
def test_fuzz_creator(fields: dict[str, Any], with_base: bool) -> None:
    _only_invalid_parameters(GroupCreator, {**BASE, **fields} if with_base else fields)
    _only_invalid_parameters(CreateGroupAction, {"input": {**BASE, **fields} if with_base else fields})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_field_names, _states, max_size=6))
def test_fuzz_modifier(fields: dict[str, Any]) -> None:
    _only_invalid_parameters(GroupModifier, fields)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(GROUP_FIELDS), _values, max_size=4),
    _states,
    _states | st.lists(st.uuids().map(str) | _leaves, max_size=4),
    st.uuids() | _leaves,
)
def test_fuzz_modify_action(modifier: dict[str, Any], mode: Any, users: Any, group_id: Any) -> None:
    _only_invalid_parameters(
        ModifyGroupAction,
        {"group_id": group_id, "modifier": modifier, "user_update_mode": mode, "user_uuids": users},
    )
