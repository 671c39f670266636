"""`ledger workload` words: every numeric option's help says its unit, within 80 columns;
the import's progress bar counts with plurals right ('1 fact in 1 batch')."""

from __future__ import annotations

import asyncio
import re

import pytest
from rich.cells import cell_len

from adapters.bootstrap import open_ledger
from domain.group import CreateGroupAction
from tests.adapters.cli.helpers import GROUP, given_domains, jsonl, ledger, workload_facts


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("kernel-stats", ["--cpu-used MS CPU time used, in milliseconds", "--mem-used BYTES Memory used, in bytes"]),
        ("kernel-stats", ["--io-read BYTES Data read so far, in bytes", "--disk-used BYTES Disk space used, in bytes"]),
        ("kernel-stats", ["--io-write BYTES Data written so far, in bytes"]),
        ("kernel-start", ["--session-id UUID The session the kernel belongs to", "--image IMAGE Container image"]),
        ("import", ["--batch-size N", "Facts per atomic append", "every N batches"]),
    ],
)
def test_numeric_options_state_their_unit(db: str, command: str, says: list[str]) -> None:
    result = ledger(db, "workload", command, "--help", columns=80)
    assert result.exit_code == 0
    assert max(cell_len(line) for line in result.stdout.splitlines()) <= 80
    text = " ".join(result.stdout.replace("│", " ").split())
    for words in says:
        assert words in text, words


def test_the_progress_bar_counts_one_fact_in_one_batch(db: str) -> None:
    given_domains(db, "d1")
    with open_ledger(db) as opened:
        action = CreateGroupAction(input={"name": "g", "domain_name": "d1"}, group_id=GROUP)
        asyncio.run(opened.services.group.create_group(action))
    begin, _ = workload_facts(vfolders=3, kernels=0, endpoints=0)
    terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}  # rich draws the bar as on a terminal
    one = ledger(db, "workload", "import", "-", input=jsonl(begin[:1]), env=terminal)
    assert one.exit_code == 0, one.stderr
    assert "1 fact in 1 batch" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", one.stderr)
    more = ledger(db, "workload", "import", "-", "--batch-size", "1", input=jsonl(begin[1:]), env=terminal)
    assert "2 facts in 2 batches" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", more.stderr)
