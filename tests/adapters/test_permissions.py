"""The permission table walked whole: every action under every role, allowed or refused
as the table says, and every refusal an `InsufficientPermission` that changes nothing.

The expectations are written out here, not read from `domain.actions.permissions`, so a
change to the table that nobody meant shows up as a failing row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.actions import ActionTriggerMeta
from domain.actions.permissions import PERMISSIONS
from domain.errors import InsufficientPermission, LedgerError
from tests.actions import DOMAIN, SAMPLES, build_world, meta, processor_methods, run

S, A, V = "superadmin", "admin in its domain", "service"
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("keypair_resource_policy", "create_keypair_resource_policy"): {S},
    ("keypair_resource_policy", "modify_keypair_resource_policy"): {S},
    ("keypair_resource_policy", "delete_keypair_resource_policy"): {S},
    ("keypair", "create_keypair"): {S, A},
    ("keypair", "modify_keypair"): {S, A},
    ("keypair", "delete_keypair"): {S, A},
    ("group", "create_group"): {S, A},
    ("group", "modify_group"): {S, A},
    ("group", "delete_group"): {S, A},
    ("group", "purge_group"): {S, A},
    # Every admin runs a report; it covers their own domain's groups only (the group service).
    ("group", "usage_per_month"): {S, A, "admin of another domain"},
    ("group", "usage_per_period"): {S, A, "admin of another domain"},
    ("workload", "create_vfolder"): {S, V},
    ("workload", "start_kernel"): {S, V},
    ("workload", "report_kernel_stats"): {S, V},
    ("workload", "terminate_kernel"): {S, V},
    ("workload", "create_endpoint"): {S, V},
    ("workload", "destroy_endpoint"): {S, V},
    ("workload", "record_workload_batch"): {S, V},
    ("projection", "skip_projection_event"): {S},
    ("domain", "create_domain"): {S},
    ("domain", "modify_domain"): {S},
    ("domain", "delete_domain"): {S},
    ("user", "create_user"): {S, A},
    ("user", "modify_user"): {S, A},
    ("user", "delete_user"): {S, A},
    ("user", "erase_user"): {S},  # destroys a user's personal values for good
    ("session", "enqueue_session"): {S, V},
    ("session", "schedule_session"): {S, V},
    ("session", "cancel_session"): {S, A, V},  # an admin may end a session of their domain
    ("session", "terminate_session"): {S, A, V},
    ("session", "report_session_activity"): {S, V},
    ("token", "issue_token"): {S},  # a token makes its holder whoever it names
    ("token", "revoke_token"): {S},
}
ACTORS: dict[str, ActionTriggerMeta] = {
    S: meta("superadmin", "elsewhere"),  # a superadmin acts in every domain
    A: meta("admin", DOMAIN),
    "admin of another domain": meta("admin", "beta"),
    "user": meta("user", DOMAIN),
    V: meta("service", DOMAIN),
}


@pytest.fixture
def fresh() -> Iterator[Ledger]:
    with open_ledger("sqlite:///:memory:") as ledger:
        yield ledger


def test_every_processor_has_a_sample_a_row_and_an_expectation(fresh: Ledger) -> None:
    methods = processor_methods(fresh)
    assert methods == set(SAMPLES) == set(EXPECTED)
    world = build_world(fresh)
    table_rows = {(a.entity_type(), a.operation_type()) for a in (make(world) for make in SAMPLES.values())}
    assert table_rows == set(PERMISSIONS)


@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize("method", list(EXPECTED))
def test_the_table_allows_and_refuses_as_written(method: tuple[str, str], actor: str) -> None:
    with open_ledger("sqlite:///:memory:") as ledger:
        world = build_world(ledger)
        action = SAMPLES[method](world)
        head = ledger.app.recorder.max_notification_id()
        try:
            run(ledger, *method, action, ACTORS[actor])
        except InsufficientPermission as refused:
            assert actor not in EXPECTED[method], f"{actor} was refused {method}: {refused}"
            assert refused.operation == action.operation_type()
            assert ACTORS[actor].role_name in refused.actor
            assert str(action.entity_id()) in refused.entity
            # Nothing but the audit record of the refusal was stored.
            new = ledger.app.recorder.select_notifications(start=(head or 0) + 1, limit=10)
            assert [n.topic for n in new] == ["domain.audit.record:AuditRecord.Recorded"]
            return
        except LedgerError:
            pass  # allowed, then refused by the service itself (a purge with a running kernel)
        assert actor in EXPECTED[method], f"{actor} was allowed {method}"


def test_an_admin_cannot_move_a_group_out_of_their_domain(fresh: Ledger) -> None:
    from domain.domains import CreateDomainAction
    from domain.group import ModifyGroupAction

    world = build_world(fresh)
    run(fresh, "domain", "create_domain", CreateDomainAction(creator={"name": "beta"}))
    # The spare group: the world group's sessions and kernel would refuse any move.
    move = ModifyGroupAction(group_id=world.spare_group, modifier={"domain_name": "beta"})
    with pytest.raises(InsufficientPermission, match=r"into another domain \(beta\)"):
        run(fresh, "group", "modify_group", move, ACTORS[A])
    assert fresh.queries.group(world.spare_group).domain_name == DOMAIN  # type: ignore[union-attr]
    run(fresh, "group", "modify_group", move, ACTORS[S])
    assert fresh.queries.group(world.spare_group).domain_name == "beta"  # type: ignore[union-attr]


def test_an_admin_of_another_domain_gets_no_hint_that_a_missing_group_exists(fresh: Ledger) -> None:
    """An unknown target is not refused by the check: the service answers "not found"."""
    import uuid

    from domain.errors import GroupNotFound
    from domain.group import DeleteGroupAction

    with pytest.raises(GroupNotFound):
        run(fresh, "group", "delete_group", DeleteGroupAction(group_id=uuid.uuid4()), ACTORS["admin of another domain"])
