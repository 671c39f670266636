"""`ledger workload ...`: the workload facts purge checks and usage reports need, one by one
through the workload processors, or imported from JSON Lines in atomic batches (the import
rule is `domain.workload.importer`'s; here the file, the progress bar and the summary)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adapters.cli.app import (
    Interrupted,
    State,
    fail,
    sigterm_as_ctrl_c,
    state_of,
    stopped_by,
)
from adapters.cli.options import parse_slots_option
from adapters.cli.render import fields_table, plural, print_table, safe

if TYPE_CHECKING:
    from rich.progress import Progress

    from domain.workload import WorkloadAction, WorkloadActionResult

workload_app = typer.Typer(
    no_args_is_help=True,
    help="Workload facts the platform reports: vfolders, kernels, endpoints (one by one or a JSONL import).",
)

IdArg = Annotated[str, typer.Argument(metavar="UUID")]
TimeOption = Annotated[str, typer.Option(metavar="ISO", help="ISO 8601 time; without a zone it is UTC.")]
GroupOption = Annotated[str, typer.Option("--group-id", metavar="UUID", help="The group it belongs to.")]
NameOption = Annotated[str, typer.Option("--name", metavar="NAME", help="Its name.")]


def _bytes_option(what: str) -> Any:
    return typer.Option(metavar="BYTES", help=f"{what}, in bytes. Default: 0.")


def _record(state: State, method: str, action: WorkloadAction, done: str) -> None:
    with state.ledger() as ledger:
        result: WorkloadActionResult = state.run(getattr(ledger.processors.workload, method), action)
    data = {"entity": result.entity, "id": str(result.id), "fields": result.fields}

    def human() -> None:
        typer.echo(f"{done} {result.entity} {result.id}")
        print_table(fields_table(result.fields))

    state.output(data, human)


@workload_app.command("vfolder-create")
def vfolder_create(
    ctx: typer.Context,
    vfolder_id: IdArg,
    name: NameOption,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Storage host.")],
    group_id: GroupOption,
    owner_access_key: Annotated[
        str | None,
        typer.Option(
            "--owner-access-key",
            metavar="KEY",
            help="The keypair creating it: the host must grant it create-vfolder and its effective "
            "policy's max_vfolder_count applies. Without it, a fact recorded unchecked (imported history).",
        ),
    ] = None,
) -> None:
    """Record a vfolder created in an active group, under the storage limits of its
    owner's keypair when --owner-access-key names one."""
    from domain.workload import CreateVFolderAction

    action = CreateVFolderAction(
        vfolder_id=vfolder_id, name=name, host=host, group_id=group_id, owner_access_key=owner_access_key
    )
    _record(state_of(ctx), "create_vfolder", action, "created")


@workload_app.command("kernel-start")
def kernel_start(
    ctx: typer.Context,
    kernel_id: IdArg,
    session_id: Annotated[str, typer.Option(metavar="UUID", help="The session the kernel belongs to.")],
    session_name: Annotated[str, typer.Option(metavar="NAME", help="The session's name.")],
    group_id: GroupOption,
    owner: Annotated[
        str, typer.Option("--owner", metavar="UUID", help="The user running the kernel (not the actor --user-id).")
    ],
    kernel_access_key: Annotated[
        str, typer.Option(metavar="KEY", help="The access key the kernel runs under (not the actor --access-key).")
    ],
    slots: Annotated[
        Any, typer.Option(parser=parse_slots_option, metavar="JSON|k=v,...", help="Occupied resource slots.")
    ],
    started_at: TimeOption,
    domain_name: Annotated[
        str | None, typer.Option("--domain-name", metavar="DOMAIN", help="Default: the root --domain.")
    ] = None,
    mount: Annotated[
        list[str] | None, typer.Option("--mount", metavar="VFOLDER_ID", help="A mounted vfolder (repeatable).")
    ] = None,
    image: Annotated[str | None, typer.Option(metavar="IMAGE", help="Container image. Default: unknown.")] = None,
    agent: Annotated[str | None, typer.Option(metavar="AGENT", help="Agent running it. Default: unknown.")] = None,
) -> None:
    """Record a kernel started (RUNNING) in an active group."""
    from domain.workload import StartKernelAction

    state = state_of(ctx)
    optional = {"image": image, "agent": agent}
    action = StartKernelAction(
        kernel_id=kernel_id,
        session_id=session_id,
        session_name=session_name,
        group_id=group_id,
        domain_name=domain_name or state.meta.domain_name,
        user_id=owner,
        access_key=kernel_access_key,
        occupied_slots=slots,
        started_at=started_at,
        mounts=mount or [],
        **{k: v for k, v in optional.items() if v is not None},
    )
    _record(state, "start_kernel", action, "started")


@workload_app.command("kernel-stats")
def kernel_stats(
    ctx: typer.Context,
    kernel_id: IdArg,
    reported_at: TimeOption,
    cpu_used: Annotated[
        str | None, typer.Option(metavar="MS", help="CPU time used, in milliseconds (a decimal number). Default: 0.")
    ] = None,
    mem_used: Annotated[int | None, _bytes_option("Memory used")] = None,
    io_read: Annotated[int | None, _bytes_option("Data read so far")] = None,
    io_write: Annotated[int | None, _bytes_option("Data written so far")] = None,
    disk_used: Annotated[int | None, _bytes_option("Disk space used")] = None,
) -> None:
    """Record a kernel's latest resource usage. Amounts not given are 0."""
    from domain.workload import ReportKernelStatsAction

    amounts = dict(cpu_used=cpu_used, mem_used=mem_used, io_read=io_read, io_write=io_write, disk_used=disk_used)
    given = {k: v for k, v in amounts.items() if v is not None}
    action = ReportKernelStatsAction(kernel_id=kernel_id, reported_at=reported_at, **given)
    _record(state_of(ctx), "report_kernel_stats", action, "recorded stats of")


@workload_app.command("kernel-terminate")
def kernel_terminate(
    ctx: typer.Context,
    kernel_id: IdArg,
    terminated_at: TimeOption,
    status: Annotated[str, typer.Option(metavar="TERMINATED|CANCELLED", help="How the kernel ended.")] = "TERMINATED",
) -> None:
    """Record a kernel's end; it no longer holds its group's purge."""
    from domain.workload import TerminateKernelAction

    action = TerminateKernelAction(kernel_id=kernel_id, terminated_at=terminated_at, status=status)
    _record(state_of(ctx), "terminate_kernel", action, "terminated")


@workload_app.command("endpoint-create")
def endpoint_create(ctx: typer.Context, endpoint_id: IdArg, group_id: GroupOption, name: NameOption) -> None:
    """Record a model-serving endpoint created in an active group."""
    from domain.workload import CreateEndpointAction

    action = CreateEndpointAction(endpoint_id=endpoint_id, group_id=group_id, name=name)
    _record(state_of(ctx), "create_endpoint", action, "created")


@workload_app.command("endpoint-destroy")
def endpoint_destroy(ctx: typer.Context, endpoint_id: IdArg) -> None:
    """Record an endpoint destroyed; it no longer holds its group's purge."""
    from domain.workload import DestroyEndpointAction

    _record(state_of(ctx), "destroy_endpoint", DestroyEndpointAction(endpoint_id=endpoint_id), "destroyed")


# Bulk import


def _size(file: typer.FileBinaryRead) -> int | None:
    """The file's size when it is a regular file (not a pipe or a terminal)."""
    try:
        info = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class _Unreadable(Exception):
    """The file failed to read (a failing disk, a stale mount): its OSError, told apart
    from the store's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))


def _lines(file: typer.FileBinaryRead, reading: list[bool]) -> Iterator[bytes]:
    """The file's lines, none read further than one byte past `MAX_LINE_BYTES`: the importer
    refuses such a line, and the rest of one it skips (before --from-line) is passed over.
    `reading[0]` is true while it waits for a line (nothing of the import is in flight)."""
    from domain.workload.importer import MAX_LINE_BYTES

    while True:
        reading[0] = True
        try:
            line = file.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise _Unreadable(exc) from None
        finally:
            reading[0] = False
        if not line:
            return
        yield line
        try:
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := file.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
        except OSError as exc:
            raise _Unreadable(exc) from None


def _progress(state: State) -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),  # '1 fact in 1 batch', plurals right
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=state.as_json or not console.is_terminal,
    )


@workload_app.command("import")
def workload_import(
    ctx: typer.Context,
    file: Annotated[
        typer.FileBinaryRead,
        typer.Argument(metavar="FILE.jsonl", help="JSON Lines file (UTF-8) of facts; '-' reads stdin."),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="Facts per atomic append, a count (each batch all or nothing).")
    ] = 500,
    from_line: Annotated[
        int,
        typer.Option(
            "--from-line",
            min=1,
            metavar="N",
            help="Skip the lines before N: resume an import stopped at line N (its error names N).",
        ),
    ] = 1,
    progress_every: Annotated[
        int,
        typer.Option(
            "--progress-every",
            min=0,
            metavar="N",
            help="Without a terminal for the progress bar: a progress line on stderr every N batches "
            "(0: only the last one).",
        ),
    ] = 100,
) -> None:
    """Import workload facts from JSON Lines, in atomic batches.

    Each line is `{"fact": F, ...}` with F one of create_vfolder, start_kernel,
    report_kernel_stats, terminate_kernel, create_endpoint, destroy_endpoint and the
    rest the fact's fields (as the `ledger workload` commands take them, e.g. kernel_id,
    occupied_slots, started_at, mounts). Blank lines are skipped.

    A bad line (invalid JSON, unknown fact, invalid field, or a fact the ledger refuses)
    stops the import with one error naming its number, exit 1. Every fact before that
    line is stored and none from it on, so a fixed file can be imported again from that
    line: a batch the ledger refuses stores nothing, so the facts before the one it
    refused are then recorded as one batch (the audit trail holds the batch's refusal).
    The error says where to resume: `--from-line N` skips the lines
    before N (they are read, not recorded). Each batch is one `record_workload_batch`
    action of the root options' actor: permission-checked and audited like any other.

    The progress bar is drawn when stderr is a terminal; otherwise (a log, a pipe) a line
    `progress: X facts in Y batches, through line L` goes to stderr every
    --progress-every batches, and `imported X facts in Y batches` at the end."""
    import asyncio

    from rich.markup import escape

    from domain.errors import InsufficientPermission, StoreUnavailable
    from domain.workload.importer import FACTS, Importer, ImportStopped, bounded

    state = state_of(ctx)
    started = time.perf_counter()
    # SIGTERM (a service manager's stop) as Ctrl-C: it killed the import silently, exit 143,
    # without the line to resume from.
    # Waiting for a line of a pipe, it stops at once (a cancellation would wait for the line).
    reading = [False]
    with sigterm_as_ctrl_c(lambda: reading[0]) as terminated, state.ledger() as ledger, _progress(state) as progress:
        importer = Importer(
            ledger.processors.workload.record_workload_batch, state.meta, batch_size, start_line=from_line
        )
        name = getattr(file, "name", "<stdin>")
        # The description is rich markup: a file name is escaped for the terminal and for rich.
        task = progress.add_task(f"importing {escape(safe(str(name)))}", total=_size(file), counts="")
        lines_shown = not progress.disable  # no bar: progress lines on stderr instead
        last_line_at = 0

        def counts(done: Importer) -> str:
            return f"{plural(done.facts, 'fact')} in {plural(done.batches, 'batch')}"

        def show(done: Importer) -> None:
            nonlocal last_line_at
            progress.update(task, completed=done.read, counts=counts(done))
            if lines_shown or not progress_every or done.batches - last_line_at < progress_every:
                return
            last_line_at = done.batches
            typer.echo(f"progress: {counts(done)}, through line {done.recorded_through}", err=True)

        try:
            asyncio.run(importer.run(_lines(file, reading), show))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the batches before it are stored, none after
            progress.stop()
            how, code = stopped_by(bool(terminated))
            raise Interrupted(
                f"stopped by {how} after {plural(importer.batches, 'batch')} ({plural(importer.facts, 'fact')} "
                f"recorded; resume with --from-line {importer.resume_line})",
                code,
            ) from None
        except ImportStopped as stop:
            progress.stop()
            fail(
                stop.cause.code,
                f"line {stop.line}: {stop.reason} ({plural(stop.recorded, 'fact')} before it "
                f"{'was' if stop.recorded == 1 else 'were'} recorded; fix the line and resume with "
                f"--from-line {stop.line})",
                status=stop.cause.status,
                field=stop.cause.field,  # the line's key at fault (`name`), if one is
            )
        except _Unreadable as unreadable:  # the batches before it are stored, none after
            progress.stop()
            fail(
                "ledger_invalid_parameters",
                f"FILE.jsonl: cannot read {safe(str(name))!r} after line {importer.lines}: {unreadable} "
                f"({plural(importer.facts, 'fact')} recorded; resume with --from-line {importer.resume_line})",
                status=400,
            )
        except (InsufficientPermission, StoreUnavailable) as refused:  # no line's fault: the import stops
            progress.stop()
            recorded = f"{plural(importer.facts, 'fact')} recorded"
            fail(
                refused.code,
                f"{bounded(refused.message)} ({recorded}; resume with --from-line {importer.resume_line})",
                status=refused.status,
            )
        if not lines_shown and importer.batches:
            typer.echo(f"imported {counts(importer)}, through line {importer.lines}", err=True)
        if from_line > max(importer.lines, 1):  # nothing to resume there: a mistyped number?
            typer.echo(f"warning: --from-line {from_line} is past the last line ({importer.lines})", err=True)
    elapsed = time.perf_counter() - started
    summary: dict[str, Any] = {
        "facts": importer.facts,
        "batches": importer.batches,
        "batch_size": batch_size,
        "from_line": from_line,
        "skipped": importer.skipped,
        "unchanged": importer.unchanged,
        "elapsed_seconds": round(elapsed, 3),
        "facts_per_second": round(importer.facts / elapsed, 1) if elapsed > 0 else 0.0,
        "by_fact": {fact: importer.by_fact[fact] for fact in FACTS if importer.by_fact[fact]},
    }

    def human() -> None:
        typer.echo(
            f"imported {plural(importer.facts, 'fact')} in {plural(importer.batches, 'batch')} in "
            f"{elapsed:.2f}s ({summary['facts_per_second']:.0f} facts/s)"
        )
        if importer.skipped:
            typer.echo(f"skipped {plural(importer.skipped, 'fact')} before line {from_line}")
        if importer.unchanged:
            typer.echo(
                f"{plural(importer.unchanged, 'fact')} stored nothing "
                "(recorded already, or stats a later report overtook)"
            )
        if summary["by_fact"]:
            typer.echo(", ".join(f"{fact}={count}" for fact, count in summary["by_fact"].items()))

    state.output(summary, human)
