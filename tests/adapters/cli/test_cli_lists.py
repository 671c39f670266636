"""Groups named on the command line, and the list commands' filters and `--limit/--after`
cursor (policies, keypairs, groups), end to end on a SQLite file per test."""

from __future__ import annotations

import json
from typing import Any

from tests.adapters.cli.helpers import (
    GROUP,
    OTHER,
    U1,
    as_json,
    given_domains,
    given_users,
    ledger,
    ok,
    refused,
    usage_error,
)

OWNER_B, OWNER_C, OWNER_D = (f"{c * 8}-0000-4000-8000-00000000000{c}" for c in "bcd")  # U1 and B in d1, C and D in d2


def make_group(db: str, name: str, domain: str, *extra: str) -> Any:
    given_domains(db, domain)
    return as_json(db, "group", "create", name, "--domain-name", domain, *extra)


def page_through(db: str, command: list[str], cursor_of: str, limit: int) -> list[list[Any]]:
    """Every --limit page of a --json list, following next_after until it is null."""
    found: list[list[Any]] = []
    after: list[str] = []
    while True:
        page = as_json(db, *command, "--limit", str(limit), *after)
        found.append(page["items"])
        if page["next_after"] is None:
            return found
        assert page["next_after"] == cursor_of_item(page["items"][-1], cursor_of)
        after = ["--after", page["next_after"]]


def cursor_of_item(item: dict[str, Any], cursor_of: str) -> str:
    return f"{item['domain_name']}/{item['name']}" if cursor_of == "group" else str(item[cursor_of])


# Groups by name


def test_every_group_command_takes_a_name_in_a_domain(db: str) -> None:
    make_group(db, "team", "d1", "--id", GROUP)
    make_group(db, "team", "d2", "--id", OTHER)
    given_users(db, U1, domain="d1")  # the member added below
    assert as_json(db, "group", "show", "team", "--domain", "d1")["id"] == GROUP
    assert as_json(db, "group", "show", "team", "--domain", "d2")["id"] == OTHER
    # Without --domain a name is looked up in the actor's domain (the root --domain).
    assert as_json(db, "--domain", "d2", "group", "show", "team")["id"] == OTHER
    assert as_json(db, "group", "show", GROUP)["name"] == "team"  # a UUID is an id, as before
    modified = as_json(db, "group", "modify", "team", "--domain", "d1", "--description", "x", "--add-users", U1)
    assert (modified["id"], modified["description"]) == (GROUP, "x")
    assert as_json(db, "group", "members", "team", "--domain", "d1") == [U1]
    assert as_json(db, "group", "members", "team", "--domain", "d2") == []
    history = as_json(db, "group", "history", "team", "--domain", "d1")
    assert [e["entity_id"] for e in history] == [GROUP] * len(history) and len(history) >= 2
    assert as_json(db, "group", "diff", "team", "--domain", "d1", "--from", "1", "--to", "2")["description"] == {
        "old": None,
        "new": "x",
    }
    assert as_json(db, "group", "show", "team", "--domain", "d1", "--version", "1")["fields"]["description"] is None
    assert as_json(db, "group", "delete", "team", "--domain", "d1")["id"] == GROUP
    assert as_json(db, "group", "show", "team", "--domain", "d1")["is_active"] is False  # soft-deleted keeps its name
    assert as_json(db, "group", "purge", "team", "--domain", "d1")["id"] == GROUP
    assert as_json(db, "group", "show", "team", "--domain", "d2")["id"] == OTHER  # the other domain's is untouched


def test_an_unknown_group_name_is_one_line_naming_name_and_domain(db: str) -> None:
    make_group(db, "team", "d1")
    for command in ("show", "members", "history", "delete", "purge", "modify"):
        line = refused(db, "group", command, "team")  # the actor's domain is 'default'
        assert line.startswith("error: ") and "not_found" in line, line
        assert line.endswith("group 'team' not found in domain 'default'"), line
    line = refused(db, "--domain", "d1", "group", "show", "team", "--domain", "d9")
    assert line.endswith("group 'team' not found in domain 'd9'")
    line = refused(db, "group", "diff", "ghost", "--domain", "d1", "--from", "1", "--to", "2")
    assert line.endswith("group 'ghost' not found in domain 'd1'")


# Group list


def test_group_list_filters_and_pages(db: str) -> None:
    for domain, name in [("d1", "web-a"), ("d1", "web-b"), ("d1", "db"), ("d2", "web-a"), ("d2", "ml")]:
        make_group(db, name, domain)
    ok(db, "group", "delete", "web-b", "--domain", "d1")

    def listed(*args: str) -> list[str]:
        return [f"{g['domain_name']}/{g['name']}" for g in as_json(db, "group", "list", *args)]

    everything = ["d1/db", "d1/web-a", "d1/web-b", "d2/ml", "d2/web-a"]
    assert listed() == everything  # without --limit, the plain list it always was
    assert listed("--domain", "d1", "--name-prefix", "web") == ["d1/web-a", "d1/web-b"]
    assert listed("--domain-name", "d2") == ["d2/ml", "d2/web-a"]
    assert listed("--name", "web-a") == ["d1/web-a", "d2/web-a"]
    assert listed("--status", "inactive") == ["d1/web-b"]
    assert listed("--status", "ACTIVE", "--domain", "d1") == ["d1/db", "d1/web-a"]
    assert listed("--status", "all") == everything
    # The root --domain is the actor; the list's own --domain is the filter.
    assert listed() == [f"{g['domain_name']}/{g['name']}" for g in as_json(db, "--domain", "d1", "group", "list")]
    both = json.loads(ok(db, "--json", "--domain", "d2", "group", "list", "--domain", "d1").stdout)
    assert {g["domain_name"] for g in both} == {"d1"}
    for limit in (1, 2, 4, 5, 6):
        pages = page_through(db, ["group", "list"], "group", limit)
        assert [f"{g['domain_name']}/{g['name']}" for page in pages for g in page] == everything
        assert all(len(page) <= limit for page in pages)
    pages = page_through(db, ["group", "list", "--status", "active"], "group", 1)
    assert [g["name"] for page in pages for g in page] == ["db", "web-a", "ml", "web-a"]


def test_group_list_table_tells_the_next_cursor_on_stderr(db: str) -> None:
    for name in ("a", "b", "c"):
        make_group(db, name, "d1")
    first = ok(db, "group", "list", "--limit", "2")
    assert " a " in first.stdout and " b " in first.stdout and " c " not in first.stdout
    assert first.stderr == "more: --after d1/b\n"
    last = ok(db, "group", "list", "--limit", "2", "--after", "d1/b")
    assert " c " in last.stdout and " a " not in last.stdout and last.stderr == ""
    assert as_json(db, "group", "list", "--limit", "3") == {"items": as_json(db, "group", "list"), "next_after": None}


def test_group_list_refuses_bad_values(db: str) -> None:
    assert "--limit" in usage_error(db, "group", "list", "--limit", "0")
    assert "--limit" in usage_error(db, "group", "list", "--limit", "-3")
    assert "--status" in usage_error(db, "group", "list", "--status", "gone")
    assert "--name or --name-prefix" in usage_error(db, "group", "list", "--name", "a", "--name-prefix", "a")
    bad_cursor = refused(db, "group", "list", "--after", "nodomain")
    assert bad_cursor.endswith("after: 'nodomain' is not a group cursor DOMAIN/NAME")


# Keypairs


def test_keypair_list_filters_and_pages(db: str) -> None:
    ok(db, "policy", "create", "p")
    given_users(db, U1, OWNER_B, domain="d1")
    given_users(db, OWNER_C, OWNER_D, domain="d2")
    for key, owner, domain, policy in [
        ("AK1", U1, "d1", "p"),
        ("AK2", OWNER_B, "d1", "default"),
        ("AK3", OWNER_C, "d2", "p"),
        ("AK4", OWNER_D, "d2", "p"),
    ]:
        ok(db, "keypair", "create", key, "--owner", owner, "--domain-name", domain, "--resource-policy", policy)

    def listed(*args: str) -> list[str]:
        return [k["access_key"] for k in as_json(db, "keypair", "list", *args)]

    assert listed() == ["AK1", "AK2", "AK3", "AK4"]
    assert listed("--domain", "d1") == ["AK1", "AK2"]
    assert listed("--owner", U1) == ["AK1"]
    assert listed("--owner", OWNER_D, "--resource-policy", "p") == ["AK4"]
    assert listed("--domain", "d2", "--owner", OWNER_C, "--resource-policy", "p") == ["AK3"]
    assert listed("--domain", "d1", "--owner", OWNER_C) == []  # the filters all apply
    # `ledger --domain X keypair list --domain Y`: acts as X, lists Y.
    scoped = json.loads(ok(db, "--json", "--domain", "d1", "keypair", "list", "--domain", "d2").stdout)
    assert [k["access_key"] for k in scoped] == ["AK3", "AK4"]
    for limit in (1, 3, 4):
        pages = page_through(db, ["keypair", "list"], "access_key", limit)
        assert [k["access_key"] for page in pages for k in page] == ["AK1", "AK2", "AK3", "AK4"]
    table = ok(db, "keypair", "list", "--limit", "1", "--after", "AK1", "--resource-policy", "p")
    assert "AK3" in table.stdout and "AK1" not in table.stdout and table.stderr == "more: --after AK3\n"


def test_keypair_list_refuses_bad_values(db: str) -> None:
    assert refused(db, "keypair", "list", "--owner", "bob").endswith("--owner: 'bob' is not a UUID")
    assert "--limit" in usage_error(db, "keypair", "list", "--limit", "0")
    assert refused(db, "keypair", "list", "--domain", " d1").startswith("error: ")


# Policies


def test_policy_list_by_prefix_and_paged(db: str) -> None:
    for name in ("web-1", "web-2", "Web-3", "batch", "my policy"):
        ok(db, "policy", "create", name)
    names = [p["name"] for p in as_json(db, "policy", "list")]
    assert names == ["Web-3", "batch", "default", "my policy", "web-1", "web-2"]
    assert [p["name"] for p in as_json(db, "policy", "list", "--name-prefix", "web")] == ["web-1", "web-2"]
    for limit in (1, 2, 5, 6):
        pages = page_through(db, ["policy", "list"], "name", limit)
        assert [p["name"] for page in pages for p in page] == names
    table = ok(db, "policy", "list", "--limit", "1", "--after", "default")
    assert "my policy" in table.stdout and table.stderr == "more: --after 'my policy'\n"  # shell-quoted
    assert "--limit" in usage_error(db, "policy", "list", "--limit", "0")


def test_list_help_states_units_and_the_cursor(db: str) -> None:
    for command in ("group", "keypair", "policy"):
        help_text = " ".join(ledger(db, command, "list", "--help").stdout.split())
        assert "--limit" in help_text and "at most n rows (a positive integer)" in help_text.lower(), help_text
        assert "--after" in help_text and "cursor" in help_text.lower()


# Histories a page at a time


def test_every_history_command_pages_with_limit_and_after(db: str) -> None:
    """`history` printed every event of an entity at once: a group's holds two per kernel
    it ever ran. Each kind's history takes --limit, --after POSITION and --newest-first."""
    given_users(db, U1)
    group = make_group(db, "paged", "default")["id"]
    ok(db, "policy", "create", "p")
    ok(db, "keypair", "create", "AKPAGED", "--owner", U1, "--resource-policy", "p")
    for step in range(1, 3):
        ok(db, "policy", "modify", "p", "--idle-timeout", str(step))
        ok(db, "group", "modify", group, "--description", f"step {step}")
        ok(db, "keypair", "modify", "AKPAGED", "--resource-policy", "default" if step % 2 else "p")
    for command in (["policy", "history", "p"], ["group", "history", group], ["keypair", "history", "AKPAGED"],
                    ["user", "history", U1], ["domain", "history", "default"]):  # fmt: skip
        whole = as_json(db, *command)
        assert len(whole) >= 2, command
        for limit in (3, len(whole)) if command[0] == "policy" else (2,):
            assert [e for page in page_through(db, command, "position", limit) for e in page] == whole
            newest = page_through(db, [*command, "--newest-first"], "position", limit)
            assert [e for page in newest for e in page] == whole[::-1]
    whole = as_json(db, "policy", "history", "p")
    second = ["policy", "history", "p", "--limit", "2", "--after", str(whole[0]["position"])]
    assert as_json(db, *second) == {"items": whole[1:3], "next_after": str(whole[2]["position"])}
    table = ok(db, *second)
    assert table.stdout.count(" Modified ") == [e["event"] for e in whole[1:3]].count("Modified")
    assert table.stderr == f"more: --after {whole[2]['position']}\n"
    last = ok(db, "policy", "history", "p", "--after", str(whole[-1]["position"]))
    assert last.stderr == "" and "Modified" not in last.stdout  # past the end: an empty page
    assert "--after" in usage_error(db, "policy", "history", "p", "--after", "-1")
    assert "--limit" in usage_error(db, "policy", "history", "p", "--limit", "0")
    assert "has no history" in refused(db, "policy", "history", "nope", "--after", "3")
    # Named in words, as `show` names a missing policy (it read `keypair_resource_policy 'nope'`).
    assert refused(db, "policy", "history", "nope") == (
        "error: keypair_resource_policy_not_found: keypair resource policy 'nope' has no history"
    )


def test_the_largest_limit_the_option_takes_lists_every_row(db: str) -> None:
    """`--limit 9223372036854775807`, the bound `--limit 9223372036854775808` names, was
    refused as `--limit: is out of range (a 64-bit integer)`: one more row was asked for."""
    ok(db, "policy", "create", "p")
    largest = str(2**63 - 1)
    lists = ("policy", "group", "keypair", "user", "domain", "kernel", "vfolder", "session")
    for command in [(name, "list") for name in lists] + [("policy", "history", "p")]:
        page = as_json(db, *command, "--limit", largest)
        assert page["next_after"] is None, command
    assert [p["name"] for p in as_json(db, "policy", "list", "--limit", largest)["items"]] == ["default", "p"]
