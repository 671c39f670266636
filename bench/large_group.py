"""Kernel starts in a group that already runs many kernels: the service vs a bare Application.

Run: .venv/bin/python bench/large_group.py [--running 0 1000 5000 20000] [--starts 300] [--rounds 2]

A group's aggregate keeps every running kernel (with its mounts: the purge and vfolder
checks read them). For each size, both sides first start that many kernels in one group
without ending them (the service through `record_batch`, untimed), then --starts more
one by one, interleaved in chunks: the service through `WorkloadService.start_kernel`, the
bare side as `bench/workload.py` saves them (one save of the kernel and the group per
fact, no cache, no snapshots). Printed per size: microseconds per start and the ratio.
A ratio that falls as the group grows is a cost per command that grows with the group.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import T0, BareApplication, ServicePath, interleaved, start  # bench/ is not a package

from domain.workload import Kernel

CHUNK = 20


class ServiceStarts(ServicePath):
    def fill(self, running: int) -> None:
        async def facts() -> None:
            for first in range(0, running, 1000):
                ids = range(first, min(first + 1000, running))
                await self.service.record_batch([start(self.group_id, uuid.UUID(int=10**9 + i), i) for i in ids])

        self.loop.run_until_complete(facts())

    def run(self, first: int, count: int) -> None:  # starts only: the group keeps growing
        async def facts() -> None:
            for i in range(first, first + count):
                await self.service.start_kernel(start(self.group_id, uuid.UUID(int=i + 1), i))

        self.loop.run_until_complete(facts())


class BareStarts(BareApplication):
    def fill(self, running: int) -> None:
        fields = start(self.group_id, uuid.UUID(int=1), 0).kernel_fields()
        for first in range(0, running, 1000):
            kernels = [
                Kernel.create(str(uuid.UUID(int=10**9 + i)), fields) for i in range(first, min(first + 1000, running))
            ]
            for kernel in kernels:
                self.group.start_kernel(kernel.key, [])
            self.app.save(self.group, *kernels)

    def run(self, first: int, count: int) -> None:  # starts only: the group keeps growing
        template = start(self.group_id, uuid.UUID(int=1), 0).kernel_fields()
        for i in range(first, first + count):
            fields = {**template, "session_name": f"s{i}", "started_at": (T0 + timedelta(minutes=i)).isoformat()}
            kernel = Kernel.create(str(uuid.UUID(int=i + 1)), fields)
            self.group.start_kernel(kernel.key, [])
            self.app.save(kernel, self.group)


def size_round(folder: str, running: int, starts: int) -> dict[str, float]:
    """Microseconds per start on each side, at `running` kernels already running."""
    paths: dict[str, Any] = {"service": ServiceStarts(folder), "bare": BareStarts(folder)}
    for path in paths.values():
        path.fill(running)
        path.run(10**6, CHUNK)  # one untimed chunk each: first calls cost more
    return {name: seconds / starts * 1e6 for name, seconds in interleaved(paths, starts, CHUNK).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--running", type=int, nargs="+", default=[0, 1000, 5000, 20000])
    parser.add_argument("--starts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"kernel starts in a group already running N kernels ({args.starts} starts, rounds: {args.rounds}, medians)")
    print(f"  {'running':>8} {'service us':>11} {'bare us':>9} {'service / bare':>15}")
    for running in args.running:
        rounds = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                rounds.append(size_round(folder, running, args.starts))
        service = statistics.median(r["service"] for r in rounds)
        bare = statistics.median(r["bare"] for r in rounds)
        ratio = statistics.median(r["bare"] / r["service"] for r in rounds)
        print(f"  {running:>8} {service:>11.0f} {bare:>9.0f} {ratio:>14.2f}x")


if __name__ == "__main__":
    main()
