"""`ledger demo`: seed 001's policy through its whole life, then its history, audit and chain."""

from __future__ import annotations

import collections
import uuid
from typing import TYPE_CHECKING, Any

import typer

from adapters.cli.app import State, state_of
from adapters.cli.render import history_table, plural, print_table
from domain.catalog import EntityType
from domain.errors import LedgerError, PolicyInUse
from domain.shown import some

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger
    from adapters.read.queries import HistoryEntry

POLICY_TYPE = EntityType.KEYPAIR_RESOURCE_POLICY
DEMO_POLICY = "dev-policy"
DEMO_KEYPAIR = "AKDEMO"
DEMO_OWNER = uuid.UUID("00000000-0000-4000-8000-00000000de40")
DEMO_FIELDS: dict[str, Any] = {
    "allowed_vfolder_hosts": ["storage1", "storage2"],
    "default_for_unspecified": "LIMITED",
    "idle_timeout": 3600,
    "max_concurrent_sessions": 5,
    "max_containers_per_session": 3,
    "max_pending_session_count": 10,
    "max_pending_session_resource_slots": {"cpu": "10", "memory": "64G"},
    "max_session_lifetime": 86400,
    "total_resource_slots": {"cpu": "50", "memory": "256G", "gpu": "4"},
}


def _demo_fields() -> list[dict[str, Any]]:
    """The values a demo run leaves its policy with: as created, and as modified."""
    from domain.keypair_resource_policy import KeyPairResourcePolicyCreator

    created = KeyPairResourcePolicyCreator(name=DEMO_POLICY, **DEMO_FIELDS).fields_json()
    return [created, {**created, "max_concurrent_sessions": 10}]


class DemoNameTaken(LedgerError):
    """A live keypair or policy of the demo's names that no demo run left."""

    status = 409
    error_domain = "demo"
    error_detail = "name_taken"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} exists and is not one a demo run left: the demo creates and deletes its own, "
            "so it leaves this ledger alone; run it on another one (--db sqlite:///demo.db)"
        )


class Demo:
    """Seed 001's policy through its whole life: each step one line, then its history."""

    def __init__(self, state: State, ledger: Ledger) -> None:
        self.state, self.ledger = state, ledger
        self.steps: list[str] = []
        self.policies = ledger.processors.keypair_resource_policy
        self.keypairs = ledger.processors.keypair

    def say(self, line: str) -> None:
        self.steps.append(line)
        if not self.state.as_json:
            typer.echo(line)

    def clean_up(self) -> None:
        """A run that was interrupted may have left the keypair or the policy behind. Only
        what a demo run leaves is cleaned up: a keypair or policy of that name that is the
        operator's own (another owner, other values, in use elsewhere) stops the demo
        before anything is changed."""
        from domain.effective_policy import live_entity
        from domain.keypair import DeleteKeyPairAction, KeyPair
        from domain.keypair_resource_policy import DeleteKeyPairResourcePolicyAction, KeyPairResourcePolicy
        from domain.ports import UnitOfWork

        work = UnitOfWork(self.ledger.app.store)
        keypair = live_entity(work, KeyPair, KeyPair.id_for(DEMO_KEYPAIR))
        policy = live_entity(work, KeyPairResourcePolicy, KeyPairResourcePolicy.id_for(DEMO_POLICY))
        if keypair is not None and keypair.fields.get("user_id") != str(DEMO_OWNER):
            raise DemoNameTaken(f"keypair {DEMO_KEYPAIR!r} (owned by {keypair.fields.get('user_id')})")
        if policy is not None:
            users = {*policy.keypairs, *policy.fallback_of, *policy.default_of} - {DEMO_KEYPAIR}
            if users:
                raise DemoNameTaken(f"policy {DEMO_POLICY!r} (used by {some(users)})")
            if policy.fields not in _demo_fields():
                raise DemoNameTaken(f"policy {DEMO_POLICY!r} (with other values)")
        if keypair is not None:
            self.state.run(self.keypairs.delete_keypair, DeleteKeyPairAction(access_key=DEMO_KEYPAIR))
            self.say(f"cleaned up keypair {DEMO_KEYPAIR!r} left by an earlier run")
        if policy is not None:
            action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
            self.state.run(self.policies.delete_keypair_resource_policy, action)
            self.say(f"cleaned up policy {DEMO_POLICY!r} left by an earlier run")

    def create(self) -> None:
        from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction

        again = bool(self.ledger.queries.history(POLICY_TYPE, DEMO_POLICY))
        creator = {"name": DEMO_POLICY, **DEMO_FIELDS}
        action = CreateKeyPairResourcePolicyAction(creator=creator)
        self.state.run(self.policies.create_keypair_resource_policy, action)
        verb = "re-created" if again else "created"
        self.say(f"{verb} policy {DEMO_POLICY!r} with seed 001's values (max_concurrent_sessions=5)")

    def modify(self) -> None:
        from domain.keypair_resource_policy import ModifyKeyPairResourcePolicyAction

        action = ModifyKeyPairResourcePolicyAction(name=DEMO_POLICY, modifier={"max_concurrent_sessions": 10})
        self.state.run(self.policies.modify_keypair_resource_policy, action)
        self.say(f"modified policy {DEMO_POLICY!r}: max_concurrent_sessions 5 -> 10")

    def assign(self) -> None:
        from domain.keypair import CreateKeyPairAction
        from domain.user import CreateUserAction

        domain = self.state.meta.domain_name or "default"
        if self.ledger.queries.user(DEMO_OWNER) is None:  # a keypair's owner is a user of its domain
            creator = {"user_id": DEMO_OWNER, "domain_name": domain, "full_name": "Demo Owner"}
            self.state.run(self.ledger.processors.user.create_user, CreateUserAction(creator=creator))
            self.say(f"created user {DEMO_OWNER} in domain {domain!r} to own the keypair")
        action = CreateKeyPairAction(
            access_key=DEMO_KEYPAIR,
            user_id=DEMO_OWNER,
            domain_name=domain,
            resource_policy=DEMO_POLICY,
        )
        self.state.run(self.keypairs.create_keypair, action)
        self.say(f"created keypair {DEMO_KEYPAIR!r} using policy {DEMO_POLICY!r}")

    def refused_delete(self) -> None:
        from domain.keypair_resource_policy import DeleteKeyPairResourcePolicyAction

        action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
        try:
            self.state.run(self.policies.delete_keypair_resource_policy, action)
        except PolicyInUse as exc:
            self.say(f"deleting policy {DEMO_POLICY!r} was refused: {exc.code}: {exc.message}")
            return
        raise LedgerError(f"deleting policy {DEMO_POLICY!r} in use was not refused")

    def tear_down(self) -> None:
        from domain.keypair import DeleteKeyPairAction
        from domain.keypair_resource_policy import DeleteKeyPairResourcePolicyAction

        self.state.run(self.keypairs.delete_keypair, DeleteKeyPairAction(access_key=DEMO_KEYPAIR))
        self.say(f"deleted keypair {DEMO_KEYPAIR!r}")
        action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
        self.state.run(self.policies.delete_keypair_resource_policy, action)
        self.say(f"deleted policy {DEMO_POLICY!r}")

    def run(self) -> list[HistoryEntry]:
        for step in (self.clean_up, self.create, self.modify, self.assign, self.refused_delete, self.tear_down):
            step()
        return self.ledger.queries.history(POLICY_TYPE, DEMO_POLICY)


def demo(ctx: typer.Context) -> None:
    """Walk policy 'dev-policy' through its life and print its history. Safe to re-run:
    each run adds one more incarnation to the same history."""
    from adapters.store.chain import verify

    state = state_of(ctx)
    with state.ledger() as ledger:
        runner = Demo(state, ledger)
        entries = runner.run()
        trail = ledger.queries.audit_log(POLICY_TYPE, DEMO_POLICY)
        chain = verify(ledger.app.recorder)
    title = f"history of {POLICY_TYPE} {DEMO_POLICY!r}"
    outcomes = collections.Counter(entry.status for entry in trail)
    data = {
        "steps": runner.steps,
        "history": [e.to_json() for e in entries],
        "audit": dict(outcomes),
        "verify": chain.to_json(),
    }

    def human() -> None:
        print_table(history_table(title, entries))
        counted = ", ".join(
            f"{status}: {n}" for status, n in sorted(outcomes.items())
        )  # statuses, not nouns: 'error: 2'
        typer.echo(f"audit trail of {DEMO_POLICY!r}: {counted} (ledger audit --entity-id {DEMO_POLICY})")
        verdict = "intact" if chain.ok else "BROKEN (ledger verify names the event)"
        typer.echo(
            f"hash chain over {plural(chain.checked, 'event')} {verdict}; head {chain.head_position}:{chain.head_hash}"
        )

    state.output(data, human)
