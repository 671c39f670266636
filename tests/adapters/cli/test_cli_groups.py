"""`ledger group ...` and `ledger workload ...`, end to end on a SQLite file per test."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.cli.helpers import (
    ACTOR,
    GROUP,
    NS,
    OTHER,
    SERVICE,
    as_json,
    given_domains,
    given_users,
    jsonl,
    ledger,
    ok,
    refused,
    usage_error,
    workload_facts,
)

U1, U2, U3 = (f"aaaaaaaa-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


@pytest.fixture(autouse=True)
def known(db: str) -> None:
    """The domain the groups are made in and the users they take as members exist."""
    given_users(db, U1, U2, U3, domain="d1")


def make_group(db: str, group_id: str = GROUP, name: str = "team-a", domain: str = "d1", *extra: str) -> Any:
    given_domains(db, domain)
    return as_json(db, "group", "create", name, "--domain-name", domain, "--id", group_id, *extra)


def members(db: str, group_id: str = GROUP) -> list[str]:
    listed: list[str] = as_json(db, "group", "members", group_id)
    return listed


def events(db: str, group_id: str = GROUP) -> list[str]:
    return [e["event"] for e in as_json(db, "group", "history", group_id)]


# Groups: create, show, list


def test_group_create_prints_a_table_of_every_field(db: str, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.write_bytes(b"alias ll='ls -l'\n")
    out = ok(
        db,
        "group",
        "create",
        "team-a",
        "--domain-name",
        "d1",
        "--id",
        GROUP,
        "--type",
        "model-store",
        "--description",
        "the A team",
        "--integration-id",
        "ext-7",
        "--total-resource-slots",
        "cpu=4,mem=8g",
        "--allowed-vfolder-hosts",
        "local,nfs",
        "--dotfiles-file",
        str(dotfiles),
        "--resource-policy",
        "gold",
        "--container-registry",
        '{"registry": "cr.example.com", "project": "team-a"}',
    ).stdout
    assert out.splitlines()[0] == f"created group 'team-a' ({GROUP})"
    for row in (
        ("id", GROUP),
        ("type", "model-store"),
        ("description", "the A team"),
        ("integration_id", "ext-7"),
        ("total_resource_slots", "cpu=4, mem=8g"),
        ("allowed_vfolder_hosts", "local, nfs"),
        ("dotfiles", "17 bytes"),
        ("resource_policy", "gold"),
        ("container_registry", "registry=cr.example.com, project=team-a"),
        ("is_active", "True"),
    ):
        assert any(row[0] in line and row[1] in line for line in out.splitlines()), row
    # History and diff show the dotfiles' size too, not their base64 (up to 87 kB of it).
    history = ok(db, "group", "history", GROUP).stdout
    assert "dotfiles: null -> 17 bytes" in " ".join(history.split()) and "YWxpYXM" not in history
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 200)
    ok(db, "group", "modify", GROUP, "--dotfiles-file", str(big))
    diff = ok(db, "group", "diff", GROUP, "--from", "1", "--to", "2").stdout
    assert "17 bytes" in diff and "51200 bytes" in diff and len(diff.splitlines()) < 10


def test_group_create_json_takes_json_options_and_defaults_the_rest(db: str, tmp_path: Path) -> None:
    dotfiles = tmp_path / ".bashrc"
    dotfiles.write_bytes(b"set -o vi\n")
    default = as_json(db, "group", "create", "team-a", "--domain-name", "d1")
    assert (default["type"], default["resource_policy"], default["dotfiles"]) == ("general", "default", "")
    assert default["description"] is None and default["container_registry"] is None and default["is_active"] is True
    created = as_json(
        db,
        "group",
        "create",
        "team-b",
        "--domain-name",
        "d1",
        "--total-resource-slots",
        '{"cpu": "2", "memory": "1G"}',
        "--allowed-vfolder-hosts",
        '{"nfs": ["mount-in-session"]}',
        "--inactive",
        "--dotfiles-file",
        str(dotfiles),
    )
    uuid.UUID(created["id"])  # chosen by the ledger
    assert created["name"] == "team-b" and created["domain_name"] == "d1"
    assert created["total_resource_slots"] == {"cpu": "2", "mem": "1073741824"}
    assert created["allowed_vfolder_hosts"] == {"nfs": ["mount-in-session"]}
    assert created["is_active"] is False
    assert created["dotfiles"] == base64.b64encode(b"set -o vi\n").decode()


def test_group_show_and_list_in_both_modes(db: str) -> None:
    make_group(db, GROUP, "zeta", "d2")
    make_group(db, OTHER, "alpha", "d2", "--description", "first")
    third = as_json(db, "group", "create", "beta", "--domain-name", "d1")
    shown = as_json(db, "group", "show", OTHER)
    assert (shown["id"], shown["name"], shown["description"]) == (OTHER, "alpha", "first")
    table = ok(db, "group", "show", OTHER).stdout
    assert "group 'alpha'" in table and "first" in table and "members" in table
    listed = as_json(db, "group", "list")
    assert [(g["domain_name"], g["name"]) for g in listed] == [("d1", "beta"), ("d2", "alpha"), ("d2", "zeta")]
    assert [g["id"] for g in as_json(db, "group", "list", "--domain-name", "d1")] == [third["id"]]
    assert as_json(db, "group", "list", "--domain-name", "nowhere") == []
    rows = ok(db, "group", "list", "--domain-name", "d2").stdout
    assert "alpha" in rows and "zeta" in rows and "beta" not in rows and GROUP in rows


def test_group_list_keeps_each_id_whole_at_80_columns(db: str) -> None:
    """The ids folded over four lines at 80 columns: none could be copied into `group show`."""
    make_group(db, GROUP, "ml-platform", "d2")
    make_group(db, OTHER, "research", "d2")
    lines = ledger(db, "group", "list", columns=80).stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert sum(GROUP in line for line in lines) == 1 and sum(OTHER in line for line in lines) == 1


def test_show_of_an_unknown_group_is_not_found(db: str) -> None:
    assert refused(db, "group", "show", OTHER) == f"error: group_not_found: group '{OTHER}' not found"
    assert refused(db, "group", "members", "nope").endswith(": group 'nope' not found in domain 'default'")  # a name
    assert refused(db, "group", "history", OTHER).startswith("error: group_not_found: ")


def test_duplicate_group_name_is_one_line_and_exit_1(db: str) -> None:
    make_group(db)
    line = refused(db, "group", "create", "team-a", "--domain-name", "d1")
    assert line == f"error: group_create_duplicate_name: group name 'team-a' is taken in domain 'd1' by {GROUP}"
    assert make_group(db, OTHER, "team-a", "d2")["domain_name"] == "d2"  # names are unique per domain only
    assert refused(db, "group", "modify", OTHER, "--domain-name", "d1").startswith("error: group_create_duplicate_name")
    assert [g["domain_name"] for g in as_json(db, "group", "list")] == ["d1", "d2"]


def test_invalid_values_and_malformed_options(db: str, tmp_path: Path) -> None:
    slug = refused(db, "group", "create", "no spaces", "--domain-name", "d1")
    assert slug.startswith("error: ledger_invalid_parameters: NAME: must be a slug")
    registry = refused(db, "group", "create", "g", "--domain-name", "d1", "--container-registry", '{"url": "x"}')
    assert "--container-registry: unknown keys" in registry and "url" in registry
    bad_id = refused(db, "group", "create", "g", "--domain-name", "d1", "--id", "seven")
    assert bad_id == "error: ledger_invalid_parameters: --id: 'seven' is not a UUID"
    assert "invalid JSON" in usage_error(db, "group", "create", "g", "--domain-name", "d1", "--container-registry", "{")
    assert "expected a JSON object" in usage_error(
        db, "group", "create", "g", "--domain-name", "d1", "--container-registry", "[1]"
    )
    assert "--type" in usage_error(db, "group", "create", "g", "--domain-name", "d1", "--type", "huge")
    missing = str(tmp_path / "missing")
    assert "--dotfiles-file" in usage_error(
        db, "group", "create", "g", "--domain-name", "d1", "--dotfiles-file", missing
    )
    assert "--domain-name" in usage_error(db, "group", "create", "g")
    assert as_json(db, "group", "list") == []  # nothing was created


# Groups: modify and membership


def test_group_modify_changes_only_the_given_fields(db: str) -> None:
    make_group(db, GROUP, "team-a", "d1", "--description", "old", "--total-resource-slots", "cpu=4")
    out = ok(db, "group", "modify", GROUP, "--name", "team-z", "--description", "new", "--inactive").stdout
    assert out.splitlines()[0] == f"modified group 'team-z' ({GROUP})"
    shown = as_json(db, "group", "show", GROUP)
    assert (shown["name"], shown["description"], shown["is_active"]) == ("team-z", "new", False)
    assert shown["total_resource_slots"] == {"cpu": "4"} and shown["domain_name"] == "d1"  # untouched
    modified = as_json(db, "group", "modify", GROUP, "--active", "--type", "model-store", "--resource-policy", "p2")
    assert (modified["is_active"], modified["type"], modified["resource_policy"]) == (True, "model-store", "p2")
    assert make_group(db, OTHER, "team-a", "d1")["name"] == "team-a"  # the rename freed the old name


def test_type_takes_the_enum_name_as_the_api_does(db: str) -> None:
    """`--type MODEL_STORE` (ProjectType's name, which creators and the HTTP API take,
    REFERENCE.md) was a usage error: the option offered only the values."""
    assert make_group(db, GROUP, "g", "d1", "--type", "MODEL_STORE")["type"] == "model-store"
    assert as_json(db, "group", "modify", GROUP, "--type", "general")["type"] == "general"
    assert "--type" in usage_error(db, "group", "modify", GROUP, "--type", "huge")


def test_group_modify_unset_nullifies_description_and_registry(db: str) -> None:
    make_group(db, GROUP, "g", "d1", "--description", "x", "--container-registry", '{"registry": "cr"}')
    modified = as_json(db, "group", "modify", GROUP, "--unset", "description", "--unset", "container-registry")
    assert modified["description"] is None and modified["container_registry"] is None
    assert "cannot be unset" in usage_error(db, "group", "modify", GROUP, "--unset", "name")
    assert "both set and unset" in usage_error(
        db, "group", "modify", GROUP, "--description", "y", "--unset", "description"
    )
    assert ok(db, "group", "modify", GROUP).stdout.startswith(f"group 'g' ({GROUP}) unchanged\n")
    assert as_json(db, "group", "show", GROUP)["description"] is None


def test_membership_modes(db: str) -> None:
    make_group(db)
    added = ok(db, "group", "modify", GROUP, "--add-users", f"{U2},{U1}").stdout
    assert "members" in added and "│ 2 " in added
    assert members(db) == [U1, U2]
    ok(db, "group", "modify", GROUP, "--add-users", U1)  # already a member: no change
    ok(db, "group", "modify", GROUP, "--remove-users", U1)
    assert members(db) == [U2]
    ok(db, "group", "modify", GROUP, "--replace-users", f"{U1},{U3}", "--description", "both at once")
    assert members(db) == [U1, U3]
    assert as_json(db, "group", "show", GROUP)["description"] == "both at once"
    table = ok(db, "group", "members", GROUP).stdout
    assert "members of group 'team-a' (2)" in table and U1 in table and U3 in table and U2 not in table
    ok(db, "group", "modify", GROUP, "--replace-users", "")
    assert members(db) == []
    changes = ["MembersAdded", "MembersRemoved", "Modified", "MembersRemoved", "MembersAdded", "MembersRemoved"]
    assert events(db) == ["Created", *changes]


def test_one_membership_mode_per_call_and_uuids_checked(db: str) -> None:
    make_group(db)
    two = usage_error(db, "group", "modify", GROUP, "--add-users", U1, "--remove-users", U2)
    assert "--add-users and --remove-users: give one membership change per call" in two
    bad = refused(db, "group", "modify", GROUP, "--add-users", f"{U1},bob")
    assert bad == "error: ledger_invalid_parameters: --add-users: 'bob' is not a UUID"
    assert members(db) == []


# Groups: delete, purge, history


def test_purging_the_id_of_a_refused_create_erases_its_input(db: str) -> None:
    """A create refused (no such domain) kept its description sealed under the id's key; the
    id is in the audit trail, and purging it destroys that key although no group exists."""
    create = ("group", "create", "g1", "--domain-name", "nodomain", "--description", "Jane's")
    assert "domain_not_found" in refused(db, *create)
    (record,) = as_json(db, "audit", "--entity-type", "group", "--operation", "create")
    group = record["entity_id"]
    assert "group_not_found" in refused(db, "--role", "admin", "group", "purge", group)
    human = ok(db, "group", "purge", group).stdout
    assert human == f"erased group {group}: no such group, the input of refused commands naming it\n"
    (record,) = as_json(db, "audit", "--entity-type", "group", "--operation", "create")
    assert record["spec"]["input"]["description"] == "[erased]"
    assert "chain intact" in ok(db, "verify").stdout
    assert "group_not_found" in refused(db, "group", "purge", group)


def test_delete_is_soft_and_purge_removes(db: str) -> None:
    make_group(db, GROUP, "team-a", "d1", "--integration-id", "ext-1")
    before = as_json(db, "group", "delete", GROUP)
    assert (before["is_active"], before["integration_id"]) == (True, "ext-1")  # as it was just before
    shown = as_json(db, "group", "show", GROUP)
    assert (shown["is_active"], shown["integration_id"]) == (False, None)
    assert [g["id"] for g in as_json(db, "group", "list")] == [GROUP]  # still listed
    inactive = refused(db, "workload", "endpoint-create", str(uuid.uuid4()), "--group-id", GROUP, "--name", "e")
    assert inactive.startswith("error: group_inactive: ")
    assert ok(db, "group", "purge", GROUP).stdout == f"purged group 'team-a' ({GROUP})\n"
    assert refused(db, "group", "show", GROUP) == f"error: group_not_found: group '{GROUP}' not found"
    assert refused(db, "group", "purge", GROUP) == f"error: group_not_found: group '{GROUP}' not found"
    assert as_json(db, "group", "list") == []
    assert events(db) == ["Created", "Deleted", "Purged"]  # the history outlives the group
    make_group(db, OTHER, "team-a", "d1")  # the name is free again


def test_show_at_a_time_names_the_group_that_held_the_name_then(db: str) -> None:
    """A purge frees a name and a rename moves it: `show NAME --at T` reads the group that
    held NAME at T, not today's holder."""
    make_group(db, GROUP, "team-a", "d1")
    first_era = datetime.now(UTC)
    ok(db, "group", "delete", GROUP)
    ok(db, "group", "purge", GROUP)
    make_group(db, OTHER, "team-a", "d1")
    then = as_json(db, "group", "show", "team-a", "--domain", "d1", "--at", first_era.isoformat())
    assert (then["entity_id"], then["fields"]["name"], then["deleted"]) == (GROUP, "team-a", False)
    now = as_json(db, "group", "show", "team-a", "--domain", "d1", "--at", datetime.now(UTC).isoformat())
    assert now["entity_id"] == OTHER
    ok(db, "group", "modify", OTHER, "--name", "team-b")
    renamed = as_json(db, "group", "show", "team-b", "--domain", "d1", "--at", datetime.now(UTC).isoformat())
    assert renamed["entity_id"] == OTHER
    assert refused(db, "group", "show", "team-a", "--domain", "d1", "--at", datetime.now(UTC).isoformat()).startswith(
        "error: group_not_found: no group was named 'team-a' in domain 'd1' at "
    )
    assert refused(db, "group", "show", "team-a", "--domain", "d1", "--at", "2000-01-01T00:00:00Z").startswith(
        "error: group_not_found: no group was named 'team-a' in domain 'd1' at 2000-01-01T00:00:00+00:00"
    )


def test_diff_from_a_time_names_the_group_that_held_the_name_then(db: str) -> None:
    """`diff NAME --from T` read today's holder of NAME: a group renamed since was not
    found, and a name freed by a purge and taken again gave the newcomer's diff."""
    make_group(db, GROUP, "team-a", "d1")
    ok(db, "group", "modify", GROUP, "--description", "one")
    first_era = datetime.now(UTC)
    ok(db, "group", "modify", GROUP, "--name", "team-b", "--description", "two")
    now = datetime.now(UTC).isoformat()
    assert as_json(db, "group", "diff", "team-a", "--domain", "d1", "--from", first_era.isoformat(), "--to", now) == {
        "name": {"old": "team-a", "new": "team-b"},
        "description": {"old": "one", "new": "two"},
    }
    make_group(db, OTHER, "team-a", "d1", "--description", "other")  # the name taken again
    later = datetime.now(UTC).isoformat()
    assert as_json(db, "group", "diff", "team-a", "--domain", "d1", "--from", first_era.isoformat(), "--to", later) == {
        "name": {"old": "team-a", "new": "team-b"},
        "description": {"old": "one", "new": "two"},
    }
    # Versions only: today's holder, as before.
    assert as_json(db, "group", "diff", "team-a", "--domain", "d1", "--from", "1", "--to", "1") == {}
    assert refused(db, "group", "diff", "team-z", "--domain", "d1", "--from", first_era.isoformat(), "--to", later) == (
        "error: group_not_found: group 'team-z' not found in domain 'd1'"
    )


def test_delete_prints_one_line(db: str) -> None:
    make_group(db)
    assert ok(db, "group", "delete", GROUP).stdout == (
        f"deleted group 'team-a' ({GROUP}): inactive, kept with its history\n"
    )


def test_purge_is_refused_while_workload_holds_the_group(db: str) -> None:
    make_group(db)
    vfolder, kernel, bare, endpoint = (str(uuid.uuid5(NS, n)) for n in ("vf", "k1", "k2", "ep"))
    ok(db, "workload", "vfolder-create", vfolder, "--name", "data", "--host", "nfs", "--group-id", GROUP)
    ok(db, *start_kernel_args(kernel, "--mount", vfolder))
    ok(db, *start_kernel_args(bare))
    ok(db, "workload", "endpoint-create", endpoint, "--group-id", GROUP, "--name", "serve")
    assert refused(db, "group", "purge", GROUP) == (
        f"error: group_purge_vfolders_mounted: group {GROUP} has vfolders mounted to active kernels: {vfolder}"
    )
    ok(db, "workload", "kernel-terminate", kernel, "--terminated-at", "2024-10-01T02:00:00Z")
    assert refused(db, "group", "purge", GROUP) == (
        f"error: group_purge_active_kernels: group {GROUP} has 1 active kernel: {bare}"
    )
    ok(db, "workload", "kernel-terminate", bare, "--terminated-at", "2024-10-01T02:00:00Z", "--status", "cancelled")
    assert refused(db, "group", "purge", GROUP) == (
        f"error: group_purge_active_endpoints: group {GROUP} has 1 active endpoint: {endpoint}"
    )
    ok(db, "workload", "endpoint-destroy", endpoint)
    assert as_json(db, "group", "purge", GROUP)["id"] == GROUP


def test_group_history_records_actor_changes_and_workload(db: str) -> None:
    actor = [
        "--user-id",
        ACTOR,
        "--access-key",
        "AKADMIN",
        "--role",
        "admin",
        "--domain",
        "d1",
        "--request-id",
        "req-7",
    ]
    make_group(db, GROUP, "team-a", "d1", "--total-resource-slots", "cpu=2")
    ok(db, *actor, "group", "modify", GROUP, "--total-resource-slots", "cpu=8", "--add-users", U1)
    ok(
        db,
        *SERVICE,
        "workload",
        "vfolder-create",
        str(uuid.uuid5(NS, "vf")),
        "--name",
        "v",
        "--host",
        "h",
        "--group-id",
        GROUP,
    )
    entries = as_json(db, "group", "history", GROUP)
    assert [(e["version"], e["event"]) for e in entries] == [
        (1, "Created"),
        (2, "Modified"),
        (3, "MembersAdded"),
        (4, "VFolderAdded"),
    ]
    assert entries[1]["changes"] == {"total_resource_slots": {"old": {"cpu": "2"}, "new": {"cpu": "8"}}}
    assert entries[1]["actor"] == {"user_id": ACTOR, "access_key": "AKADMIN", "role": "admin", "domain_name": "d1"}
    refused = ledger(db, *actor[:-4], "--domain", "d2", "group", "modify", GROUP, "--description", "x")
    assert refused.exit_code == 1 and "may not" in refused.stderr and "d1" not in refused.stderr
    assert entries[1]["request_id"] == "req-7" and entries[2]["request_id"] == "req-7"
    assert entries[3]["actor"]["role"] == "service"
    table = ok(db, "group", "history", GROUP).stdout
    assert f"history of group '{GROUP}'" in table
    assert "total_resource_slots: cpu=2 -> cpu=8" in table
    assert f"user_ids: {U1}" in table and "VFolderAdded" in table
    assert "req-7" in table and "AKADMIN" in table


# Workload facts, one by one


def start_kernel_args(kernel: str, *extra: str, group: str = GROUP) -> list[str]:
    return [
        "workload",
        "kernel-start",
        kernel,
        "--session-id",
        str(uuid.uuid5(NS, f"session-{kernel}")),
        "--session-name",
        "train",
        "--group-id",
        group,
        "--owner",
        U1,
        "--kernel-access-key",
        "AKUSER",
        "--slots",
        "cpu=2,mem=4g",
        "--started-at",
        "2024-10-01T00:00:00",
        "--domain-name",
        "d1",  # the group's domain: a kernel must carry it
        *extra,
    ]


def test_workload_commands_record_each_fact(db: str) -> None:
    make_group(db)
    vf1, vf2, kernel, endpoint = (str(uuid.uuid5(NS, n)) for n in ("vf1", "vf2", "k", "ep"))
    vfolder = as_json(db, "workload", "vfolder-create", vf1, "--name", "data", "--host", "nfs", "--group-id", GROUP)
    assert vfolder == {"entity": "vfolder", "id": vf1, "fields": {"name": "data", "host": "nfs", "group_id": GROUP}}
    ok(db, "workload", "vfolder-create", vf2, "--name", "models", "--host", "nfs", "--group-id", GROUP)
    started = as_json(
        db, *start_kernel_args(kernel, "--mount", vf1, "--mount", vf2, "--image", "py:3", "--agent", "i-1")
    )
    fields = started["fields"]
    assert (started["entity"], started["id"], fields["status"]) == ("kernel", kernel, "RUNNING")
    assert fields["mounts"] == [vf1, vf2] and (fields["image"], fields["agent"]) == ("py:3", "i-1")
    assert fields["occupied_slots"] == {"cpu": "2", "mem": "4294967296"}
    assert (fields["user_id"], fields["access_key"], fields["domain_name"]) == (U1, "AKUSER", "d1")
    assert fields["started_at"] == "2024-10-01T00:00:00Z"  # no zone means UTC
    stats = as_json(
        db,
        "workload",
        "kernel-stats",
        kernel,
        "--reported-at",
        "2024-10-01T01:00:00Z",
        "--cpu-used",
        "12.5",
        "--mem-used",
        "1024",
    )
    assert stats["fields"]["last_stats"] == {
        "reported_at": "2024-10-01T01:00:00Z",
        "cpu_used": "12.5",
        "mem_used": 1024,
        "io_read": 0,
        "io_write": 0,
        "disk_used": 0,
    }
    ended = as_json(
        db, "workload", "kernel-terminate", kernel, "--terminated-at", "2024-10-01T02:00:00Z", "--status", "CANCELLED"
    )
    assert (ended["fields"]["status"], ended["fields"]["terminated_at"]) == ("CANCELLED", "2024-10-01T02:00:00Z")
    created = as_json(db, "workload", "endpoint-create", endpoint, "--group-id", GROUP, "--name", "serve")
    assert created["fields"] == {"name": "serve", "group_id": GROUP}
    out = ok(db, "workload", "endpoint-destroy", endpoint).stdout
    assert out.splitlines()[0] == f"destroyed endpoint {endpoint}"
    workload = ["VFolderAdded", "VFolderAdded", "KernelStarted", "KernelEnded", "EndpointCreated", "EndpointDestroyed"]
    assert events(db) == ["Created", *workload]


def test_workload_table_output(db: str) -> None:
    make_group(db)
    vf, kernel = str(uuid.uuid5(NS, "vf")), str(uuid.uuid5(NS, "k"))
    ok(db, "workload", "vfolder-create", vf, "--name", "data", "--host", "nfs", "--group-id", GROUP)
    out = ok(db, *start_kernel_args(kernel, "--mount", vf, "--domain-name", "d1")).stdout
    assert out.splitlines()[0] == f"started kernel {kernel}"
    assert "cpu=2, mem=4g" in out and vf in out and "RUNNING" in out and "d1" in out


def test_workload_refusals_are_one_line(db: str) -> None:
    make_group(db)
    kernel = str(uuid.uuid5(NS, "k"))
    unknown_group = refused(db, *start_kernel_args(kernel, group=OTHER))
    assert unknown_group == f"error: group_not_found: --group-id: group '{OTHER}' not found"
    ok(db, *start_kernel_args(kernel))
    again = refused(db, *start_kernel_args(kernel))
    assert again.startswith(f"error: workload_duplicate_id: kernel {kernel}")
    ok(db, "workload", "kernel-terminate", kernel, "--terminated-at", "2024-10-01T02:00:00Z")
    twice = refused(db, "workload", "kernel-terminate", kernel, "--terminated-at", "2024-10-01T03:00:00Z")
    assert twice.startswith("error: workload_terminate_kernel_already_terminated: ")
    ghost = str(uuid.uuid5(NS, "ghost"))
    missing = refused(db, "workload", "kernel-stats", ghost, "--reported-at", "2024-10-01T01:00:00Z")
    assert missing == f"error: kernel_not_found: kernel '{ghost}' not found"
    when = refused(db, "workload", "kernel-stats", kernel, "--reported-at", "yesterday")
    assert when == "error: ledger_invalid_parameters: --reported-at: 'yesterday' is not an ISO 8601 time"
    status = refused(
        db, "workload", "kernel-terminate", ghost, "--terminated-at", "2024-10-01T00:00:00Z", "--status", "done"
    )
    assert status == "error: ledger_invalid_parameters: --status: 'done' is not TERMINATED or CANCELLED"
    assert "--slots" in usage_error(db, *start_kernel_args(str(uuid.uuid4()))[:-2], "--slots", "cpu")
    assert "--mem-used" in usage_error(
        db, "workload", "kernel-stats", kernel, "--reported-at", "2024-10-01T01:00:00Z", "--mem-used", "lots"
    )


# Workload import


def test_import_records_a_workload_file_in_batches(db: str, tmp_path: Path) -> None:
    make_group(db)
    begin, end = workload_facts()
    (tmp_path / "begin.jsonl").write_text(jsonl(begin))
    (tmp_path / "end.jsonl").write_text("\n" + jsonl(end))  # blank lines are skipped
    summary = as_json(db, *SERVICE, "workload", "import", str(tmp_path / "begin.jsonl"), "--batch-size", "64")
    assert summary["facts"] == len(begin) == 210
    assert summary["batches"] == 4  # ceil(210 / 64)
    assert summary["batch_size"] == 64
    assert summary["by_fact"] == {
        "create_vfolder": 20,
        "start_kernel": 60,
        "report_kernel_stats": 120,
        "create_endpoint": 10,
    }
    assert summary["elapsed_seconds"] > 0 and summary["facts_per_second"] > 0
    assert refused(db, "group", "purge", GROUP).startswith("error: group_purge_vfolders_mounted: ")
    history = as_json(db, "group", "history", GROUP)
    assert [e["event"] for e in history].count("KernelStarted") == 60
    assert {e["request_id"] for e in history[1:]} == {"import-1"}
    assert {e["actor"]["role"] for e in history[1:]} == {"service"}
    # One action per atomic batch, each audited: the group's events came in three of the four.
    batches = as_json(db, "audit", "--operation", "record_batch")
    assert [(b["status"], b["role"], b["request_id"]) for b in batches] == [("success", "service", "import-1")] * 4
    assert {e["action_id"] for e in history[1:]} <= {b["action_id"] for b in batches}

    summary = as_json(db, "workload", "import", str(tmp_path / "end.jsonl"))
    assert (summary["facts"], summary["batches"]) == (70, 1)
    assert summary["by_fact"] == {"terminate_kernel": 60, "destroy_endpoint": 10}
    assert as_json(db, "group", "purge", GROUP)["id"] == GROUP
    assert events(db).count("KernelEnded") == 60 and events(db).count("EndpointDestroyed") == 10


def test_purge_waits_for_the_last_termination_of_the_file(db: str, tmp_path: Path) -> None:
    make_group(db)
    begin, end = workload_facts(vfolders=3, kernels=6, endpoints=2)
    (tmp_path / "most.jsonl").write_text(jsonl(begin + end[:-1]))  # every end but the last endpoint's
    ok(db, "workload", "import", str(tmp_path / "most.jsonl"), "--batch-size", "5")
    assert refused(db, "group", "purge", GROUP).startswith("error: group_purge_active_endpoints: ")
    ok(db, "workload", "import", "-", input=jsonl(end[-1:]))
    assert ok(db, "group", "purge", GROUP).stdout == f"purged group 'team-a' ({GROUP})\n"


def test_import_prints_a_summary(db: str, tmp_path: Path) -> None:
    make_group(db)
    begin, _ = workload_facts(vfolders=4, kernels=4, endpoints=1)
    (tmp_path / "f.jsonl").write_text(jsonl(begin))
    out = ok(db, "workload", "import", str(tmp_path / "f.jsonl"), "--batch-size", "7").stdout.splitlines()
    assert out[0].startswith("imported 17 facts in 3 batches in ") and out[0].endswith(" facts/s)")
    assert out[1] == "create_vfolder=4, start_kernel=4, report_kernel_stats=8, create_endpoint=1"


def test_import_reads_stdin(db: str) -> None:
    make_group(db)
    begin, _ = workload_facts(vfolders=5, kernels=0, endpoints=0)
    summary = as_json(db, "workload", "import", "-", input=jsonl(begin))
    assert (summary["facts"], summary["batches"], summary["by_fact"]) == (5, 1, {"create_vfolder": 5})
    assert events(db) == ["Created", *["VFolderAdded"] * 5]


def vfolder_lines(count: int) -> list[str]:
    return [
        json.dumps(
            {
                "fact": "create_vfolder",
                "vfolder_id": str(uuid.uuid5(NS, f"v{i}")),
                "name": "v",
                "host": "h",
                "group_id": GROUP,
            }
        )
        for i in range(count)
    ]


def test_a_bad_line_stops_the_import_and_keeps_what_came_before(db: str, tmp_path: Path) -> None:
    make_group(db)
    lines = vfolder_lines(200)
    lines[119] = '{"fact": "create_vfolder", '  # line 120
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    line = refused(db, "workload", "import", str(tmp_path / "bad.jsonl"), "--batch-size", "50")
    assert line.startswith("error: ledger_invalid_parameters: line 120: invalid JSON: ")
    assert line.endswith("(119 facts before it were recorded; fix the line and resume with --from-line 120)")
    assert events(db).count("VFolderAdded") == 119  # two whole batches and the good start of the third


def test_a_refused_batch_is_narrowed_to_its_refused_line(db: str, tmp_path: Path) -> None:
    make_group(db)
    lines = vfolder_lines(200)
    ghost = str(uuid.uuid5(NS, "ghost"))
    lines[129] = json.dumps({"fact": "terminate_kernel", "kernel_id": ghost, "terminated_at": "2024-10-01T00:00:00Z"})
    (tmp_path / "refused.jsonl").write_text("\n".join(lines) + "\n")
    line = refused(db, "--json", "workload", "import", str(tmp_path / "refused.jsonl"), "--batch-size", "50")
    assert json.loads(line)["error"] == {  # with --json, the error is JSON too
        "code": "kernel_not_found",
        "message": f"line 130: kernel '{ghost}' not found "
        "(129 facts before it were recorded; fix the line and resume with --from-line 130)",
        "field": None,  # the message names the kernel; no key of the line is at fault
        "status": 404,  # as for any refusal: a script tells a missing entity from a bad line
    }
    assert events(db).count("VFolderAdded") == 129
    # The rest of the file imports once the bad line is fixed: nothing from it on was stored.
    summary = as_json(db, "workload", "import", "-", input="\n".join(lines[130:]) + "\n")
    assert summary["facts"] == 70
    assert events(db).count("VFolderAdded") == 199


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["create_vfolder"]', "line 3: expected a JSON object, got a list"),
        ('{"fact": "launch_rocket"}', "line 3: fact: unknown fact 'launch_rocket'; one of: create_vfolder, "),
        # It said `unknown fact None`, as Python spells a missing value.
        ('{"vfolder_id": "x"}', "line 3: fact: is required; one of: create_vfolder, "),
        ('{"fact": null}', "line 3: fact: is required; one of: "),
        ('{"fact": ["create_vfolder"]}', "line 3: fact: unknown fact a list; one of: "),
        (
            '{"fact": "create_vfolder", "vfolder_id": "x", "name": "v", "host": "h", "group_id": "' + GROUP + '"}',
            "line 3: vfolder_id: 'x' is not a UUID",
        ),
        (
            '{"fact": "destroy_endpoint", "endpoint_id": "' + GROUP + '", "color": "red"}',
            "line 3: color: unknown field",
        ),
    ],
)
def test_bad_lines_are_named(db: str, text: str, message: str) -> None:
    make_group(db)
    good = vfolder_lines(2)
    line = refused(db, "workload", "import", "-", input="\n".join([*good, text, *vfolder_lines(4)[2:]]) + "\n")
    assert line.startswith(f"error: ledger_invalid_parameters: {message}")
    assert line.endswith("(2 facts before it were recorded; fix the line and resume with --from-line 3)")
    assert events(db).count("VFolderAdded") == 2


def test_a_line_that_is_not_utf8_is_named(db: str, tmp_path: Path) -> None:
    make_group(db)
    good = "\n".join(vfolder_lines(3)).encode()
    (tmp_path / "latin1.jsonl").write_bytes(good + b'\n{"fact": "caf\xe9"}\n')
    line = refused(db, "workload", "import", str(tmp_path / "latin1.jsonl"))
    assert line.startswith("error: ledger_invalid_parameters: line 4: not UTF-8 text: ")
    assert events(db).count("VFolderAdded") == 3


def test_import_usage_errors(db: str, tmp_path: Path) -> None:
    assert "FILE.jsonl" in usage_error(db, "workload", "import", str(tmp_path / "none.jsonl"))
    assert "--batch-size" in usage_error(db, "workload", "import", "-", "--batch-size", "0")


def test_import_shows_progress_on_a_terminal_only(db: str) -> None:
    make_group(db)
    text = "\n".join(vfolder_lines(30)) + "\n"
    terminal = ledger(db, "workload", "import", "-", "--batch-size", "10", input=text, env={"FORCE_COLOR": "1"})
    assert terminal.exit_code == 0, terminal.stderr
    assert "importing <stdin>" in terminal.stderr and "facts" in terminal.stderr
    assert terminal.stdout.startswith("imported 30 facts in 3 batches")
    quiet = ledger(db, "--json", "workload", "import", "-", input="", env={"FORCE_COLOR": "1"})
    assert quiet.exit_code == 0 and quiet.stderr == ""  # --json: no progress bar
    plain = ledger(db, "workload", "import", "-", input="")
    assert plain.exit_code == 0 and plain.stderr == ""  # not a terminal: no progress bar


def test_an_id_created_twice_in_one_batch_is_refused_at_its_second_line(db: str) -> None:
    """Another creation under an id the file created already is refused at its line; the
    same creation again is one already recorded, skipped (an import is run again whole)."""
    make_group(db)
    other = json.dumps({**json.loads(vfolder_lines(1)[0]), "name": "another"})
    twice = [*vfolder_lines(2), other]
    line = refused(db, "workload", "import", "-", input="\n".join(twice) + "\n")
    assert line.startswith("error: workload_duplicate_id: line 3: vfolder ")
    assert line.endswith("(2 facts before it were recorded; fix the line and resume with --from-line 3)")
    assert events(db).count("VFolderAdded") == 2
    again = [*vfolder_lines(2), vfolder_lines(1)[0]]
    ok(db, "workload", "import", "-", input="\n".join(again) + "\n")
    assert events(db).count("VFolderAdded") == 2


def test_a_taken_id_names_what_holds_it_in_plain_english(db: str) -> None:
    """A second endpoint-create with one id said 'the id is taken by a endpoint'."""
    make_group(db)
    endpoint = str(uuid.uuid5(NS, "ep"))
    args = ("workload", "endpoint-create", endpoint, "--group-id", GROUP, "--name", "ep")
    ok(db, *args)
    assert refused(db, *args).endswith(f"endpoint {endpoint}: the id is taken by an endpoint")
    kernel_args = start_kernel_args(endpoint)
    assert refused(db, *kernel_args).endswith(f"kernel {endpoint}: the id is taken by an endpoint")


def test_dotfiles_are_read_no_further_than_a_group_may_hold(db: str, tmp_path: Path) -> None:
    """--dotfiles-file read the whole file before its size was checked: /dev/zero grew the
    process until `internal error: MemoryError`. Read one byte past the limit, it is refused."""
    make_group(db)
    assert refused(db, "group", "modify", GROUP, "--dotfiles-file", "/dev/zero") == (
        "error: ledger_invalid_parameters: --dotfiles-file: must be at most 65536 bytes, got more"
    )
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70_000)
    assert refused(db, "group", "modify", GROUP, "--dotfiles-file", str(big)).endswith("got 70000")


def test_a_dotfiles_file_that_fails_to_read_is_named_with_its_reason(db: str) -> None:
    """A read error (a failing disk, a stale network mount; here /proc/self/mem, whose first
    page is not mapped) was `internal error: OSError: [Errno 5] Input/output error`."""
    make_group(db)
    assert refused(db, "group", "modify", GROUP, "--dotfiles-file", "/proc/self/mem") == (
        "error: ledger_invalid_parameters: --dotfiles-file: cannot read '/proc/self/mem': Input/output error"
    )
