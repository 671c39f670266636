"""Value types: the modifier states (TriState, OptionalState) and enums (domain.values)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidAPIParameters
from domain.values import NOP, DefaultForUnspecified, OptionalState, TriState

# TriState and OptionalState


def test_tristate_nop() -> None:
    state: TriState[int] = TriState.nop()
    assert state.is_nop()
    assert not state.is_nullify()
    assert state == TriState()
    with pytest.raises(ValueError, match="no value"):
        state.value()


def test_tristate_update() -> None:
    state = TriState.update(5)
    assert not state.is_nop()
    assert not state.is_nullify()
    assert state.value() == 5
    assert state == TriState.update(5)
    assert state != TriState.update(6)
    assert state != TriState.nop()


def test_tristate_nullify() -> None:
    state: TriState[int] = TriState.nullify()
    assert state.is_nullify()
    assert not state.is_nop()
    assert state.value() is None
    assert state == TriState.nullify()
    assert state != TriState.nop()
    assert state != TriState.update(0)


def test_tristate_update_needs_a_value() -> None:
    with pytest.raises(InvalidAPIParameters, match="nullify"):
        TriState.update(None)


def test_optional_state_update_and_nop() -> None:
    assert OptionalState.update(0).value() == 0
    assert not OptionalState.update(0).is_nop()
    assert OptionalState.nop().is_nop()
    assert OptionalState() == OptionalState.nop()
    assert OptionalState(NOP).is_nop()
    with pytest.raises(ValueError, match="no value"):
        OptionalState.nop().value()


def test_optional_state_cannot_hold_null() -> None:
    with pytest.raises(InvalidAPIParameters, match="null"):
        OptionalState(None)
    with pytest.raises(InvalidAPIParameters, match="null"):
        OptionalState.update(None)
    assert not hasattr(OptionalState, "nullify")


def test_states_of_different_kinds_are_not_equal() -> None:
    assert OptionalState.update(1) != TriState.update(1)
    assert OptionalState.nop() != TriState.nop()
    assert hash(TriState.update(1)) == hash(TriState.update(1))
    assert len({TriState.update(1), TriState.update(1), TriState.nullify()}) == 2


# DefaultForUnspecified


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LIMITED", DefaultForUnspecified.LIMITED),
        ("limited", DefaultForUnspecified.LIMITED),
        ("Limited", DefaultForUnspecified.LIMITED),
        (" unlimited ", DefaultForUnspecified.UNLIMITED),
        ("UnLimited", DefaultForUnspecified.UNLIMITED),
        (DefaultForUnspecified.UNLIMITED, DefaultForUnspecified.UNLIMITED),
    ],
)
def test_default_for_unspecified_by_name_in_any_case(raw: object, expected: DefaultForUnspecified) -> None:
    assert DefaultForUnspecified.parse(raw, field="default_for_unspecified") is expected


@pytest.mark.parametrize("raw", ["partial", "", None, 0, True, ["LIMITED"]])
def test_default_for_unspecified_refuses_other_values(raw: object) -> None:
    with pytest.raises(InvalidAPIParameters, match="LIMITED, UNLIMITED") as info:
        DefaultForUnspecified.parse(raw, field="default_for_unspecified")
    assert info.value.field == "default_for_unspecified"
