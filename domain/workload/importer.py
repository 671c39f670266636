"""Importing workload facts from JSON Lines: the rule every adapter that takes a file of facts
shares (the CLI's `ledger workload import`, an HTTP upload).

Each line is `{"fact": NAME, ...the action's fields...}`; blank lines are skipped. Facts are
recorded in atomic batches (one `record_workload_batch` action each, permission-checked and
audited like any other). The first line that cannot be recorded (invalid JSON, an unknown
fact, an invalid field, a fact the ledger refuses) stops the import with its number: every
fact before it is stored and none from it on, so a fixed file can be imported again from
that line (`start_line`), or again whole: a fact recorded exactly as given already is skipped
(`RecordWorkloadBatchAction.skip_recorded`), so an import killed anywhere is finished by
running it again. A batch the ledger refuses stores nothing, so its facts are then recorded
one at a time up to the refused one. No I/O here besides iterating the lines given.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.actions import ActionTriggerMeta
from domain.errors import InsufficientPermission, InvalidAPIParameters, LedgerError, StoreUnavailable
from domain.parsers import json_float
from domain.shown import kind_of, shown
from domain.workload.actions import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    RecordWorkloadBatchAction,
    RecordWorkloadBatchActionResult,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
    WorkloadAction,
)

FACTS: dict[str, type[WorkloadAction]] = {
    "create_vfolder": CreateVFolderAction,
    "start_kernel": StartKernelAction,
    "report_kernel_stats": ReportKernelStatsAction,
    "terminate_kernel": TerminateKernelAction,
    "create_endpoint": CreateEndpointAction,
    "destroy_endpoint": DestroyEndpointAction,
}


MAX_LINE_BYTES = 1024 * 1024
"""The longest line read as a fact (one is a few hundred bytes): a file with no line breaks
(a binary file, /dev/zero) is refused at its first line, not read whole into memory."""


def parse_fact(line: bytes) -> tuple[str, WorkloadAction]:
    """One JSONL line: `{"fact": NAME, ...the action's fields...}`."""
    if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        raise InvalidAPIParameters(f"longer than {MAX_LINE_BYTES} bytes: not a fact (is this a JSON Lines file?)")
    try:
        raw = json.loads(line.decode(), parse_float=json_float, object_pairs_hook=_once_each)
    except UnicodeDecodeError as exc:
        raise InvalidAPIParameters(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:  # JSONDecodeError, or a number beyond any range (`json_float`)
        raise InvalidAPIParameters(f"invalid JSON: {exc}") from None
    except RecursionError:  # arrays or objects nested deeper than the parser recurses
        raise InvalidAPIParameters("invalid JSON: nested too deeply") from None
    return fact_of(raw)


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object hook: Python keeps a repeated key's last value, so a line's
    `{"cpu": "1", "cpu": "64"}` stored 64 where the HTTP API and the CLI's options refuse it."""
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [key for key, _ in pairs]
        repeated = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise ValueError(f"key {shown(repeated)} given twice in one object")  # said as invalid JSON
    return found


def fact_of(raw: Any) -> tuple[str, WorkloadAction]:
    """One fact as JSON reads it (a line, or an item of an HTTP body): `{"fact": NAME, ...}`."""
    if not isinstance(raw, dict):
        raise InvalidAPIParameters(f"expected a JSON object, got {kind_of(raw)}")
    fields = dict(raw)  # a copy: an HTTP body is hashed for its Idempotency-Key afterwards
    fact = fields.pop("fact", None)
    if not isinstance(fact, str) or fact not in FACTS:
        expected = ", ".join(FACTS)
        # A fact absent or null is said so, not as Python spells null (`unknown fact None`).
        what = "is required" if fact is None else f"unknown fact {shown(fact)}"
        raise InvalidAPIParameters(f"{what}; one of: {expected}", field="fact")
    return fact, FACTS[fact](**fields)


@dataclass(frozen=True)
class Line:
    number: int
    fact: str
    action: WorkloadAction


_BOM = b"\xef\xbb\xbf"
MAX_REASON = 300  # characters of a refusal shown in a stopped import's one-line error


def bounded(text: str, limit: int = MAX_REASON) -> str:
    """`text`, cut to `limit` characters with a count of what was left off: a refusal can
    name every id of a batch, and the operator needs one readable line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (+{len(text) - limit} more characters)"


class ImportStopped(Exception):
    """Line `line` could not be recorded (`cause` says why); the `recorded` facts before it
    were, and none from it on: the import resumes at `line` once it is fixed."""

    def __init__(self, line: int, cause: LedgerError, recorded: int) -> None:
        super().__init__(cause.message)
        self.line = line
        self.cause = cause
        self.recorded = recorded

    @property
    def reason(self) -> str:
        """Why, bounded (`bounded`)."""
        return bounded(self.cause.message)


class BatchRecorder(Protocol):
    """The `record_workload_batch` processor, as the importer uses it."""

    async def wait_for_complete(
        self, action: RecordWorkloadBatchAction, meta: ActionTriggerMeta, /
    ) -> RecordWorkloadBatchActionResult: ...


@dataclass
class Importer:
    """Records the facts of JSONL lines in atomic batches of `batch_size`, as `meta`'s actor.
    Counts what it stored (`facts`, `batches`; `by_fact` counts the facts handled of each
    kind, `unchanged` those among them that stored nothing: recorded already by an earlier
    run, or stats a later report overtook) and how many bytes of lines it has read (`read`),
    for a progress display. Lines before `start_line` are read but not
    recorded (`skipped` counts the facts among them): an interrupted import resumes there.
    `resume_line` is where to resume: the first line whose fact is not stored."""

    processor: BatchRecorder
    meta: ActionTriggerMeta
    batch_size: int = 500
    start_line: int = 1
    batches: int = 0
    read: int = 0
    lines: int = 0  # lines read, skipped ones included
    skipped: int = 0
    unchanged: int = 0
    recorded_through: int = 0  # the number of the last line whose fact is stored
    by_fact: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        if self.start_line < 1:
            raise InvalidAPIParameters(f"the first line is 1, not {self.start_line}", field="start_line")

    @property
    def facts(self) -> int:
        """The facts this run stored."""
        return sum(self.by_fact.values()) - self.unchanged

    @property
    def resume_line(self) -> int:
        return max(self.start_line, self.recorded_through + 1)

    async def run(self, lines: Iterable[bytes], progress: Callable[[Importer], None] | None = None) -> None:
        """Imports every line; `progress(self)` after each batch. Raises `ImportStopped` at the
        first line that cannot be recorded, once every fact before it is stored."""
        batch: list[Line] = []

        async def flush() -> None:
            await self.record(batch)
            batch.clear()
            if progress is not None:
                progress(self)
            # Nothing above waits (the store is synchronous): without this, a cancellation
            # (asyncio.run's answer to Ctrl-C) would land only when the whole file is done.
            # Here it lands between two batches, where every fact counted is stored.
            await asyncio.sleep(0)

        for number, text in enumerate(lines, start=1):
            self.read += len(text)
            self.lines = number
            if number == 1 and text.startswith(_BOM):  # some editors begin a UTF-8 file with one
                text = text[len(_BOM) :]
            if not text.strip():
                continue
            if number < self.start_line:
                self.skipped += 1
                continue
            try:
                fact, action = parse_fact(text)
            except LedgerError as exc:
                await flush()  # the facts before the bad line are stored
                raise ImportStopped(number, exc, self.facts) from None
            batch.append(Line(number, fact, action))
            if len(batch) >= self.batch_size:
                await flush()
        await flush()

    async def record(self, batch: list[Line]) -> None:
        """One atomic append of `batch`; if the ledger refuses it, the facts before the one it
        names (`batch_index`) as one append, else its facts one by one up to the refused one
        (`ImportStopped`). A refused permission and an unreachable store are no line's
        fault: they stand (tried fact by fact, each would wait out the store again)."""
        if not batch:
            return
        try:
            unchanged = await self._append(batch)
        except (InsufficientPermission, StoreUnavailable):
            raise
        except LedgerError as refused:
            at = refused.batch_index
            if at is not None and 0 <= at < len(batch):
                # One append for the facts before it, not one each (and no second refusal).
                await self.record(batch[:at])
                raise ImportStopped(batch[at].number, refused, self.facts) from None
            for line in batch:
                try:
                    unchanged = await self._append([line])
                except LedgerError as exc:
                    raise ImportStopped(line.number, exc, self.facts) from None
                self._count([line], unchanged)
            return
        self._count(batch, unchanged)

    async def _append(self, batch: list[Line]) -> int:
        """One append; how many of its facts stored nothing."""
        # A fact recorded already (by an earlier run of this import, killed or stopped) is
        # skipped, not refused: running the import again records nothing twice.
        batch_action = RecordWorkloadBatchAction(actions=[x.action for x in batch], skip_recorded=True)
        result = await self.processor.wait_for_complete(batch_action, self.meta)
        return result.unchanged

    def _count(self, batch: list[Line], unchanged: int) -> None:
        self.batches += 1  # one atomic append
        self.by_fact.update(line.fact for line in batch)
        self.unchanged += unchanged
        self.recorded_through = batch[-1].number
