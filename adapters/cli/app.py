"""The root of `ledger`: the typer app, its options (--db, --json, the actor), the `State`
every command reads them from, and the errors: one line each, never a traceback.

Commands run through the action processors, so every event carries the actor given by
the root options. A malformed option (bad JSON, a `key=value` list without `=`, a
non-integer, an unknown choice) is a usage error (exit 2); a value the domain refuses is a
`LedgerError` (exit 1). Either way the user sees one line on stderr and no traceback;
anything else is a bug, shown as one `internal error:` line (exit 1), with its traceback
when LEDGER_DEBUG=1. With --json, that line is one JSON object instead (`render.error_json`).

A domain error names a field (`user_id`); the CLI user typed an option (`--owner`): the
error is renamed to the command's parameter of that Python name (or an alias of it,
`options.FIELD_ALIASES`), so a command gets this by naming its parameters as the domain
names its fields.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import json
import logging
import math
import os
import signal
import stat
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer._click import Command, Context, Parameter
from typer._click.core import ParameterSource
from typer._click.exceptions import NoArgsIsHelpError
from typer._click.globals import get_current_context
from typer.core import TyperGroup
from typer.exceptions import TyperException

from adapters.cli.options import FIELD_ALIASES
from adapters.cli.render import debug, error_json, error_line, one_line, safe
from adapters.json_times import utc_z, utc_z_default
from domain.errors import (
    Duplicate,
    InvalidAPIParameters,
    LedgerError,
    ObjectNotFound,
    PolicyNotAllowedInDomain,
    VFolderHostNotAllowed,
)

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger
    from domain.actions import ActionProcessor, ActionTriggerMeta, BaseAction

# Start-up: `ledger --help` and a usage error load typer, rich and this package's option
# declarations only. The store, the read models and the domain's models (sqlalchemy,
# eventsourcing, psycopg, pydantic, prometheus_client) are imported by the commands that
# use them, inside their functions; tests/adapters/cli/test_cli_imports.py keeps it so.


class OneLineFormatter(logging.Formatter):
    """A log record as one safe line, `LEVEL: LOGGER: MESSAGE: EXCEPTION`; the traceback
    only with LEDGER_DEBUG=1, so a library's or a monitor's failure never buries the
    command's own error line under a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if debug():
                return safe(f"{text}\n{self.formatException(record.exc_info)}", keep="\n")
            text += f": {type(exc).__name__}: {exc}"
        return one_line(text)


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            typer.echo(self.format(record), err=True)
        except Exception:  # logging must never fail the command
            self.handleError(record)


@contextmanager
def cli_logging() -> Iterator[None]:
    """For one command: records of WARNING and above, and Python warnings, as one stderr
    line each (with their tracebacks when LEDGER_DEBUG=1). Undone afterwards, so an
    in-process caller's logging is left as it was."""
    handler = _StderrHandler(logging.WARNING)
    handler.setFormatter(OneLineFormatter())
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root_logger.removeHandler(handler)


class LedgerGroup(TyperGroup):
    """The root command: every failure is one stderr line. A `LedgerError` is `error:
    CODE: MESSAGE` (exit 1), a usage error `error: usage: ...` (exit 2), Ctrl-C `error:
    interrupted: ...` (exit 130), anything else
    `internal error: ...` (exit 1; LEDGER_DEBUG=1 re-raises it for its traceback). With
    --json, each is one JSON object `{"error": {...}}` on stderr instead."""

    _as_json = False  # whether errors are JSON: the raw --json until the root callback ran

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        tidy(self)
        if not standalone_mode:  # the caller handles errors itself
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        raw = list(sys.argv[1:] if args is None else args)
        self._as_json = self._json_asked(raw)  # until the root callback decides (usage errors before it)
        with cli_logging():
            code = self._run(args, prog_name, complete_var, windows_expand_args, **extra)
        sys.exit(code)

    def _json_asked(self, args: list[str]) -> bool:
        """Whether the raw arguments give the root option --json (before the subcommand)."""
        for arg in args:
            if arg == "--json":
                return True
            if arg == "--" or arg in self.commands:
                return False
        return False

    def make_context(self, *args: Any, **kwargs: Any) -> Context:
        with _reader_gone():  # `ledger --help | true`
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Context) -> Any:
        try:
            with _reader_gone():
                return super().invoke(ctx)
        except RuntimeError as exc:
            if sys.stdin is not None or "stdin" not in str(exc):
                raise
            # A '-' argument with no stdin (`<&-`, some cron jobs): click's RuntimeError.
            raise typer.BadParameter("'-' reads stdin, which is closed", param_hint="'FILE.jsonl'") from None
        except KeyboardInterrupt as exc:  # typer would make it a silent exit 130
            # (`Terminated`: a command that turned SIGTERM into an interrupt, `between_batches`)
            how, code = stopped_by(isinstance(exc, Terminated))
            raise Interrupted(f"stopped by {how}", exit_code=code) from None
        finally:  # the root callback ran (or not): its State says whether errors are JSON
            if isinstance(ctx.obj, State):
                self._as_json = ctx.obj.as_json

    def _report(self, line: str, error: dict[str, Any]) -> None:
        """The failure on stderr: `line`, or with --json `{"error": error}` on one line."""
        typer.echo(json.dumps({"error": error}, ensure_ascii=True) if self._as_json else line, err=True)

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        windows_expand_args: bool,
        **extra: Any,
    ) -> int:
        """Runs the command (non-standalone, so every exception reaches us) and returns its exit code."""
        try:
            returned = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:  # not an error line: the help, on stdout
            if exc.format_message():  # plain help comes back as the message (rich printed it already)
                try:
                    with _reader_gone():
                        typer.echo(exc.format_message())
                except typer.Exit as gone:
                    return gone.exit_code
            return exc.exit_code
        except TyperException as exc:  # usage errors (exit 2) and the few others click raises
            _reword(exc)
            message = f"{one_line(exc.format_message())}{_help_hint(exc)}"
            self._report(f"error: usage: {message}", {"code": "usage", "message": message})
            return exc.exit_code
        except typer.Abort:
            self._report("Aborted!", {"code": "aborted", "message": "Aborted!"})
            return 1
        except Interrupted as exc:
            message = one_line(str(exc))
            self._report(f"error: interrupted: {message}", {"code": "interrupted", "message": message})
            return exc.exit_code
        except Exception as exc:  # a LedgerError; else a bug: one line, or its traceback when debugging
            if debug() and not isinstance(exc, LedgerError):
                raise
            self._report(error_line(exc), error_json(exc))
            return 1
        # Non-standalone, an `Exit` comes back as its code; a command's return value is no code.
        return returned if isinstance(returned, int) else 0


INTERRUPTED_EXIT = 130  # as a shell reports a process SIGINT ended
TERMINATED_EXIT = 143  # and one SIGTERM ended
PIPE_CLOSED_EXIT = 141  # and one SIGPIPE ended: `ledger audit --jsonl | head`


@contextmanager
def _reader_gone() -> Iterator[None]:
    """Stdout's reader went away (`| head`): exit 141 and say nothing, as a process SIGPIPE
    ended (click would exit 1, a refusal's code, silently). Stdout is pointed at /dev/null
    first, so the flush at exit does not fail again."""
    try:
        yield
    except BrokenPipeError:
        if not _stdout_is_a_pipe():  # not stdout's: someone else's pipe broke, a bug to report
            raise
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor: a test runner's stdout
            pass
        raise typer.Exit(PIPE_CLOSED_EXIT) from None


def _stdout_is_a_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class Interrupted(Exception):
    """Ctrl-C (SIGINT) stopped a command: `error: interrupted: MESSAGE` on stderr, exit 130
    (143 for SIGTERM, where a command catches it). A command that can say how far it got
    raises it with that message; any other gets "stopped by Ctrl-C"."""

    def __init__(self, message: str, exit_code: int = INTERRUPTED_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def stopped_by(sigterm: bool) -> tuple[str, int]:
    """What stopped a command, as its message names it, and the exit code a shell would
    report: SIGTERM or Ctrl-C."""
    return ("SIGTERM", TERMINATED_EXIT) if sigterm else ("Ctrl-C", INTERRUPTED_EXIT)


class Terminated(KeyboardInterrupt):
    """SIGTERM, inside `between_batches`: it unwinds the command as Ctrl-C does (a batch in
    flight rolls back, `finally` blocks run), and is reported as SIGTERM."""


class Stop:
    """A signal `between_batches` recorded, acted on at the command's next safe point."""

    def __init__(self) -> None:
        self.came: int | None = None
        self.at_once = False  # inside `idle`: a signal raises where it lands

    def check(self) -> None:
        """Raises the interrupt of the signal that came, if one did (call it between batches)."""
        if self.came is not None:
            raise Terminated if self.came == signal.SIGTERM else KeyboardInterrupt

    @contextmanager
    def idle(self) -> Iterator[None]:
        """A wait with no database work in flight (a follower's sleep until the next poll):
        a signal that came before stops here, and one that comes during it stops at once,
        where a recorded one would wait out the whole poll interval."""
        self.at_once = True  # before the check: a signal in between raises, none is missed
        try:
            self.check()
            yield
        finally:
            self.at_once = False


@contextmanager
def between_batches() -> Iterator[Stop]:
    """SIGTERM and Ctrl-C stop a long command at its next safe point (`Stop.check`, between
    two batches, or at once in a `Stop.idle` wait), not wherever they land: raised inside
    a database driver's call, an interrupt can leave the connection unusable ("another
    command is already in progress"), and the cleanup's error then replaced it (exit 1,
    not 143 or 130). A second signal stops at once."""
    stop = Stop()

    def record(signum: int, _frame: FrameType | None) -> None:
        first = stop.came is None
        if first:
            stop.came = signum
        if not first or stop.at_once:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    with _handled(record, signal.SIGTERM, signal.SIGINT):
        yield stop


@contextmanager
def sigterm_as_ctrl_c(at_once: Callable[[], bool] = lambda: False) -> Iterator[list[int]]:
    """SIGTERM handled by whatever handles Ctrl-C at that moment, for a command whose Ctrl-C
    stops at a safe point and says where (asyncio.run's handler cancels its task at its
    next await; Python's raises KeyboardInterrupt). The list yielded records SIGTERM, so
    that the command names it. SIGTERM raises `Terminated` where it lands when `at_once()`
    says that is safe (an import waiting for its next line, which would hold the
    cancellation until a line came), and with Ctrl-C ignored (a job a script started in
    the background)."""
    came: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        came.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if at_once() or not callable(handler):
            raise Terminated
        handler(signal.SIGINT, frame)

    with _handled(interrupt, signal.SIGTERM):
        yield came


@contextmanager
def _handled(handler: Callable[[int, FrameType | None], None], *signums: int) -> Iterator[None]:
    """`handler` handles `signums` while this is open; their handlers before are put back."""
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _reword(exc: TyperException) -> None:
    """typer coerces option values with pydantic and words a refusal as pydantic does
    (`Value error, 'x' is not one of ...`; `Input should be a valid integer, unable to parse
    string as an integer`): the reason is said as the domain says it, naming the value."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if not isinstance(exc, typer.BadParameter) or type(cause).__name__ != "ValidationError" or not callable(errors):
        return
    first = errors()[0] if errors() else {}
    if first.get("type") == "value_error" and "error" in first.get("ctx", {}):
        exc.message = str(first["ctx"]["error"])
    elif first.get("type") in ("int_parsing", "float_parsing"):
        from domain.shown import shown

        kind = "an integer" if first["type"] == "int_parsing" else "a number"
        exc.message = f"expected {kind}, got {shown(first.get('input'))}"
    elif str(first.get("type")).endswith(("_than", "_than_equal")) and _is_nan(first.get("input")):
        from domain.shown import shown

        # NaN passes no comparison, so pydantic named a bound ("less than or equal to 86400").
        exc.message = f"expected a number, got {shown(first.get('input'))}"
    elif first.get("type") in _BOUNDS and len(first.get("ctx", {})) == 1:
        from domain.shown import shown

        # `Input should be greater than or equal to 1`: said as `--limit` says its bound.
        (bound,) = first["ctx"].values()
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # 86400, not 86400.0
        exc.message = f"must be {_BOUNDS[first['type']]} {bound}, got {shown(first.get('input'))}"


_BOUNDS = {
    "greater_than_equal": "at least",
    "less_than_equal": "at most",
    "greater_than": "more than",
    "less_than": "less than",
}


def _is_nan(raw: object) -> bool:
    try:
        return math.isnan(float(raw))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _help_hint(exc: TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    return "" if ctx is None else f" (see '{one_line(ctx.command_path)} --help')"


def fail(code: str, message: str, *, status: int | None = None, field: str | None = None) -> NoReturn:
    """One line on stderr, `error: CODE: MESSAGE` (with --json, the JSON error), then exit 1."""
    ctx = get_current_context(silent=True)
    state = None if ctx is None else ctx.find_root().obj
    if isinstance(state, State) and state.as_json:
        error = {
            "code": code,
            "message": one_line(message),
            "field": None if field is None else safe(field),
            "status": status,
        }
        typer.echo(json.dumps({"error": error}, ensure_ascii=True), err=True)
    else:
        typer.echo(f"error: {one_line(code)}: {one_line(message)}", err=True)
    raise typer.Exit(1)


# Every command of the tree, tidied once before it runs (or shows its help)


def tidy(command: Command) -> None:
    """`command` and its subcommands: help paragraphs rewrapped, flags without a `<bool>`
    metavar, domain errors renamed to the options typed (`named_options`)."""
    if getattr(command, "_tidied", False):
        return
    command._tidied = True  # type: ignore[attr-defined]
    # Plain help, not rich panels: at 80 columns the panels' fixed columns cut long option
    # names (`--max-concurrent-sessio…`); click's layout puts a long name on its own line.
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    command.help = rewrap(command.help)
    if command.help and not command.short_help:  # the commands list shows it whole, wrapped
        command.short_help = command.help.split("\n\n")[0]
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # typer shows <bool> for a flag, which takes no value
        if param.param_type_name == "argument" and param.metavar:  # `NAME`, not `NAME <str>`
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010 (an instance's, not the class's)
        if getattr(getattr(param, "type_descriptor", None), "annotation", None) is int:
            setattr(param, "process_value", domain_integers(param))  # noqa: B010 (an instance's, not the class's)
    if command.callback is not None:
        command.callback = named_options(command.callback)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)


def domain_integers(param: Parameter) -> Callable[[Context, Any], Any]:
    """`param`'s processing of its values, each typed (or from the environment) read first
    in the domain's integer forms, as the HTTP API reads an integer query value
    (`domain.parsers.parse_int`): the option type also took `1.0` and `1_0` (as 10). The
    option's own bounds are checked after, as before."""
    process = param.process_value

    def read(raw: Any) -> Any:
        if not isinstance(raw, str):  # a default, already an int
            return raw
        from domain.parsers import INT64_MAX, parse_int  # when a value comes: --help loads no domain

        try:
            return parse_int(raw, option_name(param), minimum=-INT64_MAX)
        except InvalidAPIParameters as exc:
            raise typer.BadParameter(exc.reason, param_hint=f"'{option_name(param)}'") from None

    def processed(ctx: Context, value: Any) -> Any:
        return process(ctx, [read(v) for v in value] if isinstance(value, (list, tuple)) else read(value))

    return processed


def rewrap(text: str | None) -> str | None:
    """Paragraphs of a docstring as single lines, for the help to wrap them to the
    terminal (typer keeps a docstring's line breaks); a paragraph starting with \\b as it is."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def named_options(callback: Callable[..., Any]) -> Callable[..., Any]:
    """`callback`, its errors about one input (bad, or naming nothing that exists) renamed
    to the option the user typed."""

    @functools.wraps(callback)
    def named(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (
            Duplicate,
            InvalidAPIParameters,
            ObjectNotFound,
            PolicyNotAllowedInDomain,
            VFolderHostNotAllowed,
        ) as exc:
            ctx = get_current_context(silent=True)
            renamed = None if ctx is None else as_option_error(exc, ctx)
            if renamed is None:
                raise
            raise renamed from exc

    return named


def as_option_error(
    exc: Duplicate | InvalidAPIParameters | ObjectNotFound | PolicyNotAllowedInDomain | VFolderHostNotAllowed,
    ctx: Context,
) -> LedgerError | None:
    """`exc` naming the parameter of `ctx`'s command its field (`user_id`, or the first
    segment of `total_resource_slots.warp` that names one) stands for: `--owner: ...`; None
    when no parameter does."""
    # Any not-found error (a GroupNotFound too: session enqueue --group-id), rebuilt of its class.
    renamed = isinstance(exc, ObjectNotFound) or type(exc) in (InvalidAPIParameters, PolicyNotAllowedInDomain)
    if isinstance(exc, VFolderHostNotAllowed | Duplicate):
        # Their messages name the vfolder or the entity, not the field: only the field is renamed.
        as_named = None if exc.field is None else _as_option(exc.field, exc.message, ctx)
        if as_named is None:
            return None
        option_named = copy.copy(exc)  # its class and every attribute (a refusal's host and permission)
        option_named.field = as_named[0]
        return option_named
    if exc.field is None or not renamed:
        return None
    named = _as_option(exc.field, exc.reason, ctx)
    if named is None:
        return None
    option, reason = named
    if isinstance(exc, ObjectNotFound):
        return type(exc)(reason, entity_type=exc.entity_type, entity_id=exc.entity_id, field=option)
    if isinstance(exc, PolicyNotAllowedInDomain):  # it named `default_keypair_resource_policy`, not --default-policy
        return PolicyNotAllowedInDomain(reason, field=option)
    others = (_option_refusal(other, ctx) for other in exc.others)
    return InvalidAPIParameters(reason, field=option, others=others)


def _option_refusal(exc: InvalidAPIParameters, ctx: Context) -> InvalidAPIParameters:
    named = None if exc.field is None else _as_option(exc.field, exc.reason, ctx)
    return exc if named is None else InvalidAPIParameters(named[1], field=named[0])


def _as_option(field: str, reason: str, ctx: Context) -> tuple[str, str] | None:
    """(the option, the reason) for a refusal of `field`: the option of its first segment
    that names one, the rest of the field before the reason; None when none does."""
    segments = field.split(".")
    for index, segment in enumerate(segments):
        param = parameter_for(ctx, segment)
        if param is not None:
            rest = ".".join(segments[index + 1 :])
            return option_name(param), f"{rest}: {reason}" if rest else reason
    return None


def parameter_for(ctx: Context, field: str) -> Parameter | None:
    """The parameter of `ctx`'s command for a domain field: named as the field, or one of
    its aliases; of several, the one the user gave. Else the parent commands' (the root's
    actor options: `--access-key`)."""
    names = (field, *FIELD_ALIASES.get(field, ()))
    candidates = [p for name in names for p in ctx.command.params if p.name == name]
    given = [
        p
        for p in candidates
        if p.name and ctx.get_parameter_source(p.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ]
    found = next(iter(given or candidates), None)
    return found if found is not None or ctx.parent is None else parameter_for(ctx.parent, field)


def option_name(param: Parameter) -> str:
    """How the user typed `param`: its first long option (`--owner`), an argument's name
    in capitals (`ACCESS_KEY`)."""
    if param.param_type_name == "argument":
        return (param.name or "").upper()
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


app = typer.Typer(
    cls=LedgerGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def open_ledger(
    url: str | None = None, timezone: str | None = None, *, build_pending: bool = True, seal_legacy: bool = True
) -> Ledger:
    """`adapters.bootstrap.open_ledger`, imported when a command first opens the ledger
    (`State.ledger` looks it up here, so a test can replace it here)."""
    from adapters.bootstrap import open_ledger as open_store

    return open_store(url, timezone, build_pending=build_pending, seal_legacy=seal_legacy)


def refuse_a_missing_ledger(url: str | None, nothing: str = "nothing to read") -> None:
    """A command that only reads checks that the ledger exists. Opened on a mistyped path
    (or schema), the ledger would make an empty one there, with a key file, and the
    command would answer as if the history were empty, exit 0."""
    from adapters.store.config import parse_url
    from adapters.store.triggers import postgres_has_events
    from domain.errors import ConfigurationError

    config = parse_url(url)
    config.check_sqlite_file()  # a missing folder, a folder in its place, no permission: said as when opening
    path = config.sqlite_path
    made = "a ledger is made by a command that writes"
    if path is not None and str(path) != ":memory:" and not (path.is_file() and path.stat().st_size > 0):
        raise ConfigurationError(f"no ledger at {str(path)!r}: {nothing} ({made})")
    # The events table makes a ledger: one an older release wrote lacks the rest until opened.
    if config.kind == "postgresql" and not postgres_has_events(config):
        raise ConfigurationError(f"no ledger in schema {config.schema or 'public'!r}: {nothing} ({made})")


class RoleChoice(enum.Enum):
    """The `--role` choices: the values of `domain.actions.Role`, spelled here so that
    declaring the root options loads no domain model (a test keeps the two equal)."""

    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    USER = "user"
    SERVICE = "service"


@dataclasses.dataclass(frozen=True)
class State:
    """What the root options decide for every command."""

    db: str | None
    as_json: bool
    meta: ActionTriggerMeta
    # A Ctrl-C that came while an action ran to completion (`run`): it stops the command
    # before its next action.
    interrupts: list[None] = dataclasses.field(default_factory=list, compare=False, repr=False)

    @contextmanager
    def ledger(self, *, seal_legacy: bool = True) -> Iterator[Ledger]:
        with open_ledger(self.db, seal_legacy=seal_legacy) as ledger:
            yield ledger

    @contextmanager
    def reading(self, *, seal_legacy: bool = True) -> Iterator[Ledger]:
        """The ledger for a command that only reads: refused when there is none at --db."""
        refuse_a_missing_ledger(self.db)
        with self.ledger(seal_legacy=seal_legacy) as ledger:
            yield ledger

    def run(self, processor: ActionProcessor[Any, Any], action: BaseAction) -> Any:
        """Runs one action through its processor, as the root options' actor."""
        import asyncio

        if self.interrupts:
            raise KeyboardInterrupt
        results: list[Any] = []

        async def call() -> None:
            # The result stays out of the task: asyncio.run restores its SIGINT handler on
            # exit through a failed enum lookup whose message holds repr(task), result and
            # all (CPython 3.11): 0.5-1.2 s of a month's report over 30,000 kernels.
            results.append(await processor.wait_for_complete(action, self.meta))

        try:
            asyncio.run(call())
        except KeyboardInterrupt:
            # asyncio.run answers Ctrl-C by cancelling its task, which lands only once the
            # action (synchronous underneath) has returned: if it completed, it is committed
            # and audited, and "interrupted" would tell the operator that it was not.
            if not results:
                raise
            self.interrupts.append(None)
        return results[0]

    def output(self, data: Any, human: Callable[[], None]) -> None:
        """`data` as JSON with --json, else whatever `human` prints."""
        if self.as_json:
            typer.echo(_json_text(data))
        else:
            human()

    @staticmethod
    def output_array(items: Iterable[Any]) -> None:
        """The JSON array `output` prints for `list(items)`, written an item at a time (an
        export of the whole audit trail never holds it)."""
        first = True
        for item in items:
            typer.echo(("[\n" if first else ",\n") + textwrap.indent(_json_text(item), "  "), nl=False)
            first = False
        typer.echo("[]" if first else "\n]")


def _json_text(data: Any) -> str:
    # ensure_ascii (the default, kept on purpose): control and bidi characters in values
    # leave as \u escapes, never raw, and the JSON still round-trips them. Times in UTC's
    # `Z` form, as the HTTP API writes them: a script reads either the same way.
    return json.dumps(utc_z(data), indent=2, default=utc_z_default, ensure_ascii=True)


def state_of(ctx: typer.Context) -> State:
    """The root options, from any command's context."""
    state: State = ctx.find_root().obj
    return state


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Ledger URL (sqlite:///path.db or postgresql://...). "
            "Default: $LEDGER_DATABASE_URL, else sqlite:///ledger.db.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of tables; errors too, as one JSON object on stderr.")
    ] = False,
    user_id: Annotated[
        str | None, typer.Option("--user-id", metavar="UUID", help="Actor: the acting user's UUID.")
    ] = None,
    access_key: Annotated[
        str | None, typer.Option("--access-key", metavar="KEY", help="Actor: the acting access key.")
    ] = None,
    role: Annotated[
        RoleChoice,
        typer.Option(
            "--role",
            metavar="ROLE",
            case_sensitive=False,
            help="Actor: the acting role: superadmin, admin, user or service.",
        ),
    ] = RoleChoice.SUPERADMIN,
    domain_name: Annotated[
        str, typer.Option("--domain", metavar="DOMAIN", help="Actor: the acting domain.")
    ] = "default",
    request_id: Annotated[
        str | None, typer.Option("--request-id", metavar="ID", help="Request id stored on every event.")
    ] = None,
) -> None:
    """An event-sourced ledger of keypair resource policies, keypairs, groups and workload facts.

    The actor options (--user-id, --access-key, --role, --domain, --request-id) say who acts
    and are stamped on every event a command stores. Like --db and --json they go before the
    subcommand: `ledger --json --role admin policy list`. A keypair's owner is not the actor:
    give it with `keypair create --owner UUID`."""
    if db is not None and not db.strip():  # say `--db "$UNSET"`: never the default ledger instead
        raise typer.BadParameter("the ledger URL is empty", param_hint="'--db'")
    # A bad LEDGER_EXTRA_SLOTS is refused by every command, before any work, not only by
    # the first one that happens to read a slot.
    from domain.actions import ActionTriggerMeta, Role
    from domain.slots import check_slot_configuration

    check_slot_configuration()
    from domain.parsers import parse_uuid

    # Parsed here, not by the option's type: a bad one is refused in the ledger's words,
    # naming --user-id, as every other UUID option is.
    actor = None if user_id is None else parse_uuid(user_id, "user_id")
    meta = ActionTriggerMeta(actor, access_key, Role(role.value), domain_name, request_id)
    ctx.obj = State(db, as_json, meta)


def main() -> None:
    app()
