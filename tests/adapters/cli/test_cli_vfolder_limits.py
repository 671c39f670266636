"""`ledger workload vfolder-create --owner-access-key`: a vfolder created for a keypair
obeys its storage limits (issue 12); without an owner it is a fact recorded unchecked."""

from __future__ import annotations

import json

from tests.adapters.cli.helpers import GROUP, SERVICE, as_json, given_users, ok, refused

OWNER = "0a0a0a0a-0000-4000-8000-000000000001"
HOSTS = json.dumps({"nfs": ["create-vfolder", "mount-in-session"], "scratch": ["mount-in-session"]})


def setup(db: str) -> None:
    ok(db, "policy", "create", "storage", "--allowed-vfolder-hosts", HOSTS, "--max-vfolder-count", "1")
    given_users(db, OWNER)
    ok(db, "keypair", "create", "AKOWNER", "--owner", OWNER, "--resource-policy", "storage")
    ok(db, "group", "create", "team", "--domain-name", "default", "--id", GROUP)


def create(db: str, vfolder: str, host: str, *owner: str) -> list[str]:
    return [*SERVICE, "workload", "vfolder-create", vfolder, "--name", vfolder[:8], "--host", host,
            "--group-id", GROUP, *owner]  # fmt: skip


def test_an_owned_vfolder_obeys_its_keypairs_host_permissions_and_count(tmp_path: object) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    setup(db)
    first = "1f1f1f1f-0000-4000-8000-000000000001"
    created = as_json(db, *create(db, first, "nfs", "--owner-access-key", "AKOWNER"))
    assert (created["id"], created["fields"]["owner_access_key"]) == (first, "AKOWNER")
    over = refused(db, *create(db, "1f1f1f1f-0000-4000-8000-000000000002", "nfs", "--owner-access-key", "AKOWNER"))
    assert over.startswith("error: quota_exceeded: ") and "max_vfolder_count" in over
    host = refused(db, *create(db, "1f1f1f1f-0000-4000-8000-000000000003", "scratch", "--owner-access-key", "AKOWNER"))
    assert "scratch" in host and "create-vfolder" in host
    # No owner: recorded as a fact, limited by nothing.
    ok(db, *create(db, "1f1f1f1f-0000-4000-8000-000000000004", "scratch"))


def test_json_errors_carry_what_the_refusal_weighed_as_over_http(tmp_path: object) -> None:
    """A platform scripting the CLI read `limit`, `scope` and `scope_id` (or `host` and
    `permission`) only out of the message: the HTTP problem carried them, --json did not."""
    db = f"sqlite:///{tmp_path}/l.db"
    setup(db)
    ok(db, *create(db, "1f1f1f1f-0000-4000-8000-000000000001", "nfs", "--owner-access-key", "AKOWNER"))
    over = json.loads(refused(db, "--json", *create(db, "1f1f1f1f-0000-4000-8000-000000000002", "nfs",
                                                   "--owner-access-key", "AKOWNER")))["error"]  # fmt: skip
    assert (over["code"], over["limit"], over["scope"], over["scope_id"]) == (
        "quota_exceeded",
        "max_vfolder_count",
        "keypair",
        "AKOWNER",
    )
    host = json.loads(refused(db, "--json", *create(db, "1f1f1f1f-0000-4000-8000-000000000003", "scratch",
                                                   "--owner-access-key", "AKOWNER")))["error"]  # fmt: skip
    assert (host["host"], host["permission"]) == ("scratch", "create-vfolder")


def test_a_host_refusal_names_the_option_that_gave_the_host(tmp_path: object) -> None:
    """Over HTTP the refusal names the fact's `host`; the CLI's --json names the option the
    user typed for it, as every refusal of one option's value does."""
    db = f"sqlite:///{tmp_path}/l.db"
    setup(db)
    vfolder = "1f1f1f1f-0000-4000-8000-000000000004"
    host = json.loads(refused(db, "--json", *create(db, vfolder, "scratch", "--owner-access-key", "AKOWNER")))["error"]
    assert (host["code"], host["field"]) == ("vfolder_host_not_allowed", "--host"), host
