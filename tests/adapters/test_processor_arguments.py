"""A processor called in-process with objects that are not its action or not an actor is
refused before anything runs: `InvalidAPIParameters` naming `action` or `meta`, nothing
stored, no audit record (there is no action to record), no monitor failure."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.actions import ActionProcessor, BaseAction, BaseActionResult
from domain.domains import CreateDomainAction
from domain.errors import InvalidAPIParameters
from domain.group import CreateGroupAction
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction
from tests.actions import SAMPLES, build_world, processor_methods
from tests.conftest import SUPERADMIN


def _processors(ledger: Ledger) -> dict[str, ActionProcessor[BaseAction, BaseActionResult]]:
    found = {}
    for service, processors in vars(ledger.processors).items():
        if hasattr(processors, "all"):
            found.update({f"{service}.{name}": p for name, p in processors.all().items()})
    return found


def _stored(ledger: Ledger) -> tuple[int, int]:
    ledger.runner.catch_up()
    return ledger.app.recorder.max_notification_id() or 0, len(ledger.queries.audit_log())


def test_wrong_objects_are_refused_naming_them(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    processors = _processors(ledger)
    assert len(processors) >= 30, sorted(processors)
    before = _stored(ledger)
    another_kind: dict[bool, Any] = {
        True: CreateKeyPairResourcePolicyAction(creator={"name": "p"}),  # for create_domain
        False: CreateDomainAction(creator={"name": "d"}),
    }
    with caplog.at_level(logging.WARNING):
        for label, processor in processors.items():
            wrong = another_kind[label == "domain.create_domain"]
            for action in (None, {"name": "p"}, "p", wrong):
                with pytest.raises(InvalidAPIParameters, match=r"^action: must be a \w+Action, not ") as refused:
                    asyncio.run(processor.wait_for_complete(action, SUPERADMIN))
                assert refused.value.field == "action", label
            for meta in (None, {"role": "superadmin"}, "superadmin"):
                with pytest.raises(InvalidAPIParameters, match=r"^meta: must be an ActionTriggerMeta") as refused:
                    asyncio.run(processor.wait_for_complete(wrong, meta))
                assert refused.value.field == "meta", label
    assert _stored(ledger) == before
    assert not [r for r in caplog.records if "monitor" in r.getMessage()], "a monitor failed on a refused call"


def test_a_service_called_directly_refuses_what_is_not_its_action(ledger: Ledger) -> None:
    """The services are public beside the processors: each method refuses another object
    the same way (there are as many service methods taking an action as processors)."""
    before = _stored(ledger)
    methods = 0
    for label in _processors(ledger):
        service_name, name = label.split(".")
        method = getattr(getattr(ledger.services, service_name), name)
        wrong: BaseAction = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
        if label == "keypair_resource_policy.create_keypair_resource_policy":
            wrong = CreateDomainAction(creator={"name": "d"})
        for action in (None, {"name": "p"}, wrong):
            with pytest.raises(InvalidAPIParameters, match=r"^action: must be a \w+Action, not "):
                asyncio.run(method(action))
        methods += 1
    assert methods >= 30
    assert _stored(ledger) == before


def test_every_action_is_immutable_once_made(memory_ledger: Ledger) -> None:
    """Seed 002: actions are frozen inputs. Every processor method's sample action refuses
    a change of each of its fields, naming it, and stays as it was."""
    world = build_world(memory_ledger)
    assert set(SAMPLES) == processor_methods(memory_ledger)
    for method, sample in SAMPLES.items():
        action = sample(world)
        before = action.spec()
        for field in type(action).model_fields:
            with pytest.raises(InvalidAPIParameters, match="cannot be changed once made") as changed:
                setattr(action, field, getattr(action, field))
            assert changed.value.field == field, method
        assert action.spec() == before, method


def test_a_copy_with_changed_fields_is_checked_as_a_new_action(memory_ledger: Ledger) -> None:
    """pydantic's `model_copy(update=...)` sets the update unchecked: a creator copied with
    `name=5` or a negative limit was accepted and stored (a policy named 5), a group id
    that is no UUID failed in the service with a raw ValueError. A copy's changes are now
    refused as the constructor refuses them, and what it accepts is what a new action
    made of the original's given fields and the change is."""
    world = build_world(memory_ledger)
    for method, sample in SAMPLES.items():
        action = sample(world)
        given = {name: getattr(action, name) for name in action.model_fields_set}
        for field in type(action).model_fields:
            for value in ("", -1, [{}], None):
                made_anew = _outcome(type(action), {**given, field: value})
                copied = _outcome(action.model_copy, {"update": {field: value}})
                assert copied == made_anew, (method, field, value)
    create = CreateKeyPairResourcePolicyAction(creator={"name": "p"})
    with pytest.raises(InvalidAPIParameters) as refused:
        create.creator.model_copy(update={"name": 5})
    assert refused.value.field == "name"
    before = _stored(memory_ledger)
    with pytest.raises(InvalidAPIParameters):
        create.model_copy(update={"creator": create.creator.model_copy(update={"max_concurrent_sessions": -1})})
    assert _stored(memory_ledger) == before
    group = CreateGroupAction(input={"name": "first", "domain_name": "alpha"})
    assert group.model_copy(update={"input": {"name": "second", "domain_name": "alpha"}}).group_id != group.group_id


def _outcome(make: Any, arguments: dict[str, Any]) -> object:
    """The spec of what `make(**arguments)` made (only its given fields: an id the ledger
    draws differs from one action to the next), or the field and reason it refused."""
    try:
        made = make(**arguments)
    except InvalidAPIParameters as refused:
        return (refused.field, refused.reason)
    return {k: v for k, v in made.spec().items() if k in made.model_fields_set}
