"""Creator, modifier and action validation of keypair resource policies, plus fuzzing."""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import InvalidAPIParameters, LedgerError
from domain.hosts import ALL_VFOLDER_PERMISSIONS
from domain.keypair.actions import CreateKeyPairAction, DeleteKeyPairAction
from domain.keypair_resource_policy.actions import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
)
from domain.keypair_resource_policy.types import (
    DEPRECATED_FIELDS,
    POLICY_FIELDS,
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
)
from domain.slots import KNOWN_SLOTS
from domain.values import DefaultForUnspecified, OptionalState, TriState
from tests.domain.fakes import ensure_user

INT_FIELDS = [
    "max_session_lifetime",
    "max_concurrent_sessions",
    "max_pending_session_count",
    "max_concurrent_sftp_sessions",
    "idle_timeout",
    "max_vfolder_count",
    "max_vfolder_size",
    "max_quota_scope_size",
]
SLOT_FIELDS = ["total_resource_slots", "max_pending_session_resource_slots"]
NULLABLE_IN_MODIFIER = {
    "max_session_lifetime",
    "idle_timeout",
    "max_pending_session_count",
    "max_pending_session_resource_slots",
    "fallback_policy",
    "max_vfolder_count",  # null: unlimited
    *DEPRECATED_FIELDS,
}
NOT_NULLABLE_IN_MODIFIER = sorted(set(POLICY_FIELDS) - NULLABLE_IN_MODIFIER)
NULLABLE_IN_CREATOR = NULLABLE_IN_MODIFIER


def quiet(factory: Any, **fields: Any) -> Any:
    """Constructs without the deprecation warnings some fields emit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return factory(**fields)


def creator(**fields: Any) -> KeyPairResourcePolicyCreator:
    return quiet(KeyPairResourcePolicyCreator, **{"name": "p", **fields})


def modifier(**fields: Any) -> KeyPairResourcePolicyModifier:
    return quiet(KeyPairResourcePolicyModifier, **fields)


def test_the_field_lists_here_match_the_model() -> None:
    assert set(POLICY_FIELDS) == {*INT_FIELDS, *SLOT_FIELDS, "max_containers_per_session"} | {
        "default_for_unspecified",
        "allowed_vfolder_hosts",
        "fallback_policy",
    }
    assert set(KeyPairResourcePolicyModifier.model_fields) == {
        *POLICY_FIELDS,
        "total_resource_slots_patch",
        "max_pending_session_resource_slots_patch",
    }


# Creator


def test_creator_defaults() -> None:
    c = KeyPairResourcePolicyCreator(name="minimal-policy")
    assert c.name == "minimal-policy"
    assert c.default_for_unspecified is DefaultForUnspecified.LIMITED
    assert c.total_resource_slots == {}
    assert c.max_session_lifetime == 0
    assert c.max_concurrent_sessions == 30
    assert c.max_pending_session_count is None
    assert c.max_pending_session_resource_slots is None
    assert c.max_concurrent_sftp_sessions == 1
    assert c.max_containers_per_session == 1
    assert c.idle_timeout == 1800
    assert c.allowed_vfolder_hosts == {}
    assert c.max_vfolder_count is None
    assert c.max_vfolder_size is None
    assert c.max_quota_scope_size is None


def test_creator_fields_json_is_the_json_form_of_every_field() -> None:
    c = creator(
        default_for_unspecified="unlimited",
        total_resource_slots={"cpu": "1.5", "memory": "1g"},
        max_pending_session_resource_slots={"gpu": 2},
        allowed_vfolder_hosts={"nfs": ["upload-file"]},
        max_vfolder_count=3,
    )
    assert c.fields_json() == {
        "default_for_unspecified": "UNLIMITED",
        "total_resource_slots": {"cpu": "1.5", "mem": "1073741824"},
        "max_session_lifetime": 0,
        "max_concurrent_sessions": 30,
        "max_pending_session_count": None,
        "max_pending_session_resource_slots": {"cuda.device": "2"},
        "max_concurrent_sftp_sessions": 1,
        "max_containers_per_session": 1,
        "idle_timeout": 1800,
        "allowed_vfolder_hosts": {"nfs": ["upload-file"]},
        "max_vfolder_count": 3,
        "max_vfolder_size": None,
        "max_quota_scope_size": None,
        "fallback_policy": None,
    }
    assert "name" not in c.fields_json()


def test_creator_is_frozen() -> None:
    """Changing an input once made raised pydantic's ValidationError: now a domain error."""
    c = creator()
    with pytest.raises(InvalidAPIParameters, match="cannot be changed once made") as changed:
        c.max_concurrent_sessions = 3  # type: ignore[misc]
    assert changed.value.field == "max_concurrent_sessions"
    with pytest.raises(InvalidAPIParameters, match="cannot be changed once made"):
        del c.name
    with pytest.raises(InvalidAPIParameters, match="cannot be changed once made"):
        c.unknown = 1  # type: ignore[attr-defined]
    assert (c.max_concurrent_sessions, c.name) == (30, "p")


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize(("raw", "expected"), [(0, 0), (7, 7), ("7", 7), (" 12 ", 12), (3.0, 3), (10**12, 10**12)])
def test_creator_int_fields_accept_non_negative_integers(field: str, raw: object, expected: int) -> None:
    value = getattr(creator(**{field: raw}), field)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("field", [*INT_FIELDS, "max_containers_per_session"])
@pytest.mark.parametrize("raw", [-1, "-1", -3600, 1.5, "1.5", "abc", "", True, False, [1], {"a": 1}, float("nan")])
def test_creator_int_fields_refuse_anything_else(field: str, raw: object) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        creator(**{field: raw})
    assert info.value.field == field


def test_every_bad_field_is_named_the_first_in_the_message() -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        creator(max_concurrent_sessions=-1, idle_timeout=-3600, warp=1)
    refusal = info.value
    assert refusal.field == "max_concurrent_sessions"
    assert refusal.message == "max_concurrent_sessions: must be at least 0, got -1"
    assert [(each.field, each.reason) for each in refusal.every()] == [
        ("max_concurrent_sessions", "must be at least 0, got -1"),
        ("idle_timeout", "must be at least 0, got -3600"),
        ("warp", "unknown field"),
    ]


def test_a_nested_inputs_refusals_are_named_from_the_action_and_bounded() -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        CreateKeyPairResourcePolicyAction(creator={"name": "p", "idle_timeout": "x", "max_concurrent_sessions": []})
    assert [each.field for each in info.value.every()] == ["max_concurrent_sessions", "idle_timeout"]  # model order
    with pytest.raises(InvalidAPIParameters) as many:
        creator(**{f"k{i}": 1 for i in range(1000)})  # never echo a thousand keys
    assert len(many.value.every()) == InvalidAPIParameters.MOST_NAMED


def test_one_bad_field_has_no_others() -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        creator(idle_timeout=-1)
    assert info.value.others == ()


@pytest.mark.parametrize("raw", [True, False])
def test_booleans_are_not_integers(raw: bool) -> None:
    with pytest.raises(InvalidAPIParameters, match="boolean") as info:
        creator(max_concurrent_sessions=raw)
    assert info.value.field == "max_concurrent_sessions"


def test_max_containers_per_session_is_at_least_one() -> None:
    assert creator(max_containers_per_session=1).max_containers_per_session == 1
    assert creator(max_containers_per_session=8).max_containers_per_session == 8
    with pytest.raises(InvalidAPIParameters, match="at least 1") as info:
        creator(max_containers_per_session=0)
    assert info.value.field == "max_containers_per_session"


@pytest.mark.parametrize("field", sorted(NULLABLE_IN_CREATOR))
def test_creator_nullable_fields_accept_none(field: str) -> None:
    assert getattr(creator(**{field: None}), field) is None


@pytest.mark.parametrize("field", ["name", *NOT_NULLABLE_IN_MODIFIER])
def test_creator_other_fields_refuse_none(field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        quiet(KeyPairResourcePolicyCreator, **{"name": "p", field: None})
    assert info.value.field == field


def test_name_is_required() -> None:
    with pytest.raises(InvalidAPIParameters, match="required") as info:
        KeyPairResourcePolicyCreator(max_concurrent_sessions=3)  # type: ignore[call-arg]
    assert info.value.field == "name"


@pytest.mark.parametrize("name", ["a", "x" * 256, "dev-policy", "정책 1", "a.b_c d", "emoji-\U0001f600"])
def test_names_of_1_to_256_printable_characters_are_accepted(name: str) -> None:
    assert KeyPairResourcePolicyCreator(name=name).name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "1 to 256"),
        ("x" * 257, "1 to 256"),
        ("tab\there", "control"),
        ("new\nline", "control"),
        ("nul\x00", "control"),
        ("del\x7f", "control"),
        ("\x1b[31m", "control"),
        (5, "string"),
        (["a"], "string"),
    ],
)
def test_bad_names_are_refused(name: object, reason: str) -> None:
    with pytest.raises(InvalidAPIParameters, match=reason) as info:
        KeyPairResourcePolicyCreator(name=name)  # type: ignore[arg-type]
    assert info.value.field == "name"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LIMITED", DefaultForUnspecified.LIMITED),
        ("limited", DefaultForUnspecified.LIMITED),
        ("UNLIMITED", DefaultForUnspecified.UNLIMITED),
        ("Unlimited", DefaultForUnspecified.UNLIMITED),
        (DefaultForUnspecified.UNLIMITED, DefaultForUnspecified.UNLIMITED),
    ],
)
def test_default_for_unspecified_by_name(raw: object, expected: DefaultForUnspecified) -> None:
    assert creator(default_for_unspecified=raw).default_for_unspecified is expected
    assert modifier(default_for_unspecified=raw).default_for_unspecified == OptionalState.update(expected)


@pytest.mark.parametrize("raw", ["SOMETIMES", 1, ""])
def test_default_for_unspecified_refuses_other_names(raw: object) -> None:
    for factory in (creator, modifier):
        with pytest.raises(InvalidAPIParameters, match="not one of LIMITED, UNLIMITED") as info:
            factory(default_for_unspecified=raw)
        assert info.value.field == "default_for_unspecified"


@pytest.mark.parametrize("field", SLOT_FIELDS)
def test_slot_fields_parse_and_name_the_bad_slot(field: str) -> None:
    assert getattr(creator(**{field: {"gpu": "1.25", "mem": "2g"}}), field) == {
        "cuda.device": Decimal("1.25"),
        "mem": Decimal(2 * 1024**3),
    }
    with pytest.raises(InvalidAPIParameters, match="unknown slot") as info:
        creator(**{field: {"invalid": "format"}})
    assert info.value.field == f"{field}.invalid"
    with pytest.raises(InvalidAPIParameters, match="negative") as info:
        creator(**{field: {"cpu": -1}})
    assert info.value.field == f"{field}.cpu"
    with pytest.raises(InvalidAPIParameters, match="bool") as info:
        creator(**{field: {"cpu": True}})
    assert info.value.field == f"{field}.cpu"


def test_allowed_vfolder_hosts_forms() -> None:
    assert creator(allowed_vfolder_hosts=["s1", "s2"]).allowed_vfolder_hosts == {
        "s1": ALL_VFOLDER_PERMISSIONS,
        "s2": ALL_VFOLDER_PERMISSIONS,
    }
    assert creator(allowed_vfolder_hosts={"local": None}).allowed_vfolder_hosts == {"local": ALL_VFOLDER_PERMISSIONS}
    with pytest.raises(InvalidAPIParameters, match="unknown permission") as info:
        creator(allowed_vfolder_hosts={"local": ["rm-rf"]})
    assert info.value.field == "allowed_vfolder_hosts.local"


@pytest.mark.parametrize("extra", ["invalid", "Name", "max_sessions", "resource_policy", "created_at"])
def test_unknown_creator_fields_are_refused(extra: str) -> None:
    with pytest.raises(InvalidAPIParameters, match="unknown field") as info:
        creator(**{extra: 1})
    assert info.value.field == extra


def test_max_vfolder_count_is_enforced_so_it_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert KeyPairResourcePolicyCreator(name="p", max_vfolder_count=3).max_vfolder_count == 3
        KeyPairResourcePolicyModifier(max_vfolder_count=5)


@pytest.mark.parametrize("field", DEPRECATED_FIELDS)
def test_deprecated_creator_fields_are_kept_with_a_warning(field: str) -> None:
    with pytest.warns(DeprecationWarning, match=field):
        c = KeyPairResourcePolicyCreator(name="p", **{field: 1000000})
    assert getattr(c, field) == 1000000
    assert c.fields_json()[field] == 1000000


def test_no_deprecation_warning_without_deprecated_fields() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KeyPairResourcePolicyCreator(name="p", max_concurrent_sessions=3, max_vfolder_count=None)
        KeyPairResourcePolicyModifier(max_concurrent_sessions=3)


# Modifier


def test_an_empty_modifier_leaves_everything_alone() -> None:
    m = KeyPairResourcePolicyModifier()
    for field in POLICY_FIELDS:
        assert getattr(m, field).is_nop(), field
    assert m.fields_json() == {}


@pytest.mark.parametrize(
    ("field", "raw", "expected_json"),
    [
        ("default_for_unspecified", "unlimited", "UNLIMITED"),
        (
            "total_resource_slots",
            {"cpu": "100", "memory": "512G", "gpu": "8"},
            {"cpu": "100", "cuda.device": "8", "mem": str(512 * 1024**3)},
        ),
        ("max_session_lifetime", 60, 60),
        ("max_concurrent_sessions", 10, 10),
        ("max_pending_session_count", "4", 4),
        ("max_pending_session_resource_slots", {"cpu": 1}, {"cpu": "1"}),
        ("max_concurrent_sftp_sessions", 0, 0),
        ("max_containers_per_session", 2, 2),
        ("idle_timeout", 0, 0),
        (
            "allowed_vfolder_hosts",
            {"nfs": ["upload-file", "create-vfolder"]},
            {"nfs": ["create-vfolder", "upload-file"]},
        ),
        ("max_vfolder_count", 3, 3),
        ("max_vfolder_size", 1000000, 1000000),
        ("max_quota_scope_size", 0, 0),
    ],
)
def test_a_plain_value_updates_only_that_field(field: str, raw: object, expected_json: object) -> None:
    m = modifier(**{field: raw})
    state = getattr(m, field)
    assert not state.is_nop()
    assert m.fields_json() == {field: expected_json}
    for other in POLICY_FIELDS:
        if other != field:
            assert getattr(m, other).is_nop(), other


@pytest.mark.parametrize("field", sorted(NULLABLE_IN_MODIFIER))
def test_nullable_modifier_fields_accept_none_as_nullify(field: str) -> None:
    m = modifier(**{field: None})
    state = getattr(m, field)
    assert isinstance(state, TriState)
    assert state.is_nullify()
    assert m.fields_json() == {field: None}
    assert getattr(modifier(**{field: TriState.nullify()}), field).is_nullify()


@pytest.mark.parametrize("field", NOT_NULLABLE_IN_MODIFIER)
def test_other_modifier_fields_refuse_none_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidAPIParameters, match="null") as info:
        KeyPairResourcePolicyModifier(**{field: None})
    assert info.value.field == field
    with pytest.raises(InvalidAPIParameters, match="null") as info:
        KeyPairResourcePolicyModifier(**{field: TriState.nullify()})
    assert info.value.field == field


def test_a_tristate_on_a_field_that_cannot_be_null_is_taken_unless_it_nullifies() -> None:
    """TriState.update(7) and TriState.nop() on an OptionalState field were refused as
    "cannot be set to null" (as an OptionalState on a TriState field is taken)."""
    m = modifier(max_concurrent_sessions=TriState.update("7"), default_for_unspecified=TriState.nop())
    assert m.max_concurrent_sessions == OptionalState.update(7)
    assert m.default_for_unspecified == OptionalState.nop()
    assert m.fields_json() == {"max_concurrent_sessions": 7}
    with pytest.raises(InvalidAPIParameters, match="must be at least 0") as info:
        modifier(max_concurrent_sessions=TriState.update(-1))
    assert info.value.field == "max_concurrent_sessions"


def test_states_given_directly_are_validated_too() -> None:
    m = modifier(max_concurrent_sessions=OptionalState.update("7"), idle_timeout=TriState.update(5))
    assert m.max_concurrent_sessions == OptionalState.update(7)
    assert m.idle_timeout == TriState.update(5)
    assert modifier(idle_timeout=TriState.nop(), max_concurrent_sessions=OptionalState.nop()).fields_json() == {}
    with pytest.raises(InvalidAPIParameters) as info:
        modifier(max_concurrent_sessions=OptionalState.update(-1))
    assert info.value.field == "max_concurrent_sessions"
    with pytest.raises(InvalidAPIParameters) as info:
        modifier(total_resource_slots=OptionalState.update({"invalid": "format"}))
    assert info.value.field == "total_resource_slots.invalid"


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("raw", [-1, True, "x", 2.5])
def test_modifier_int_fields_refuse_bad_values(field: str, raw: object) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        modifier(**{field: raw})
    assert info.value.field == field


def test_modifier_max_containers_per_session_is_at_least_one() -> None:
    with pytest.raises(InvalidAPIParameters, match="at least 1") as info:
        modifier(max_containers_per_session=0)
    assert info.value.field == "max_containers_per_session"


@pytest.mark.parametrize("extra", ["name", "invalid", "created_at"])
def test_unknown_modifier_fields_are_refused(extra: str) -> None:
    with pytest.raises(InvalidAPIParameters, match="unknown field") as info:
        KeyPairResourcePolicyModifier(**{extra: 1})
    assert info.value.field == extra


@pytest.mark.parametrize("field", DEPRECATED_FIELDS)
def test_deprecated_modifier_fields_warn_even_when_nullified(field: str) -> None:
    with pytest.warns(DeprecationWarning, match=field):
        m = KeyPairResourcePolicyModifier(**{field: 5})
    assert m.fields_json() == {field: 5}
    with pytest.warns(DeprecationWarning, match=field):
        KeyPairResourcePolicyModifier(**{field: None})


# Actions


def test_actions_validate_their_inputs_and_name_their_entity() -> None:
    create = CreateKeyPairResourcePolicyAction(creator={"name": "p", "max_concurrent_sessions": 2})
    assert isinstance(create.creator, KeyPairResourcePolicyCreator)
    assert create.creator.max_concurrent_sessions == 2
    assert (create.entity_id(), create.entity_type(), create.operation_type()) == (
        "p",
        "keypair_resource_policy",
        "create",
    )
    modify = ModifyKeyPairResourcePolicyAction(name="p", modifier={"idle_timeout": None})
    assert modify.modifier.idle_timeout.is_nullify()
    assert (modify.entity_id(), modify.operation_type()) == ("p", "modify")
    delete = DeleteKeyPairResourcePolicyAction(name="p")
    assert (delete.entity_id(), delete.operation_type()) == ("p", "delete")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: CreateKeyPairResourcePolicyAction(creator={"name": "p", "idle_timeout": -1}), "idle_timeout"),
        (lambda: CreateKeyPairResourcePolicyAction(creator={"max_concurrent_sessions": 1}), "name"),
        (lambda: CreateKeyPairResourcePolicyAction(creator="p"), "creator"),
        (lambda: ModifyKeyPairResourcePolicyAction(name="", modifier={}), "name"),
        (lambda: ModifyKeyPairResourcePolicyAction(name="p", modifier={"bogus": 1}), "bogus"),
        (lambda: ModifyKeyPairResourcePolicyAction(name="p"), "modifier"),
        (lambda: DeleteKeyPairResourcePolicyAction(name="x" * 257), "name"),
        (lambda: DeleteKeyPairResourcePolicyAction(name="p", force=True), "force"),
    ],
)
def test_bad_actions_are_refused_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        build()
    assert info.value.field == field


# Fuzzing: bad input only ever raises InvalidAPIParameters

JUNK_KEYS = ["invalid", "", "Name", "name ", "max_vfolder", "__class__", "model_config"]
SLOT_KEYS = [*sorted(KNOWN_SLOTS), "memory", "gpu", "invalid", "CPU", ""]
INTERESTING_TEXT = [
    "inf",
    "-inf",
    "nan",
    "-1",
    "-0",
    "0",
    "16g",
    "1.5GiB",
    "64G",
    "1e999999999",
    "99999999999999999999999999999999",
    "12345678901e",
    "LIMITED",
    "unlimited",
    "create-vfolder",
    "storage1",
    " 7 ",
    "\x00",
    "²",
    "--5",
]
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=12),
    st.sampled_from(INTERESTING_TEXT),
)
JSONISH = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(SLOT_KEYS) | st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=10,
)
FIELD_NAMES = ["name", *POLICY_FIELDS]
INPUT_DICTS = st.dictionaries(st.sampled_from(FIELD_NAMES + JUNK_KEYS) | st.text(max_size=8), JSONISH, max_size=6)


def _check_json_safe(fields: dict[str, Any]) -> None:
    assert json.loads(json.dumps(fields, allow_nan=False)) == fields


@settings(max_examples=400, deadline=None)
@given(INPUT_DICTS)
def test_fuzz_creator_succeeds_or_raises_invalid_api_parameters(raw: dict[str, Any]) -> None:
    try:
        c = quiet(KeyPairResourcePolicyCreator, **raw)
    except InvalidAPIParameters as exc:
        assert exc.field is None or isinstance(exc.field, str)
        return
    fields = c.fields_json()
    _check_json_safe(fields)
    data = KeyPairResourcePolicyData.from_fields(c.name, datetime.now(UTC), fields)
    assert data.fields_json() == fields


@settings(max_examples=400, deadline=None)
@given(INPUT_DICTS)
def test_fuzz_modifier_succeeds_or_raises_invalid_api_parameters(raw: dict[str, Any]) -> None:
    raw.pop("name", None)
    try:
        m = quiet(KeyPairResourcePolicyModifier, **raw)
    except InvalidAPIParameters:
        return
    wanted = m.fields_json()
    _check_json_safe(wanted)
    assert set(wanted) == {k for k in raw if k in POLICY_FIELDS}


@settings(max_examples=200, deadline=None)
@given(JSONISH, st.sampled_from(["total_resource_slots", "allowed_vfolder_hosts", "default_for_unspecified"]))
def test_fuzz_values_of_structured_fields(value: Any, field: str) -> None:
    for factory in (creator, modifier):
        try:
            factory(**{field: value})
        except InvalidAPIParameters as exc:
            assert exc.field is not None
            assert exc.field.startswith(field)


# Store-level fuzzing: a refused command changes nothing

POLICY_NAMES = st.sampled_from(["default", "p1", "p2", "p3", ""])
GOOD_VALUES: dict[str, Any] = {
    "max_concurrent_sessions": st.integers(min_value=-2, max_value=40),
    "max_containers_per_session": st.integers(min_value=-1, max_value=4),
    "idle_timeout": st.none() | st.integers(min_value=-5, max_value=4000),
    "max_session_lifetime": st.none() | st.integers(min_value=0, max_value=100),
    "total_resource_slots": st.dictionaries(
        st.sampled_from(SLOT_KEYS), st.sampled_from(["1", "-1", "4g", "inf", True]), max_size=3
    ),
    "default_for_unspecified": st.sampled_from(["LIMITED", "unlimited", "partial"]),
}
MOSTLY_GOOD = st.fixed_dictionaries({}, optional=GOOD_VALUES) | INPUT_DICTS.map(
    lambda d: {k: v for k, v in d.items() if k != "name"}
)
COMMANDS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), POLICY_NAMES, MOSTLY_GOOD),
        st.tuples(st.just("modify"), POLICY_NAMES, MOSTLY_GOOD),
        st.tuples(st.just("delete"), POLICY_NAMES, st.just({})),
        st.tuples(st.just("keypair"), POLICY_NAMES, st.sampled_from([{"access_key": "AK1"}, {"access_key": "AK2"}])),
        st.tuples(st.just("unkeypair"), POLICY_NAMES, st.sampled_from([{"access_key": "AK1"}, {"access_key": "AK2"}])),
    ),
    min_size=1,
    max_size=6,
)


KEYPAIR_OWNER = uuid.UUID("0000000b-0000-4000-8000-00000000000b")


def _run(ledger: Ledger, command: tuple[str, str, dict[str, Any]]) -> None:
    kind, name, fields = command
    policies, keypairs = ledger.services.keypair_resource_policy, ledger.services.keypair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if kind == "create":
            action: Any = CreateKeyPairResourcePolicyAction(creator={"name": name, **fields})
            asyncio.run(policies.create_keypair_resource_policy(action))
        elif kind == "modify":
            action = ModifyKeyPairResourcePolicyAction(name=name, modifier=fields)
            asyncio.run(policies.modify_keypair_resource_policy(action))
        elif kind == "delete":
            asyncio.run(policies.delete_keypair_resource_policy(DeleteKeyPairResourcePolicyAction(name=name)))
        elif kind == "keypair":
            action = CreateKeyPairAction(
                access_key=fields["access_key"],
                user_id=KEYPAIR_OWNER,
                domain_name="default",
                resource_policy=name,
            )
            asyncio.run(keypairs.create_keypair(action))
        else:
            asyncio.run(keypairs.delete_keypair(DeleteKeyPairAction(access_key=fields["access_key"])))


def _snapshot(ledger: Ledger) -> tuple[Any, ...]:
    return (
        ledger.app.recorder.max_notification_id(),
        ledger.queries.keypair_resource_policies(),
        ledger.queries.keypairs(),
    )


@settings(max_examples=60, deadline=None)
@given(COMMANDS)
def test_fuzz_a_refused_command_leaves_the_store_unchanged(commands: list[Any]) -> None:
    # Each example its own ledger: nothing one example stored leaks into the next, and a
    # failing example replays (and shrinks) on the same state it failed on.
    with open_ledger("sqlite:///:memory:") as ledger:
        ensure_user(ledger.app.store, KEYPAIR_OWNER, "default")  # every keypair's owner
        for command in commands:
            before = _snapshot(ledger)
            try:
                _run(ledger, command)
            except LedgerError as exc:
                event(f"{command[0]} refused: {type(exc).__name__}")
                assert _snapshot(ledger) == before, f"{command} failed with {exc!r} but changed the store"
                continue
            event(f"{command[0]} accepted")
            after = _snapshot(ledger)
            if command[0] != "modify":  # a modify that changes nothing stores nothing
                assert after[0] > before[0], f"{command} succeeded but stored nothing"
        assert ledger.queries.keypair_resource_policy("default") is not None
