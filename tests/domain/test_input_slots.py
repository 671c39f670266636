"""The input domain of slot quantities and LEDGER_EXTRA_SLOTS: every accepted quantity can
be read back by every projection, query and report; bad input is InvalidAPIParameters
naming the field, a bad variable one ConfigurationError line (see test_input_domain)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import ConfigurationError, InvalidAPIParameters, LedgerError
from domain.group import GroupCreator
from domain.keypair_resource_policy import KeyPairResourcePolicyCreator
from domain.parsers import json_float
from domain.slots import _DEFAULT_SLOTS, INFINITY, KNOWN_SLOTS, MAX_BYTES, SlotKind, _KnownSlots, slots_from_env
from domain.values import ResourceSlot
from tests.domain.inputs import HUGE, SHORT, cpu, kernel, mem, refused

# Slot quantities: bytes as Backend.AI's BinarySize unit tests expect


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


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400 + ".0"])
@pytest.mark.parametrize("slot", ["mem", "cpu"])
def test_a_json_number_too_large_for_a_float_is_no_unlimited_limit(slot: str, number: str) -> None:
    """JSON read with `json_float` (every adapter's reading of caller JSON) keeps 1e400 a
    number too large, not float('inf'), which a limit reads as unlimited."""
    parsed = json.loads(f'{{"{slot}": {number}}}', parse_float=json_float)
    refused(KeyPairResourcePolicyCreator, name="p", field=f"total_resource_slots.{slot}", total_resource_slots=parsed)
    assert json.loads("[1.5, 1e308]", parse_float=json_float) == [1.5, 1e308]  # ordinary floats stay floats
    with pytest.raises(ValueError, match="out of range"):
        json.loads("1e999999999999999999999", parse_float=json_float)


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


# LEDGER_EXTRA_SLOTS


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
