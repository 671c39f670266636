"""Resource slots: byte and count quantities, slot names and aliases, refused quantities,
the JSON form (domain.slots)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidAPIParameters
from domain.slots import INFINITY, KNOWN_SLOTS, SLOT_ALIASES, SlotKind
from domain.values import ResourceSlot
from tests.domain.inputs import cpu, mem

GiB = 1024**3
SUFFIX_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
TAILS = ["", "b", "ib", "bytes"]


# Byte quantities


@pytest.mark.parametrize("letter", sorted(SUFFIX_POWERS))
@pytest.mark.parametrize("tail", TAILS)
def test_byte_suffixes_are_powers_of_1024_in_any_case(letter: str, tail: str) -> None:
    expected = 3 * 1024 ** SUFFIX_POWERS[letter]
    assert mem(f"3{letter}{tail}") == expected
    assert mem(f"3{letter.upper()}{tail.upper()}") == expected
    assert mem(f" 3 {letter.upper()}{tail} ") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.5GiB", 1610612736),
        ("16g", 17179869184),
        ("64G", 68719476736),
        ("256G", 256 * GiB),
        ("512m", 512 * 1024**2),
        ("0.5k", 512),
        (".5k", 512),
        ("1.kb", 1024),
        ("8", 8),
        ("8b", 8),
        ("8bytes", 8),
        (8, 8),
        (8.0, 8),
        ("0", 0),
        ("8.000", 8),  # a whole number of bytes written with a fraction
    ],
)
def test_byte_quantities(raw: object, expected: int) -> None:
    value = mem(raw)
    assert value == expected
    assert value == int(value)


def test_a_bare_number_for_mem_is_bytes_not_gigabytes() -> None:
    slots = ResourceSlot.from_user_input({"mem": "8"})
    assert slots["mem"] == 8
    assert slots.to_json() == {"mem": "8"}


def test_large_byte_sizes_are_exact() -> None:
    # Beyond 28 significant digits a Decimal product would be rounded; sizes are capped
    # below 2**63 (BIGINT) now, but a long fraction times a prefix must still be exact.
    assert mem("7e") == 7 * 1024**6
    assert mem("8191.99999999999999999999p") == int(Fraction("8191.99999999999999999999") * 1024**5)
    assert mem(str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize("raw", ["1.2.3g", "g", "16x", "16 gigabytes", "nan", "", "0x10", "1e5", "16gg"])
def test_malformed_byte_sizes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidAPIParameters, match="not a byte size") as info:
        mem(raw)
    assert info.value.field == "resource_slots.mem"


# Count quantities


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1.2345678, "1.235"),
        ("1.2345678", "1.235"),
        ("1.2345", "1.235"),  # half up
        ("1.2344999", "1.234"),
        ("0.0005", "0.001"),
        ("0.000", "0"),
        ("4", "4"),
        (4, "4"),
        ("  2.5 ", "2.5"),
        ("1e3", "1000"),
        ("-0", "0"),
    ],
)
def test_counts_are_rounded_to_three_decimals(raw: object, expected: str) -> None:
    slots = ResourceSlot.from_user_input({"cpu": raw})
    assert slots["cpu"] == Decimal(expected)
    assert slots.to_json() == {"cpu": expected}


@pytest.mark.parametrize("raw", ["16g", "four", "1/2", "", "nan", "infinite"])
def test_non_numeric_counts_are_refused(raw: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        cpu(raw)
    assert info.value.field == "resource_slots.cpu"


@pytest.mark.parametrize("raw", [10**40, "1e999999999", "9" * 30])
def test_absurdly_large_counts_are_refused_as_bad_input(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="too large") as info:
        cpu(raw)
    assert info.value.field == "resource_slots.cpu"


@pytest.mark.parametrize("slot", ["cpu", "mem", "cuda.device", "cuda.shares"])
@pytest.mark.parametrize("raw", ["inf", "INF", "Infinity", " inf ", float("inf")])
def test_inf_is_infinity(slot: str, raw: object) -> None:
    slots = ResourceSlot.from_user_input({slot: raw})
    assert slots[slot] == INFINITY
    assert slots[slot].is_infinite()
    assert slots.to_json() == {slot: "Infinity"}
    assert ResourceSlot.from_json(slots.to_json()) == slots


# Names


def test_aliases_are_stored_under_canonical_names() -> None:
    slots = ResourceSlot.from_user_input({"cpu": "50", "memory": "256G", "gpu": "4"})
    assert dict(slots) == {"cpu": Decimal(50), "mem": Decimal(256 * GiB), "cuda.device": Decimal(4)}
    assert sorted(slots) == ["cpu", "cuda.device", "mem"] and "memory" not in slots.to_json()
    # ... and read back by the alias too, as the seed's caller names them.
    assert slots["memory"] == slots["mem"] and slots.get("gpu") == Decimal(4) and "gpu" in slots
    assert SLOT_ALIASES == {"memory": "mem", "gpu": "cuda.device"}


def test_a_slot_given_directly_and_as_an_alias_is_refused() -> None:
    with pytest.raises(InvalidAPIParameters, match="twice") as info:
        ResourceSlot.from_user_input({"mem": "1g", "memory": "2g"})
    assert info.value.field == "resource_slots.memory"


def test_unknown_slot_is_refused_listing_known_names() -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        ResourceSlot.from_user_input({"cpu": "1", "invalid": "format"}, field="total_resource_slots")
    error = info.value
    assert error.field == "total_resource_slots.invalid"
    assert "unknown slot 'invalid'" in str(error)
    for name in KNOWN_SLOTS:
        assert name in error.reason
    for alias in SLOT_ALIASES:
        assert alias in error.reason


@pytest.mark.parametrize("key", ["CPU", "Mem", "cuda", "", " cpu", 1, None])
def test_slot_names_must_match_exactly(key: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="unknown slot"):
        ResourceSlot.from_user_input({key: "1"})


def test_configured_slots_become_known(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidAPIParameters):
        ResourceSlot.from_user_input({"fpga.mem": "1g"})
    monkeypatch.setitem(KNOWN_SLOTS, "fpga.mem", SlotKind.BYTES)
    assert ResourceSlot.from_user_input({"fpga.mem": "1g"})["fpga.mem"] == GiB


# Refused quantities


@pytest.mark.parametrize("slot", ["cpu", "mem", "cuda.shares"])
@pytest.mark.parametrize("raw", [-1, "-1", -0.5, "-0.5", "-1g", "-inf", Decimal("-3"), " -2 "])
def test_negative_quantities_are_refused(slot: str, raw: object) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        ResourceSlot.from_user_input({slot: raw}, field="total_resource_slots")
    assert info.value.field == f"total_resource_slots.{slot}"


@pytest.mark.parametrize("slot", ["cpu", "mem"])
@pytest.mark.parametrize("raw", [True, False])
def test_booleans_are_refused(slot: str, raw: bool) -> None:
    with pytest.raises(InvalidAPIParameters, match="got a boolean") as info:
        ResourceSlot.from_user_input({slot: raw})
    assert info.value.field == f"resource_slots.{slot}"


@pytest.mark.parametrize("raw", [None, [1], {"a": 1}, b"1"])
def test_non_scalar_quantities_are_refused(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="expected a number or a string"):
        cpu(raw)


@pytest.mark.parametrize("raw", [None, "cpu=1", ["cpu"], 3])
def test_slots_must_be_a_mapping(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="mapping") as info:
        ResourceSlot.from_user_input(raw, field="total_resource_slots")
    assert info.value.field == "total_resource_slots"


# JSON form


def test_resource_slot_json_is_canonical_and_round_trips() -> None:
    slots = ResourceSlot.from_user_input({"mem": "1.5GiB", "cpu": "4.000", "cuda.shares": "0.5", "gpu": 2})
    assert slots.to_json() == {"cpu": "4", "cuda.device": "2", "cuda.shares": "0.5", "mem": "1610612736"}
    assert list(slots.to_json()) == sorted(slots.to_json())
    again = ResourceSlot.from_json(json.loads(json.dumps(slots.to_json())))
    assert again == slots
    assert hash(again) == hash(slots)
    assert again.to_json() == slots.to_json()


def test_resource_slot_is_an_immutable_mapping_comparable_with_dicts() -> None:
    slots = ResourceSlot.from_user_input({"cpu": "2"})
    assert slots == {"cpu": Decimal("2.000")}
    assert slots != {"cpu": Decimal(3)}
    assert slots != ResourceSlot()
    assert len(ResourceSlot()) == 0
    assert ResourceSlot.from_user_input(slots) is slots
    with pytest.raises(TypeError):
        slots["cpu"] = Decimal(1)  # type: ignore[index]


QUANTITY = st.one_of(
    st.integers(min_value=0, max_value=10**15 - 1),  # counts have at most 15 integer digits
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.just("inf"),
)
# Byte counts are whole (a fraction needs a unit) and below 2**63.
BYTE_QUANTITY = st.integers(min_value=0, max_value=2**63 - 1) | st.just("inf")
SLOTS_INPUT = st.fixed_dictionaries(
    {},
    optional={
        name: BYTE_QUANTITY if kind is SlotKind.BYTES else QUANTITY for name, kind in sorted(KNOWN_SLOTS.items())
    },
)


@given(SLOTS_INPUT)
def test_any_parsed_slots_round_trip_through_json(raw: dict[str, object]) -> None:
    slots = ResourceSlot.from_user_input({k: str(v) for k, v in raw.items()})
    encoded = json.loads(json.dumps(slots.to_json()))
    assert ResourceSlot.from_json(encoded) == slots
    assert ResourceSlot.from_json(encoded).to_json() == encoded


SUFFIX = st.tuples(st.sampled_from([*sorted(SUFFIX_POWERS), ""]), st.sampled_from(TAILS), st.booleans())


@given(SUFFIX, st.data())
def test_property_n_with_suffix_is_n_times_a_power_of_1024(suffix: tuple[str, str, bool], data: st.DataObject) -> None:
    letter, tail, upper = suffix
    text = f"{letter}{tail}"
    power = SUFFIX_POWERS.get(letter, 0)
    n = data.draw(st.integers(min_value=0, max_value=(2**63 - 1) // 1024**power))  # sizes fit int64
    raw = f"{n}{text.upper() if upper else text}"
    value = mem(raw)
    assert value == n * 1024**power
    assert ResourceSlot({"mem": value}).to_json() == {"mem": str(n * 1024**power)}


def test_a_resource_slot_built_directly_shows_itself_before_it_is_parsed() -> None:
    """`repr(ResourceSlot({"cpu": "4", "mem": 8}))` raised AttributeError ('str' object has
    no attribute 'is_infinite'), in an assertion's message or a log line alike."""
    assert repr(ResourceSlot({"mem": 8, "cpu": "4"})) == "ResourceSlot({'cpu': '4', 'mem': 8})"
    assert repr(ResourceSlot.from_user_input({"cpu": "4", "mem": "1k"})) == "ResourceSlot({'cpu': '4', 'mem': '1024'})"
    assert repr(ResourceSlot({"mem": INFINITY})) == "ResourceSlot({'mem': 'Infinity'})"
