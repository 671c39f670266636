"""The processor with validators written as seed 004 writes them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from domain.actions import ActionProcessor, ActionTriggerMeta, BaseAction, ProcessResult, Role
from domain.errors import InsufficientPermission, StoreUnavailable
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    CreateKeyPairResourcePolicyActionResult,
    KeyPairResourcePolicyCreator,
)

META = ActionTriggerMeta(user_id=uuid.UUID(int=1), access_key="AKUSER", role="user", domain_name="default")


class SeedValidator:
    """Seed 004's SessionAccessValidator, refusing with a sentence of its own."""

    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        raise InsufficientPermission("You don't have permission to access this session")


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[ProcessResult] = []

    async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        pass

    async def done(self, action: BaseAction, result: ProcessResult) -> None:
        self.seen.append(result)


async def create(action: CreateKeyPairResourcePolicyAction) -> CreateKeyPairResourcePolicyActionResult:
    raise AssertionError("a refused action never reaches its service")


def test_a_validator_refuses_with_its_own_message() -> None:
    monitor = Outcomes()
    processor = ActionProcessor(create, [SeedValidator()], [monitor])
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    with pytest.raises(InsufficientPermission) as refused:
        asyncio.run(processor.wait_for_complete(action, META))
    assert str(refused.value) == "You don't have permission to access this session"
    assert refused.value.code == "permission_forbidden" and refused.value.status == 403
    [outcome] = monitor.seen
    assert outcome.meta.status == "denied" and outcome.meta.error_code == "permission_forbidden"
    assert outcome.meta.description == "You don't have permission to access this session"


def test_the_ledgers_own_refusals_still_name_actor_operation_and_entity() -> None:
    refused = InsufficientPermission(actor="user AKUSER", operation="create", entity="group g")
    assert str(refused) == "user AKUSER may not create group g"
    assert (refused.actor, refused.operation, refused.entity) == ("user AKUSER", "create", "group g")


class BrokenValidator:
    """A permission check that cannot run (its store lookup fails): nothing was refused."""

    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        raise StoreUnavailable("event store unreachable")


def test_a_validator_that_fails_is_an_error_not_a_denial() -> None:
    monitor = Outcomes()
    processor = ActionProcessor(create, [BrokenValidator()], [monitor])
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    with pytest.raises(StoreUnavailable):
        asyncio.run(processor.wait_for_complete(action, META))
    [outcome] = monitor.seen
    # `denied` says a validator refused the action; this one could not decide at all.
    assert outcome.meta.status == "error" and outcome.meta.error_code == "ledger_unavailable"


class AdminsOnly:
    """Seed 004's validators check the caller's role against the roles they allow, as
    Backend.AI's string enum reads (`user_role not in {SUPERADMIN, ADMIN}`)."""

    async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
        if meta.role not in {"superadmin", "admin"}:
            raise InsufficientPermission(f"role {meta.role} may not {action.operation_type()}")


async def created(action: CreateKeyPairResourcePolicyAction) -> CreateKeyPairResourcePolicyActionResult:
    raise StoreUnavailable("no store here")


@pytest.mark.parametrize("role", ["admin", "ADMIN", Role.ADMIN])
def test_the_role_reads_back_equal_to_its_text(role: str | Role) -> None:
    """DESIGN gives the role as `superadmin`, `admin` or `user`: a validator or monitor
    reading it back compares it with that text (a plain enum was unequal to "admin", so
    the validator above refused every admin)."""
    meta = ActionTriggerMeta(user_id=uuid.UUID(int=2), access_key="AKADMIN", role=role, domain_name="default")
    assert meta.role == "admin" and meta.role is Role.ADMIN
    processor = ActionProcessor(created, [AdminsOnly()], [])
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    with pytest.raises(StoreUnavailable):  # let through to the service: not refused
        asyncio.run(processor.wait_for_complete(action, meta))
    with pytest.raises(InsufficientPermission, match="role user may not create"):
        asyncio.run(processor.wait_for_complete(action, META))


def test_monitors_are_prepared_before_the_validators_as_seed_004_orders_them() -> None:
    """Seed 004's flow: `Monitor.prepare`, then `Validator.validate`, the service, then
    `Monitor.done`. The validators ran first, so a denied action reached every monitor's
    `done` without its `prepare`: a seed-style monitor that starts its timer or its audit
    entry in `prepare` and ends it in `done` failed on each denial, and the denial was lost
    from what it keeps. Every action, denied or not, is prepared and then done."""
    seen: list[str] = []

    class Paired:
        async def prepare(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
            seen.append("prepare")

        async def done(self, action: BaseAction, result: ProcessResult) -> None:
            seen.append(f"done {result.meta.status}")

    class Watched(SeedValidator):
        async def validate(self, action: BaseAction, meta: ActionTriggerMeta) -> None:
            seen.append("validate")
            await super().validate(action, meta)

    processor = ActionProcessor(create, [Watched()], [Paired()])
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name="p"))
    with pytest.raises(InsufficientPermission):
        asyncio.run(processor.wait_for_complete(action, META))
    assert seen == ["prepare", "validate", "done denied"]
