"""Every module of domain/, projections/ and adapters/ imports on its own, first, in a
fresh interpreter state: an import cycle that works in one order (the test suite's) and
fails in another (a CLI command's) is caught here. `tests/test_import_graph.py` reads the
module-level edges; this imports for real, so a cycle through a package's `__init__`
(importing `a.b.c` runs `a/b/__init__.py` first) is found too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

# Each module imported after every project module and the library's topic cache (which
# refuses a second class under one topic) are dropped: as if it were imported first.
SCRIPT = """
import importlib, json, pkgutil, sys
from pathlib import Path
import eventsourcing.utils
root = Path(sys.argv[1])
names = []
def walk(name, folder):
    names.append(name)
    for info in pkgutil.iter_modules([str(folder)]):
        if info.ispkg:
            walk(f"{name}.{info.name}", folder / info.name)
        elif info.name != "__main__":
            names.append(f"{name}.{info.name}")
for package in ("domain", "projections", "adapters"):
    walk(package, root / package)
part, parts = int(sys.argv[2]), int(sys.argv[3])
failed = {}
for name in names[part::parts]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("domain", "projections", "adapters")]:
        del sys.modules[loaded]
    eventsourcing.utils._topic_cache.clear()
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": len(names), "imported": len(names[part::parts]), "failed": failed}))
"""

# The walk in parts, each in a process of its own: one walk took 45-75 s on one xdist
# worker, and as one of the last tests collected it kept the run waiting on it alone.
PARTS = 4


@pytest.mark.slow
@pytest.mark.parametrize("part", range(PARTS))
def test_every_module_imports_first(part: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(PROJECT), str(part), str(PARTS)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] > 150
    assert result["imported"] == len(range(part, result["modules"], PARTS))
    assert result["failed"] == {}, result["failed"]
