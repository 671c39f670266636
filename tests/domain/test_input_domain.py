"""The input domain: every value a command accepts can be read back by every projection,
query and report, in every time zone, on SQLite and PostgreSQL ("accepted means readable
forever"). Bad input is InvalidAPIParameters naming the field, short, never a library error.
Slot quantities are in test_input_slots, times and report dates in test_input_times."""

from __future__ import annotations

import dataclasses
import unicodedata
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.actions import ActionTriggerMeta
from domain.actions.base import Role
from domain.domains import DeleteDomainAction, DomainCreator
from domain.errors import InvalidAPIParameters
from domain.group import GroupCreator, GroupModifier
from domain.hosts import VFolderHostPermissionMap
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyModifier,
)
from domain.parsers import INT64_MAX, parse_int, parse_name, parse_text, parse_user_update_mode, parse_uuid_list
from domain.user import UserCreator
from domain.values import ResourceSlot, TriState
from domain.workload.actions import (
    DestroyEndpointAction,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
)
from tests.domain.inputs import HUGE, NEG_HUGE, SHORT, kernel, refused

# Integers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), (" 42 ", 42), ("+7", 7), (str(INT64_MAX), INT64_MAX), (INT64_MAX, INT64_MAX), (3.0, 3)],
)
def test_integers_up_to_int64_are_accepted(raw: object, expected: int) -> None:
    value = parse_int(raw, "n")
    assert value == expected and type(value) is int


@pytest.mark.parametrize(
    "raw",
    [
        2**63,
        str(2**63),
        HUGE,
        "9" * 5000,
        "0" * 25 + "1",  # more than 20 digits, even if small
        NEG_HUGE,
        1e19,
        float("inf"),
        float("nan"),
        "٣",  # Arabic-Indic three: str.isdigit() and int() accept it
        "²",
        "\uff11\uff12",  # full-width digits
        "--5",
        "1_000",
        "0x10",
        "",
        True,
        None,
        [1],
        Decimal(3),
    ],
)
def test_integers_outside_int64_or_not_ascii_are_refused_shortly(raw: object) -> None:
    error = refused(parse_int, raw, "n", field="n")
    assert "99999" not in str(error)


@pytest.mark.parametrize("field", ["max_concurrent_sessions", "idle_timeout", "max_session_lifetime"])
@pytest.mark.parametrize("raw", [HUGE, 2**63, "1" * 30])
def test_policy_integer_fields_refuse_huge_values(field: str, raw: object) -> None:
    refused(KeyPairResourcePolicyCreator, field=field, name="p", **{field: raw})
    refused(KeyPairResourcePolicyModifier, field=field, **{field: raw})


@pytest.mark.parametrize("field", ["mem_used", "io_read", "io_write", "disk_used"])
def test_kernel_stat_integers_refuse_huge_values(field: str) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    refused(ReportKernelStatsAction, field=field, kernel_id=uuid.uuid4(), reported_at=at, **{field: 2**63})
    action = ReportKernelStatsAction(kernel_id=uuid.uuid4(), reported_at=at, **{field: INT64_MAX})
    assert getattr(action, field) == INT64_MAX


@given(st.integers() | st.text(max_size=25) | st.floats() | st.from_regex(r"\A[+-]?[0-9]{1,24}\Z"))
def test_property_an_accepted_integer_fits_int64(raw: object) -> None:
    try:
        value = parse_int(raw, "n")
    except InvalidAPIParameters as exc:
        assert len(str(exc)) < SHORT
        return
    assert type(value) is int and 0 <= value <= INT64_MAX


# Names and text

INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u00ad",
    "\u3164",
    "\ufe0f",  # variation selectors: "base\ufe0f" printed as "base"
    "\ufe00",
    "\U000e0100",
    "\u180b",  # Mongolian free variation selectors
    "\u180f",
    "\ue000",  # private use
    "\U000e0041",  # tag letter
    "\u2028",
    "\u2029",
    "\x1b",
    "\x85",  # C1 next line
    "\x9b",  # C1 CSI
    "\ud800",  # lone surrogate
    "\U000effff" if unicodedata.category("\U000effff") == "Cn" else "\U0010fffe",  # unassigned
]


@pytest.mark.parametrize("char", INVISIBLE)
def test_names_refuse_invisible_bidi_and_control_characters(char: str) -> None:
    for name in (f"base{char}", f"b{char}ase", f"{char}base"):
        error = refused(parse_name, name, "name", field="name")
        assert "control or invisible" in error.reason
        refused(KeyPairResourcePolicyCreator, name=name, field="name")


def test_four_policies_can_no_longer_all_print_as_base() -> None:
    lookalikes = ["base\u200b", "\ufeffbase", "ba\u200dse", "base ", " base", "base\u202e", "bas\u00ade"]
    for name in lookalikes:
        refused(parse_name, name, "name", field="name")
    assert parse_name("base", "name") == "base"


def test_names_are_nfc_normalised() -> None:
    decomposed = "cafe\u0301"
    assert parse_name(decomposed, "name") == "caf\u00e9"
    assert KeyPairResourcePolicyCreator(name=decomposed).name == KeyPairResourcePolicyCreator(name="café").name


@pytest.mark.parametrize("name", [".", ".."])
def test_a_new_name_may_not_be_a_dot_segment_but_a_stored_one_stays_addressable(name: str) -> None:
    """A policy, domain or keypair named `.` or `..` was made, and then no URL could name it
    (`/v1/keypair-resource-policies/..` is the collection). A new name is refused, naming the
    field; a name stored before stays one every read, change and reference takes. (A group's
    URL names its id, not its name: a group may be `..`, test_group_inputs.)"""
    for error in (
        refused(KeyPairResourcePolicyCreator, name=name, field="name"),
        refused(DomainCreator, name=name, field="name"),
        refused(CreateKeyPairAction, access_key=name, user_id=uuid.uuid4(), domain_name="default", field="access_key"),
    ):
        assert "path segment" in error.reason
    assert parse_name(name, "name") == name
    assert DeleteKeyPairResourcePolicyAction(name=name).name == name
    assert DeleteDomainAction(domain_name=name).domain_name == name
    assert ModifyKeyPairAction(access_key=name, resource_policy=TriState.update(name)).access_key == name
    assert DeleteKeyPairAction(access_key=name).access_key == name
    assert parse_name("..a", "name") == "..a" and KeyPairResourcePolicyCreator(name="a.b").name == "a.b"


@pytest.mark.parametrize("name", ["a b", "정책 1", "emoji-\U0001f600", "x" * 256, "é" * 256])
def test_printable_names_stay_accepted(name: str) -> None:
    assert parse_name(name, "name") == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize("name", ["a\u00a0b", "a\u3000b", "x" * 257, "e\u0301" * 257])
def test_names_refuse_other_spaces_and_overlong(name: str) -> None:
    refused(parse_name, name, "name", field="name")


def test_a_description_may_hold_lines_and_tabs_but_no_escape() -> None:
    text = "first line\n\tsecond, with emoji \U0001f468\u200d\U0001f469"
    assert GroupCreator(name="g", domain_name="d", description=text).description == text
    assert GroupModifier(description=text).description.value() == text
    for bad in ("\x1b[31mred", "a\rb", "a\x00b", "bell\x07", "\x9b1m", "a\u2028b", "a\u202eb", "a\ud800"):
        refused(GroupCreator, field="description", name="g", domain_name="d", description=bad)
        refused(GroupModifier, field="description", description=bad)
    refused(GroupCreator, field="description", name="g", domain_name="d", description="d" * 513)


def test_parse_text_helper() -> None:
    assert parse_text("", "f", max_length=4) == ""
    assert parse_text("a\nb", "f", max_length=4, multiline=True) == "a\nb"
    refused(parse_text, "a\nb", "f", max_length=4, field="f")
    refused(parse_text, "abcde", "f", max_length=4, field="f")
    refused(parse_text, 5, "f", max_length=4, field="f")
    refused(parse_text, "x" * 10**6, "f", max_length=4, field="f")


@pytest.mark.parametrize("bad", ["a\nb", "\x1b", "id\u200b", "i" * 513])
def test_integration_id_is_one_bounded_line(bad: str) -> None:
    refused(GroupCreator, field="integration_id", name="g", domain_name="d", integration_id=bad)
    refused(GroupModifier, field="integration_id", integration_id=bad)


@pytest.mark.parametrize(
    "registry",
    [{"registry": "r" * 257}, {"registry": "cr.io\x1b"}, {"project": "p\u200b"}, {"registry": ""}, {"x" * 5000: "a"}],
)
def test_container_registry_values_are_bounded_names(registry: dict[str, str]) -> None:
    error = refused(GroupCreator, field="container_registry", name="g", domain_name="d", container_registry=registry)
    assert "x" * 100 not in str(error)


@pytest.mark.parametrize("host", ["local\u200b", "h" * 257, "nfs\x1b", "", " local"])
def test_vfolder_host_names_are_bounded_names(host: str) -> None:
    refused(VFolderHostPermissionMap.from_user_input, {host: None}, field="allowed_vfolder_hosts")
    refused(VFolderHostPermissionMap.from_user_input, [host], field="allowed_vfolder_hosts")


def test_vfolder_hosts_equal_after_normalisation_are_one_host_given_twice() -> None:
    error = refused(VFolderHostPermissionMap.from_user_input, ["caf\u00e9", "cafe\u0301"])
    assert "twice" in error.reason
    assert VFolderHostPermissionMap.from_user_input(["cafe\u0301"]).to_json().keys() == {"caf\u00e9"}


@pytest.mark.parametrize("field", ["session_name", "domain_name", "access_key", "image", "agent"])
@pytest.mark.parametrize("bad", ["x" * 257, "a\x1bb", "a\u202eb", "", 5])
def test_workload_strings_are_bounded_names(field: str, bad: object) -> None:
    refused(kernel, field=field, **{field: bad})


@given(st.text(max_size=300))
def test_property_an_accepted_name_is_nfc_bounded_and_printable(raw: str) -> None:
    try:
        name = parse_name(raw, "name")
    except InvalidAPIParameters as exc:
        assert exc.field == "name"
        return
    assert 1 <= len(name) <= 256
    assert unicodedata.normalize("NFC", name) == name
    assert parse_name(name, "name") == name
    assert name.strip() == name
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"} for c in name)
    assert name.isprintable()


# ActionTriggerMeta


def test_meta_keeps_its_positional_contract() -> None:
    user = uuid.uuid4()
    meta = ActionTriggerMeta(str(user), "AK1", "SuperAdmin", "default")
    assert (meta.user_id, meta.access_key, meta.role, meta.domain_name, meta.request_id) == (
        user,
        "AK1",
        Role.SUPERADMIN,
        "default",
        None,
    )
    assert meta.role_name == "superadmin"
    assert ActionTriggerMeta(None, None, Role.SERVICE, None, "req-1").request_id == "req-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.access_key = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", "not-a-uuid"),
        ("user_id", 5),
        ("user_id", [1]),
        pytest.param("user_id", 10**5000, id="user_id-huge"),
        ("access_key", [1]),
        ("access_key", 5),
        ("access_key", "A" * 257),
        ("access_key", "AK\u200b"),
        ("access_key", "AK\x1b[2J"),
        ("access_key", ""),
        ("domain_name", b"default"),
        ("domain_name", "d\u202e"),
        ("request_id", "r\n1"),
        ("request_id", "r" * 257),
        ("role", "root"),
        ("role", ["superadmin"]),
        pytest.param("role", 10**5000, id="role-huge"),
    ],
)
def test_meta_refuses_bad_values_naming_the_field(field: str, value: object) -> None:
    fields: dict[str, Any] = {
        "user_id": uuid.uuid4(),
        "access_key": "AK",
        "role": "superadmin",
        "domain_name": "default",
        "request_id": None,
    }
    refused(ActionTriggerMeta, field=field, **{**fields, field: value})


# No library error escapes, whatever the input's type


def test_huge_or_odd_values_in_enum_permission_and_status_fields_are_refused_shortly() -> None:
    huge = 10**5000
    for raw in (huge, [huge], {"a": huge}):
        refused(KeyPairResourcePolicyCreator, field="default_for_unspecified", name="p", default_for_unspecified=raw)
        refused(GroupCreator, field="type", name="g", domain_name="d", type=raw)
        refused(VFolderHostPermissionMap.from_user_input, {"nfs": [raw]}, field="allowed_vfolder_hosts.nfs")
        refused(parse_user_update_mode, raw, "user_update_mode", field="user_update_mode")
        refused(parse_uuid_list, [raw], "user_uuids", field="user_uuids")
        refused(TerminateKernelAction, field="status", kernel_id=uuid.uuid4(), terminated_at="2024-01-01", status=raw)
        refused(
            ReportKernelStatsAction, field="cpu_used", kernel_id=uuid.uuid4(), reported_at="2024-01-01", cpu_used=raw
        )


def test_an_unknown_huge_field_name_is_not_echoed() -> None:
    error = refused(KeyPairResourcePolicyCreator, name="p", **{"x" * 5000: 1})
    assert "x" * 200 not in str(error)


@pytest.mark.parametrize("raw", ["1e999", "-1", "nan", "inf", "\u0661", 10**15, "1" * 70, Decimal("0." + "1" * 60)])
def test_kernel_cpu_used_is_finite_and_bounded(raw: object) -> None:
    refused(ReportKernelStatsAction, field="cpu_used", kernel_id=uuid.uuid4(), reported_at="2024-01-01", cpu_used=raw)


def test_a_host_listed_twice_alike_is_one_host() -> None:
    assert VFolderHostPermissionMap.from_user_input(["local", "local"]).to_json().keys() == {"local"}


def test_a_directly_built_resource_slot_is_read_as_the_same_dict_would_be() -> None:
    """Unknown names and bad quantities are refused naming the slot; an alias and a count
    with more than 3 decimals are read as in a dict (DESIGN: creators take plain dicts and
    strings), not refused for not being the canonical form already."""
    refused(kernel, field="occupied_slots.bogus", occupied_slots=ResourceSlot({"bogus": Decimal(1)}))
    refused(kernel, field="occupied_slots.cpu", occupied_slots=ResourceSlot({"cpu": Decimal("NaN")}))
    built = kernel(occupied_slots=ResourceSlot({"memory": Decimal(1), "cpu": Decimal("1.2345")})).occupied_slots
    assert built == kernel(occupied_slots={"memory": 1, "cpu": "1.2345"}).occupied_slots
    assert built.to_json() == {"cpu": "1.235", "mem": "1"}


def test_the_contracts_actions_take_their_arguments_in_the_order_it_lists_them() -> None:
    """DESIGN.md writes them as signatures (`DeleteKeyPairAction(access_key)`,
    `StartKernelAction(kernel_id, session_id, ...)`), as ActionTriggerMeta's, but every
    one refused a positional argument with a TypeError."""
    user, group, kernel, session = (uuid.uuid4() for _ in range(4))
    now = datetime.now(UTC)
    assert CreateKeyPairAction("AK1", str(user), "default", "p") == CreateKeyPairAction(
        access_key="AK1", user_id=user, domain_name="default", resource_policy="p"
    )
    assert ModifyKeyPairAction("AK1", "p").resource_policy == TriState.update("p")
    assert DeleteKeyPairAction("AK1").access_key == "AK1"
    started = StartKernelAction(
        kernel, session, "s", group, "default", user, "AK1", {"cpu": "1"}, now, [], "img", "agent"
    )
    assert (started.kernel_id, started.session_name, started.occupied_slots, started.agent) == (
        kernel,
        "s",
        ResourceSlot.from_user_input({"cpu": "1"}),
        "agent",
    )
    assert TerminateKernelAction(kernel, now, "CANCELLED").status == "CANCELLED"
    assert DestroyEndpointAction(kernel).endpoint_id == kernel
    assert UserCreator(str(user), "default", "a@b.c").email == "a@b.c"
    assert DeleteKeyPairResourcePolicyAction("p").name == "p"
    with pytest.raises(InvalidAPIParameters) as refused:  # validated as when named
        DeleteKeyPairAction("AK 1")
    assert refused.value.field == "access_key"
    with pytest.raises(TypeError, match="takes 1 positional arguments but 2 were given"):
        DeleteKeyPairAction("AK1", "AK2")
    with pytest.raises(TypeError, match="multiple values for argument 'access_key'"):
        DeleteKeyPairAction("AK1", access_key="AK2")


def test_a_decimal_for_an_integer_is_named_a_decimal() -> None:
    """Decimal('5') was refused as "expected an integer, got 5": the value shown as JSON
    writes it, which reads as an integer."""
    error = refused(
        KeyPairResourcePolicyCreator, field="max_concurrent_sessions", name="p", max_concurrent_sessions=Decimal("5")
    )
    assert "expected an integer, got the decimal 5" in str(error)
