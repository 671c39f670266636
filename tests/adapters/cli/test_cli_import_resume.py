"""`ledger workload import`: a stopped import's error is one bounded line saying where to
resume, `--from-line N` resumes it, and without a terminal progress goes to stderr as lines.
On SQLite and PostgreSQL (`ledger_url`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.cli.helpers import (
    GROUP,
    NS,
    ROOT,
    SERVICE,
    as_json,
    given_domains,
    jsonl,
    ledger,
    ok,
    refused,
    workload_facts,
)


def make_group(db: str) -> None:
    given_domains(db, "d1")
    ok(db, "group", "create", "team-a", "--domain-name", "d1", "--id", GROUP)


def events(db: str) -> list[str]:
    return [e["event"] for e in as_json(db, "group", "history", GROUP)]


def kernel(i: int, group: str = GROUP) -> dict[str, Any]:
    return {
        "fact": "start_kernel",
        "kernel_id": str(uuid.uuid5(NS, f"resume-k{i}")),
        "session_id": str(uuid.uuid5(NS, f"resume-s{i}")),
        "session_name": f"s{i}",
        "group_id": group,
        "domain_name": "d1",
        "user_id": "aaaaaaaa-0000-4000-8000-000000000001",
        "access_key": "AKUSER",
        "occupied_slots": {"cpu": "1"},
        "started_at": "2024-10-01T00:00:00Z",
    }


def test_a_stopped_import_resumes_from_the_line_its_error_names(ledger_url: str, tmp_path: Path) -> None:
    make_group(ledger_url)
    begin, end = workload_facts(vfolders=4, kernels=10, endpoints=2)
    ghost = str(uuid.uuid5(NS, "ghost"))
    facts = [*begin, {"fact": "terminate_kernel", "kernel_id": ghost, "terminated_at": "2024-10-03T00:00:00Z"}, *end]
    path = tmp_path / "f.jsonl"
    path.write_text(jsonl(facts))
    bad = len(begin) + 1
    line = refused(ledger_url, "workload", "import", str(path), "--batch-size", "7")
    assert line == (
        f"error: kernel_not_found: line {bad}: kernel '{ghost}' not found "
        f"({len(begin)} facts before it were recorded; fix the line and resume with --from-line {bad})"
    )
    # The operator drops the bad fact in place (a blank line keeps the numbers) and resumes there.
    lines = path.read_text().splitlines()
    lines[bad - 1] = ""
    path.write_text("\n".join(lines) + "\n")
    summary = as_json(ledger_url, "workload", "import", str(path), "--from-line", str(bad), "--batch-size", "7")
    assert (summary["facts"], summary["skipped"], summary["from_line"]) == (len(end), len(begin), bad)
    assert summary["by_fact"] == {"terminate_kernel": 10, "destroy_endpoint": 2}
    # Nothing was recorded twice: every kernel started and ended once, and the group purges.
    history = events(ledger_url)
    assert history.count("KernelStarted") == 10 and history.count("KernelEnded") == 10
    assert as_json(ledger_url, "group", "purge", GROUP)["id"] == GROUP


def test_importing_the_file_whole_again_records_nothing_twice(ledger_url: str) -> None:
    """The facts before a stop are stored: importing the file whole again once stopped at
    its first line (the id is taken), and advised resuming there, a loop. A fact recorded
    exactly as given is now skipped; one that differs from what its id holds is refused."""
    make_group(ledger_url)
    text = jsonl([kernel(0), kernel(1), {"fact": "launch_rocket"}, kernel(3)])
    line = refused(ledger_url, "workload", "import", "-", input=text)
    assert line.endswith("(2 facts before it were recorded; fix the line and resume with --from-line 3)")
    again = refused(ledger_url, "workload", "import", "-", input=text)  # the same stop, nothing doubled
    assert again.startswith("error: ledger_invalid_parameters: line 3: fact: unknown fact 'launch_rocket'")
    assert events(ledger_url).count("KernelStarted") == 2
    out = ok(ledger_url, "workload", "import", "-", "--from-line", "4", input=text).stdout.splitlines()
    assert out[0].startswith("imported 1 fact in 1 batch in ")
    assert out[1:] == ["skipped 3 facts before line 4", "start_kernel=1"]
    assert events(ledger_url).count("KernelStarted") == 3
    whole = ok(ledger_url, "workload", "import", "-", "--from-line", "4", input=text).stdout.splitlines()
    assert whole[0].startswith("imported 0 facts in 1 batch in ")
    assert whole[2] == "1 fact stored nothing (recorded already, or stats a later report overtook)"
    changed = {**kernel(0), "session_name": "another"}  # the id of a recorded kernel, other fields
    taken = refused(ledger_url, "workload", "import", "-", input=jsonl([changed]))
    assert taken.startswith("error: workload_duplicate_id: line 1: kernel ")
    as_json_error = refused(ledger_url, "--json", "workload", "import", "-", input=jsonl([changed]))
    assert {k: json.loads(as_json_error)["error"][k] for k in ("field", "status")} == {
        "field": "kernel_id",
        "status": 409,
    }


def test_an_import_killed_anywhere_is_finished_by_running_it_again(ledger_url: str, tmp_path: Path) -> None:
    """What a kill -9 between two batches leaves (the first batches stored, no stop message
    naming a line): the same command again, whole, records every fact once."""
    make_group(ledger_url)
    begin, end = workload_facts(vfolders=3, kernels=8, endpoints=2)
    facts = [*begin, *end]
    path = tmp_path / "f.jsonl"
    path.write_text(jsonl(facts))
    head = tmp_path / "head.jsonl"
    got_through = len(facts) // 2 + 3
    head.write_text(jsonl(facts[:got_through]))  # the part a killed run got through
    ok(ledger_url, *SERVICE, "workload", "import", str(head), "--batch-size", "5")
    summary = as_json(ledger_url, *SERVICE, "workload", "import", str(path), "--batch-size", "5")
    # What the first run stored is reported as stored by it alone, not as imported again.
    assert (summary["facts"], summary["unchanged"]) == (len(facts) - got_through, got_through)
    assert sum(summary["by_fact"].values()) == len(facts)
    history = events(ledger_url)
    assert history.count("KernelStarted") == 8 and history.count("KernelEnded") == 8
    assert history.count("EndpointCreated") == 2 and history.count("EndpointDestroyed") == 2
    kernels = as_json(ledger_url, "kernel", "list")
    assert len(kernels) == 8 and all(k["status"] == "TERMINATED" for k in kernels)
    assert as_json(ledger_url, "group", "purge", GROUP)["id"] == GROUP


def test_a_kernel_cannot_end_before_its_last_stats_report(ledger_url: str) -> None:
    """A terminate dated before the kernel's last stats report was recorded (its stats then
    came from after its end, which a report dated after the end is refused for), and the
    same file imported again stopped at that stats line: the re-run could not finish."""
    make_group(ledger_url)
    start = kernel(0)
    stats = {"fact": "report_kernel_stats", "kernel_id": start["kernel_id"], "reported_at": "2024-10-01T05:00:00Z"}
    end = {"fact": "terminate_kernel", "kernel_id": start["kernel_id"], "terminated_at": "2024-10-01T03:00:00Z"}
    text = jsonl([start, {**stats, "cpu_used": 7}, end])
    line = refused(ledger_url, "workload", "import", "-", input=text)
    assert line.startswith("error: ledger_invalid_parameters: line 3: terminated_at: ")
    assert line.endswith("(2 facts before it were recorded; fix the line and resume with --from-line 3)")
    again = refused(ledger_url, "workload", "import", "-", input=text)  # the same stop, nothing doubled
    assert again.startswith("error: ledger_invalid_parameters: line 3: terminated_at: ")
    assert events(ledger_url).count("KernelEnded") == 0


def test_from_line_past_the_end_records_nothing(ledger_url: str) -> None:
    make_group(ledger_url)
    summary = as_json(ledger_url, "workload", "import", "-", "--from-line", "99", input=jsonl([kernel(0)]))
    assert (summary["facts"], summary["batches"], summary["skipped"]) == (0, 0, 1)
    assert "KernelStarted" not in events(ledger_url)
    said = ledger(ledger_url, "workload", "import", "-", "--from-line", "99", input=jsonl([kernel(0)]))
    assert said.exit_code == 0 and "warning: --from-line 99 is past the last line (1)" in said.stderr


def test_a_file_beginning_with_a_byte_order_mark_imports(ledger_url: str) -> None:
    """Some editors begin a UTF-8 file with U+FEFF: its first line was refused as invalid JSON."""
    make_group(ledger_url)
    summary = as_json(ledger_url, "workload", "import", "-", input="\ufeff" + jsonl([kernel(0), kernel(1)]))
    assert summary["facts"] == 2


def test_from_line_must_be_a_line_number(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    for value in ("0", "-1", "x"):
        result = ledger(db, "workload", "import", "-", "--from-line", value, input="")
        assert result.exit_code == 2 and "--from-line" in result.stderr and result.stderr.count("\n") == 1


def test_a_refused_message_is_bounded_to_one_short_line(ledger_url: str) -> None:
    make_group(ledger_url)
    huge_name = "n" * 20_000
    fact = {"fact": "create_vfolder", "vfolder_id": str(uuid.uuid5(NS, "v")), "name": "v", "host": "h"}
    fact["group_id"] = GROUP
    fact["name"] = huge_name  # the refusal of a value may quote it; the error line stays short
    line = refused(ledger_url, "workload", "import", "-", input=json.dumps(fact) + "\n")
    assert line.startswith("error: ledger_invalid_parameters: line 1: name: ")
    assert len(line) < 600
    assert line.endswith("(0 facts before it were recorded; fix the line and resume with --from-line 1)")


def test_a_refused_permission_says_where_to_resume(ledger_url: str) -> None:
    make_group(ledger_url)
    kernels = [kernel(i) for i in range(600)]
    ok(ledger_url, *SERVICE, "workload", "import", "-", "--batch-size", "200", input=jsonl(kernels[:200]))
    line = refused(ledger_url, "--role", "user", "workload", "import", "-", "--from-line", "201", input=jsonl(kernels))
    assert line.startswith("error: permission_forbidden: user (anonymous) may not record_batch workload ")
    assert line.endswith("(+399 more) (0 facts recorded; resume with --from-line 201)")  # one batch of 400
    assert len(line) < 400


def test_progress_lines_on_stderr_without_a_terminal(ledger_url: str) -> None:
    make_group(ledger_url)
    text = jsonl([kernel(i) for i in range(25)])
    result = ledger(ledger_url, "workload", "import", "-", "--batch-size", "4", "--progress-every", "3", input=text)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "progress: 12 facts in 3 batches, through line 12",
        "progress: 24 facts in 6 batches, through line 24",
        "imported 25 facts in 7 batches, through line 25",
    ]
    assert result.stdout.startswith("imported 25 facts in 7 batches in ")


def test_progress_plurals_and_the_last_line_only(ledger_url: str) -> None:
    make_group(ledger_url)
    result = ledger(ledger_url, "--json", "workload", "import", "-", "--progress-every", "0", input=jsonl([kernel(0)]))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "imported 1 fact in 1 batch, through line 1\n"
    assert json.loads(result.stdout)["facts"] == 1


@pytest.mark.parametrize("every", ["-1", "x"])
def test_progress_every_is_a_count(every: str, tmp_path: Path) -> None:
    result = ledger(f"sqlite:///{tmp_path / 'l.db'}", "workload", "import", "-", "--progress-every", every, input="")
    assert result.exit_code == 2 and "--progress-every" in result.stderr


def test_a_terminal_gets_the_bar_not_the_lines(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    make_group(db)
    text = jsonl([kernel(i) for i in range(10)])
    args = ("workload", "import", "-", "--batch-size", "1", "--progress-every", "1")
    result = ledger(db, *args, input=text, env={"FORCE_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    assert "progress:" not in result.stderr and "importing <stdin>" in result.stderr


@pytest.mark.parametrize(
    ("signum", "exit_code", "how"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_ctrl_c_stops_an_import_at_the_end_of_its_batch_and_says_where_to_resume(
    ledger_url: str, signum: int, exit_code: int, how: str
) -> None:
    """Ctrl-C was held off to the end of the file (asyncio.run cancels its task on SIGINT,
    and the import never waited on anything for the cancellation to land), then the
    import, complete, exited 130 without a word. SIGTERM (a service manager's stop) killed
    it silently, exit 143, without the line to resume from."""
    make_group(ledger_url)
    command = [sys.executable, "-m", "adapters.cli", "--db", ledger_url, "workload", "import", "-"]
    child = subprocess.Popen(
        [*command, "--batch-size", "2", "--progress-every", "1"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stderr is not None
    try:
        child.stdin.write(jsonl([kernel(0), kernel(1)]))
        child.stdin.flush()
        assert child.stderr.readline() == "progress: 2 facts in 1 batch, through line 2\n"
        child.send_signal(signum)  # while it waits for the next lines
        if signum == signal.SIGTERM:  # it stops without them (a pipe may bring none for hours)
            child.wait(timeout=30)
        time.sleep(0.5)
        _, err = child.communicate(jsonl([kernel(i) for i in range(2, 8)]), timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == exit_code, err
    # It stops at the end of the batch it is in when the signal lands (the first, whose
    # progress line was just printed, or the next), and says exactly what it stored.
    recorded = len(as_json(ledger_url, "kernel", "list"))
    assert recorded in (2, 4)
    batches = "1 batch" if recorded == 2 else "2 batches"
    assert err.splitlines()[-1] == (
        f"error: interrupted: stopped by {how} after {batches} ({recorded} facts recorded; "
        f"resume with --from-line {recorded + 1})"
    )


def test_a_line_naming_a_key_twice_stops_the_import_there(db: str) -> None:
    """A start_kernel line with `"occupied_slots": {"cpu": "1", "cpu": "64"}` was recorded
    with 64 cpus, silently, though `--slots` and the HTTP API refuse a key given twice."""
    make_group(db)
    begin, _ = workload_facts(vfolders=1, kernels=1, endpoints=0)
    line = json.dumps(begin[1]).replace('"cpu": "1"', '"cpu": "1", "cpu": "64"')
    assert '"cpu": "64"' in line
    refusal = refused(db, *SERVICE, "workload", "import", "-", input=json.dumps(begin[0]) + "\n" + line + "\n")
    assert "line 2: invalid JSON: key 'cpu' given twice in one object" in refusal
    assert as_json(db, "kernel", "list") == []


def test_a_file_without_line_breaks_is_refused_at_its_first_line_not_read_whole(db: str, tmp_path: Path) -> None:
    """A file with no line breaks (a binary file, /dev/zero) was read whole as one line:
    /dev/zero grew the process until `internal error: MemoryError`. A line is read at most
    one byte past MAX_LINE_BYTES, refused at that point; one skipped by --from-line is passed over."""
    from domain.workload.importer import MAX_LINE_BYTES

    make_group(db)
    begin, _ = workload_facts(vfolders=1, kernels=0, endpoints=0)
    path = tmp_path / "facts.jsonl"
    path.write_bytes(b"\0" * (2 * MAX_LINE_BYTES) + b"\n" + jsonl(begin).encode())
    refusal = refused(db, *SERVICE, "workload", "import", str(path))
    assert f"line 1: longer than {MAX_LINE_BYTES} bytes: not a fact" in refusal
    summary = as_json(db, *SERVICE, "workload", "import", str(path), "--from-line", "2")
    assert (summary["facts"], summary["skipped"]) == (1, 1)


def test_a_file_that_fails_to_read_says_so_and_where_to_resume(db: str) -> None:
    """A read error (here /proc/self/mem, whose first page is not mapped) was `internal
    error: OSError: [Errno 5] Input/output error`, without the line to resume from."""
    make_group(db)
    assert refused(db, *SERVICE, "workload", "import", "/proc/self/mem") == (
        "error: ledger_invalid_parameters: FILE.jsonl: cannot read '/proc/self/mem' after line 0: "
        "Input/output error (0 facts recorded; resume with --from-line 1)"
    )
