"""An event a newer release stored, of a type this release does not know: every read that
meets it (a stream's replay, the read models' follower, a list) is refused as
`ledger_unknown_event_type`, saying to run the newer release, not as the library's
TopicError (`internal error`). The upgrade tests found an older follower and server doing
exactly that when a release added an event."""

from __future__ import annotations

import asyncio

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic
from typer.testing import CliRunner

from adapters import follow as follower
from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from domain.actions import ActionTriggerMeta
from domain.audit import AuditRecord
from domain.errors import UnknownEventType
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
from domain.keypair_resource_policy.aggregate import KeyPairResourcePolicy

ROOT = ActionTriggerMeta(user_id=None, access_key=None, role="superadmin", domain_name="default")
NEWER = "domain.keypair_resource_policy.aggregate:KeyPairResourcePolicy.Renamed"  # no such event here
STATE = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-05T00:00:00+00:00"},"to":"q"}'


def _append_newer_event(ledger: Ledger) -> None:
    """A policy, then an event of a type a newer release would add, appended as the ledger
    appends (linked in the chain), so only its type is new."""
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    processor = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
    asyncio.run(processor.wait_for_complete(action, ROOT))
    ledger.runner.catch_up()
    ledger.app.recorder.insert_events([StoredEvent(KeyPairResourcePolicy.id_for("p"), 2, NEWER, STATE)])


def test_reads_that_meet_a_newer_event_say_to_run_the_newer_release(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        _append_newer_event(ledger)
        with pytest.raises(UnknownEventType, match=r"at version 2 is of a type this release does not know"):
            ledger.queries.state_at("keypair_resource_policy", "p")
        with pytest.raises(UnknownEventType, match=r"at position \d+ is of a type .*'KeyPairResourcePolicy.Renamed'"):
            ledger.runner.catch_up()  # the follower's read
    for command in (["policy", "show", "p"], ["policy", "list"], ["projections", "run", "--once"]):
        result = CliRunner().invoke(app, ["--db", ledger_url, *command])
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.startswith("error: ledger_unknown_event_type: "), (command, result.stderr)
        assert "run that release" in result.stderr and "TopicError" not in result.stderr, result.stderr


def test_verify_reports_the_chain_and_names_the_newer_event_it_cannot_replay(ledger_url: str) -> None:
    """`ledger verify` met the newer event rebuilding the read models it compares, and
    answered only the refusal, whose advice (`or ledger verify, if none did`) was itself:
    the chain it had walked went unsaid. It reports the chain, and the read models as not
    checked, naming the event and the release to verify with."""
    with open_ledger(ledger_url) as ledger:
        _append_newer_event(ledger)
    result = CliRunner().invoke(app, ["--db", ledger_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "chain intact" in result.stdout, result.output
    assert "NOT CHECKED: the audit and history read models: the stored event at position" in result.stdout
    assert "'KeyPairResourcePolicy.Renamed'" in result.stdout and "ledger verify" not in result.output, result.output


def test_a_write_refused_on_a_newer_event_is_audited(ledger_url: str) -> None:
    """A write to the stream refused as `ledger_unknown_event_type` left no audit record: the
    audit monitor, looking up the entity's domain for the record, met the same event and
    failed. The refusal is recorded (the entity's domain unknown: the superadmin's record)."""
    with open_ledger(ledger_url) as ledger:
        _append_newer_event(ledger)
        head = ledger.app.recorder.max_notification_id() or 0
        result = CliRunner().invoke(
            app, ["--db", ledger_url, "policy", "modify", "p", "--max-concurrent-sessions", "3"]
        )
        assert "error: ledger_unknown_event_type: " in result.stderr, result.stderr
        assert "AuditMonitor failed" not in result.stderr, result.stderr
        after = ledger.app.recorder.select_notifications(start=head + 1, limit=10)
        records = [
            vars(ledger.app.mapper.to_domain_event(n)) for n in after if n.topic == get_topic(AuditRecord.Recorded)
        ]
        assert [r["entry"]["error_code"] for r in records] == ["ledger_unknown_event_type"], records


def test_the_follower_ends_on_a_newer_event_as_on_a_newer_read_model(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger projections run` took the refusal for a store that would come back: it
    warned and retried every poll for good, which this release can never get past. It
    ends, as it does when newer code replaced a read model's version."""

    def retried(message: str) -> None:
        raise AssertionError(f"retried: {message}")

    monkeypatch.setattr(follower, "_warn", retried)
    with open_ledger(ledger_url) as ledger:
        _append_newer_event(ledger)
        with pytest.raises(UnknownEventType, match="run that release"):
            follower.follow(ledger, 0.01)


def test_a_later_version_of_a_known_event_that_this_release_cannot_read_is_no_damage(ledger_url: str) -> None:
    """An event of a type this release knows, in a later shape (a newer release raised its
    `class_version` and dropped a field): the library upcasts only up, so it lacked fields
    and read as bytes that do not decode, `ledger_damaged_event`, though `verify` finds the
    chain intact. It is a newer release's event, said so."""
    reshaped = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-05T00:00:00+00:00"},"class_version":2}'
    modified = get_topic(KeyPairResourcePolicy.Modified)
    with open_ledger(ledger_url) as ledger:
        _append_newer_event(ledger)  # version 2: the unknown type; the reshaped event follows
        ledger.app.recorder.insert_events([StoredEvent(KeyPairResourcePolicy.id_for("p"), 3, modified, reshaped)])
        events = ledger.app.recorder.select_events(KeyPairResourcePolicy.id_for("p"), gt=2)
        with pytest.raises(UnknownEventType, match=r"at version 3 is version 2 of 'KeyPairResourcePolicy.Modified'"):
            ledger.app.mapper.to_domain_event(events[0])
        # The same bytes without a later version are what they were: another event's shape.
        same_version = StoredEvent(events[0].originator_id, 3, modified, reshaped.replace(b',"class_version":2', b""))
        with pytest.raises(MapperDeserialisationError):
            ledger.app.mapper.to_domain_event(same_version)
