"""`ledger user erase`: a superadmin erases a user's personal values; the user, its history
and its keypair stay, its email and name read [erased]; refusals are one line."""

from __future__ import annotations

from tests.adapters.cli.helpers import as_json, ok, refused, usage_error

ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"
ERASED = "[erased]"


def test_user_erase(db: str) -> None:
    ok(db, "policy", "create", "gold")
    ok(db, "user", "create", ALICE, "--email", "alice@example.org", "--full-name", "Alice Liddell")
    ok(db, "keypair", "create", "AKALICE", "--owner", ALICE, "--domain-name", "default", "--resource-policy", "gold")
    assert "permission" in refused(db, "--role", "admin", "user", "erase", ALICE, "--reason", "asked")
    erased = as_json(db, "user", "erase", ALICE.upper(), "--reason", "asked to be forgotten")
    assert erased["user_id"] == ALICE and erased["clear_values"] == 0
    assert erased["email"] == ERASED and erased["full_name"] == ERASED
    human = ok(db, "user", "erase", ALICE, "--reason", "once more").stdout
    assert human == f"erased user {ALICE}\n"
    history = as_json(db, "user", "history", ALICE)
    assert [e["event"] for e in history] == ["Created", "KeyPairAdded", "Erased", "Erased"]
    assert history[2]["details"]["reason"] == "asked to be forgotten"
    assert "alice@example.org" not in str(history) and "Liddell" not in str(history)
    first = as_json(db, "user", "show", ALICE, "--version", "1")
    assert first["fields"]["email"] == ERASED
    assert as_json(db, "keypair", "show", "AKALICE")["user_id"] == ALICE
    audit = as_json(db, "audit", "--oldest-first", "--entity-id", ALICE, "--operation", "erase")
    assert [e["spec"]["reason"] for e in audit if e["status"] == "success"] == [
        "asked to be forgotten",
        "once more",
    ]


def test_the_history_table_still_shows_which_fields_an_erased_modify_changed(db: str) -> None:
    ok(db, "user", "create", ALICE, "--email", "alice@example.org")
    ok(db, "user", "modify", ALICE, "--email", "alice@example.net", "--full-name", "Alice Liddell")
    ok(db, "user", "erase", ALICE, "--reason", "asked")
    table = ok(db, "user", "history", ALICE).stdout
    # Both sides read [erased]: the Modified row was left empty, as if it had changed nothing.
    assert "email: [erased] -> [erased]" in table and "full_name: None -> [erased]" not in table
    assert "full_name: null -> [erased]" in table
    assert "default_keypair_resource_policy" not in table  # a creation's unset field: null -> null


def test_user_erase_errors_are_one_line(db: str) -> None:
    assert "--reason" in usage_error(db, "user", "erase", ALICE)
    assert refused(db, "user", "erase", "not-a-uuid", "--reason", "r").startswith(
        "error: ledger_invalid_parameters: USER_ID:"
    )
    assert "not found" in refused(db, "user", "erase", BOB, "--reason", "r")
    ok(db, "user", "create", ALICE)
    assert "--reason:" in refused(db, "user", "erase", ALICE, "--reason", "a\nb")


def test_a_refused_create_s_email_is_erased_by_erasing_its_id(db: str) -> None:
    """The auditor's case: a create refused (no such domain) kept its email sealed under the
    id's key, which no erasure could reach, so `ledger audit` showed it for good."""
    assert "domain_not_found" in refused(db, "user", "create", BOB, "--domain-name", "nodomain", "--email", "x@y.org")
    human = ok(db, "user", "erase", BOB, "--reason", "asked").stdout
    assert human == f"erased user {BOB}: no such user, the input of refused commands naming it\n"
    audit = as_json(db, "audit", "--entity-id", BOB, "--operation", "create")
    assert audit[0]["spec"]["creator"]["email"] == ERASED and "x@y.org" not in str(audit)
    assert "chain intact" in ok(db, "verify").stdout
    assert "user_not_found" in refused(db, "user", "erase", BOB, "--reason", "again")  # nothing left to erase
    created = as_json(db, "user", "create", BOB, "--email", "bob@example.org")  # the id stays usable
    assert created["email"] == "bob@example.org"
