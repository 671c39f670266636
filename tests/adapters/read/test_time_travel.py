"""Time travel: for a generated history, the state at every version and at every moment
equals what the command returned then; across delete and re-create; with snapshots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from hypothesis import HealthCheck, given, settings

from adapters.bootstrap import Ledger, open_ledger
from domain.entity import Entity
from domain.errors import DamagedEvent, DuplicatePolicyName, InvalidAPIParameters, ObjectNotFound, StoreUnavailable
from domain.group import ModifyGroupAction
from domain.keypair_resource_policy import (
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
    ModifyKeyPairResourcePolicyAction,
)
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy
from domain.personal import ERASED
from tests.actions import run
from tests.adapters.groups import create_group, modify_group, purge_group
from tests.adapters.policy_histories import commands, run_command
from tests.adapters.store.raw import cut_event_state, move_event_version, replace_event_state
from tests.conftest import fresh_url
from tests.policies import create, delete, modify

POLICY = "keypair_resource_policy"


def _data(state: Any, name: str) -> KeyPairResourcePolicyData | None:
    return None if state.deleted else KeyPairResourcePolicyData.from_fields(name, state.created_at, state.fields)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=commands)
def test_the_state_at_each_version_and_moment_is_what_the_command_returned(backend: str, history: list[Any]) -> None:
    seen: list[tuple[str, int, datetime, KeyPairResourcePolicyData | None]] = []
    with fresh_url(backend) as url, open_ledger(url) as ledger:
        for command in history:
            name = command[1]
            try:
                returned = run_command(ledger, command)
            except (DuplicatePolicyName, ObjectNotFound):
                continue
            now = ledger.queries.state_at(POLICY, name)
            assert now is not None
            seen.append((name, now.version, datetime.now(UTC), returned))
        for name, version, moment, returned in seen:
            by_version = ledger.queries.state_at(POLICY, name, version=version)
            assert by_version is not None and by_version.version == version
            assert _data(by_version, name) == returned
            by_time = ledger.queries.state_at(POLICY, name, at=moment)
            assert by_time is not None and by_time.version >= version  # later commands may share the instant
            if by_time.version == version:
                assert _data(by_time, name) == returned


def test_before_the_first_event_there_is_no_state_and_bad_asks_are_named(memory_ledger: Ledger) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    create(memory_ledger, "p", idle_timeout=10)
    q = memory_ledger.queries
    assert q.state_at(POLICY, "p", at=before) is None
    assert q.state_at(POLICY, "p", at=datetime.now(UTC)).fields["idle_timeout"] == 10  # type: ignore[union-attr]
    with pytest.raises(ObjectNotFound, match="no version 2"):
        q.state_at(POLICY, "p", version=2)
    with pytest.raises(ObjectNotFound, match="no history"):
        q.state_at(POLICY, "absent")
    with pytest.raises(InvalidAPIParameters, match="entity_type"):
        q.state_at("spaceship", "p")
    with pytest.raises(InvalidAPIParameters, match="version"):
        q.state_at(POLICY, "p", version=0)
    with pytest.raises(InvalidAPIParameters, match="not both"):
        q.state_at(POLICY, "p", version=1, at=before)
    with pytest.raises(InvalidAPIParameters, match="entity_id"):
        q.state_at("group", "not-a-uuid")


def test_long_streams_travel_through_snapshots(ledger: Ledger) -> None:
    create(ledger, "long", idle_timeout=0)
    moments = {}
    for i in range(1, 251):
        modify(ledger, "long", idle_timeout=i)
        moments[i + 1] = datetime.now(UTC)
    q = ledger.queries
    for version in (1, 2, 99, 100, 101, 200, 251):
        assert q.state_at(POLICY, "long", version=version).fields["idle_timeout"] == version - 1  # type: ignore[union-attr]
    for version in (2, 150, 251):
        found = q.state_at(POLICY, "long", at=moments[version])
        assert found is not None and found.version == version
    assert q.diff(POLICY, "long", from_version=10, to_version=200) == {"idle_timeout": {"old": 9, "new": 199}}
    assert q.diff(POLICY, "long", from_at=moments[2] - timedelta(days=1), to_version=1) == {
        name: {"old": None, "new": value}
        for name, value in q.state_at(POLICY, "long", version=1).fields.items()  # type: ignore[union-attr]
        if value is not None
    }


def test_a_diff_across_a_delete_and_a_re_creation_says_so(memory_ledger: Ledger) -> None:
    """A delete keeps the fields, so a diff across it came back empty, and one across a
    delete and a re-creation with the same fields showed nothing either."""
    create(memory_ledger, "p", idle_timeout=10)
    delete(memory_ledger, "p")
    q = memory_ledger.queries
    assert q.diff(POLICY, "p", from_version=1, to_version=2) == {"deleted": {"old": False, "new": True}}
    create(memory_ledger, "p", idle_timeout=10)
    across = q.diff(POLICY, "p", from_version=1, to_version=3)
    assert set(across) == {"created_at"} and across["created_at"]["old"] != across["created_at"]["new"]
    assert q.diff(POLICY, "p", from_version=1, to_version=1) == {}


def test_a_diff_from_before_the_entity_to_its_deleted_state_says_it_is_deleted(memory_ledger: Ledger) -> None:
    """From a moment before the policy to its deleted state, the diff listed its fields
    appearing and nothing else: read as the policy being there, live, at `to`."""
    create(memory_ledger, "p", idle_timeout=10)
    delete(memory_ledger, "p")
    q = memory_ledger.queries
    before = datetime(2000, 1, 1, tzinfo=UTC)
    appeared = q.diff(POLICY, "p", from_at=before, to_version=2)
    assert appeared["deleted"] == {"old": None, "new": True} and appeared["idle_timeout"] == {"old": None, "new": 10}
    assert q.diff(POLICY, "p", from_version=2, to_at=before)["deleted"] == {"old": True, "new": None}
    assert "deleted" not in q.diff(POLICY, "p", from_at=before, to_version=1)  # live at `to`: as before


def test_a_writer_whose_clock_is_behind_stamps_no_earlier_than_the_stream(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each writer stamps events with its own clock: one a minute behind (another host, an
    NTP step back) stored a modify before the create, and the state at a moment before the
    policy existed read the modified policy."""
    import eventsourcing.domain

    with open_ledger(ledger_url) as ledger:
        create(ledger, "skew")
        real = eventsourcing.domain.datetime_now_with_tzinfo
        monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", lambda: real() - timedelta(minutes=1))
        modify(ledger, "skew", idle_timeout=7)
        monkeypatch.undo()
        created, modified = ledger.queries.history("keypair_resource_policy", "skew")
        assert modified.occurred_at > created.occurred_at
        assert (
            ledger.queries.state_at("keypair_resource_policy", "skew", at=created.occurred_at - timedelta(seconds=30))
            is None
        )
        first = ledger.queries.state_at("keypair_resource_policy", "skew", at=created.occurred_at)
        assert first is not None and first.version == 1


def test_an_event_altered_behind_the_ledgers_back_is_a_damaged_event_to_every_past_read(ledger: Ledger) -> None:
    """An auditor's reads of a stream holding an event that no longer decodes (its bytes
    cut in the database) raised the library's MapperDeserialisationError: `show --at`,
    `--version`, `diff` and `history` ended in `internal error: MapperDeserialisationError`
    where a command on the same stream said `ledger_damaged_event`."""
    create(ledger, "cut", idle_timeout=1)
    modify(ledger, "cut", idle_timeout=2)
    position = ledger.app.recorder.max_notification_id()
    assert position is not None
    ledger.app.cache.clear()
    cut_event_state(ledger, position)
    q = ledger.queries
    reads = [
        lambda: q.state_at(POLICY, "cut"),
        lambda: q.state_at(POLICY, "cut", version=2),
        lambda: q.state_at(POLICY, "cut", at=datetime.now(UTC)),
        lambda: q.diff(POLICY, "cut", from_version=1, to_version=2),
        lambda: q.history(POLICY, "cut"),
    ]
    for read in reads:
        with pytest.raises(DamagedEvent, match=r"cannot be read.*ledger verify"):
            read()


def _every_past_read_is_damaged(ledger: Ledger, name: str, moved: int, from_version: int, match: str) -> None:
    """A policy of three events whose event at index `moved` is renumbered to version 1000
    (as a database edit would): `state_at` by version and by time, `diff` from
    `from_version` to 3, and a command on it are each a DamagedEvent matching `match`."""
    create(ledger, name, idle_timeout=1)
    modify(ledger, name, idle_timeout=2)
    modify(ledger, name, idle_timeout=3)
    position = ledger.queries.history(POLICY, name)[moved].position
    ledger.app.cache.clear()
    move_event_version(ledger, position, 1000)
    q = ledger.queries
    reads = [
        lambda: q.state_at(POLICY, name, version=3),
        lambda: q.state_at(POLICY, name, at=datetime.now(UTC)),
        lambda: q.diff(POLICY, name, from_version=from_version, to_version=3),
        lambda: modify(ledger, name, idle_timeout=4),
    ]
    for read in reads:
        with pytest.raises(DamagedEvent, match=match):
            read()


def test_an_event_gone_from_the_middle_of_a_stream_is_a_damaged_event_to_every_past_read(ledger: Ledger) -> None:
    """A stream missing an event in its middle (removed or renumbered in the database)
    made the library's OriginatorVersionError escape the replay: `show --version`, `--at`,
    `diff` and a command on the stream ended in `internal error: OriginatorVersionError:
    (3, 2)` where `history` said `ledger_damaged_event`."""
    # Version 2 is gone: 1, 3, then 1000.
    _every_past_read_is_damaged(ledger, "gap", moved=1, from_version=1, match=r"version 2 .*ledger verify")


def test_a_stream_missing_its_first_event_is_a_damaged_event_to_every_past_read(ledger: Ledger) -> None:
    """Without its Created event (removed or renumbered), a replay began with a Modified
    event and the library's own `assert aggregate is not None` escaped: `internal error:
    AssertionError` from `show --version`, `--at`, `diff` and a command on the stream."""
    # Versions 2, 3, then 1000.
    match = r"does not begin with its creation.*ledger verify"
    _every_past_read_is_damaged(ledger, "headless", moved=0, from_version=2, match=match)


def test_a_command_refused_on_a_damaged_stream_is_audited(ledger: Ledger) -> None:
    """A command on a stream with an event gone was refused as `ledger_damaged_event`, but
    left no audit record: the audit monitor, looking up the entity's domain for the
    record, met the same damage and failed. Every outcome is recorded."""
    create(ledger, "audited", idle_timeout=1)
    modify(ledger, "audited", idle_timeout=2)
    modify(ledger, "audited", idle_timeout=3)
    position = ledger.queries.history(POLICY, "audited")[1].position
    ledger.app.cache.clear()
    move_event_version(ledger, position, 1000)
    action = ModifyKeyPairResourcePolicyAction(name="audited", modifier=KeyPairResourcePolicyModifier(idle_timeout=4))
    with pytest.raises(DamagedEvent):
        run(ledger, "keypair_resource_policy", "modify_keypair_resource_policy", action)
    records = ledger.queries.audit_log(entity_type=POLICY, entity_id="audited")
    assert [r.error_code for r in records if r.status == "error"] == ["ledger_damaged_event"], records


def test_an_assertion_in_the_ledgers_own_replay_is_no_damaged_event(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a stream whose first stored event is not its creation is called damaged: an
    assertion failing elsewhere in a replay is a bug, and must not read as altered data."""
    create(ledger, "sound", idle_timeout=1)
    modify(ledger, "sound", idle_timeout=2)
    ledger.app.cache.clear()

    def buggy(self: Any, aggregate: Any) -> None:
        raise AssertionError("a bug in a handler")

    monkeypatch.setattr(Entity.Modified, "apply", buggy)
    with pytest.raises(AssertionError, match="a bug in a handler"):
        ledger.queries.state_at(POLICY, "sound", version=2)


def test_an_event_holding_another_events_bytes_is_a_damaged_event_to_every_past_read(ledger: Ledger) -> None:
    """A Modified event given its stream's Created bytes in the database (they decode, but
    hold `fields`, not `changes`) made `show --version`, `--at`, `diff` and a command on
    the stream end in `internal error: AttributeError: 'Modified' object has no attribute
    'changes'`."""
    create(ledger, "forged", idle_timeout=1)
    modify(ledger, "forged", idle_timeout=2)
    modify(ledger, "forged", idle_timeout=3)
    created, second = ledger.queries.history(POLICY, "forged")[:2]
    stream = ledger.app.recorder.select_events(KeyPairResourcePolicy.id_for("forged"), lte=1)
    ledger.app.cache.clear()
    replace_event_state(ledger, second.position, stream[0].state)
    q = ledger.queries
    reads = [
        lambda: q.state_at(POLICY, "forged", version=3),
        lambda: q.state_at(POLICY, "forged", at=datetime.now(UTC)),
        lambda: q.diff(POLICY, "forged", from_version=1, to_version=3),
        lambda: q.history(POLICY, "forged"),
        lambda: modify(ledger, "forged", idle_timeout=4),
    ]
    for read in reads:
        with pytest.raises(DamagedEvent, match=r"cannot be read.*ledger verify"):
            read()
    assert created.version == 1


def test_an_event_store_lost_after_opening_is_store_unavailable_to_every_past_read(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the event store lost (PostgreSQL gone after the ledger opened), `state_at`,
    `diff` and `group_named_at` let the library's OperationalError out, no LedgerError,
    where `history` and every other read said StoreUnavailable."""
    create(ledger, "lost", idle_timeout=1)
    modify(ledger, "lost", idle_timeout=2)
    create_group(ledger, "crew")

    def lost(*args: object, **kwargs: object) -> Any:
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(ledger.app.recorder, "select_events", lost)
    q = ledger.queries
    reads = [
        lambda: q.state_at(POLICY, "lost"),
        lambda: q.state_at(POLICY, "lost", version=1),
        lambda: q.state_at(POLICY, "lost", at=datetime.now(UTC)),
        lambda: q.diff(POLICY, "lost", from_version=1, to_version=2),
        lambda: q.group_named_at("default", "crew", datetime.now(UTC)),
        lambda: q.history(POLICY, "lost"),
    ]
    for read in reads:
        with pytest.raises(StoreUnavailable, match="event store read failed: couldn't get a connection"):
            read()


def test_a_groups_members_at_each_moment_and_between_two(ledger: Ledger) -> None:
    """Who was in a group at a past moment is part of its state, and a diff names the joins
    and leaves; the members purged with the group read erased."""
    alice, bob = (str(uuid.UUID(int=n)) for n in (0xA11CE, 0xB0B))
    group = create_group(ledger, "crew").id
    empty = datetime.now(UTC)
    modify_group(ledger, group, mode="add", users=[alice, bob])
    both = datetime.now(UTC)
    modify_group(ledger, group, mode="remove", users=[alice])
    q = ledger.queries
    members = [q.state_at("group", str(group), at=moment).fields["members"] for moment in (empty, both)]  # type: ignore[union-attr]
    assert members == [[], [alice, bob]]
    assert q.state_at("group", str(group)).fields["members"] == [bob]  # type: ignore[union-attr]
    assert q.diff("group", str(group), from_at=both, to_version=3)["members"] == {"old": [alice, bob], "new": [bob]}
    purge_group(ledger, group)
    # Erased, the members still count: two then, one once alice left.
    purged = [q.state_at("group", str(group), at=moment).fields["members"] for moment in (empty, both)]  # type: ignore[union-attr]
    assert purged == [[], [ERASED, ERASED]]
    assert q.state_at("group", str(group), version=3).fields["members"] == [ERASED]  # type: ignore[union-attr]


def test_an_unknown_entity_type_is_refused_by_history_as_by_time_travel(ledger: Ledger) -> None:
    """`history("polcy", name)` answered an empty list, as for an entity with no events,
    where `state_at` refused the type: a mistyped type looked like a clean record."""
    create(ledger, "p1")
    assert len(ledger.queries.history("keypair_resource_policy", "p1")) == 1
    for read in (
        lambda: ledger.queries.history("polcy", "p1"),
        lambda: ledger.queries.state_at("polcy", "p1"),
        lambda: ledger.queries.history("x" * 5000, "p1"),
    ):
        with pytest.raises(InvalidAPIParameters, match=r"unknown entity type '(polcy|x{36})") as refused:
            read()
        assert refused.value.field == "entity_type" and len(refused.value.message) < 400


def test_an_entity_whose_id_is_a_uuid_is_read_by_the_uuid_as_by_its_text(ledger: Ledger) -> None:
    """`history`, `state_at`, `diff`, `incarnations` and `audit_log` refused the UUID a
    command returns (`result.data.id`) with 'entity_id: must be text, not UUID', where
    `group(group_id)` and every command take it as it is: each reads it as its text."""
    group = create_group(ledger, "crew").id
    run(ledger, "group", "modify_group", ModifyGroupAction(group_id=group, modifier={"description": "two"}))
    q = ledger.queries
    assert [entry.event for entry in q.history("group", group)] == ["Created", "Modified"]
    assert q.history("group", group) == q.history("group", str(group))
    assert q.state_at("group", group, version=1) == q.state_at("group", str(group), version=1)
    assert q.state_at("group", group).fields["description"] == "two"  # type: ignore[union-attr]
    assert q.diff("group", group, from_version=1, to_version=2) == {"description": {"old": None, "new": "two"}}
    assert q.incarnations("group", group) == q.incarnations("group", str(group))
    assert [entry.operation for entry in q.audit_log("group", group)] == ["modify"]
    assert q.audit_log("group", group) == q.audit_log("group", str(group))
