"""The JSON Lines workload import rule, without a ledger: a fake batch processor records or
refuses. End to end (a real ledger, the CLI's file reading and printing) in
tests/adapters/cli/test_cli_groups.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from domain.actions import ActionTriggerMeta
from domain.errors import (
    InsufficientPermission,
    InvalidAPIParameters,
    LedgerError,
    ObjectNotFound,
    StoreUnavailable,
)
from domain.workload import (
    CreateVFolderAction,
    RecordWorkloadBatchAction,
    RecordWorkloadBatchActionResult,
    TerminateKernelAction,
)
from domain.workload.actions import WorkloadAction
from domain.workload.aggregate import id_field
from domain.workload.importer import FACTS, MAX_LINE_BYTES, MAX_REASON, Importer, ImportStopped, bounded, parse_fact

GROUP = "0e0e0e0e-0000-4000-8000-000000000001"
NS = uuid.UUID("5eed0000-0000-4000-8000-000000000000")
META = ActionTriggerMeta(None, "AKSVC", "service", "default", "import-1")


class FakeProcessor:
    """Stores each batch it is given, all or nothing: a batch holding a terminate_kernel
    is refused (no kernel exists), as is every batch when `deny` is set."""

    def __init__(self, deny: bool = False, down_after: int | None = None, placed: bool = True) -> None:
        self.deny = deny
        self.placed = placed  # a refusal names the refused action's index, as the service's does
        self.down_after = down_after  # calls answered before the store becomes unreachable
        self.stored: list[list[str]] = []  # the vfolder names of each stored batch
        self.calls = 0

    async def wait_for_complete(
        self, action: RecordWorkloadBatchAction, meta: ActionTriggerMeta
    ) -> RecordWorkloadBatchActionResult:
        assert meta is META
        self.calls += 1
        if self.down_after is not None and self.calls > self.down_after:
            raise StoreUnavailable("event store write failed: connection lost")
        if self.deny:
            raise InsufficientPermission(actor="role service", operation="record_batch", entity="workload")
        terminates = [i for i, a in enumerate(action.actions) if isinstance(a, TerminateKernelAction)]
        if terminates:
            refused = ObjectNotFound("kernel not found")
            refused.batch_index = terminates[0] if self.placed else None
            raise refused
        self.stored.append([a.name for a in action.actions if isinstance(a, CreateVFolderAction)])
        return RecordWorkloadBatchActionResult(len(action.actions), action.entity_ids())


def vfolder(i: int) -> bytes:
    fact = {"fact": "create_vfolder", "vfolder_id": str(uuid.uuid5(NS, f"v{i}")), "name": f"v{i}", "host": "h"}
    return (json.dumps({**fact, "group_id": GROUP}) + "\n").encode()


TERMINATE = (
    json.dumps({"fact": "terminate_kernel", "kernel_id": str(uuid.uuid5(NS, "k")), "terminated_at": "2024-10-01"})
    + "\n"
).encode()


def run(lines: list[bytes], batch_size: int, processor: FakeProcessor | None = None) -> tuple[Importer, FakeProcessor]:
    processor = processor or FakeProcessor()
    importer = Importer(processor, META, batch_size)
    asyncio.run(importer.run(lines))
    return importer, processor


def test_parse_fact_builds_the_named_action() -> None:
    fact, action = parse_fact(vfolder(1))
    assert fact == "create_vfolder" and isinstance(action, FACTS["create_vfolder"])
    assert str(action.group_id) == GROUP


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[1]", "expected a JSON object, got a list"),
        (b'{"fact": ', "invalid JSON: "),
        (b'{"fact": "caf\xe9"}', "not UTF-8 text: "),
        # Nesting deeper than the parser's recursion: a RecursionError, an internal error
        # naming no line.
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: "),
        (b'{"fact": "launch_rocket"}', "fact: unknown fact 'launch_rocket'; one of: create_vfolder, start_kernel"),
        (b'{"fact": "destroy_endpoint", "endpoint_id": "x"}', "endpoint_id: 'x' is not a UUID"),
        # Python kept the last of a repeated key: a fact stored what the HTTP API refuses.
        (b'{"fact": "create_endpoint", "fact": "destroy_endpoint"}', "invalid JSON: key 'fact' given twice"),
        (b'{"fact": "x", "occupied_slots": {"cpu": "1", "cpu": "64"}}', "invalid JSON: key 'cpu' given twice"),
    ],
)
def test_parse_fact_refuses_with_the_reason(line: bytes, message: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        parse_fact(line)
    assert info.value.message.startswith(message)


def test_a_line_longer_than_any_fact_is_refused_unparsed() -> None:
    line = b'{"fact": "' + b"x" * MAX_LINE_BYTES + b'"}\n'
    with pytest.raises(InvalidAPIParameters, match=f"longer than {MAX_LINE_BYTES} bytes"):
        parse_fact(line)


def test_an_unknown_fact_is_named_short() -> None:
    """A megabyte fact name came back whole in the refusal (an HTTP problem's detail too)."""
    with pytest.raises(InvalidAPIParameters) as info:
        parse_fact(b'{"fact": "' + b"x" * 1_000_000 + b'"}')
    assert len(info.value.message) < 200 and info.value.field == "fact"


def test_facts_go_in_batches_and_blank_lines_are_skipped() -> None:
    lines = [vfolder(i) for i in range(7)]
    lines.insert(3, b"   \n")
    seen: list[tuple[int, int, int]] = []
    importer = Importer(FakeProcessor(), META, batch_size=3)
    asyncio.run(importer.run(lines, progress=lambda i: seen.append((i.read, i.facts, i.batches))))
    assert (importer.facts, importer.batches, dict(importer.by_fact)) == (7, 3, {"create_vfolder": 7})
    total = sum(len(line) for line in lines)
    assert seen[-1] == (total, 7, 3)
    assert [facts for _, facts, _ in seen] == [3, 6, 7]


def test_a_bad_line_stops_the_import_after_storing_what_came_before() -> None:
    lines = [vfolder(i) for i in range(10)]
    lines[7] = b'{"fact": '
    with pytest.raises(ImportStopped) as info:
        run(lines, batch_size=5)
    stop = info.value
    assert (stop.line, stop.recorded) == (8, 7)
    assert isinstance(stop.cause, InvalidAPIParameters)


@pytest.mark.parametrize("placed", [True, False])
def test_a_refused_batch_is_recorded_up_to_the_refused_line(placed: bool) -> None:
    lines = [vfolder(i) for i in range(10)]
    lines[6] = TERMINATE
    processor = FakeProcessor(placed=placed)
    with pytest.raises(ImportStopped) as info:
        run(lines, batch_size=4, processor=processor)
    stop = info.value
    assert (stop.line, stop.recorded) == (7, 6)
    assert isinstance(stop.cause, ObjectNotFound)
    # The first batch whole; of the refused second batch, the good facts before the one
    # the refusal names as one append (they were appended one by one, each its own
    # action and audit record), or one by one when it names none.
    refused_batch = [["v4", "v5"]] if placed else [["v4"], ["v5"]]
    assert processor.stored == [["v0", "v1", "v2", "v3"], *refused_batch]
    assert processor.calls == (3 if placed else 5)


def test_a_refused_permission_is_no_lines_fault() -> None:
    processor = FakeProcessor(deny=True)
    with pytest.raises(LedgerError) as info:
        run([vfolder(i) for i in range(3)], batch_size=10, processor=processor)
    assert isinstance(info.value, InsufficientPermission) and not isinstance(info.value, ImportStopped)
    assert processor.calls == 1  # not narrowed line by line


def test_an_unreachable_store_is_no_lines_fault() -> None:
    # It was taken for a refused batch: the batch was tried again fact by fact (each
    # attempt waiting out the connection timeout: three minutes on a PostgreSQL lost
    # mid-import) and the import stopped at the batch's first line, "fix the line".
    processor = FakeProcessor(down_after=1)
    importer = Importer(processor, META, batch_size=4)
    with pytest.raises(StoreUnavailable):
        asyncio.run(importer.run([vfolder(i) for i in range(10)]))
    assert processor.calls == 2  # the first batch stored, the second tried once
    assert (importer.facts, importer.resume_line) == (4, 5)


# Resuming: start_line, recorded_through, resume_line; bounded reasons


def test_lines_before_start_line_are_read_not_recorded() -> None:
    lines = [vfolder(i) for i in range(10)]
    lines.insert(2, b"\n")  # line 3 is blank: read, neither skipped nor recorded
    processor = FakeProcessor()
    importer = Importer(processor, META, batch_size=4, start_line=6)
    seen: list[int] = []
    asyncio.run(importer.run(lines, progress=lambda i: seen.append(i.read)))
    assert processor.stored == [["v4", "v5", "v6", "v7"], ["v8", "v9"]]
    assert (importer.facts, importer.skipped, importer.batches, importer.lines) == (6, 4, 2, 11)
    assert seen[-1] == sum(len(line) for line in lines)  # the bar counts the skipped bytes too
    assert (importer.recorded_through, importer.resume_line) == (11, 12)


def test_a_stop_after_a_resume_names_the_line_to_resume_at() -> None:
    lines = [vfolder(i) for i in range(10)]
    lines[8] = TERMINATE
    importer = Importer(FakeProcessor(), META, batch_size=3, start_line=4)
    with pytest.raises(ImportStopped) as info:
        asyncio.run(importer.run(lines))
    assert (info.value.line, info.value.recorded, importer.skipped) == (9, 5, 3)
    assert (importer.recorded_through, importer.resume_line) == (8, 9)


def test_resume_line_after_a_refused_permission_is_the_first_unrecorded_line() -> None:
    importer = Importer(FakeProcessor(deny=True), META, batch_size=10, start_line=5)
    with pytest.raises(InsufficientPermission):
        asyncio.run(importer.run([vfolder(i) for i in range(8)]))
    assert (importer.facts, importer.resume_line) == (0, 5)


def test_start_line_counts_from_one() -> None:
    with pytest.raises(InvalidAPIParameters, match="start_line: the first line is 1, not 0"):
        Importer(FakeProcessor(), META, start_line=0)


def test_the_reason_of_a_stop_is_bounded() -> None:
    assert bounded("short") == "short"
    cut = bounded("k" * (MAX_REASON + 20_000))
    assert cut == "k" * MAX_REASON + "... (+20000 more characters)"
    stop = ImportStopped(3, ObjectNotFound("kernel " + ", ".join(str(uuid.uuid5(NS, f"k{i}")) for i in range(600))), 2)
    assert len(stop.reason) < MAX_REASON + 40 and stop.reason.endswith(" more characters)")
    assert stop.cause.message.startswith(stop.reason[:MAX_REASON])


def test_a_taken_id_names_the_field_each_fact_gives_it_in() -> None:
    """A duplicate id's refusal points at the fact's own id field (`kernel_id`): the one
    rule that names it (`id_field`) agrees with every fact's ID_FIELD."""
    facts = WorkloadAction.__subclasses__()
    assert len(facts) == len(FACTS)
    for fact in facts:
        assert id_field(fact.ENTITY) == fact.ID_FIELD, fact.__name__
