"""The domains and users read models on SQLite and PostgreSQL: each create, modify, delete
and re-create lands in its row; the member counts follow the member events on the
domain's and the user's stream; a rebuild from the first event gives the same rows."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from adapters.bootstrap import Ledger
from tests.adapters.directory import (
    create_domain,
    create_keypair,
    create_user,
    delete_domain,
    delete_user,
    modify_domain,
    modify_user,
)
from tests.adapters.groups import create_group, purge_group
from tests.projections.readmodels import clean_rebuild, dump
from tests.projections.stalls import create_policy

ALICE = uuid.UUID("a11ce000-0000-4000-8000-000000000001")
BOB = uuid.UUID("b0b00000-0000-4000-8000-000000000002")


def row(ledger: Ledger, table: sa.Table, key: str) -> Any:
    ledger.runner.catch_up()
    with ledger.read_models.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.key == key)).one()


def test_a_domain_row_follows_create_modify_delete_and_recreate(ledger: Ledger) -> None:
    create_policy(ledger, "gold")
    rows = ledger.projections.domains.rows
    create_domain(ledger, "lab", description="GPU lab", total_resource_slots={"cpu": "8"})
    created = row(ledger, rows, "lab")
    assert created.fields["description"] == "GPU lab"
    assert created.fields["total_resource_slots"] == {"cpu": "8"}
    assert created.fields["is_active"] is True and created.is_deleted is False
    assert (created.user_count, created.group_count) == (0, 0)

    modify_domain(
        ledger,
        "lab",
        is_active=False,
        total_resource_slots_patch={"mem": "16g"},
        default_keypair_resource_policy="gold",
        allowed_keypair_resource_policies=["gold"],
        allowed_vfolder_hosts={"nfs": ["mount-in-session"]},
    )
    modified = row(ledger, rows, "lab")
    assert modified.fields["is_active"] is False
    assert modified.fields["total_resource_slots"] == {"cpu": "8", "mem": "17179869184"}
    assert modified.fields["default_keypair_resource_policy"] == "gold"
    assert modified.fields["allowed_keypair_resource_policies"] == ["gold"]
    assert modified.fields["allowed_vfolder_hosts"] == {"nfs": ["mount-in-session"]}
    assert modified.modified_at > created.modified_at and modified.created_at == created.created_at

    delete_domain(ledger, "lab")
    assert row(ledger, rows, "lab").is_deleted is True
    assert ledger.queries.domain("lab") is None

    create_domain(ledger, "lab")  # the stream continues; the row is live again, with the new fields
    again = row(ledger, rows, "lab")
    assert again.is_deleted is False and again.fields["description"] is None
    assert again.created_at > created.created_at


def test_a_user_row_follows_create_modify_delete_and_recreate(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_policy(ledger, "gold")
    rows = ledger.projections.users.rows
    create_user(ledger, ALICE, "lab", email="alice@example.org", full_name="Alice Liddell")
    created = row(ledger, rows, str(ALICE))
    assert created.fields == {
        "domain_name": "lab",
        "email": "alice@example.org",
        "full_name": "Alice Liddell",
        "default_keypair_resource_policy": None,
    }
    modify_user(ledger, ALICE, full_name=None, default_keypair_resource_policy="gold")
    modified = row(ledger, rows, str(ALICE))
    assert modified.fields["full_name"] is None and modified.fields["default_keypair_resource_policy"] == "gold"
    assert modified.fields["email"] == "alice@example.org"
    delete_user(ledger, ALICE)
    assert row(ledger, rows, str(ALICE)).is_deleted is True
    create_user(ledger, ALICE, "default")
    assert row(ledger, rows, str(ALICE)).fields["domain_name"] == "default"


def test_counts_follow_users_groups_and_keypairs(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_user(ledger, ALICE, "lab")
    create_user(ledger, BOB, "lab")
    group = create_group(ledger, "team", domain_name="lab")
    create_keypair(ledger, "AKALICE1", ALICE, "lab", "default")
    create_keypair(ledger, "AKALICE2", ALICE, "lab", "default")
    counts = ledger.queries.directory.domain_counts("lab")
    assert counts is not None and (counts.users, counts.groups) == (2, 1)
    assert ledger.queries.directory.user_keypair_count(ALICE) == 2
    assert ledger.queries.directory.user_keypair_count(BOB) == 0
    delete_user(ledger, BOB)
    purge_group(ledger, group.id)
    counts = ledger.queries.directory.domain_counts("lab")
    assert counts is not None and (counts.users, counts.groups) == (1, 0)
    assert ledger.queries.directory.user_keypair_count(BOB) is None  # deleted: not shown


def test_a_rebuild_gives_the_same_domain_and_user_rows(ledger: Ledger) -> None:
    create_policy(ledger, "gold")
    create_domain(ledger, "lab", total_resource_slots={"cpu": "4"})
    create_domain(ledger, "gone")
    create_user(ledger, ALICE, "lab", email="alice@example.org")
    create_user(ledger, BOB, "gone")
    modify_domain(ledger, "lab", description="renamed nothing", default_keypair_resource_policy="gold")
    modify_user(ledger, ALICE, full_name="Alice")
    delete_user(ledger, BOB)
    delete_domain(ledger, "gone")
    create_group(ledger, "team", domain_name="lab")
    ledger.runner.catch_up()
    projections = [ledger.projections.domains, ledger.projections.users]
    live = dump(ledger.read_models, projections)
    rebuilt = clean_rebuild(ledger)
    assert {name: rebuilt[name] for name in live} == live
    assert len(live["domains_v1_rows"]) == 3 and len(live["users_v2_rows"]) == 2  # 'default' included
