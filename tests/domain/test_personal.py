"""Declarations of personal values (domain.personal): the path grammar, locating declared
values in a state, and the registry of declarations and erasing events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.personal import (
    EACH,
    WITHHELD,
    declarations,
    declare,
    declared,
    erased_subject,
    erases,
    erasing_topics,
    parse_path,
    path_text,
    personal,
    personal_texts,
    withheld,
)


def user_subject(state: Any) -> str | None:
    return f"user:{state['key']}"


def group_subject(state: Any) -> str | None:
    group_id = state.get("fields", {}).get("group_id")
    return None if group_id is None else f"group:{group_id}"


# Throwaway event classes, declared once when this module is imported (declarations are
# one per class and process-wide, as they will be beside the real events).
class FakeCreated:
    pass


class FakeMembersAdded:
    pass


class FakePurged:
    pass


class FakeQuiet:
    pass


FAKE_CREATED = personal("fields.email", "fields.full_name", subject=user_subject)
FAKE_MEMBERS = personal("user_ids[*]", subject=group_subject)
declare(FakeCreated, FAKE_CREATED)
declare(FakeMembersAdded, FAKE_MEMBERS)
erases(FakePurged, lambda state: f"group:{state['key']}")


# The grammar


def test_paths_parse_to_keys_and_each() -> None:
    assert parse_path("fields.email") == ("fields", "email")
    assert parse_path("changes.email.old") == ("changes", "email", "old")
    assert parse_path("spec.creator.full_name") == ("spec", "creator", "full_name")
    assert parse_path("user_ids[*]") == ("user_ids", EACH)
    assert parse_path("rows[*].user_ids[*]") == ("rows", EACH, "user_ids", EACH)
    assert parse_path("grid[*][*]") == ("grid", EACH, EACH)
    assert parse_path("key") == ("key",)


@pytest.mark.parametrize(
    "bad", ["", ".email", "fields.", "fields..email", "[*]", "fields.*", "changes.*.old", "ids[0]", "ids[*", "a\\b"]
)
def test_paths_outside_the_grammar_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="personal path"):
        personal(bad, subject=user_subject)


def test_a_declaration_names_at_least_one_path() -> None:
    with pytest.raises(ValueError, match="at least one path"):
        personal(subject=user_subject)


def test_path_text() -> None:
    assert path_text(("fields", "email")) == "fields.email"
    assert path_text(("user_ids", 2)) == "user_ids[2]"
    assert path_text(("rows", 0, "user_ids", 1)) == "rows[0].user_ids[1]"
    assert path_text(("fields", "a.b")) == 'fields["a.b"]'
    assert path_text(("", 0)) == '[""][0]'
    assert path_text(("a", "b")) == "a.b"


steps = st.one_of(st.integers(min_value=0, max_value=20), st.text(alphabet='ab.[]\\0"', min_size=0, max_size=4))


@pytest.mark.parametrize(
    ("one", "other"),
    [(("", 0), (0,)), (("a.b",), ("a", "b")), (("a", ""), ("a.",)), (("[0]",), (0,)), (("a\\", "b"), ("a\\.b",))],
)
def test_lookalike_paths_read_differently(one: tuple[str | int, ...], other: tuple[str | int, ...]) -> None:
    assert path_text(one) != path_text(other)


@settings(max_examples=150)
@given(st.lists(st.lists(steps, min_size=1, max_size=3).map(tuple), min_size=2, max_size=12, unique=True))
def test_different_paths_read_differently(paths: list[tuple[str | int, ...]]) -> None:
    """The text is authenticated with each sealed value: no two paths may share it."""
    assert len({path_text(path) for path in paths}) == len(paths)


# Locating values


def test_locate_finds_present_values_with_their_subject() -> None:
    state = {"key": "u1", "fields": {"email": "a@example.org", "full_name": "Ann", "role": "user"}}
    assert FAKE_CREATED.locate(state) == [(("fields", "email"), "user:u1"), (("fields", "full_name"), "user:u1")]


def test_locate_skips_missing_paths_and_none_values() -> None:
    assert FAKE_CREATED.locate({"key": "u1", "fields": {"email": None}}) == []
    assert FAKE_CREATED.locate({"key": "u1", "fields": {"full_name": "Ann"}}) == [(("fields", "full_name"), "user:u1")]
    assert FAKE_CREATED.locate({"key": "u1"}) == []
    # A path through something that is not a mapping (or a list, for [*]) is absent too.
    assert FAKE_CREATED.locate({"key": "u1", "fields": "email"}) == []
    assert FAKE_MEMBERS.locate({"fields": {"group_id": "g"}, "user_ids": {"0": "u"}}) == []


def test_locate_every_list_item() -> None:
    state = {"fields": {"group_id": "g1"}, "user_ids": ["u1", None, "u3"]}
    assert FAKE_MEMBERS.locate(state) == [(("user_ids", 0), "group:g1"), (("user_ids", 2), "group:g1")]
    assert FAKE_MEMBERS.locate({"fields": {"group_id": "g1"}, "user_ids": ("u1",)}) == [(("user_ids", 0), "group:g1")]
    nested = personal("rows[*].user_ids[*]", subject=user_subject)
    state = {"key": "k", "rows": [{"user_ids": ["a", "b"]}, {"other": 1}, {"user_ids": ["c"]}]}
    assert [path for path, _ in nested.locate(state)] == [
        ("rows", 0, "user_ids", 0),
        ("rows", 0, "user_ids", 1),
        ("rows", 2, "user_ids", 0),
    ]


def test_without_a_subject_nothing_is_located() -> None:
    assert FAKE_MEMBERS.locate({"fields": {}, "user_ids": ["u1"]}) == []


def test_a_whole_value_may_be_personal() -> None:
    spec = personal("spec.creator", subject=user_subject)
    creator = {"full_name": "Ann", "email": "a@example.org"}
    assert spec.locate({"key": "k", "spec": {"creator": creator}}) == [(("spec", "creator"), "user:k")]


json_leaves = st.one_of(st.text(max_size=5), st.integers(), st.booleans())


@settings(max_examples=60)
@given(st.lists(st.one_of(st.none(), json_leaves), max_size=6), st.dictionaries(st.sampled_from("xyz"), json_leaves))
def test_locate_finds_exactly_the_non_none_items(items: list[Any], other: dict[str, Any]) -> None:
    state = {"fields": {"group_id": "g"}, "user_ids": items, **other}
    located = FAKE_MEMBERS.locate(state)
    assert [path for path, _ in located] == [("user_ids", i) for i, item in enumerate(items) if item is not None]
    assert {subject for _, subject in located} <= {"group:g"}


# The registry


def test_declared_by_class_or_by_topic() -> None:
    assert declared(FakeCreated) == (FAKE_CREATED,)
    assert declared(get_topic(FakeMembersAdded)) == (FAKE_MEMBERS,)
    assert declared(FakeQuiet) == ()
    assert declared("no.such:Topic") == ()
    assert declarations()[get_topic(FakeCreated)] == (FAKE_CREATED,)


def test_one_declaration_per_class() -> None:
    with pytest.raises(ValueError, match="already declares"):
        declare(FakeCreated, personal("fields.other", subject=user_subject))
    with pytest.raises(ValueError, match="at least one"):
        declare(FakeQuiet)
    assert declared(FakeCreated) == (FAKE_CREATED,)
    assert declared(FakeQuiet) == ()


def test_erasing_events_name_their_subject() -> None:
    assert erased_subject(FakePurged, {"key": "g1"}) == "group:g1"
    assert erased_subject(get_topic(FakePurged), {"key": "g2"}) == "group:g2"
    assert erased_subject(FakeCreated, {"key": "g1"}) is None
    assert get_topic(FakePurged) in erasing_topics()
    with pytest.raises(ValueError, match="already names"):
        erases(FakePurged, lambda state: None)


def test_personal_texts_by_subject() -> None:
    state = {"key": "u1", "fields": {"email": "a@x.org", "tags": ["t1", {"n": "t2"}], "empty": ""}}
    declarations = [personal("fields.email", "fields.tags", "fields.empty", "fields.absent", subject=user_subject)]
    assert personal_texts(declarations, state) == {"user:u1": {"a@x.org", "t1", "t2"}}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Key (email)=(ada@x.org) already exists", f"Key (email)=({WITHHELD}) already exists"),
        ("Key (lower(email))=(ada@x.org)", f"Key (lower(email))=({WITHHELD})"),  # lowered by the database
        ("Ada is not Adams, nor Adam", f"{WITHHELD} is not Adams, nor Adam"),  # whole values only
        ("a in a word: banana", f"{WITHHELD} in {WITHHELD} word: banana"),
    ],
)
def test_withheld_replaces_whole_values_in_any_case(message: str, expected: str) -> None:
    assert withheld(message, ["ADA@X.ORG", "Ada", "a"]) == expected


@pytest.mark.parametrize("value", ["Zo\u00eb\tO'Brien", 'say "hi" \\ bye', "\u30a2\u30c0"])
def test_withheld_replaces_values_as_repr_and_json_escape_them(value: str) -> None:
    for message in (f"bad {value!r}", f"bad {json.dumps(value)}", f"bad {json.dumps(value, ensure_ascii=False)}"):
        assert withheld(message, [value]).startswith(f"bad {message[4]}{WITHHELD}"), message
