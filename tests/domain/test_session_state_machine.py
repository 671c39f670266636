"""A hypothesis state machine over enqueue, schedule, cancel, terminate and policy, group
and domain edits, against a plain Python model of usage (sets of sessions and their
slots): every decision the ledger takes is the model's, no admission ever leaves a scope
over its limit at the time it admitted, and the ledger's usage is the model's set."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.errors import QuotaExceeded
from domain.session import Scope
from tests.domain.session_world import World

INF = Decimal("Infinity")
KEYS = ("AK1", "AK2")
SLOTS = ("cpu", "cuda.device")


@dataclass
class ModelSession:
    access_key: str
    group: str
    slots: dict[str, Decimal]
    status: str = "PENDING"


@dataclass
class ModelPolicy:
    max_concurrent: int = 2
    max_pending: int | None = None
    cpu: int = 4
    gpu: int | None = None  # None: not listed
    unlimited: bool = False

    def fields(self) -> dict[str, object]:
        slots = {"cpu": str(self.cpu)} | ({} if self.gpu is None else {"cuda.device": str(self.gpu)})
        return {
            "max_concurrent_sessions": self.max_concurrent,
            "max_pending_session_count": self.max_pending,
            "total_resource_slots": slots,
            "default_for_unspecified": "UNLIMITED" if self.unlimited else "LIMITED",
        }

    def limit(self, slot: str) -> Decimal:
        listed = {"cpu": self.cpu, "cuda.device": self.gpu}[slot]
        if listed is not None:
            return Decimal(listed)
        return INF if self.unlimited else Decimal(0)


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.world.domain("d")
        self.policies = {key: ModelPolicy() for key in KEYS}
        for key, policy in self.policies.items():
            self.world.policy(f"p-{key}", **policy.fields())
            self.world.keypair(key, self.world.user("d"), "d", policy=f"p-{key}")
        self.groups = [str(self.world.group("d")) for _ in range(2)]
        self.group_cpu: dict[str, int | None] = dict.fromkeys(self.groups)
        self.domain_cpu: int | None = None
        self.sessions: dict[str, ModelSession] = {}
        self.refusals = 0

    # The model

    def members(self, status: str, **where: str) -> dict[str, ModelSession]:
        return {
            sid: s
            for sid, s in self.sessions.items()
            if s.status == status and all(getattr(s, k) == v for k, v in where.items())
        }

    @staticmethod
    def used(sessions: dict[str, ModelSession]) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for s in sessions.values():
            for slot, value in s.slots.items():
                totals[slot] = totals.get(slot, Decimal(0)) + value
        return {slot: value for slot, value in totals.items() if value}

    def fits(self, session: ModelSession) -> bool:
        policy = self.policies[session.access_key]
        key_running = self.members("RUNNING", access_key=session.access_key)
        if policy.max_concurrent > 0 and len(key_running) + 1 > policy.max_concurrent:
            return False
        scopes = [
            (self.used(key_running), policy.limit),
            (self.used(self.members("RUNNING", group=session.group)), self.group_limit(session.group)),
            (self.used(self.members("RUNNING")), self.domain_limit),
        ]
        for used, limit in scopes:
            for slot in set(session.slots) | set(used):
                if used.get(slot, Decimal(0)) + session.slots.get(slot, Decimal(0)) > limit(slot):
                    return False
        return True

    def group_limit(self, group: str) -> Callable[[str], Decimal]:
        cpu = self.group_cpu[group]
        return lambda slot: Decimal(cpu) if slot == "cpu" and cpu is not None else INF

    def domain_limit(self, slot: str) -> Decimal:
        return Decimal(self.domain_cpu) if slot == "cpu" and self.domain_cpu is not None else INF

    def pick(self, status: str | None, index: int) -> str:
        # In creation order, with ids from a counter: the same draws pick the same session.
        sids = [sid for sid, s in self.sessions.items() if status is None or s.status == status]
        return sids[index % len(sids)]

    def has(self, status: str) -> bool:
        return any(s.status == status for s in self.sessions.values())

    # Rules

    @rule(key=st.sampled_from(KEYS), group=st.integers(0, 1), cpu=st.integers(0, 3), gpu=st.integers(0, 1))
    def enqueue(self, key: str, group: int, cpu: int, gpu: int) -> None:
        slots = {slot: Decimal(n) for slot, n in zip(SLOTS, (cpu, gpu), strict=True) if n}
        session = ModelSession(key, self.groups[group], slots)
        cap = self.policies[key].max_pending
        refused = bool(cap) and len(self.members("PENDING", access_key=key)) + 1 > cap  # type: ignore[operator]
        sid = uuid.UUID(int=len(self.sessions) + 1 + self.refusals)
        try:
            self.world.enqueue(key, uuid.UUID(session.group), {k: str(v) for k, v in slots.items()}, session_id=sid)
        except QuotaExceeded as refusal:
            assert refused and refusal.limit == "max_pending_session_count"
            self.refusals += 1
            return
        assert not refused
        self.sessions[str(sid)] = session

    @precondition(lambda self: self.has("PENDING"))
    @rule(index=st.integers(0, 99))
    def schedule(self, index: int) -> None:
        sid = self.pick("PENDING", index)
        session = self.sessions[sid]
        expected = self.fits(session)
        answer = self.world.schedule(uuid.UUID(sid))
        assert answer.admitted is expected, (answer.reasons, answer.checks)
        assert bool(answer.reasons) is not expected
        if expected:
            session.status = "RUNNING"
            assert all(check.passed for check in answer.checks)
            self.check_within_limits(session)

    def check_within_limits(self, session: ModelSession) -> None:
        """Right after an admission, every scope it joined is within its limits, in the
        ledger's recorded usage (limits lowered later may leave a scope above them)."""
        policy = self.policies[session.access_key]
        key_usage = self.world.sessions.usage(Scope.KEYPAIR, session.access_key)
        assert policy.max_concurrent == 0 or len(key_usage.running) <= policy.max_concurrent
        for usage, limit in (
            (key_usage, policy.limit),
            (self.world.sessions.usage(Scope.GROUP, session.group), self.group_limit(session.group)),
            (self.world.sessions.usage(Scope.DOMAIN, "d"), self.domain_limit),
        ):
            for slot in session.slots:
                assert usage.running_total.get(slot, Decimal(0)) <= limit(slot)

    @precondition(lambda self: self.has("PENDING"))
    @rule(index=st.integers(0, 99))
    def cancel(self, index: int) -> None:
        sid = self.pick("PENDING", index)
        assert self.world.cancel(uuid.UUID(sid))
        self.sessions[sid].status = "CANCELLED"

    @precondition(lambda self: bool(self.sessions))
    @rule(index=st.integers(0, 99))
    def terminate(self, index: int) -> None:
        sid = self.pick(None, index)  # ended ones too: a second release must be harmless
        ended = self.sessions[sid].status in ("CANCELLED", "TERMINATED")
        assert self.world.terminate(uuid.UUID(sid)) is not ended
        if not ended:
            self.sessions[sid].status = "TERMINATED"

    @rule(
        key=st.sampled_from(KEYS),
        max_concurrent=st.integers(0, 3),
        max_pending=st.none() | st.integers(0, 4),
        cpu=st.integers(0, 6),
        gpu=st.none() | st.integers(0, 2),
        unlimited=st.booleans(),
    )
    def edit_policy(
        self, key: str, max_concurrent: int, max_pending: int | None, cpu: int, gpu: int | None, unlimited: bool
    ) -> None:
        policy = ModelPolicy(max_concurrent, max_pending, cpu, gpu, unlimited)
        self.policies[key] = policy
        self.world.modify_policy(f"p-{key}", **policy.fields())

    @rule(group=st.integers(0, 1), cpu=st.none() | st.integers(0, 6))
    def edit_group(self, group: int, cpu: int | None) -> None:
        gid = self.groups[group]
        self.group_cpu[gid] = cpu
        self.world.modify_group(uuid.UUID(gid), total_resource_slots={} if cpu is None else {"cpu": str(cpu)})

    @rule(cpu=st.none() | st.integers(0, 8))
    def edit_domain(self, cpu: int | None) -> None:
        self.domain_cpu = cpu
        self.world.modify_domain("d", total_resource_slots={} if cpu is None else {"cpu": str(cpu)})

    # What always holds

    @invariant()
    def usage_is_the_models_set(self) -> None:
        scopes = [(Scope.KEYPAIR, key, {"access_key": key}) for key in KEYS]
        scopes += [(Scope.GROUP, gid, {"group": gid}) for gid in self.groups]
        scopes += [(Scope.DOMAIN, "d", {})]
        for scope, scope_id, where in scopes:
            usage = self.world.sessions.usage(scope, scope_id)
            running = self.members("RUNNING", **where)
            assert set(usage.running) == set(running)
            assert usage.running_total == self.used(running)
            # Pending sessions are held by their keypair and their group (a purge cancels them).
            pending = self.members("PENDING", **where) if scope in (Scope.KEYPAIR, Scope.GROUP) else {}
            assert set(usage.pending) == set(pending)
            assert usage.pending_total == self.used(pending)


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
