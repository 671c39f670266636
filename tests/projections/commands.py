"""Histories for projection tests: every kind of entity, generated or in bulk."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from adapters.bootstrap import Ledger
from domain.actions import ActionTriggerMeta
from domain.errors import LedgerError
from domain.group import CreateGroupAction, DeleteGroupAction, ModifyGroupAction, PurgeGroupAction
from domain.keypair import CreateKeyPairAction, DeleteKeyPairAction, ModifyKeyPairAction
from domain.keypair_resource_policy import (
    CreateKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyAction,
    KeyPairResourcePolicyCreator,
    ModifyKeyPairResourcePolicyAction,
)
from domain.user import EraseUserAction, ModifyUserAction
from domain.workload import (
    CreateVFolderAction,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
)
from tests.domain.fakes import ensure_user

T0 = datetime(2024, 10, 1, 22, 0, tzinfo=UTC)
POLICIES = ["p0", "p1"]
GROUPS = [uuid.UUID(int=0x6000 + i) for i in range(3)]
KERNELS = [uuid.UUID(int=0x7000 + i) for i in range(5)]
USERS = [uuid.UUID(int=0x8000 + i) for i in range(4)]
KEYS = ["AKTESTKEY0", "AKTESTKEY1"]

Command = tuple[Any, ...]

_workload = st.one_of(
    st.tuples(st.just("start"), st.integers(0, len(GROUPS) - 1), st.integers(0, len(KERNELS) - 1), st.integers(0, 90)),
    st.tuples(st.just("stats"), st.integers(0, len(KERNELS) - 1), st.integers(0, 100)),
    st.tuples(st.just("end"), st.integers(0, len(KERNELS) - 1), st.integers(1, 60 * 50)),
    # A kernel's whole life at once: started, reported on, ended (over midnight, often).
    st.tuples(
        st.just("life"), st.integers(0, len(GROUPS) - 1), st.integers(0, len(KERNELS) - 1), st.integers(0, 60 * 30)
    ),
)
commands = st.one_of(
    st.tuples(st.just("policy"), st.sampled_from(POLICIES), st.integers(0, 9)),
    st.tuples(st.just("policy_delete"), st.sampled_from(POLICIES)),
    st.tuples(st.just("keypair"), st.sampled_from(KEYS), st.sampled_from([*POLICIES, "default"])),
    st.tuples(st.just("keypair_delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("group"), st.integers(0, len(GROUPS) - 1)),
    st.tuples(
        st.just("members"),
        st.integers(0, len(GROUPS) - 1),
        st.sampled_from(["add", "remove", "replace"]),
        st.lists(st.sampled_from(USERS), max_size=3),
    ),
    st.tuples(st.sampled_from(["group_delete", "group_purge"]), st.integers(0, len(GROUPS) - 1)),
    *[_workload] * 4,  # most of a real history is workload
    st.tuples(st.just("vfolder"), st.integers(0, len(GROUPS) - 1), st.integers(0, 3)),
)


# Commands whose actions hold personal values (issue 14): a group's description, a kernel's
# user id, access key and session name. Each value names its group (`-g<i>-`), so a test
# knows whose erasure must hide it.
personal_commands = st.one_of(
    st.tuples(st.just("describe"), st.integers(0, len(GROUPS) - 1), st.integers(0, 99)),
    st.tuples(
        st.just("named_start"),
        st.integers(0, len(GROUPS) - 1),
        st.integers(0, len(KERNELS) - 1),
        st.integers(0, 90),
        st.integers(0, 99),
    ),
    # A user's email and full name (their own subject), and the user's erasure.
    st.tuples(st.just("user_named"), st.integers(0, len(USERS) - 1), st.integers(0, 99)),
    st.tuples(st.just("user_erase"), st.integers(0, len(USERS) - 1)),
)
AUDITOR = ActionTriggerMeta(
    user_id=uuid.UUID(int=1), access_key="AKAUDITOR", role="superadmin", domain_name="default", request_id="req-rm"
)


def description(group: int, n: int) -> str:
    return f"description-g{group}-{n} of a team"


def session_name(group: int, n: int) -> str:
    return f"session-g{group}-{n}"


def kernel_access_key(group: int, n: int) -> str:
    return f"AKKERNEL-g{group}-{n}"


def email(user: int, n: int) -> str:
    return f"person-u{user}-{n}@example.org"


def full_name(user: int, n: int) -> str:
    return f"Person-u{user}-{n} Example"


def kernel_user(n: int) -> uuid.UUID:
    """A kernel's user id: not a ledger user, so its only copies are the kernel's."""
    return uuid.UUID(int=0xA000 + n)


def run(ledger: Ledger, command: Command, audited: bool = False) -> None:
    """Runs one command; refusals (a duplicate, an unknown entity) are part of a history.
    `audited`: through the ledger's processors (validated, and recorded in the audit trail)."""
    if command[0] == "life":
        _, group, kernel, minutes = command
        for part in (("start", group, kernel, 0), ("stats", kernel, minutes), ("end", kernel, minutes + 1)):
            run(ledger, part, audited)
        return
    with suppress(LedgerError):
        asyncio.run(_action(ledger, command, audited))


class _Processed:
    """One service's methods called through its processors, as the auditor (superadmin)."""

    def __init__(self, processors: Any) -> None:
        self._processors = processors

    def __getattr__(self, method: str) -> Any:
        processor = getattr(self._processors, method)

        async def call(action: Any) -> Any:
            return await processor.wait_for_complete(action, AUDITOR)

        return call


class _Audited:
    """The ledger's services, each call run through its processor (so audited)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getattr__(self, service: str) -> Any:
        return _Processed(getattr(self._ledger.processors, service))


def _services(ledger: Ledger, audited: bool) -> Any:
    return _Audited(ledger) if audited else ledger.services


async def _action(ledger: Ledger, command: Command, audited: bool = False) -> Any:
    s = _services(ledger, audited)
    kind, *args = command
    if kind == "policy":
        name, sessions = args
        try:
            creator = KeyPairResourcePolicyCreator(name=name, max_concurrent_sessions=sessions)
            return await s.keypair_resource_policy.create_keypair_resource_policy(
                CreateKeyPairResourcePolicyAction(creator=creator)
            )
        except LedgerError:
            modifier = {"max_concurrent_sessions": sessions}
            action = ModifyKeyPairResourcePolicyAction(name=name, modifier=modifier)
            return await s.keypair_resource_policy.modify_keypair_resource_policy(action)
    if kind == "policy_delete":
        return await s.keypair_resource_policy.delete_keypair_resource_policy(
            DeleteKeyPairResourcePolicyAction(name=args[0])
        )
    if kind == "keypair":
        key, policy = args
        ensure_user(ledger.app.store, USERS[0], "default")  # a keypair's owner exists
        try:
            create = CreateKeyPairAction(
                access_key=key, user_id=USERS[0], domain_name="default", resource_policy=policy
            )
            return await s.keypair.create_keypair(create)
        except LedgerError:
            return await s.keypair.modify_keypair(ModifyKeyPairAction(access_key=key, resource_policy=policy))
    if kind == "user_named":
        user, n = args
        ensure_user(ledger.app.store, USERS[user], "default")
        modifier = {"email": email(user, n), "full_name": full_name(user, n)}
        return await s.user.modify_user(ModifyUserAction(user_id=USERS[user], modifier=modifier))
    if kind == "user_erase":
        return await s.user.erase_user(EraseUserAction(user_id=USERS[args[0]], reason="asked to be forgotten"))
    if kind == "keypair_delete":
        return await s.keypair.delete_keypair(DeleteKeyPairAction(access_key=args[0]))
    return await _group_or_workload(ledger, kind, args, audited)


async def _group_or_workload(ledger: Ledger, kind: str, args: list[Any], audited: bool = False) -> Any:
    s = _services(ledger, audited)
    if kind == "describe":
        group, n = args
        modifier = {"description": description(group, n)}
        return await s.group.modify_group(ModifyGroupAction(group_id=GROUPS[group], modifier=modifier))
    if kind == "named_start":
        group, kernel, minutes, n = args
        action = StartKernelAction(
            kernel_id=KERNELS[kernel],
            session_id=KERNELS[kernel],
            session_name=session_name(group, n),
            group_id=GROUPS[group],
            domain_name="default",
            user_id=kernel_user(n),
            access_key=kernel_access_key(group, n),
            occupied_slots={"cpu": "1"},
            started_at=T0 + timedelta(minutes=minutes),
        )
        return await s.workload.start_kernel(action)
    if kind == "group":
        group = GROUPS[args[0]]
        action = CreateGroupAction(input={"name": f"g{args[0]}", "domain_name": "default"}, group_id=group)
        return await s.group.create_group(action)
    if kind == "members":
        group, mode, users = GROUPS[args[0]], args[1], args[2]
        for user in users if mode != "remove" else []:
            ensure_user(ledger.app.store, user, "default")  # members are existing users
        return await s.group.modify_group(ModifyGroupAction(group_id=group, user_update_mode=mode, user_uuids=users))
    if kind == "group_delete":
        return await s.group.delete_group(DeleteGroupAction(group_id=GROUPS[args[0]]))
    if kind == "group_purge":
        return await s.group.purge_group(PurgeGroupAction(group_id=GROUPS[args[0]]))
    if kind == "start":
        group, kernel, minutes = GROUPS[args[0]], KERNELS[args[1]], args[2]
        return await s.workload.start_kernel(start_action(group, kernel, T0 + timedelta(minutes=minutes)))
    if kind == "stats":
        action = ReportKernelStatsAction(kernel_id=KERNELS[args[0]], reported_at=T0, mem_used=args[1])
        return await s.workload.report_kernel_stats(action)
    if kind == "end":
        ended = T0 + timedelta(minutes=args[1])
        return await s.workload.terminate_kernel(TerminateKernelAction(kernel_id=KERNELS[args[0]], terminated_at=ended))
    group, vfolder = GROUPS[args[0]], uuid.UUID(int=0x9000 + args[1])
    return await s.workload.create_vfolder(
        CreateVFolderAction(vfolder_id=vfolder, name=f"v{args[1]}", host="local", group_id=group)
    )


def start_action(group: uuid.UUID, kernel: uuid.UUID, started: datetime) -> StartKernelAction:
    return StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="s",
        group_id=group,
        domain_name="default",
        user_id=USERS[0],
        access_key="AKTEST",
        occupied_slots={"cpu": "2", "mem": "4g"},
        started_at=started,
    )


def write_workload(ledger: Ledger, kernels: int, per_batch: int = 100) -> int:
    """A bulk history: a few policies and groups, then `kernels` kernels started, reported
    on and ended (five events each), imported in batches. Returns the head position."""
    for i in range(3):
        run(ledger, ("policy", f"bulk-{i}", i))
        run(ledger, ("policy", f"bulk-{i}", i + 1))
    groups = [uuid.uuid4() for _ in range(3)]
    for i, group in enumerate(groups):
        asyncio.run(
            ledger.services.group.create_group(
                CreateGroupAction(input={"name": f"bulk-{i}", "domain_name": "default"}, group_id=group)
            )
        )
    for first in range(0, kernels, per_batch):
        ids = [uuid.uuid4() for _ in range(first, min(first + per_batch, kernels))]
        began = [T0 + timedelta(minutes=13 * (first + n)) for n in range(len(ids))]
        actions: list[Any] = [start_action(groups[n % 3], k, began[n]) for n, k in enumerate(ids)]
        actions += [ReportKernelStatsAction(kernel_id=k, reported_at=began[n], mem_used=n) for n, k in enumerate(ids)]
        actions += [
            TerminateKernelAction(kernel_id=k, terminated_at=began[n] + timedelta(hours=5)) for n, k in enumerate(ids)
        ]
        asyncio.run(ledger.services.workload.record_batch(actions))
    return ledger.app.recorder.max_notification_id() or 0
