"""How input appears in refusals: kinds of values in the words of the JSON a caller sent."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from domain.errors import InvalidAPIParameters
from domain.parsers import parse_name, parse_uuid
from domain.shown import kind_of, shown


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, "null"),
        (True, "a boolean"),
        (7, "a number"),
        (1.5, "a number"),
        (Decimal("1e400"), "a number"),
        ("x", "a string"),
        (b"x", "bytes"),
        ([1], "a list"),
        ((1,), "a list"),
        ({"a": 1}, "an object"),
        (uuid.UUID(int=1), "a UUID"),
        (frozenset(), "a frozenset"),
    ],
)
def test_kinds_are_named_as_json_names_them(raw: object, kind: str) -> None:
    assert kind_of(raw) == kind


def test_containers_are_shown_by_their_kind() -> None:
    assert shown({"a": 1}) == "an object"
    assert shown([1, 2]) == "a list"
    assert shown(Decimal("1e400")) == "1E+400"  # as JSON wrote it
    assert shown(None) == "null"  # not Python's None


@pytest.mark.parametrize(("raw", "got"), [(None, "got null"), (5, "got a number"), ({}, "got an object")])
def test_a_parser_names_what_it_got(raw: object, got: str) -> None:
    for parse in (parse_name, parse_uuid):
        with pytest.raises(InvalidAPIParameters) as info:
            parse(raw, "name")
        assert info.value.field == "name"
        assert info.value.reason.endswith(got), info.value.reason
