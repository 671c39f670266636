"""What each command writes to SQLite's WAL, page by page: the processor path, the service
path and a bare Application saving the same events.

Run: .venv/bin/python bench/wal_pages.py [--warm 3000] [--pairs 60] [--windows 10]

A WAL commit writes every B-tree page it changed, whole (4 KiB each), and fsyncs them: the
number of pages per command is the I/O a commit pays, whatever the machine. Each path first
writes --warm policy create+modify pairs (so the B-trees have their working depth), the WAL
is checkpointed and truncated, then --pairs more pairs are written and the WAL's frame
headers are read, --windows times: how many frames per command, and which table or index
each page belongs to (SQLite's dbstat). Counts, not timings: the same on a busy and a quiet machine.
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from commands import BareApplication, ProcessorPath, ServicePath  # bench/ is not a package

WAL_HEADER = 32
FRAME_HEADER = 24
# SQLite checkpoints and restarts the WAL once it holds 1,000 frames, which would drop the
# frames counted so far: the measured pairs must write fewer (up to ~6 frames a command).
AUTOCHECKPOINT = 1000


def frames(wal: Path, page_size: int) -> list[int]:
    """The page number of each frame in the WAL file."""
    data = wal.read_bytes()
    step = FRAME_HEADER + page_size
    return [struct.unpack(">I", data[at : at + 4])[0] for at in range(WAL_HEADER, len(data) - step + 1, step)]


def pages_per_command(path: Any, db: Path, warm: int, pairs: int, windows: int) -> tuple[float, dict[str, float]]:
    """Frames per command over `windows` runs of `pairs` pairs, each on a truncated WAL."""
    path.run(10**6, warm)  # names past the measured ones
    conn = sqlite3.connect(db, isolation_level=None)
    written: list[int] = []
    owner: dict[int, str] = {}
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        for window in range(windows):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            path.run(window * pairs, pairs)
            found = frames(Path(f"{db}-wal"), page_size)
            if len(found) >= 0.9 * AUTOCHECKPOINT:
                raise SystemExit(f"{len(found)} frames: near the autocheckpoint, measure fewer --pairs")
            owner.update(conn.execute("SELECT pageno, name FROM dbstat"))
            written += found
    finally:
        conn.close()
    commands = 2 * pairs * windows
    by_tree = collections.Counter(owner.get(page, "(new page)") for page in written)
    return len(written) / commands, {name: count / commands for name, count in by_tree.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=3000, help="pairs written before measuring")
    parser.add_argument("--pairs", type=int, default=60, help="pairs measured (at most 75: see AUTOCHECKPOINT)")
    parser.add_argument("--windows", type=int, default=10, help="measured runs of --pairs pairs each")
    args = parser.parse_args()
    print(
        f"WAL pages written per command (policy create+modify pairs: {args.windows} x {args.pairs}, after {args.warm})"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, path, db in (
            ("processor", ProcessorPath(folder), Path(folder, "ProcessorPath.db")),
            ("service", ServicePath(folder), Path(folder, "ServicePath.db")),
            ("bare", BareApplication(folder), Path(folder, "bare.db")),
        ):
            total, by_tree = pages_per_command(path, db, args.warm, args.pairs, args.windows)
            path.close()
            trees = ", ".join(f"{tree} {count:.2f}" for tree, count in by_tree.items())
            print(f"  {name:10} {total:5.2f}   ({trees})")


if __name__ == "__main__":
    main()
