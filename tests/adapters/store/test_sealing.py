"""Sealing and opening personal values (adapters.store.sealing): round trips, tampering,
erased keys, and counting values left in clear. Pure functions: no store involved."""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.store import sealing
from adapters.store.sealing import clear_values, failed_openings, is_sealed, open_state, seal_state
from domain.personal import ERASED, personal

CREATED = personal("fields.email", "fields.full_name", subject=lambda state: f"user:{state['key']}")
CHANGED = personal("changes.email.old", "changes.email.new", subject=lambda state: f"user:{state['key']}")
MEMBERS = personal(
    "user_ids[*]",
    subject=lambda state: None if state.get("group_id") is None else f"group:{state['group_id']}",
)
SPEC = personal("spec.creator.full_name", subject=lambda state: f"user:{state['key']}")
ALL = (CREATED, CHANGED, MEMBERS, SPEC)


class Keys:
    """A key table: made on first use, deleted on erasure."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def make(self, subject: str) -> bytes:
        return self.keys.setdefault(subject, os.urandom(32))

    def get(self, subject: str) -> bytes | None:
        return self.keys.get(subject)

    def erase(self, subject: str) -> None:
        del self.keys[subject]


def at(state: Any, *path: str | int) -> Any:
    for step in path:
        state = state[step]
    return state


def sample() -> dict[str, Any]:
    return {
        "originator_version": 3,
        "key": "u1",
        "group_id": "g1",
        "fields": {"email": "ann@example.org", "full_name": "Ann Example", "role": "user", "quota": {"cpu": 4}},
        "changes": {"email": {"old": "old@example.org", "new": None}, "role": {"old": "a", "new": "b"}},
        "user_ids": ["member-1", "member-2"],
        "spec": {"creator": {"full_name": "Ann Example", "id": 7}, "image": "python"},
        "tags": ["x", {"y": 1}],
    }


# Round trips

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    """Random JSON values at the declared paths (some absent), beside undeclared ones."""
    state: dict[str, Any] = {"key": draw(st.text(min_size=1, max_size=4)), "other": draw(json_values)}
    if draw(st.booleans()):
        state["group_id"] = draw(st.text(min_size=1, max_size=4))
    fields = draw(st.dictionaries(st.sampled_from(["email", "full_name", "role"]), json_values))
    if fields or draw(st.booleans()):
        state["fields"] = fields
    if draw(st.booleans()):
        state["changes"] = {"email": draw(st.dictionaries(st.sampled_from(["old", "new"]), json_values))}
    if draw(st.booleans()):
        state["user_ids"] = draw(st.lists(json_values, max_size=4))
    if draw(st.booleans()):
        state["spec"] = {"creator": {"full_name": draw(json_values), "id": draw(json_values)}, "x": draw(json_values)}
    return state


@settings(max_examples=80, deadline=None)
@given(states())
def test_sealing_then_opening_gives_the_state_back(state: dict[str, Any]) -> None:
    keys = Keys()
    before = copy.deepcopy(state)
    sealed = seal_state(state, ALL, keys.make)
    assert state == before  # the input is never mutated
    located = [path for declaration in ALL for path, _ in declaration.locate(state)]
    for path in located:
        assert is_sealed(at(sealed, *path))
    assert clear_values(sealed, ALL) == 0
    assert clear_values(state, ALL) == len(located)
    # Sealed values are JSON all the way (what the transcoder will store).
    assert json.loads(json.dumps(sealed)) == sealed
    assert open_state(sealed, keys.get) == state


@settings(max_examples=40, deadline=None)
@given(states())
def test_an_erased_subject_reads_erased_and_the_others_still_open(state: dict[str, Any]) -> None:
    keys = Keys()
    sealed = seal_state(state, ALL, keys.make)
    user = f"user:{state['key']}"
    keys.keys.pop(user, None)
    opened = open_state(sealed, keys.get)
    for declaration in ALL:
        for path, subject in declaration.locate(state):
            assert at(opened, *path) == (ERASED if subject == user else at(state, *path))


def test_declared_values_are_sealed_and_nothing_else_changes() -> None:
    keys = Keys()
    state = sample()
    sealed = seal_state(state, ALL, keys.make)
    text = json.dumps(sealed)
    for secret in ("ann@example.org", "Ann Example", "old@example.org", "member-1", "member-2"):
        assert secret not in text
    assert sealed["changes"]["email"]["new"] is None  # None is never sealed
    assert sealed["fields"]["role"] == "user"
    assert sealed["spec"]["creator"]["id"] == 7
    # Untouched parts are shared, not copied; touched containers are new.
    assert sealed["tags"] is state["tags"]
    assert sealed["fields"]["quota"] is state["fields"]["quota"]
    assert sealed["changes"]["role"] is state["changes"]["role"]
    assert sealed["fields"] is not state["fields"]
    assert {at(sealed, *path)["s"] for path in [("fields", "email"), ("user_ids", 1)]} == {"user:u1", "group:g1"}
    assert open_state(sealed, keys.get) == state


def test_equal_values_get_different_nonces() -> None:
    keys = Keys()
    state = {"key": "u1", "fields": {"email": "same", "full_name": "same"}}
    one = seal_state(state, [CREATED], keys.make)
    two = seal_state(state, [CREATED], keys.make)
    envelopes = [one["fields"]["email"], one["fields"]["full_name"], two["fields"]["email"]]
    assert len({envelope["n"] for envelope in envelopes}) == 3
    assert len({envelope["c"] for envelope in envelopes}) == 3
    assert all(len(base64.b64decode(envelope["n"])) == 12 for envelope in envelopes)


def test_no_subject_seals_nothing() -> None:
    state = {"user_ids": ["u1"]}
    assert seal_state(state, [MEMBERS], Keys().make) == state


def test_sealing_twice_changes_nothing() -> None:
    keys = Keys()
    sealed = seal_state(sample(), ALL, keys.make)
    assert seal_state(sealed, ALL, keys.make) == sealed


def test_a_whole_value_sealed_is_not_sealed_again_inside() -> None:
    keys = Keys()
    whole = personal("spec.creator", subject=lambda state: "user:u1")
    state = sample()
    sealed = seal_state(state, [SPEC, whole], keys.make)
    envelope = sealed["spec"]["creator"]
    assert is_sealed(envelope)
    assert open_state(sealed, keys.get) == state


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(ValueError, match="JSON"):
        seal_state({"key": "u", "fields": {"email": float("nan")}}, [CREATED], Keys().make)


def test_opening_needs_no_declaration_and_shares_what_holds_no_envelope() -> None:
    keys = Keys()
    state = sample()
    sealed = seal_state(state, [CREATED], keys.make)
    opened = open_state(sealed, keys.get)
    assert opened == state
    assert opened["spec"] is sealed["spec"]
    plain = open_state(state, keys.get)
    assert plain == state
    assert plain is not state  # a new dict at the top ...
    assert plain["fields"] is state["fields"]  # ... sharing what it did not touch


# Tampering: every damaged envelope reads ERASED, never raises


def sealed_sample() -> tuple[Keys, dict[str, Any]]:
    keys = Keys()
    keys.make("user:intruder")
    return keys, seal_state(sample(), ALL, keys.make)


def flip(text: str, at_byte: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at_byte] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_an_envelope_moved_to_another_path_reads_erased() -> None:
    keys, sealed = sealed_sample()
    sealed["fields"]["full_name"] = sealed["fields"]["email"]
    sealed["user_ids"][0], sealed["user_ids"][1] = sealed["user_ids"][1], sealed["user_ids"][0]
    sealed["fields"]["role"] = sealed["changes"]["email"]["old"]  # an undeclared path
    opened = open_state(sealed, keys.get)
    assert opened["fields"]["email"] == "ann@example.org"
    assert opened["fields"]["full_name"] == ERASED
    assert opened["fields"]["role"] == ERASED
    assert opened["user_ids"] == [ERASED, ERASED]


def test_an_envelope_relabelled_with_another_subject_reads_erased() -> None:
    keys, sealed = sealed_sample()
    sealed["fields"]["email"] = {**sealed["fields"]["email"], "s": "user:intruder"}
    sealed["user_ids"][0] = {**sealed["user_ids"][0], "s": "user:u1"}
    opened = open_state(sealed, keys.get)
    assert opened["fields"]["email"] == ERASED
    assert opened["user_ids"] == [ERASED, "member-2"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda envelope: {**envelope, "c": flip(envelope["c"], 0)},
        lambda envelope: {**envelope, "c": flip(envelope["c"], -1)},  # the tag
        lambda envelope: {**envelope, "n": flip(envelope["n"], 5)},
        lambda envelope: {**envelope, "n": base64.b64encode(b"short").decode()},
        lambda envelope: {**envelope, "c": "not base64!"},
        lambda envelope: {**envelope, "c": 42},
        lambda envelope: {**envelope, "s": None},
        lambda envelope: {**envelope, "c": ""},
    ],
    ids=["ciphertext", "tag", "nonce", "short-nonce", "bad-base64", "not-text", "no-subject", "empty"],
)
def test_a_damaged_envelope_reads_erased_and_is_counted(damage: Any) -> None:
    keys, sealed = sealed_sample()
    sealed["fields"]["email"] = damage(sealed["fields"]["email"])
    before = failed_openings()
    opened = open_state(sealed, keys.get)
    assert opened["fields"]["email"] == ERASED
    assert opened["fields"]["full_name"] == "Ann Example"
    assert failed_openings() == before + 1


def test_a_missing_key_reads_erased_without_counting_a_failure() -> None:
    keys, sealed = sealed_sample()
    keys.erase("group:g1")
    before = failed_openings()
    opened = open_state(sealed, keys.get)
    assert opened["user_ids"] == [ERASED, ERASED]
    assert opened["fields"]["email"] == "ann@example.org"
    assert failed_openings() == before


def test_a_value_sealed_before_its_subject_was_keyed_again_reads_erased_silently() -> None:
    """An erased user modified again gets a new key: the values sealed under the erased
    key then failed to open with it and were reported as tampered with."""
    from datetime import UTC, datetime, timedelta

    keys, sealed = sealed_sample()
    written = datetime(2026, 1, 1, tzinfo=UTC)
    sealed["timestamp"] = written
    keys.erase("user:u1")
    keys.make("user:u1")  # a new key, made after the state was written
    before = failed_openings()
    assert (
        open_state(sealed, keys.get, lambda subject, moment: moment < written + timedelta(days=1))["fields"]["email"]
        == ERASED
    )
    assert failed_openings() == before
    # A key made before the state was written: the value was damaged, and is counted.
    opened = open_state(sealed, keys.get, lambda subject, moment: moment < written - timedelta(days=1))
    assert opened["fields"]["email"] == ERASED and failed_openings() > before


def test_failures_are_logged_once_per_subject(caplog: pytest.LogCaptureFixture, monkeypatch: Any) -> None:
    monkeypatch.setattr(sealing, "_warned", set())
    keys, sealed = sealed_sample()
    for path in ("email", "full_name"):
        sealed["fields"][path] = {**sealed["fields"][path], "c": flip(sealed["fields"][path]["c"], 0)}
    with caplog.at_level(logging.WARNING, logger=sealing.__name__):
        open_state(sealed, keys.get)
        open_state(sealed, keys.get)
    warnings = [record for record in caplog.records if record.name == sealing.__name__]
    assert len(warnings) == 1
    assert "user:u1" in warnings[0].getMessage()
    assert "ann@example.org" not in caplog.text


def test_a_key_of_the_wrong_size_is_an_error_not_an_erasure() -> None:
    _, sealed = sealed_sample()
    with pytest.raises(ValueError, match="AESGCM key"):
        open_state(sealed, lambda subject: b"short")


# Values left in clear


def test_clear_values_counts_declared_values_not_sealed() -> None:
    keys = Keys()
    state = sample()
    # email, full_name, changes.email.old (new is None), 2 members, spec's full_name
    assert clear_values(state, ALL) == 6
    assert clear_values(state, [MEMBERS]) == 2
    assert clear_values(state, []) == 0
    partly = seal_state(state, [CREATED, MEMBERS], keys.make)
    assert clear_values(partly, ALL) == 2
    assert clear_values(seal_state(state, ALL, keys.make), ALL) == 0
    assert clear_values({"user_ids": ["u1"]}, [MEMBERS]) == 0  # no subject: nothing to seal
