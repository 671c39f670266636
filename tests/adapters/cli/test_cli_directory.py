"""`ledger domain ...` and `ledger user ...` end to end on a SQLite file per test: create,
modify (one slot, the whole map, --unset, unchanged), delete and its refusals, show with
counts and time travel, list filters and paging, history; errors are one line naming the
option typed."""

from __future__ import annotations

from typing import Any

from adapters.cli import domain as domain_cli
from adapters.cli import user as user_cli
from adapters.cli.options import nullable_fields
from tests.adapters.cli.helpers import as_json, ledger, ok, refused, stdout_of, usage_error

ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"


def test_the_nullable_fields_spelled_out_match_the_modifiers() -> None:
    from domain.domains import DomainModifier
    from domain.user import UserModifier

    assert nullable_fields(DomainModifier) == domain_cli.NULLABLE_DOMAIN_FIELDS
    assert nullable_fields(UserModifier) == user_cli.NULLABLE_USER_FIELDS


def test_domain_create_modify_show_and_unchanged(db: str) -> None:
    ok(db, "policy", "create", "gold")
    created = as_json(
        db, "domain", "create", "lab", "--description", "GPU lab", "--total-resource-slots", "cpu=8,mem=16g",
        "--allowed-policies", "gold,default", "--default-policy", "gold",
    )  # fmt: skip
    assert created["total_resource_slots"] == {"cpu": "8", "mem": "17179869184"}
    assert created["allowed_keypair_resource_policies"] == ["default", "gold"]
    assert created["default_keypair_resource_policy"] == "gold" and created["is_active"] is True
    modified = as_json(db, "domain", "modify", "lab", "--slot", "cpu=16", "--inactive")
    assert modified["changed"] is True and modified["is_active"] is False
    assert modified["total_resource_slots"] == {"cpu": "16", "mem": "17179869184"}  # one slot, the others kept
    again = as_json(db, "domain", "modify", "lab", "--slot", "cpu=16")
    assert again["changed"] is False
    assert "domain 'lab' unchanged" in stdout_of(db, "domain", "modify", "lab", "--inactive")
    replaced = as_json(db, "domain", "modify", "lab", "--total-resource-slots", "cpu=2")
    assert replaced["total_resource_slots"] == {"cpu": "2"}
    unset = as_json(db, "domain", "modify", "lab", "--unset", "default-policy", "--unset", "description")
    assert unset["default_keypair_resource_policy"] is None and unset["description"] is None
    none_allowed = as_json(db, "domain", "modify", "lab", "--allowed-policies", "")
    assert none_allowed["allowed_keypair_resource_policies"] == []
    assert (
        as_json(db, "domain", "modify", "lab", "--unset", "allowed_policies")["allowed_keypair_resource_policies"]
        is None
    )
    shown = as_json(db, "domain", "show", "lab")
    assert (shown["users"], shown["groups"], shown["total_resource_slots"]) == (0, 0, {"cpu": "2"})
    table = stdout_of(db, "domain", "show", "lab")
    assert "cpu=2" in table and "users" in table


def test_domain_errors_are_one_line_naming_the_option(db: str) -> None:
    ok(db, "domain", "create", "lab")
    assert "--total-resource-slots" in usage_error(
        db, "domain", "modify", "lab", "--slot", "cpu=1", "--total-resource-slots", "cpu=2"
    )
    assert "--unset" in usage_error(db, "domain", "modify", "lab", "--unset", "is_active")
    assert "--unset" in usage_error(db, "domain", "modify", "lab", "--description", "x", "--unset", "description")
    assert refused(db, "domain", "create", "lab") == "error: domain_create_duplicate_name: domain 'lab' already exists"
    assert refused(db, "domain", "modify", "lab", "--slot", "cpu=lots").startswith(
        "error: ledger_invalid_parameters: --slot:"
    )
    assert "--default-policy: keypair resource policy 'nope' not found" in refused(
        db, "domain", "modify", "lab", "--default-policy", "nope"
    )
    assert "not found" in refused(db, "domain", "show", "nowhere")
    assert "not found" in refused(db, "domain", "modify", "nowhere", "--inactive")


def test_a_domain_with_users_is_not_deleted_and_its_history_stays(db: str) -> None:
    ok(db, "domain", "create", "lab")
    ok(db, "user", "create", ALICE, "--domain-name", "lab")
    line = refused(db, "domain", "delete", "lab")
    assert line == f"error: domain_delete_not_empty: domain 'lab' still has 1 user: {ALICE}"
    ok(db, "user", "delete", ALICE)
    assert as_json(db, "domain", "delete", "lab")["name"] == "lab"
    assert "not found" in refused(db, "domain", "show", "lab")
    events = [e["event"] for e in as_json(db, "domain", "history", "lab")]
    assert events == ["Created", "UserAdded", "UserRemoved", "Deleted"]
    assert as_json(db, "domain", "show", "lab", "--version", "1")["fields"]["is_active"] is True
    assert as_json(db, "domain", "show", "lab", "--version", "4")["deleted"] is True


def test_domain_list_filters_and_pages(db: str) -> None:
    for name in ("web-1", "web-2", "batch"):
        ok(db, "domain", "create", name)
    ok(db, "domain", "modify", "web-2", "--inactive")
    names = [d["name"] for d in as_json(db, "domain", "list")]
    assert names == ["batch", "default", "web-1", "web-2"]
    assert [d["name"] for d in as_json(db, "domain", "list", "--name-prefix", "web")] == ["web-1", "web-2"]
    assert [d["name"] for d in as_json(db, "domain", "list", "--status", "inactive")] == ["web-2"]
    page = as_json(db, "domain", "list", "--limit", "2")
    assert [d["name"] for d in page["items"]] == ["batch", "default"] and page["next_after"] == "default"
    rest = as_json(db, "domain", "list", "--limit", "2", "--after", "default")
    assert [d["name"] for d in rest["items"]] == ["web-1", "web-2"] and rest["next_after"] is None
    result = ledger(db, "domain", "list", "--limit", "1")
    assert result.exit_code == 0 and "more: --after batch" in result.stderr


def test_user_create_modify_show_delete(db: str) -> None:
    ok(db, "domain", "create", "lab")
    ok(db, "policy", "create", "gold")
    created = as_json(
        db, "user", "create", ALICE, "--domain-name", "lab", "--email", "alice@example.org",
        "--full-name", "Alice Liddell", "--default-policy", "gold",
    )  # fmt: skip
    assert created == {
        **created,
        "user_id": ALICE,
        "domain_name": "lab",
        "email": "alice@example.org",
        "full_name": "Alice Liddell",
        "default_keypair_resource_policy": "gold",
    }
    assert as_json(db, "user", "create", BOB)["domain_name"] == "default"  # the root --domain
    shown = as_json(db, "user", "show", ALICE.upper())  # any spelling of the UUID
    assert shown["user_id"] == ALICE and shown["keypairs"] == 0
    modified = as_json(db, "user", "modify", ALICE, "--full-name", "Alice", "--unset", "default_policy")
    assert modified["changed"] is True and modified["full_name"] == "Alice"
    assert modified["default_keypair_resource_policy"] is None and modified["email"] == "alice@example.org"
    assert as_json(db, "user", "modify", ALICE, "--full-name", "Alice")["changed"] is False
    ok(db, "keypair", "create", "AKALICE", "--owner", ALICE, "--domain-name", "lab", "--resource-policy", "gold")
    assert as_json(db, "user", "show", ALICE)["keypairs"] == 1
    assert "AKALICE" in refused(db, "user", "delete", ALICE)  # still owns a keypair
    ok(db, "keypair", "delete", "AKALICE")
    assert as_json(db, "user", "delete", ALICE)["user_id"] == ALICE
    assert "not found" in refused(db, "user", "show", ALICE)
    events = [e["event"] for e in as_json(db, "user", "history", ALICE)]
    assert events == ["Created", "Modified", "KeyPairAdded", "KeyPairRemoved", "Deleted"]
    first = as_json(db, "user", "show", ALICE, "--version", "1")
    assert first["fields"]["full_name"] == "Alice Liddell"
    diff = as_json(db, "user", "diff", ALICE, "--from", "1", "--to", "2")
    assert diff["full_name"] == {"old": "Alice Liddell", "new": "Alice"}


def test_user_errors_are_one_line_naming_the_option(db: str) -> None:
    ok(db, "domain", "create", "lab")
    assert refused(db, "user", "create", "not-a-uuid").startswith("error: ledger_invalid_parameters: USER_ID:")
    assert "--email:" in refused(db, "user", "create", ALICE, "--email", "no-at-sign")
    assert "--domain-name: domain 'nowhere' not found" in refused(
        db, "user", "create", ALICE, "--domain-name", "nowhere"
    )
    ok(db, "user", "create", ALICE, "--domain-name", "lab")
    assert "already exists" in refused(db, "user", "create", ALICE, "--domain-name", "lab")
    assert "--unset" in usage_error(db, "user", "modify", ALICE, "--unset", "domain_name")
    assert "--full-name:" in refused(db, "user", "modify", ALICE, "--full-name", "a\nb")
    assert "not found" in refused(db, "user", "modify", BOB, "--full-name", "x")


def test_user_list_by_domain_and_paged(db: str) -> None:
    ok(db, "domain", "create", "lab")
    users = sorted(f"{c * 8}-0000-4000-8000-00000000000{c}" for c in "abcd")
    for n, user in enumerate(users):
        ok(db, "user", "create", user, "--domain-name", "lab" if n % 2 else "default")
    assert [u["user_id"] for u in as_json(db, "user", "list")] == users
    assert [u["user_id"] for u in as_json(db, "user", "list", "--domain", "lab")] == users[1::2]
    seen: list[Any] = []
    after: list[str] = []
    while True:
        page = as_json(db, "user", "list", "--limit", "3", *after)
        seen += [u["user_id"] for u in page["items"]]
        if page["next_after"] is None:
            break
        after = ["--after", page["next_after"]]
    assert seen == users
    assert "after" in refused(db, "user", "list", "--after", "nope")


def test_user_list_keeps_each_user_id_whole_in_80_columns(db: str) -> None:
    """The id is what `user show` and `keypair create --owner` take: folded over two lines,
    as it was with an email and a name beside it, it could not be copied (keypair list
    keeps its user ids whole)."""
    ok(db, "user", "create", ALICE, "--domain-name", "default", "--email", "alice@example.org", "--full-name", "Alice")
    table = ledger(db, "user", "list", columns=80).stdout
    assert ALICE in table and max(map(len, table.splitlines())) <= 80


def test_a_policy_outside_the_domains_allowed_list_is_named_by_the_option_typed(db: str) -> None:
    """An admin's --default-policy or --resource-policy outside the domain's allowed list was
    named by the domain's field (`default_keypair_resource_policy: ...`), not the option."""
    ok(db, "policy", "create", "gold")
    ok(db, "policy", "create", "plat")
    ok(db, "domain", "create", "lab", "--allowed-policies", "gold")
    admin = ("--role", "admin", "--domain", "lab")
    user = "55555555-0000-4000-8000-000000000001"
    said = "keypair resource policy 'plat' is not allowed in domain 'lab' (allowed: 'gold')"
    line = refused(db, *admin, "user", "create", user, "--domain-name", "lab", "--default-policy", "plat")
    assert line == f"error: domain_assign_policy_policy_not_allowed: --default-policy: {said}"
    ok(db, "user", "create", user, "--domain-name", "lab")
    ok(db, "keypair", "create", "AKL", "--owner", user, "--domain-name", "lab")
    line = refused(db, *admin, "keypair", "modify", "AKL", "--resource-policy", "plat")
    assert line == f"error: domain_assign_policy_policy_not_allowed: --resource-policy: {said}"
