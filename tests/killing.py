"""A child Python process killed with SIGKILL once it has printed enough lines: what a
crash mid-stream leaves behind is then read from the store. And an erasing process that
dies right after its commit, simulated in process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_until_killed(script: str, args: list[str], lines: int) -> list[str]:
    """Runs `script` (python -c) with `args`, reads `lines` lines of its stdout, then kills
    it (-9) whatever it is doing; the lines read, stripped."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    read: list[str] = []
    try:
        for _ in range(lines):
            line = child.stdout.readline()
            assert line, "the child stopped before it was killed"
            read.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    return read


@contextmanager
def dying_after_erasures(app: Any) -> Iterator[None]:
    """Inside, an erasure by `app` (a LedgerApplication) commits and its listeners never
    run, as if its process died right after the commit: the copies they drop stay."""
    listeners = app.erasure_listeners
    saved, listeners[:] = list(listeners), []
    try:
        yield
    finally:
        listeners[:] = saved
