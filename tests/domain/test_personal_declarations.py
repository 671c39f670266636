"""The personal values each event type declares (issue 14, docs/ERASURE.md), checked on
what the processors really store: every sample and refused action of tests/actions.py on
a world, and a scenario whose personal values are recognisable (users with email and full
name, a user deleted and created again, a group with every personal field and members,
kernels started alone and in a batch, the group deleted; the samples purge another).

For every stored event and audit record, and a snapshot of every aggregate:
- each recognisable personal value is found by `locate()`, under its owner's subject;
- whatever `locate()` finds is a personal field of that kind of state (nothing else is
  declared), under the subject of the entity it belongs to, worked out from the store
  rather than from the state;
and every event class of the entities was either declared or listed in NOT_PERSONAL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic, resolve_topic

from adapters.bootstrap import Ledger, open_ledger
from domain.actions import BaseAction
from domain.aggregates import ENTITIES
from domain.audit import AuditRecord
from domain.audit import record as audit_record
from domain.catalog import EntityType
from domain.erasure import SubjectErasure
from domain.errors import LedgerError
from domain.group import CreateGroupAction, DeleteGroupAction, Group, ModifyGroupAction
from domain.group.aggregate import GROUP_FIELDS_PERSONAL
from domain.personal import Path, declarations, declared, erased_subject, erasing_topics, parse_path, path_text
from domain.user import CreateUserAction, DeleteUserAction, ModifyUserAction, User
from domain.user.aggregate import USER_FIELDS_PERSONAL
from domain.workload import Kernel, RecordWorkloadBatchAction, StartKernelAction, TerminateKernelAction
from domain.workload.aggregate import KERNEL_FIELDS_PERSONAL
from tests.actions import DOMAIN, FAILURES, SAMPLES, T0, World, build_world, run

# Every event class of the entities that holds no personal value, with why. A new event
# class fails `test_every_event_class_was_considered` until it is declared or listed here.
_POLICY = "a resource policy's limits and references: no personal value"
_KEYPAIR = "a keypair's policy and owner: not personal in issue 14"
_WORKLOAD = "vfolder and endpoint facts: names, hosts, group ids; none personal in issue 14"
_DOMAIN = "a domain's settings and the ids of its users and groups (references, not values)"
_SESSION = (
    "a session's access key and user id are not in issue 14's list: the keypair's natural key and the owner's id,"
    " in clear on the keypair's and the user's own streams too"
)
NOT_PERSONAL: dict[str, str] = {
    **{
        f"KeyPairResourcePolicy.{name}": _POLICY
        for name in (
            "Created",
            "Recreated",
            "Modified",
            "Deleted",
            "DefaultReferenced",
            "DefaultReleased",
            "FallbackReferenced",
            "FallbackReleased",
            "KeyPairAssigned",
            "KeyPairUnassigned",
        )
    },
    **{f"KeyPair.{name}": _KEYPAIR for name in ("Created", "Recreated", "Modified", "Deleted")},
    **{f"{kind}.{name}": _WORKLOAD for kind in ("VFolder", "Endpoint") for name in ("Created", "Recreated")},
    **{f"{kind}.{name}": _WORKLOAD for kind in ("VFolder", "Endpoint") for name in ("Modified", "Deleted")},
    **{
        f"Domain.{name}": _DOMAIN
        for name in ("Created", "Recreated", "Modified", "Deleted", "GroupAdded", "GroupRemoved", "UserAdded")
    },
    "Domain.UserRemoved": _DOMAIN,
    "Group.Purged": "holds only the group's key: it erases the group's subject instead",
    "Group.VFolderAdded": "a vfolder id, kept for the purge checks",
    "Group.KernelStarted": "a kernel id and its mounts, kept for the purge checks",
    "Group.KernelEnded": "a kernel id",
    "Group.EndpointCreated": "an endpoint id",
    "Group.EndpointDestroyed": "an endpoint id",
    "Kernel.Modified": "never stored (kernels are not modified); its changes would not name the group",
    "Kernel.Deleted": "holds nothing",
    "Kernel.StatsReported": "usage figures",
    "Kernel.Terminated": "an end time and status",
    "User.Deleted": "holds nothing",
    "User.KeyPairAdded": "an access key as a reference to the keypair (not in issue 14's list)",
    "User.KeyPairRemoved": "an access key as a reference to the keypair",
    "User.GroupJoined": "a group id",
    "User.GroupLeft": "a group id",
    **{
        f"Session.{name}": _SESSION
        for name in ("Created", "Recreated", "Modified", "Deleted", "Admitted", "Deferred", "ActivityReported")
    },
    **{
        f"Session.{name}": _SESSION
        for name in ("KernelAttached", "KernelDetached", "Cancelled", "TerminationStarted", "Terminated")
    },
    "AuditRecord.Created": "the library's default creation event; records are stored as Recorded",
    "SubjectErasure.Created": "the library's default creation event; erasures are stored as Erased",
}

# Which fields are personal in each kind of state (the last key of a declared path, past
# list indices and a change's old / new).
PERSONAL_NAMES: dict[str, frozenset[str]] = {
    "user": frozenset(USER_FIELDS_PERSONAL),
    "group": frozenset(GROUP_FIELDS_PERSONAL) | {"user_ids", "user_uuids", "members"},
    "kernel": frozenset(KERNEL_FIELDS_PERSONAL),
}


def event_classes() -> Iterator[tuple[str, type]]:
    """`Entity.Event` name and class of every event class of the entities, the audit and the
    erasures of subjects without an entity."""
    for entity in (*ENTITIES, AuditRecord, SubjectErasure):
        for name in dir(entity):
            cls = getattr(entity, name)
            if isinstance(cls, type) and hasattr(cls, "mutate") and name not in ("Event", "Snapshot"):
                yield f"{entity.__name__}.{name}", cls


# The scenario: recognisable personal values and whose they are.

ADA, BOB, MEMBER_1, MEMBER_2 = (uuid.UUID(int=0x5E0000 + n) for n in range(1, 5))
KERNEL_USER_1, KERNEL_USER_2, KERNEL_USER_3 = (uuid.UUID(int=0x5E1000 + n) for n in range(1, 4))
GROUP = uuid.UUID(int=0x5E2000)
KERNEL_1, KERNEL_2, KERNEL_3 = (uuid.UUID(int=0x5E3000 + n) for n in range(1, 4))


def _dotfiles(text: str) -> list[Any]:
    """Dotfiles as events store them (base64) and as audit specs do (size and digest)."""
    data = text.encode()
    return [base64.b64encode(data).decode(), {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}]


def _registry(n: int) -> dict[str, str]:
    return {"registry": f"registry-{n}.personal.example", "project": f"personal-project-{n}"}


def _group_values(n: int) -> dict[str, Any]:
    return {
        "description": f"Personal description {n}",
        "integration_id": f"personal-integration-{n}",
        "dotfiles": f"export PERSONAL_TOKEN={n}",
        "container_registry": _registry(n),
    }


def _start(world: World, kernel: uuid.UUID, user: uuid.UUID, n: int, group: uuid.UUID = GROUP) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name=f"personal-session-{n}",
        group_id=group,
        domain_name=DOMAIN,
        user_id=user,
        access_key=f"AKPERSONAL{n}",
        occupied_slots={"cpu": "1"},
        started_at=T0,
    )


def sentinels() -> dict[str, str]:
    """JSON of each recognisable personal value -> the subject that owns it."""
    owners: dict[str, list[Any]] = {
        f"user:{ADA}": ["ada.personal@example.org", "Ada Personal", "ada.renamed@example.org", "Ada Renamed"],
        f"user:{BOB}": ["bob.personal@example.org", "Bob Personal", "bob.again@example.org", "Bob Again"],
        f"group:{GROUP}": [
            *(v for n in (1, 2) for k, v in _group_values(n).items() if k != "dotfiles"),
            *(v for n in (1, 2) for v in _dotfiles(_group_values(n)["dotfiles"])),
            *(str(u) for u in (KERNEL_USER_1, KERNEL_USER_2, KERNEL_USER_3)),
            *(f"AKPERSONAL{n}" for n in (1, 2, 3)),
            *(f"personal-session-{n}" for n in (1, 2, 3)),
        ],
    }
    return {json.dumps(value, sort_keys=True): subject for subject, values in owners.items() for value in values}


# Member ids are personal only where they are a group's members: elsewhere (a user's own
# stream, its domain's list) they are the user's id.
MEMBERS = {json.dumps(str(m)): f"group:{GROUP}" for m in (MEMBER_1, MEMBER_2)}


def _attempt(ledger: Ledger, service: str, method: str, action: BaseAction) -> None:
    """Runs an action whose refusal is as good a sample as its success (both are audited)."""
    with contextlib.suppress(LedgerError):
        run(ledger, service, method, action)


def build_scenario(ledger: Ledger) -> World:
    world = build_world(ledger)
    for (service, method), (make, _code) in FAILURES.items():
        _attempt(ledger, service, method, make(world))
    users = ((ADA, "ada.personal@example.org", "Ada Personal"), (BOB, "bob.personal@example.org", "Bob Personal"))
    for user, email, name in users:
        creator = {"user_id": user, "domain_name": DOMAIN, "email": email, "full_name": name}
        run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    for member in (MEMBER_1, MEMBER_2):
        run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": member, "domain_name": DOMAIN}))
    modifier = {"email": "ada.renamed@example.org", "full_name": "Ada Renamed"}
    run(ledger, "user", "modify_user", ModifyUserAction(user_id=ADA, modifier=modifier))
    run(ledger, "user", "delete_user", DeleteUserAction(user_id=BOB))
    again = {"user_id": BOB, "domain_name": DOMAIN, "email": "bob.again@example.org", "full_name": "Bob Again"}
    run(ledger, "user", "create_user", CreateUserAction(creator=again))  # Recreated

    group_input = {"name": "personal", "domain_name": DOMAIN, **_group_values(1)}
    run(ledger, "group", "create_group", CreateGroupAction(input=group_input, group_id=GROUP))
    members = [str(MEMBER_1), str(MEMBER_2)]
    change = ModifyGroupAction(group_id=GROUP, modifier=_group_values(2), user_update_mode="add", user_uuids=members)
    run(ledger, "group", "modify_group", change)
    leave = ModifyGroupAction(group_id=GROUP, user_update_mode="remove", user_uuids=[str(MEMBER_2)])
    run(ledger, "group", "modify_group", leave)
    run(ledger, "workload", "start_kernel", _start(world, KERNEL_1, KERNEL_USER_1, 1))
    batch = [_start(world, KERNEL_2, KERNEL_USER_2, 2), _start(world, KERNEL_3, KERNEL_USER_3, 3)]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=batch))
    ends = [TerminateKernelAction(kernel_id=k, terminated_at=T0) for k in (KERNEL_1, KERNEL_2, KERNEL_3)]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=ends))
    # Deleted clears the integration id. Not purged: that erases its key, and its values
    # would read as [erased]; the samples purge the world's spare group.
    run(ledger, "group", "delete_group", DeleteGroupAction(group_id=GROUP))

    for (service, method), make in SAMPLES.items():  # in order: some later ones are refused
        if service != "projection":  # a skip needs exactly one stalled read model: not this world
            _attempt(ledger, service, method, make(world))
    return world


# What the store holds, each state with the kind and subject of the entity it belongs to.


@dataclass(frozen=True)
class Stored:
    label: str
    cls: type
    state: dict[str, Any]
    kind: str | None  # user, group, kernel: whose personal fields it may hold
    subject: str | None  # the subject they belong to, from the store


def _state(event: object) -> dict[str, Any]:
    return {k: v for k, v in vars(event).items() if k not in ("originator_id", "originator_version")}


def _owner(aggregate: object) -> tuple[str | None, str | None]:
    if isinstance(aggregate, User):
        return "user", f"user:{aggregate.key}"
    if isinstance(aggregate, Group):
        return "group", f"group:{aggregate.id}"
    if isinstance(aggregate, Kernel):
        return "kernel", f"group:{aggregate.fields['group_id']}"
    return None, None


def _audit_owner(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    entity_type, entity_id, spec = entry["entity_type"], entry["entity_id"], entry["spec"]
    if entity_type == EntityType.USER:
        return "user", f"user:{entity_id}"
    if entity_type == EntityType.GROUP and "group_id" in spec:
        return "group", f"group:{entity_id}"
    if entity_type == EntityType.KERNEL:
        return "kernel", None if "group_id" not in spec else f"group:{spec['group_id']}"
    if entity_type == EntityType.WORKLOAD:
        groups = [fact["group_id"] for fact in spec["actions"] if "user_id" in fact]
        return "kernel", f"group:{groups[0]}" if groups else None
    return None, None


def stored_states(ledger: Ledger) -> list[Stored]:
    app = ledger.app
    found: list[Stored] = []
    streams: dict[uuid.UUID, None] = {}
    for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
        event = app.mapper.to_domain_event(notification)
        label = f"{type(event).__qualname__} v{event.originator_version} of {event.originator_id}"
        if isinstance(event, AuditRecord.Recorded):
            kind, subject = _audit_owner(event.entry)
        else:
            streams[event.originator_id] = None
            kind, subject = _owner(app.repository.get(event.originator_id))
        found.append(Stored(label, type(event), _state(event), kind, subject))
    for stream in streams:  # a snapshot of every aggregate, as the application takes them
        aggregate = app.repository.get(stream)
        snapshot = Snapshot.take(aggregate)
        kind, subject = _owner(aggregate)
        found.append(
            Stored(f"Snapshot of {type(aggregate).__name__} {stream}", Snapshot, _state(snapshot), kind, subject)
        )
    return found


@pytest.fixture(scope="module")
def stored() -> Iterator[list[Stored]]:
    # One world for every check here: building it is the slow part.
    with open_ledger("sqlite:///:memory:") as ledger:
        build_scenario(ledger)
        yield stored_states(ledger)


def _walk(node: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield from _walk(child, (*path, key))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            yield from _walk(child, (*path, index))


def _recognised(item: Stored) -> dict[Path, str]:
    """Where the scenario's personal values sit in a state, each with its owner."""
    known = sentinels() | (MEMBERS if item.kind == "group" else {})
    found: dict[Path, str] = {}
    for path, node in _walk(item.state, ()):
        if any(path[: len(p)] == p for p in found):
            continue  # inside a value already found (a registry)
        subject = known.get(json.dumps(node, sort_keys=True, default=str))
        if subject is not None:
            found[path] = subject
    return found


def _field_name(path: Path) -> str:
    steps = [step for step in path if isinstance(step, str)]
    if steps[-1] in ("old", "new") and len(steps) > 1 and steps[-3:-2] == ["changes"]:
        return steps[-2]
    return steps[-1]


def _located(item: Stored) -> list[tuple[Path, str]]:
    return [found for personal in declared(item.cls) for found in personal.locate(item.state)]


# The checks


def test_the_scenario_stores_every_kind_of_state(stored: list[Stored]) -> None:
    """Guards the checks below against a scenario that quietly stops storing something."""
    seen = {item.cls for item in stored}
    for cls in (User.Created, User.Recreated, User.Modified, Group.Created, Group.Modified, Group.Deleted):
        assert cls in seen, cls
    for cls in (Group.MembersAdded, Group.MembersRemoved, Group.Purged, Kernel.Created, AuditRecord.Recorded):
        assert cls in seen, cls
    kinds = {(item.cls, item.kind) for item in stored}
    assert {(Snapshot, "user"), (Snapshot, "group"), (Snapshot, "kernel"), (Snapshot, None)} <= kinds


def test_every_recognisable_personal_value_is_located_with_its_subject(stored: list[Stored]) -> None:
    missed = []
    total = 0
    for item in stored:
        located = _located(item)
        for path, subject in _recognised(item).items():
            total += 1
            covering = [s for p, s in located if path[: len(p)] == p]
            if covering != [subject]:
                missed.append(f"{item.label}: {path_text(path)} -> {covering}, wanted {subject}")
    assert not missed, "\n".join(missed)
    assert total >= 60  # the scenario's values in events, audit records and snapshots


def test_only_personal_fields_are_located_under_their_entitys_subject(stored: list[Stored]) -> None:
    wrong = []
    for item in stored:
        for path, subject in _located(item):
            name = _field_name(path)
            if item.kind is None or name not in PERSONAL_NAMES[item.kind] or subject != item.subject:
                wrong.append(f"{item.label} ({item.kind}, {item.subject}): {path_text(path)} under {subject}")
    assert not wrong, "\n".join(wrong)


def test_the_purge_erases_the_groups_subject(stored: list[Stored]) -> None:
    (purged,) = [item for item in stored if item.cls is Group.Purged]  # the spare group's
    assert purged.subject is not None
    assert erased_subject(Group.Purged, purged.state) == purged.subject
    assert get_topic(Group.Purged) in erasing_topics()
    # A purge stored before the event named its group erases nothing by itself.
    assert erased_subject(Group.Purged, {"timestamp": T0}) is None


def test_an_erasure_without_an_entity_erases_the_subject_it_names() -> None:
    for cls in (SubjectErasure.Erased, SubjectErasure.ErasedAgain):
        assert get_topic(cls) in erasing_topics()
        assert erased_subject(cls, {"subject": f"user:{ADA}", "reason": "r"}) == f"user:{ADA}"
    # Its stream is never an entity's: `user:<id>` as an entity kind and key names the user's.
    assert SubjectErasure.id_for(f"user:{ADA}") != User.id_for(str(ADA))


def test_a_batch_across_groups_seals_each_start_with_its_own_group() -> None:
    """A batch's facts are sealed one by one (`each`): purging one group of a batch
    erases that group's starts only, and a terminate (no user id) is not sealed."""
    other = uuid.UUID(int=0x5E2001)
    world = World(GROUP, *(uuid.uuid4() for _ in range(4)))
    facts = [_start(world, KERNEL_1, KERNEL_USER_1, 1), _start(world, KERNEL_2, KERNEL_USER_2, 2, group=other)]
    spec = RecordWorkloadBatchAction(actions=facts).spec()
    state = {"entry": {"entity_type": EntityType.WORKLOAD, "spec": spec}}
    located = _located(Stored("batch", AuditRecord.Recorded, state, "kernel", None))
    assert sorted(path_text(p) for p, _ in located) == sorted(
        f"entry.spec.actions[{i}].{f}" for i in (0, 1) for f in KERNEL_FIELDS_PERSONAL
    )
    assert {path_text(p): s for p, s in located} == {
        f"entry.spec.actions[{i}].{f}": f"group:{group}"
        for i, group in ((0, GROUP), (1, other))
        for f in KERNEL_FIELDS_PERSONAL
    }


def test_events_stored_before_they_named_their_subject_locate_nothing() -> None:
    """Old Modified / MembersAdded events have no `key`: no subject, nothing to seal (they
    were stored in clear, and sealing happens only when storing)."""
    assert (
        _located(Stored("old", User.Modified, {"changes": {"email": {"old": "a@b", "new": "c@d"}}}, None, None)) == []
    )
    assert _located(Stored("old", Group.MembersAdded, {"user_ids": [str(MEMBER_1)]}, None, None)) == []


def test_every_event_class_was_considered() -> None:
    classes = dict(event_classes())
    undecided = [
        name
        for name, cls in classes.items()
        if not declared(cls) and get_topic(cls) not in erasing_topics() and name not in NOT_PERSONAL
    ]
    assert not undecided, f"declare their personal values or list them in NOT_PERSONAL: {undecided}"
    both = [name for name in NOT_PERSONAL if name in classes and declared(classes[name])]
    assert not both, f"declared and listed as not personal: {both}"
    stale = [name for name in NOT_PERSONAL if name not in classes]
    assert not stale, f"NOT_PERSONAL names no such event class: {stale}"
    assert declared(Snapshot), "snapshots hold the aggregates' fields"


def test_every_declaration_parses_and_names_a_real_event_type() -> None:
    for topic, personals in declarations().items():
        if topic.startswith("tests."):
            continue  # test_personal.py's throwaway classes
        assert isinstance(resolve_topic(topic), type), topic
        for personal in personals:
            assert personal.patterns == tuple(parse_path(path) for path in personal.paths), topic


def test_the_audit_declares_the_entities_personal_fields() -> None:
    assert audit_record._USER == USER_FIELDS_PERSONAL
    assert audit_record._GROUP == GROUP_FIELDS_PERSONAL
    assert audit_record._KERNEL == KERNEL_FIELDS_PERSONAL
