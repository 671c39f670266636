"""The input domain: every value a command accepts can be read back by every projection,
query and report, in every time zone, on SQLite and PostgreSQL ("accepted means readable
forever"). Bad input is InvalidAPIParameters naming the field, short, never a library error."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import unicodedata
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.actions import ActionTriggerMeta
from domain.actions.base import Role
from domain.errors import ConfigurationError, InvalidAPIParameters, LedgerError
from domain.group import GroupCreator, GroupModifier
from domain.hosts import VFolderHostPermissionMap
from domain.keypair_resource_policy import KeyPairResourcePolicyCreator, KeyPairResourcePolicyModifier
from domain.parsers import INT64_MAX, parse_int, parse_name, parse_text, parse_user_update_mode, parse_uuid_list
from domain.slots import _DEFAULT_SLOTS, INFINITY, KNOWN_SLOTS, MAX_BYTES, SlotKind, _KnownSlots, slots_from_env
from domain.times import parse_time
from domain.usage import month_window, period_window
from domain.values import ResourceSlot
from domain.workload.actions import ReportKernelStatsAction, StartKernelAction, TerminateKernelAction

HUGE = pytest.param(10**5000, id="10**5000")
NEG_HUGE = pytest.param(-(10**5000), id="-10**5000")
SHORT = 300  # no message may be longer (a 5000-digit echo would be; known slot lists are not)
ZONES = [
    ZoneInfo(z) for z in ("UTC", "Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns", "Asia/Kathmandu")
]


def refused(call: Any, *args: Any, field: str | None = None, **kwargs: Any) -> InvalidAPIParameters:
    """Calls, expecting InvalidAPIParameters naming `field` (or a part of it), short."""
    with pytest.raises(InvalidAPIParameters) as info:
        call(*args, **kwargs)
    error = info.value
    if field is not None:
        assert error.field is not None and (error.field == field or error.field.startswith(field + ".")), (
            error.field,
            field,
        )
    assert len(str(error)) < SHORT, str(error)
    assert "\n" not in str(error)
    return error


def mem(raw: object) -> Decimal:
    return ResourceSlot.from_user_input({"mem": raw})["mem"]


def cpu(raw: object) -> Decimal:
    return ResourceSlot.from_user_input({"cpu": raw})["cpu"]


# 1. Integers


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


# 2. Slot quantities: bytes as Backend.AI's BinarySize unit tests expect


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1 byte", 1),
        (19291991, 19291991),
        ("1.1k", 1126),  # 1126.4, truncated
        ("11_021_204", 11021204),
        ("12345 bytes", 12345),
        ("12345 B", 12345),
        ("12_345 bytes", 12345),
        ("99 bytes", 99),
        ("1 KiB", 1024),
        ("2 KiBytes", 2048),
        ("124.32 KiB", 127303),  # 127303.68, truncated
        ("1g", 2**30),
        ("1m", 1048576),
        ("0.5m", 524288),
        ("512k", 524288),
        ("536870912.000000", 536870912),
        ("1.000000K", 1024),
        (Decimal("8.000"), 8),
        (str(MAX_BYTES), MAX_BYTES),
    ],
)
def test_byte_sizes_as_backend_ai_binary_size(raw: object, expected: int) -> None:
    assert mem(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["1.1", "0.5", "1.000001", 0.1, 0.5, 8.9, Decimal("1.5"), "1.5b", "1.5 bytes", "0.0001k", "1__0", "_1", "1_"],
)
def test_fractions_of_a_byte_are_refused(raw: object) -> None:
    refused(mem, raw, field="resource_slots.mem")


@pytest.mark.parametrize(
    "raw", [2**63, str(2**63), "8e", "8192p", "9" * 19, float(2**63), HUGE, "9" * 5000, Decimal("1e30")]
)
def test_byte_sizes_beyond_int64_are_refused(raw: object) -> None:
    refused(mem, raw, field="resource_slots.mem")


@pytest.mark.parametrize("raw", ["0.0001", "0.0004", 0.0001, Decimal("1e-999999999"), "1e-9"])
def test_a_non_zero_count_that_would_round_to_zero_is_refused(raw: object) -> None:
    refused(cpu, raw, field="resource_slots.cpu")


@pytest.mark.parametrize("raw", ["0", "0.000", "-0", 0, 0.0, Decimal("0E-10")])
def test_zero_stays_allowed(raw: object) -> None:
    assert cpu(raw) == 0
    if raw != "-0":  # a byte size has no sign
        assert mem(raw) == 0


@pytest.mark.parametrize(
    "raw",
    [10**15, "1000000000000000", "999999999999999.9995", 1e15, HUGE, "9" * 5000, "1e999999999", "1e" + "9" * 40],
)
def test_counts_beyond_15_integer_digits_are_refused(raw: object) -> None:
    refused(cpu, raw, field="resource_slots.cpu")


def test_the_largest_count_is_accepted() -> None:
    assert cpu("999999999999999.999") == Decimal("999999999999999.999")
    assert cpu(10**15 - 1) == 10**15 - 1


@pytest.mark.parametrize("slot", ["cpu", "mem", "cuda.shares"])
@pytest.mark.parametrize(
    "raw",
    ["nan", "NaN", "-nan", "snan", float("nan"), Decimal("NaN"), Decimal("sNaN"), "٣", "\uff11", "1e3".upper() + "x"],
)
def test_nan_and_non_ascii_digits_are_refused_everywhere(slot: str, raw: object) -> None:
    refused(ResourceSlot.from_user_input, {slot: raw}, field=f"resource_slots.{slot}")


def test_infinity_stays_allowed_for_limits() -> None:
    creator = KeyPairResourcePolicyCreator(name="p", total_resource_slots={"mem": "inf", "cpu": "Infinity"})
    assert creator.total_resource_slots["mem"] == INFINITY
    assert GroupCreator(name="g", domain_name="d", total_resource_slots={"cpu": "inf"}).total_resource_slots["cpu"] == (
        INFINITY
    )


def kernel(**fields: Any) -> StartKernelAction:
    base: dict[str, Any] = {
        "kernel_id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "session_name": "s",
        "group_id": uuid.uuid4(),
        "domain_name": "default",
        "user_id": uuid.uuid4(),
        "access_key": "AK",
        "occupied_slots": {"cpu": "1", "mem": "1g"},
        "started_at": "2024-01-01T00:00:00Z",
    }
    return StartKernelAction(**{**base, **fields})


@pytest.mark.parametrize("raw", ["inf", "Infinity", float("inf"), Decimal("Infinity")])
@pytest.mark.parametrize("slot", ["mem", "cpu"])
def test_a_kernel_cannot_occupy_infinity(slot: str, raw: object) -> None:
    refused(kernel, field=f"occupied_slots.{slot}", occupied_slots={slot: raw})
    # Nor through a ResourceSlot built directly, bypassing the parser.
    refused(kernel, field=f"occupied_slots.{slot}", occupied_slots=ResourceSlot({slot: INFINITY}))


def test_a_directly_built_resource_slot_is_checked_like_input() -> None:
    refused(kernel, field="occupied_slots.cpu", occupied_slots=ResourceSlot({"cpu": Decimal("NaN")}))
    refused(kernel, field="occupied_slots.mem", occupied_slots=ResourceSlot({"mem": Decimal(2**64)}))
    refused(kernel, field="occupied_slots.cpu", occupied_slots=ResourceSlot({"cpu": Decimal("0.0001")}))
    good = ResourceSlot.from_user_input({"cpu": "1.5", "mem": "2g"})
    assert kernel(occupied_slots=good).occupied_slots is good


def test_alias_and_canonical_name_together_stay_refused() -> None:
    refused(ResourceSlot.from_user_input, {"gpu": "1", "cuda.device": "2"}, field="resource_slots")


def test_a_huge_unknown_slot_name_is_not_echoed() -> None:
    error = refused(ResourceSlot.from_user_input, {"x" * 5000: "1"})
    assert "x" * 100 not in str(error)


COUNT_INPUT = (
    st.integers(min_value=-5, max_value=10**16)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.floats()
    | st.from_regex(r"\A[0-9_.]{1,22}(e[+-]?[0-9]{1,3})?\Z")
)
BYTES_INPUT = (
    st.integers(min_value=-5, max_value=2**64)
    | st.floats()
    | st.from_regex(r"\A[0-9_.]{1,22} ?([kmgtpeKMGTPE](i?b|i?bytes?)?|b|bytes?)?\Z")
)


def _check_readable(slots: ResourceSlot) -> None:
    encoded = json.loads(json.dumps(slots.to_json(), allow_nan=False))
    again = ResourceSlot.from_json(encoded)
    assert again == slots and again.to_json() == encoded
    for name, value in slots.items():
        assert not value.is_nan()
        if value.is_infinite():
            continue
        assert math.isfinite(float(value))  # the reports' float() conversion
        if KNOWN_SLOTS[name] is SlotKind.BYTES:
            assert value == int(value) and 0 <= int(value) <= MAX_BYTES  # a BIGINT
        else:
            assert value * 1000 == int(value * 1000) and 0 <= value < 10**15


@settings(max_examples=300)
@given(st.sampled_from(["cpu", "cuda.shares", "mem", "cuda.mem"]), COUNT_INPUT | BYTES_INPUT, st.booleans())
def test_property_any_accepted_slot_value_is_readable_everywhere(slot: str, raw: object, finite: bool) -> None:
    try:
        slots = ResourceSlot.from_user_input({slot: raw}, allow_infinity=not finite)
    except InvalidAPIParameters as exc:
        assert exc.field == f"resource_slots.{slot}"
        assert len(str(exc)) < SHORT
        return
    _check_readable(slots)
    if finite:
        assert not slots[slot].is_infinite()
    if slots[slot] != 0 and isinstance(raw, int | float):
        assert slots[slot] > 0  # nothing non-zero became zero


# 3. LEDGER_EXTRA_SLOTS


def test_extra_slots_are_parsed() -> None:
    assert slots_from_env("fpga.device, fpga.mem:bytes ,npu:COUNT,,") == {
        "fpga.device": SlotKind.COUNT,
        "fpga.mem": SlotKind.BYTES,
        "npu": SlotKind.COUNT,
    }
    assert slots_from_env(None) == {} and slots_from_env("") == {}


@pytest.mark.parametrize(
    ("value", "entry"),
    [
        ("fpga:bogus", "fpga:bogus"),
        (":count", ":count"),
        ("my slot:count", "my slot:count"),
        ("bell\x07:count", "bell\\x07:count"),
        ("cpu:bytes", "cpu:bytes"),
        ("cpu:count", "cpu:count"),
        ("memory:bytes", "memory:bytes"),
        ("fpga,fpga:bytes", "fpga:bytes"),
        ("x" * 65, "xxxx"),
        ("\uff41:count", "\uff41:count"),  # full-width letter
    ],
)
def test_a_bad_extra_slot_entry_is_one_configuration_error_line(value: str, entry: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        slots_from_env(value)
    message = str(info.value)
    assert isinstance(info.value, LedgerError) and not isinstance(info.value, ValueError)
    assert message.startswith("LEDGER_EXTRA_SLOTS: bad entry ")
    assert entry in message
    assert "\n" not in message and "\x07" not in message and len(message) < SHORT


def test_known_slots_read_the_environment_at_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_EXTRA_SLOTS", "fpga:bogus")
    slots = _KnownSlots()  # constructing it reads nothing
    with pytest.raises(ConfigurationError):
        "cpu" in slots  # noqa: B015
    with pytest.raises(ConfigurationError):  # and again until the variable is fixed
        len(slots)
    monkeypatch.setenv("LEDGER_EXTRA_SLOTS", "fpga.mem:bytes")
    assert slots["fpga.mem"] is SlotKind.BYTES
    assert dict(slots) == {**_DEFAULT_SLOTS, "fpga.mem": SlotKind.BYTES}
    monkeypatch.setenv("LEDGER_EXTRA_SLOTS", "other")
    assert "other" not in slots  # loaded once
    slots.reload()
    assert "other" in slots and "fpga.mem" not in slots


def _run_python(code: str, extra_slots: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGER_EXTRA_SLOTS": extra_slots}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60)


def test_a_bad_extra_slots_variable_does_not_break_imports() -> None:
    code = (
        "import domain.values, domain.validation, domain.keypair_resource_policy, domain.group, domain.workload\n"
        "from domain.errors import ConfigurationError\n"
        "from domain.values import ResourceSlot\n"
        "try:\n"
        "    ResourceSlot.from_user_input({'cpu': '1'})\n"
        "except ConfigurationError as exc:\n"
        "    print('caught', exc)\n"
    )
    result = _run_python(code, "fpga:bogus")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "caught LEDGER_EXTRA_SLOTS: bad entry 'fpga:bogus': the kind must be count or bytes"


# 4. Times


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
        "1900-01-01T00:00:00+00:01",  # 1899 in UTC
        "2024-01-01T00:00:00+23:59",  # an offset no zone has
        "2024-01-01T00:00:00+05:30:15.5",  # a fraction of a second in the offset
        "\uff12\uff10\uff12\uff14-01-01",
        "x" * 5000,
        "",
        "yesterday",
        0,
        1.5,
        True,
        ["2024-01-01"],
        date(2024, 1, 1),
        None,
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_times_that_some_zone_or_utc_cannot_hold_are_refused(raw: object) -> None:
    refused(parse_time, raw, "at", field="at")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),  # naive is UTC
        ("2024-01-01T09:00:00+09:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("8999-12-31T23:59:59.999999Z", datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)),
        (datetime(1900, 1, 1, 9, tzinfo=ZoneInfo("Asia/Seoul")), datetime(1900, 1, 1, 0, 32, 8, tzinfo=UTC)),
    ],
)
def test_times_in_range_keep_their_semantics(raw: object, expected: datetime) -> None:
    parsed = parse_time(raw, "at")
    assert parsed == expected and parsed.tzinfo is not None


def test_a_time_keeps_the_offset_it_was_given() -> None:
    assert parse_time("2024-01-01T09:00:00+09:00", "at").isoformat() == "2024-01-01T09:00:00+09:00"


@pytest.mark.parametrize("field", ["started_at"])
def test_kernel_times_are_checked(field: str) -> None:
    refused(kernel, field=field, started_at="0001-01-01T00:00:00+01:00")
    refused(TerminateKernelAction, field="terminated_at", kernel_id=uuid.uuid4(), terminated_at=10**5000)


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none() | st.timezones())
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
)
def test_property_any_accepted_time_converts_to_utc_and_every_zone(raw: datetime | str) -> None:
    try:
        parsed = parse_time(raw, "at")
    except InvalidAPIParameters as exc:
        assert exc.field == "at"
        return
    utc = parsed.astimezone(UTC)
    for zone in ZONES:
        local = parsed.astimezone(zone)
        assert local.date() + timedelta(days=1) > local.date()  # day windows around it exist too
        assert local - timedelta(days=1) < local
    # The stored form reads back as the same instant (compared in UTC: Python does not
    # call a time in a DST gap equal to anything in another zone).
    assert parse_time(parsed.isoformat(), "at").astimezone(UTC) == utc
    assert parse_time(utc.isoformat(), "at") == utc


# 5. Names and text

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


# 6. ActionTriggerMeta


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


# 7. Usage report dates


@pytest.mark.parametrize(
    "month",
    ["999912", "000101", "189812", "900101", "٢٠٢٤١٠", "\uff12\uff10\uff12\uff14\uff11\uff10", "202413", "2024-1"],
)
@pytest.mark.parametrize("zone", ["Asia/Seoul", "UTC", "Etc/GMT+12"])
def test_report_months_outside_1899_9000_are_refused_naming_month(month: str, zone: str) -> None:
    error = refused(month_window, month, ZoneInfo(zone), field="month")
    assert error.reason.startswith("Invalid date values")
    assert "YYYYMM between 189901 and 900012" in error.reason


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("99991231", "99991231", "start_date"),
        ("00010101", "00010102", "start_date"),
        ("20240101", "99991231", "end_date"),
        ("90001231", "90010101", "end_date"),
        ("18981231", "18990101", "start_date"),
        ("٢٠٢٤١٠٠١", "20241002", "start_date"),
        ("20241001", "2024101", "end_date"),  # strptime would read 2024-10-1
        ("20240230", "20240301", "start_date"),
    ],
)
def test_report_periods_outside_1899_9000_are_refused_naming_the_date(start: str, end: str, field: str) -> None:
    for zone in ("Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12"):
        error = refused(period_window, start, end, ZoneInfo(zone), field=field)
        assert error.reason.startswith("Invalid date values")
        assert "YYYYMMDD between 18990101 and 90001231" in error.reason


def test_report_window_edges_are_accepted_and_relational_messages_kept() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    # One year beyond accepted times on each side: 1900-01-01T00:00Z is December 1899
    # in New York, 8999-12-31T23:00Z is 9000 in Seoul; both months must be reportable.
    assert month_window("189912", ZoneInfo("America/New_York"))[0] == datetime(
        1899, 12, 1, tzinfo=ZoneInfo("America/New_York")
    )
    assert month_window("900012", seoul)[1] == datetime(9001, 1, 1, tzinfo=seoul)
    assert period_window("90001231", "90001231", seoul)[1] == datetime(9001, 1, 1, tzinfo=seoul)
    assert period_window("18990101", "18990101", ZoneInfo("Pacific/Kiritimati"))[0].year == 1899
    assert refused(period_window, "20240101", "20240410", seoul).message == "Cannot query more than 100 days"
    assert refused(period_window, "20241002", "20241001", seoul).message == "end_date must be later than start_date."


@settings(max_examples=200)
@given(st.from_regex(r"\A[0-9]{6}\Z"), st.sampled_from(ZONES))
def test_property_any_accepted_month_window_converts_to_utc(month: str, zone: ZoneInfo) -> None:
    try:
        start, end = month_window(month, zone)
    except InvalidAPIParameters as exc:
        assert exc.field == "month"
        return
    assert start.astimezone(UTC) < end.astimezone(UTC)
    for other in ZONES:
        assert start.astimezone(other) < end.astimezone(other)


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


def test_a_directly_built_resource_slot_needs_known_names_and_canonical_values() -> None:
    refused(kernel, field="occupied_slots.memory", occupied_slots=ResourceSlot({"memory": Decimal(1)}))
    refused(kernel, field="occupied_slots.cpu", occupied_slots=ResourceSlot({"cpu": Decimal("1.2345")}))
