"""`ledger kernel list|show` and `ledger vfolder list|show`, end to end on a SQLite file
per test: tables that fit 80 columns, JSON, filters, refused filters and unknown ids as
one error line."""

from __future__ import annotations

import uuid

from tests.adapters.cli.helpers import (
    GROUP,
    NS,
    OTHER,
    SERVICE,
    as_json,
    given_domains,
    jsonl,
    labelled_utc,
    ledger,
    ok,
    refused,
    usage_error,
    workload_facts,
)

INVALID = "error: ledger_invalid_parameters:"


def kernel(i: int) -> str:
    return str(uuid.uuid5(NS, f"k{i}"))


def vfolder(i: int) -> str:
    return str(uuid.uuid5(NS, f"vf{i}"))


def seed(db: str, kernels: int = 6, vfolders: int = 3, ended: int = 2) -> None:
    """GROUP with `kernels` kernels (started k0 at 00:00, k1 at 01:00, ...), the first
    `ended` of them terminated, and `vfolders` vfolders on host nfs; OTHER with one vfolder."""
    given_domains(db, "d1")
    ok(db, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    ok(db, "group", "create", "team-b", "--domain-name", "d1", "--id", OTHER)
    begin, end = workload_facts(vfolders=vfolders, kernels=kernels, endpoints=0)
    extra = {"fact": "create_vfolder", "vfolder_id": str(uuid.UUID(int=7)), "name": "b-side", "host": "ceph"}
    facts = [*begin, {**extra, "group_id": OTHER}, *end[:ended]]
    ok(db, *SERVICE, "workload", "import", "-", input=jsonl(facts))


def test_kernel_list_shows_the_workload_in_start_order_in_80_columns(db: str) -> None:
    seed(db)
    table = ledger(db, "kernel", "list", columns=80)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert "6 kernels" in lines[0]
    shown = [kernel(i)[:8] for i in range(6)]
    starts = [next(n for n, line in enumerate(lines) if short in line) for short in shown]
    assert starts == sorted(starts)  # started_at order
    assert "TERMINATED" in table.stdout and "RUNNING" in table.stdout and "AKUSER" in table.stdout
    assert kernel(0) not in table.stdout  # ids shortened
    # Times are UTC, and said so, as history and audit say theirs (they were bare).
    assert labelled_utc(table.stdout, "started") and labelled_utc(table.stdout, "ended")

    listed = as_json(db, "kernel", "list")
    assert [k["kernel_id"] for k in listed] == [kernel(i) for i in range(6)]
    first = listed[0]
    assert (first["group_id"], first["status"], first["access_key"]) == (GROUP, "TERMINATED", "AKUSER")
    assert (first["started_at"], first["terminated_at"]) == ("2024-10-01T00:00:00Z", "2024-10-03T00:00:00Z")
    assert first["occupied_slots"] == {"cpu": "1", "mem": "2147483648"} and first["mounts"] == [vfolder(0)]
    assert first["last_stats"]["cpu_used"] is not None


def test_kernel_list_filters(db: str) -> None:
    seed(db)

    def listed(*args: str) -> list[str]:
        return [k["kernel_id"] for k in as_json(db, "kernel", "list", *args)]

    assert listed("--status", "running") == [kernel(i) for i in range(2, 6)]
    assert listed("--status", "TERMINATED") == [kernel(0), kernel(1)]
    page = as_json(db, "kernel", "list", "--group-id", GROUP, "--limit", "2")
    assert [k["kernel_id"] for k in page["items"]] == [kernel(0), kernel(1)] and page["next_after"] == kernel(1)
    assert listed("--group-id", OTHER) == []
    assert listed("--access-key", "AKUSER", "--since", "2024-10-01T02:00:00Z", "--until", "2024-10-01T04:00") == [
        kernel(2),
        kernel(3),
    ]
    assert listed("--access-key", "AKNOBODY") == []
    empty = ok(db, "kernel", "list", "--status", "CANCELLED").stdout
    assert "0 kernels" in empty


def test_kernel_show_and_unknown_ids(db: str) -> None:
    seed(db)
    shown = as_json(db, "kernel", "show", kernel(4))
    assert (shown["kernel_id"], shown["status"], shown["terminated_at"]) == (kernel(4), "RUNNING", None)
    table = ledger(db, "kernel", "show", kernel(0), columns=80)
    assert table.exit_code == 0 and max(map(len, table.stdout.splitlines())) <= 80
    assert "TERMINATED" in table.stdout and "session_name" in table.stdout
    unknown = str(uuid.UUID(int=99))
    assert refused(db, "kernel", "show", unknown) == f"error: kernel_not_found: kernel '{unknown}' not found"
    assert refused(db, "kernel", "show", "seven").startswith("error: kernel_not_found: kernel 'seven'")
    hostile = refused(db, "kernel", "show", "\x1b[31mred")
    assert "\x1b" not in hostile and "\\x1b" in hostile


def test_invalid_kernel_filters_are_one_line_errors(db: str) -> None:
    seed(db, kernels=1, vfolders=1, ended=0)
    assert refused(db, "kernel", "list", "--status", "SLEEPING").startswith(f"{INVALID} --status:")
    assert refused(db, "kernel", "list", "--group-id", "nope").startswith(f"{INVALID} --group-id:")
    assert refused(db, "kernel", "list", "--since", "yesterday").startswith(f"{INVALID} --since:")
    assert refused(db, "kernel", "list", "--until", "1800-01-01").startswith(f"{INVALID} --until:")
    assert refused(db, "kernel", "list", "--access-key", "a b").startswith(f"{INVALID} --access-key:")
    assert "--limit" in usage_error(db, "kernel", "list", "--limit", "0")
    assert refused(db, "kernel", "list", "--after", "k1").startswith(f"{INVALID} --after:")
    assert usage_error(db, "kernel", "list", "--limit", "many").startswith("error: usage:")
    assert refused(db, "vfolder", "list", "--group-id", "nope").startswith(f"{INVALID} --group-id:")
    assert "--limit" in usage_error(db, "vfolder", "list", "--limit", "-1")
    assert refused(db, "vfolder", "list", "--after", "vf0").startswith(f"{INVALID} --after:")


def test_vfolder_list_and_show(db: str) -> None:
    seed(db)
    table = ledger(db, "vfolder", "list", columns=80)
    assert table.exit_code == 0, table.stderr
    assert max(map(len, table.stdout.splitlines())) <= 80
    assert "4 vfolders" in table.stdout and "b-side" in table.stdout and vfolder(0)[:8] in table.stdout

    def listed(*args: str) -> list[str]:
        return [v["name"] for v in as_json(db, "vfolder", "list", *args)]

    assert listed() == ["b-side", "vf0", "vf1", "vf2"]
    assert listed("--group-id", GROUP) == ["vf0", "vf1", "vf2"]
    assert listed("--host", "ceph") == ["b-side"]
    assert listed("--group-id", OTHER, "--host", "nfs") == []
    page = as_json(db, "vfolder", "list", "--limit", "1")
    assert [v["name"] for v in page["items"]] == ["b-side"] and page["next_after"] is not None

    shown = as_json(db, "vfolder", "show", vfolder(1))
    assert shown == {"vfolder_id": vfolder(1), "group_id": GROUP, "host": "nfs", "name": "vf1"}
    assert "vf1" in ok(db, "vfolder", "show", vfolder(1)).stdout
    unknown = str(uuid.UUID(int=98))
    assert refused(db, "vfolder", "show", unknown) == f"error: vfolder_not_found: vfolder '{unknown}' not found"


def test_the_commands_are_listed_in_help(db: str) -> None:
    help_text = ok(db, "--help").stdout
    assert "kernel" in help_text and "vfolder" in help_text


def endpoint(i: int) -> str:
    return str(uuid.uuid5(NS, f"ep{i}"))


def test_endpoint_list_and_show(db: str) -> None:
    given_domains(db, "d1")
    ok(db, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    begin, end = workload_facts(vfolders=1, kernels=1, endpoints=3)
    ok(db, *SERVICE, "workload", "import", "-", input=jsonl([*begin, end[-1]]))  # ep2 destroyed

    listed = as_json(db, "endpoint", "list", "--group-id", GROUP)
    assert [(e["endpoint_id"], e["name"], e["active"]) for e in listed] == [
        (endpoint(0), "ep0", True),
        (endpoint(1), "ep1", True),
    ]
    table = ledger(db, "endpoint", "list", "--group-id", GROUP, columns=80)
    assert table.exit_code == 0 and max(map(len, table.stdout.splitlines())) <= 80
    assert "2 active endpoints" in table.stdout and endpoint(0)[:8] in table.stdout and "ep1" in table.stdout
    assert as_json(db, "endpoint", "list", "--group-id", OTHER) == []

    assert as_json(db, "endpoint", "show", endpoint(2)) == {
        "endpoint_id": endpoint(2),
        "group_id": GROUP,
        "name": "ep2",
        "active": False,
    }
    assert "ep0" in ok(db, "endpoint", "show", endpoint(0)).stdout
    unknown = str(uuid.UUID(int=97))
    assert refused(db, "endpoint", "show", unknown) == f"error: endpoint_not_found: endpoint '{unknown}' not found"
    assert refused(db, "endpoint", "show", kernel(0)).startswith("error: endpoint_not_found: endpoint")
    assert refused(db, "endpoint", "list", "--group-id", "nope").startswith(f"{INVALID} --group-id:")
    assert usage_error(db, "endpoint", "list").startswith("error: usage:")


TWINS = ["abcdef12-0000-4000-8000-000000000001", "abcdef12-0000-4000-8000-000000000002"]


def _twin_kernels(db: str) -> list[str]:
    """Two running kernels whose ids share their first 8 characters (and more): their ids."""
    begin, _ = workload_facts(vfolders=1, kernels=2, endpoints=0)
    for fact, twin in zip((f for f in begin if f["fact"] == "start_kernel"), TWINS, strict=True):
        fact["kernel_id"] = twin
    begin = [f for f in begin if f["fact"] != "report_kernel_stats"]
    given_domains(db, "d1")
    ok(db, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)
    ok(db, *SERVICE, "workload", "import", "-", input=jsonl(begin))
    return TWINS


def test_kernel_ids_sharing_a_prefix_are_shown_long_enough_to_tell_apart(db: str) -> None:
    """Every id was cut to 8 characters: kernels whose ids share them read as one."""
    twins = _twin_kernels(db)
    table = ledger(db, "kernel", "list", columns=200).stdout
    assert twins[0] in table and twins[1] in table  # the shortest prefixes that differ: whole here
    assert GROUP[:8] in table and GROUP not in table  # the group's id alone stays short


def test_kernel_ids_sharing_a_prefix_are_told_apart_in_80_columns(db: str) -> None:
    """At 80 columns the ids were cut with '…' to fit (and the status with them): two
    kernels whose ids share a long prefix read as the same kernel. They fold instead, as
    `session list` folds its ids."""
    twins = _twin_kernels(db)
    lines = ledger(db, "kernel", "list", columns=80).stdout.splitlines()
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines)
    header = next(line for line in lines if " kernel " in line and " group " in line)
    column = slice(header.index("kernel"), header.index("group"))
    # The kernel column's cells, read down the table: each id whole, over one line or more.
    shown = "".join(line[column].strip() for line in lines[lines.index(header) + 2 :])
    assert sorted("abcdef12" + rest for rest in shown.split("abcdef12")[1:]) == twins
    assert "RUNNING" in "\n".join(lines)


def test_kernel_and_vfolder_lists_page_with_after(db: str) -> None:
    """`--limit N` pages as the other lists do: the next cursor on stderr ('more: --after
    ID') or as `next_after` in JSON, and the pages chained end to end are the whole list."""
    seed(db, kernels=5, vfolders=3, ended=1)
    table = ledger(db, "kernel", "list", "--limit", "2", columns=80)
    assert table.exit_code == 0 and "2 kernels" in table.stdout
    assert table.stderr == f"more: --after {kernel(1)}\n"

    for kind, key, whole in (("kernel", "kernel_id", 5), ("vfolder", "vfolder_id", 4)):
        everything = [row[key] for row in as_json(db, kind, "list")]
        assert len(everything) == whole
        paged: list[str] = []
        after: list[str] = []
        while True:
            page = as_json(db, kind, "list", "--limit", "2", *after)
            paged += [row[key] for row in page["items"]]
            if page["next_after"] is None:
                break
            after = ["--after", page["next_after"]]
        assert paged == everything, kind

    # A running kernel's cursor still places the next page once that kernel has ended
    # and left the --status filter.
    first = as_json(db, "kernel", "list", "--status", "RUNNING", "--limit", "2")
    assert [k["kernel_id"] for k in first["items"]] == [kernel(1), kernel(2)]
    ok(db, *SERVICE, "workload", "kernel-terminate", kernel(2), "--terminated-at", "2024-10-05T00:00:00Z")
    rest = as_json(db, "kernel", "list", "--status", "RUNNING", "--limit", "2", "--after", kernel(2))
    assert [k["kernel_id"] for k in rest["items"]] == [kernel(3), kernel(4)] and rest["next_after"] is None
    # An id no list holds is refused naming --after: an empty page would pass for the end.
    assert "--after: names no kernel" in refused(db, "kernel", "list", "--after", str(uuid.UUID(int=5)))


def test_a_kernel_whose_start_is_imported_late_is_on_the_next_page_though_it_started_first(db: str) -> None:
    """A platform imports yesterday's facts after an operator's export read a page: the
    list was by start time, so the late kernel, started before that page's last row,
    sorted before the cursor and no later page showed it. It lists in the order recorded."""
    seed(db, kernels=3, vfolders=1, ended=0)
    first = as_json(db, "kernel", "list", "--limit", "2")
    assert [k["kernel_id"] for k in first["items"]] == [kernel(0), kernel(1)] and first["next_after"] == kernel(1)
    start_fact = workload_facts(vfolders=1, kernels=1, endpoints=0)[0][1]
    late = {**start_fact, "kernel_id": kernel(9), "session_id": str(uuid.uuid5(NS, "s9"))}
    late["started_at"] = "2024-09-30T00:00:00Z"  # a day before every kernel listed
    later_import = [*SERVICE[:-1], "import-2"]
    ok(db, *later_import, "workload", "import", "-", input=jsonl([late]))
    rest = as_json(db, "kernel", "list", "--limit", "2", "--after", first["next_after"])
    assert [k["kernel_id"] for k in rest["items"]] == [kernel(2), kernel(9)] and rest["next_after"] is None
    assert rest["items"][1]["started_at"] == "2024-09-30T00:00:00Z"
    # A window still selects by start time.
    window = ["--since", "2024-09-30T00:00:00Z", "--until", "2024-10-01T00:00:00Z"]
    assert [k["kernel_id"] for k in as_json(db, "kernel", "list", *window)] == [kernel(9)]


def test_kernel_list_in_40_columns_names_the_columns_it_leaves_out_and_cuts_none(db: str) -> None:
    """At 40 columns rich cut the start time to `2024-1` and dropped ended, access key and
    slots without a word."""
    seed(db, kernels=2, ended=1)
    table = ledger(db, "kernel", "list", columns=40)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(map(len, lines)) <= 40
    assert "2024-10-01" in table.stdout and "TERMINATED" in table.stdout and kernel(0)[:8] in table.stdout
    said = " ".join(line.strip() for line in lines)
    assert "Left out to fit 40 columns: slots, access key, ended (UTC), group (a wider terminal or --json" in said
    wide = ledger(db, "kernel", "list", columns=80).stdout
    assert "Left out" not in wide and "AKUSER" in wide
