"""A ledger whose usage read model is stalled by an event an older release stored."""

from __future__ import annotations

import asyncio
import uuid

from adapters.bootstrap import Ledger
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
from domain.workload import Kernel
from tests.projections.commands import GROUPS, T0, run, start_action

BAD_KERNEL = uuid.UUID(int=0x7FFF)


def poison(ledger: Ledger) -> int:
    """Stores a kernel start whose time is no time, as a release that did not check it
    would have (the aggregate's event saved raw); returns its position."""
    fields = start_action(GROUPS[0], BAD_KERNEL, T0).kernel_fields()
    fields["started_at"] = "yesterday"
    ledger.app.save(Kernel.create(str(BAD_KERNEL), fields))
    return ledger.app.recorder.max_notification_id() or 0


def create_policy(ledger: Ledger, name: str) -> None:
    action = CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=name))
    asyncio.run(ledger.services.keypair_resource_policy.create_keypair_resource_policy(action))


def stalled_ledger(ledger: Ledger) -> int:
    """A good kernel before the bad event and one command after it, all in one batch."""
    run(ledger, ("group", 0))
    run(ledger, ("start", 0, 0, 10))
    bad = poison(ledger)
    create_policy(ledger, "after")
    run(ledger, ("end", 0, 30))
    ledger.runner.catch_up()
    return bad
