"""`ledger token ...` end to end: issue prints the token once (the holder's options after
`issue`, the actor's before `token`), list shows neither tokens nor hashes, revoke ends a
token; refusals are one line naming the option."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from adapters.bootstrap import open_ledger
from domain.token import authenticate, token_hash
from tests.adapters.cli.helpers import as_json, ledger, ok, refused, stdout_of

ALICE = "a11ce000-0000-4000-8000-000000000001"


def with_alice(db: str) -> None:
    ok(db, "user", "create", ALICE, "--domain-name", "default")


def test_issue_prints_the_token_once_and_the_ledger_keeps_only_its_hash(db: str, tmp_path: Path) -> None:
    with_alice(db)
    issued = as_json(db, "token", "issue", "--user-id", ALICE, "--role", "admin", "--domain", "default",
                     "--expires-in", "30d", "--name", "ci")  # fmt: skip
    token = issued["token"]
    assert token.startswith("plp_") and issued["role"] == "admin" and issued["name"] == "ci"
    assert issued["expires_at"] is not None and issued["revoked_at"] is None
    human = stdout_of(db, "token", "issue", "--user-id", ALICE, "--role", "user", "--domain", "default")
    second = human.splitlines()[-1]
    assert second.startswith("plp_") and second != token
    raw = (tmp_path / "l.db").read_bytes()
    assert token.encode() not in raw and second.encode() not in raw
    assert token_hash(token).encode() in raw  # what is kept instead
    with open_ledger(db) as ledger:
        actor = authenticate(ledger.app.store, token, issued_at(issued))
    assert str(actor.user_id) == ALICE and actor.role == "admin" and actor.domain_name == "default"

    listed = as_json(db, "token", "list")
    assert listed[0]["token_id"] == issued["token_id"] and len(listed) == 2
    listing = stdout_of(db, "token", "list") + str(listed)
    assert token not in listing and token_hash(token) not in listing
    assert "token" not in listed[0] and issued["token_id"] in listing


def issued_at(issued: dict[str, str]) -> datetime:
    return datetime.fromisoformat(issued["issued_at"])


def test_the_actor_options_and_the_holder_options_are_not_mixed(db: str) -> None:
    with_alice(db)
    issued = as_json(db, "--role", "superadmin", "token", "issue", "--role", "user", "--user-id", ALICE,
                     "--domain", "default")  # fmt: skip
    assert issued["role"] == "user" and issued["user_id"] == ALICE
    line = refused(db, "--role", "admin", "token", "issue", "--role", "user", "--user-id", ALICE, "--domain", "default")
    assert "permission_forbidden" in line and "admin" in line
    audit = as_json(db, "audit", "--entity-type", "token")
    assert {row["role"] for row in audit} == {"superadmin", "admin"}
    assert issued["token"] not in str(audit)


def test_revoke_ends_a_token_and_list_hides_it_unless_all(db: str) -> None:
    with_alice(db)
    issued = as_json(db, "token", "issue", "--user-id", ALICE, "--role", "user", "--domain", "default")
    assert "revoked token" in stdout_of(db, "token", "revoke", issued["token_id"])
    assert as_json(db, "token", "list") == []
    (listed,) = as_json(db, "token", "list", "--all")
    assert listed["revoked_at"] is not None
    assert "token_revoke_already_revoked" in refused(db, "token", "revoke", issued["token_id"])
    assert "token_not_found" in refused(db, "token", "revoke", "00000000-0000-0000-0000-000000000404")


def test_bad_holder_options_are_refused_naming_the_option(db: str) -> None:
    with_alice(db)
    line = refused(db, "token", "issue", "--user-id", ALICE, "--role", "user", "--domain", "default",
                   "--expires-in", "forever")  # fmt: skip
    assert "--expires-in" in line
    line = refused(db, "token", "issue", "--user-id", "00000000-0000-0000-0000-000000000404", "--role", "user",
                   "--domain", "default")  # fmt: skip
    assert "--user-id" in line and "not found" in line


def test_token_list_in_40_columns_shows_each_token_whole(db: str) -> None:
    """The id, kept whole, took the 40 columns: rich cut it and dropped every other column."""
    with_alice(db)
    issued = as_json(db, "token", "issue", "--user-id", ALICE, "--role", "admin", "--domain", "default",
                     "--name", "ci")  # fmt: skip
    listed = ledger(db, "token", "list", columns=40).stdout
    assert f"id: {issued['token_id']}\n" in listed and "\nrole: admin\n" in listed and "\nname: ci\n" in listed
    assert ALICE in listed.replace("\n", "")
    assert issued["token_id"] in ledger(db, "token", "list", columns=80).stdout  # id whole there too


def test_token_list_keeps_the_holders_user_id_whole(db: str) -> None:
    """Only the token's id was kept whole: the holder's id, what `token issue --user-id` and
    `user show` take, folded over three lines even at 120 columns."""
    with_alice(db)
    ok(db, "token", "issue", "--user-id", ALICE, "--role", "admin", "--domain", "default", "--name", "ci")
    for columns in (80, 120):
        listed = ledger(db, "token", "list", columns=columns).stdout
        assert ALICE in listed and max(map(len, listed.splitlines())) <= columns


def test_roles_are_taken_in_any_case_as_the_api_takes_them(db: str) -> None:
    """`--role ADMIN` was a usage error while `POST /v1/tokens {"role": "ADMIN"}` and
    `ActionTriggerMeta` read it as admin; both --role options take any case now."""
    with_alice(db)
    issued = as_json(db, "--role", "SuperAdmin", "token", "issue", "--role", "USER", "--user-id", ALICE,
                     "--domain", "default")  # fmt: skip
    assert issued["role"] == "user"
    assert {row["role"] for row in as_json(db, "audit", "--entity-type", "token")} == {"superadmin"}
    assert "'bogus' is not one of" in ledger(db, "--role", "bogus", "policy", "list").stderr
