"""The `ledger` command line: policies, keypairs, their history, and a demo.

Groups and workload facts (`ledger group ...`, `ledger workload ...`) live in
`adapters.cli_groups`, which registers them on this module's root `app`.

Commands run through the action processors, so every event carries the actor given by
the root options. Parsing is the CLI's job, validation the domain's: malformed option
syntax (bad JSON, a `key=value` list without `=`, a non-integer, an unknown choice) is a
usage error (exit 2); a value the domain refuses is a `LedgerError` (exit 1). Either way
the user sees one line on stderr and no traceback; anything else is a bug, shown as one
`internal error:` line (exit 1), with its traceback when LEDGER_DEBUG=1.

Values are shown, never obeyed: control and invisible format characters in any value
(stored by an older, laxer ledger, say) are printed as escapes (`\\x1b`, `\\u202e`) and
rich markup in them is not interpreted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import sys
import unicodedata
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console, RenderableType
from rich.style import StyleType
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from domain.errors import LedgerError

# Escaping and one-line errors come first: they also report a CLI that cannot even be
# imported (configuration a module reads at import, a broken install).

DEBUG_VARIABLE = "LEDGER_DEBUG"
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, invisible formats (bidi), separators


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def safe(text: str, keep: str = "") -> str:
    """`text` with every control, format (bidi, zero-width), lone surrogate and line or
    paragraph separator character shown as an escape (`\\x1b`, `\\u202e`), except those in
    `keep`: a value can then neither drive the terminal nor hide or reorder what it shows."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(
        _escape(char) if char not in keep and unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """`text` as one safe line: runs of whitespace (newlines too) become one space."""
    return safe(" ".join(text.split()))


def error_line(exc: BaseException) -> str:
    """What the user sees of an exception: `error: CODE: MESSAGE` for the ledger's own
    errors, `internal error: TYPE: MESSAGE` for anything else (a bug: LEDGER_DEBUG=1 shows
    its traceback)."""
    if isinstance(exc, LedgerError):
        return f"error: {one_line(exc.code)}: {one_line(exc.message)}"
    return f"internal error: {one_line(f'{type(exc).__name__}: {exc}')} ({DEBUG_VARIABLE}=1 shows the traceback)"


def _refuse_import(exc: Exception) -> NoReturn:
    """The CLI cannot even load (configuration read at import, a broken install): one line
    and exit 1 rather than a traceback; the cause stays chained for programmatic importers."""
    if _debug():
        raise exc
    raise SystemExit(error_line(exc)) from exc


try:
    from adapters.bootstrap import Ledger, open_ledger
    from adapters.read.queries import HistoryEntry
    from adapters.store.chain import verify
    from domain.actions import ActionProcessor, ActionTriggerMeta, BaseAction, Role
    from domain.entity import entity_not_found
    from domain.errors import ObjectNotFound, PolicyInUse
    from domain.keypair import (
        CreateKeyPairAction,
        DeleteKeyPairAction,
        KeyPairData,
        ModifyKeyPairAction,
    )
    from domain.keypair.actions import KeyPairAction
    from domain.keypair_resource_policy import (
        CreateKeyPairResourcePolicyAction,
        DeleteKeyPairResourcePolicyAction,
        KeypairResourcePolicyAction,
        KeyPairResourcePolicyData,
        ModifyKeyPairResourcePolicyAction,
    )
    from domain.validation import parse_int, parse_time
    from domain.values import (
        ALL_VFOLDER_PERMISSIONS,
        KNOWN_SLOTS,
        DefaultForUnspecified,
        SlotKind,
        check_slot_configuration,
    )
except Exception as exc:  # any failure to load is reported, not hidden: see error_line
    _refuse_import(exc)

T = TypeVar("T")

POLICY_TYPE = KeypairResourcePolicyAction.entity_type()
KEYPAIR_TYPE = KeyPairAction.entity_type()
NULLABLE_FIELDS = (
    "max_session_lifetime",
    "idle_timeout",
    "max_pending_session_count",
    "max_pending_session_resource_slots",
    "max_vfolder_count",
    "max_vfolder_size",
    "max_quota_scope_size",
    "fallback_policy",
)
FallbackOption = Annotated[
    str | None, typer.Option(help="Policy whose slot limits apply where this one lists none (no chains).")
]


def fail(code: str, message: str) -> NoReturn:
    """One line on stderr, `error: CODE: MESSAGE`, then exit 1."""
    typer.echo(f"error: {one_line(code)}: {one_line(message)}", err=True)
    raise typer.Exit(1)


class OneLineFormatter(logging.Formatter):
    """A log record as one safe line, `LEVEL: LOGGER: MESSAGE: EXCEPTION`; the traceback
    only with LEDGER_DEBUG=1, so a library's or a monitor's failure never buries the
    command's own error line under a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if _debug():
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
    CODE: MESSAGE` (exit 1), a usage error `error: usage: ...` (exit 2), anything else
    `internal error: ...` (exit 1; LEDGER_DEBUG=1 re-raises it for its traceback)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # the caller handles errors itself
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        with cli_logging():
            code = self._run(args, prog_name, complete_var, windows_expand_args, **extra)
        sys.exit(code)

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
        except NoArgsIsHelpError as exc:
            return exc.exit_code  # the help was printed already; not an error line
        except TyperException as exc:  # usage errors (exit 2) and the few others click raises
            typer.echo(f"error: usage: {one_line(exc.format_message())}{_help_hint(exc)}", err=True)
            return exc.exit_code
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            return 1
        except LedgerError as exc:
            typer.echo(error_line(exc), err=True)
            return 1
        except Exception as exc:  # a bug: one line, or its traceback when debugging
            if _debug():
                raise
            typer.echo(error_line(exc), err=True)
            return 1
        # Non-standalone, an `Exit` comes back as its code; a command's return value is no code.
        return returned if isinstance(returned, int) else 0


def _help_hint(exc: TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    return "" if ctx is None else f" (see '{one_line(ctx.command_path)} --help')"


app = typer.Typer(
    cls=LedgerGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(no_args_is_help=True, help="Keypair resource policies.")
keypair_app = typer.Typer(no_args_is_help=True, help="Keypairs and the policy each one uses.")
app.add_typer(policy_app, name="policy")
app.add_typer(keypair_app, name="keypair")


@dataclasses.dataclass(frozen=True)
class State:
    """What the root options decide for every command."""

    db: str | None
    as_json: bool
    meta: ActionTriggerMeta

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        with open_ledger(self.db) as ledger:
            yield ledger

    def run(self, processor: ActionProcessor[Any, Any], action: BaseAction) -> Any:
        """Runs one action through its processor, as the root options' actor."""
        return asyncio.run(processor.wait_for_complete(action, self.meta))

    def output(self, data: Any, human: Callable[[], None]) -> None:
        """`data` as JSON with --json, else whatever `human` prints."""
        if self.as_json:
            # ensure_ascii (the default, kept on purpose): control and bidi characters in
            # values leave as \u escapes, never raw, and the JSON still round-trips them.
            typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=True))
        else:
            human()


def _state(ctx: typer.Context) -> State:
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    user_id: Annotated[uuid.UUID | None, typer.Option("--user-id", help="Actor: the acting user's UUID.")] = None,
    access_key: Annotated[str | None, typer.Option("--access-key", help="Actor: the acting access key.")] = None,
    role: Annotated[Role, typer.Option("--role", help="Actor: the acting role.")] = Role.SUPERADMIN,
    domain: Annotated[str, typer.Option("--domain", help="Actor: the acting domain.")] = "default",
    request_id: Annotated[str | None, typer.Option("--request-id", help="Request id stored on every event.")] = None,
) -> None:
    """An event-sourced ledger of keypair resource policies, keypairs, groups and workload facts.

    The actor options (--user-id, --access-key, --role, --domain, --request-id) say who acts
    and are stamped on every event a command stores. Like --db and --json they go before the
    subcommand: `ledger --json --role admin policy list`. A keypair's owner is not the actor:
    give it with `keypair create --owner UUID`."""
    # A bad LEDGER_EXTRA_SLOTS is refused by every command, before any work, not only by
    # the first one that happens to read a slot.
    check_slot_configuration()
    meta = ActionTriggerMeta(user_id, access_key, role, domain, request_id)
    ctx.obj = State(db, as_json, meta)


# Option parsers: syntax only; the domain validates the values.


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it names a key twice (json.loads would keep the last)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise typer.BadParameter(f"key {key!r} given twice")
        seen[key] = value
    return seen


def _parse_json(raw: str) -> Any:
    try:
        return json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"invalid JSON: {exc}") from None
    except RecursionError:  # `[[[[...` deeper than the parser's recursion limit
        raise typer.BadParameter("invalid JSON: nested too deeply") from None


def parse_slots_option(raw: str) -> dict[str, Any]:
    """`{"cpu": "4", "mem": "8g"}` or `cpu=4,mem=8g`; an empty string means no slots. A
    slot named twice is refused rather than letting the last one silently win."""
    if raw.lstrip().startswith("{"):
        parsed = _parse_json(raw)
        if not isinstance(parsed, dict):
            raise typer.BadParameter("expected a JSON object")
        return parsed
    slots: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {item!r}")
        if key.strip() in slots:
            raise typer.BadParameter(f"key {key.strip()!r} given twice")
        slots[key.strip()] = value.strip()
    return slots


def parse_hosts_option(raw: str) -> Any:
    """A JSON list or object (`{"host": ["mount-in-session"]}`), or `host1,host2`."""
    if raw.lstrip().startswith(("[", "{")):
        parsed = _parse_json(raw)
        if not isinstance(parsed, list | dict):
            raise typer.BadParameter("expected a JSON list or object")
        return parsed
    return [host.strip() for host in raw.split(",") if host.strip()]


SlotsOption = Annotated[
    Any,
    typer.Option(parser=parse_slots_option, metavar="JSON|k=v,...", help="Resource slots."),
]
HostsOption = Annotated[
    Any,
    typer.Option(parser=parse_hosts_option, metavar="JSON|host,...", help="Allowed vfolder hosts."),
]
IntOption = Annotated[int | None, typer.Option(metavar="N")]
DefaultOption = Annotated[DefaultForUnspecified | None, typer.Option(case_sensitive=False)]
PolicyName = Annotated[str, typer.Argument(metavar="NAME", help="Policy name.")]


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The policy fields among a command's parameters that were given."""
    skip = {"ctx", "name", "unset"}
    return {k: v for k, v in values.items() if k not in skip and v is not None}


def _with_warnings(build: Callable[[], T]) -> T:
    """Builds an action, echoing domain warnings (deprecated fields) as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build()
    for message in dict.fromkeys(str(w.message) for w in caught):
        typer.echo(f"warning: {one_line(message)}", err=True)
    return built


# Rendering


def _fmt(field: str, value: Any) -> str:
    """A field value, compact: slots as k=v, hosts with all permissions as bare names, lists
    comma-separated, an empty string as "". Safe to print: every value shown goes through
    here (or `safe`), so control characters in it are escaped, newlines too."""
    return safe(_compact(field, value))


def _compact(field: str, value: Any) -> str:
    if value is None:
        return "null"
    if field == "allowed_vfolder_hosts" and isinstance(value, dict):
        full = sorted(p.value for p in ALL_VFOLDER_PERMISSIONS)
        hosts = [h if sorted(p) == full else f"{h}({', '.join(p)})" for h, p in value.items()]
        return ", ".join(hosts) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_quantity(k, v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value) if value != "" else '""'


def _quantity(slot: str, value: Any) -> str:
    """Byte slots in the largest binary unit that divides them exactly (274877906944 -> 256g)."""
    text = str(value)
    if KNOWN_SLOTS.get(slot) is not SlotKind.BYTES or not text.isdigit() or int(text) == 0:
        return text
    number, units = int(text), ["", "k", "m", "g", "t", "p", "e"]
    while number % 1024 == 0 and len(units) > 1:
        number, units = number // 1024, units[1:]
    return f"{number}{units[0]}"


class SafeTable(Table):
    """A rich table whose text cells and title are shown as given: escaped by `safe` (line
    breaks the CLI puts in a cell kept) and never read as rich markup, so a description
    `[red]x[/red]` prints literally and a malformed tag cannot crash the command. Cells
    that are already renderables (`Text`) were built by the CLI and pass as they are."""

    def __init__(self, *headers: str, title: str | None = None, **options: Any) -> None:
        super().__init__(*headers, title=None if title is None else _text(title), **options)

    def add_row(
        self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        cells = [_text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


def _text(value: str) -> Text:
    return Text(safe(value, keep="\n"))


def _print(table: Table) -> None:
    Console(markup=False).print(table)  # markup off: a string that slipped past SafeTable stays literal


def _table(*headers: str, title: str | None = None) -> Table:
    """A table that folds long cells instead of cutting them, so narrow output loses nothing."""
    table = SafeTable(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _policy_table(policy: KeyPairResourcePolicyData) -> Table:
    table = _table("field", "value", title=f"keypair resource policy {policy.name!r}")
    for field, value in policy.to_json().items():
        table.add_row(field, _fmt(field, value))
    return table


def _policies_table(policies: list[KeyPairResourcePolicyData]) -> Table:
    columns: tuple[str, ...] = ("name", "total_resource_slots", "max_concurrent_sessions", "idle_timeout")
    columns += ("max_session_lifetime", "allowed_vfolder_hosts")
    table = _table(*columns)
    for policy in policies:
        data = policy.to_json()
        table.add_row(*(_fmt(k, data[k]) for k in columns))
    return table


def _show_policy(state: State, policy: KeyPairResourcePolicyData, done: str) -> None:
    def human() -> None:
        typer.echo(f"{done} keypair resource policy {policy.name!r}")
        _print(_policy_table(policy))

    state.output(policy.to_json(), human)


def keypair_json(keypair: KeyPairData) -> dict[str, Any]:
    return {**dataclasses.asdict(keypair), "user_id": str(keypair.user_id)}


def _keypairs_table(keypairs: list[KeyPairData]) -> Table:
    table = _table("access_key", "user_id", "domain_name", "resource_policy")
    for keypair in keypairs:
        table.add_row(*(safe(str(v)) for v in keypair_json(keypair).values()))
    return table


def _show_keypair(state: State, keypair: KeyPairData, done: str) -> None:
    def human() -> None:
        if done:
            typer.echo(f"{done} keypair {keypair.access_key!r}")
        _print(_keypairs_table([keypair]))

    state.output(keypair_json(keypair), human)


def _actor(entry: HistoryEntry) -> str:
    """Role, user and access key, then the request id, one per line (narrow terminals)."""
    actor = entry.actor
    parts = (actor.get("role"), actor.get("user_id"), actor.get("access_key"))
    request = [f"request {entry.request_id}"] if entry.request_id else []
    return "\n".join(safe(str(line)) for line in [*(p for p in parts if p), *request])


def _changes(entry: HistoryEntry) -> str:
    changed = {f: c for f, c in entry.changes.items() if c.get("old") != c.get("new")}  # creations list null -> null
    lines = [f"{safe(f)}: {_fmt(f, c.get('old'))} -> {_fmt(f, c.get('new'))}" for f, c in changed.items()]
    lines += [f"{safe(k)}: {_fmt(k, v)}" for k, v in entry.details.items()]
    return "\n".join(lines)


def history_table(title: str, entries: list[HistoryEntry]) -> Table:
    """One row per event. Fits 80 columns: fixed columns stay whole, changes get most of the rest."""
    table = SafeTable(title=title, box=box.HORIZONTALS, show_lines=True, expand=True)
    for header in ("ver", "event", "time (UTC)"):
        table.add_column(header, no_wrap=True)
    table.add_column("actor / request id", overflow="fold", ratio=1, min_width=10)
    table.add_column("changes", overflow="fold", ratio=2)
    for e in entries:
        table.add_row(str(e.version), safe(e.event), _utc(e.occurred_at), _actor(e), _changes(e))
    return table


def _utc(at: datetime) -> str:
    at = at.astimezone(UTC) if at.tzinfo else at  # naive times are UTC already (SQLite drops the zone)
    return at.strftime("%Y-%m-%d\n%H:%M:%S")


def _history(state: State, entity_type: str, entity_id: str) -> None:
    with state.ledger() as ledger:
        entries = ledger.queries.history(entity_type, entity_id)
    if not entries:
        raise ObjectNotFound(f"{entity_type} {entity_id!r} has no history")
    title = f"history of {entity_type} {entity_id!r}"
    state.output([e.to_json() for e in entries], lambda: _print(history_table(title, entries)))


# Time travel: `show --at/--version`, `diff --from --to`


def parse_point(raw: str, field: str) -> tuple[int | None, datetime | None]:
    """A point in an entity's history: a version number, or an ISO 8601 time (UTC if no zone)."""
    if raw.strip().isascii() and raw.strip().isdigit():
        return parse_int(raw, field), None
    return None, parse_time(raw, field)


AtOption = Annotated[
    str | None, typer.Option("--at", metavar="ISO", help="Show it as it stood at this time (UTC if no zone).")
]
VersionOption = Annotated[int | None, typer.Option("--version", metavar="N", help="Show it after its event N.")]


def show_state(state: State, entity_type: str, entity_id: str, at: str | None, version: int | None) -> None:
    """An entity as it stood at a past time or version, read from the event store."""
    moment = None if at is None else parse_time(at, "at")
    version = None if version is None else parse_int(version, "version")
    with state.ledger() as ledger:
        found = ledger.queries.state_at(entity_type, entity_id, at=moment, version=version)
    if found is None:
        raise ObjectNotFound(f"{entity_type} {entity_id!r} did not exist at {at}")

    def human() -> None:
        status = " (deleted)" if found.deleted else ""
        when = found.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        table = _table(
            "field", "value", title=f"{entity_type} {entity_id!r} at version {found.version}, {when}{status}"
        )
        for field, value in found.fields.items():
            table.add_row(field, _fmt(field, value))
        _print(table)

    state.output(found.to_json(), human)


FromOption = Annotated[str, typer.Option("--from", metavar="N|ISO", help="A version number or a time.")]
ToOption = Annotated[str, typer.Option("--to", metavar="N|ISO", help="A version number or a time.")]


def show_diff(state: State, entity_type: str, entity_id: str, older: str, newer: str) -> None:
    """What changed in an entity between two versions or times: field, old, new."""
    from_version, from_at = parse_point(older, "from")
    to_version, to_at = parse_point(newer, "to")
    with state.ledger() as ledger:
        changes = ledger.queries.diff(
            entity_type, entity_id, from_version=from_version, to_version=to_version, from_at=from_at, to_at=to_at
        )

    def human() -> None:
        table = _table("field", "old", "new", title=f"{entity_type} {entity_id!r}: {older} -> {newer}")
        for field, change in changes.items():
            table.add_row(field, _fmt(field, change["old"]), _fmt(field, change["new"]))
        _print(table)

    state.output(changes, human)


# Policy commands


@policy_app.command("create")
def policy_create(
    ctx: typer.Context,
    name: PolicyName,
    total_resource_slots: SlotsOption = None,
    max_concurrent_sessions: IntOption = None,
    max_containers_per_session: IntOption = None,
    idle_timeout: IntOption = None,
    max_session_lifetime: IntOption = None,
    max_concurrent_sftp_sessions: IntOption = None,
    max_pending_session_count: IntOption = None,
    max_pending_session_resource_slots: SlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_for_unspecified: DefaultOption = None,
    max_vfolder_count: IntOption = None,
    max_vfolder_size: IntOption = None,
    max_quota_scope_size: IntOption = None,
    fallback_policy: FallbackOption = None,
) -> None:
    """Create a policy (or create again one that was deleted). Unset options take defaults."""
    creator = {"name": name, **_given(locals())}
    state = _state(ctx)
    action = _with_warnings(lambda: CreateKeyPairResourcePolicyAction(creator=creator))
    with state.ledger() as ledger:
        processor = ledger.processors.keypair_resource_policy.create_keypair_resource_policy
        result = state.run(processor, action)
    _show_policy(state, result.keypair_resource_policy, "created")


@policy_app.command("modify")
def policy_modify(
    ctx: typer.Context,
    name: PolicyName,
    total_resource_slots: SlotsOption = None,
    max_concurrent_sessions: IntOption = None,
    max_containers_per_session: IntOption = None,
    idle_timeout: IntOption = None,
    max_session_lifetime: IntOption = None,
    max_concurrent_sftp_sessions: IntOption = None,
    max_pending_session_count: IntOption = None,
    max_pending_session_resource_slots: SlotsOption = None,
    allowed_vfolder_hosts: HostsOption = None,
    default_for_unspecified: DefaultOption = None,
    max_vfolder_count: IntOption = None,
    max_vfolder_size: IntOption = None,
    max_quota_scope_size: IntOption = None,
    fallback_policy: FallbackOption = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FIELD",
            help=f"Set a nullable field to null (repeatable): {', '.join(NULLABLE_FIELDS)}.",
        ),
    ] = None,
) -> None:
    """Change the given fields of a policy; fields not given are left alone."""
    given = _given(locals())
    modifier = {**given, **_unset_fields(unset or [], given)}
    if not modifier:
        raise typer.BadParameter("nothing to change: give at least one field option or --unset")
    state = _state(ctx)
    action = _with_warnings(lambda: ModifyKeyPairResourcePolicyAction(name=name, modifier=modifier))
    with state.ledger() as ledger:
        processor = ledger.processors.keypair_resource_policy.modify_keypair_resource_policy
        result = state.run(processor, action)
    _show_policy(state, result.keypair_resource_policy, "modified")


def _unset_fields(names: list[str], given: dict[str, Any]) -> dict[str, None]:
    fields = {name.strip().replace("-", "_") for name in names}
    for field in sorted(fields):
        if field not in NULLABLE_FIELDS:
            allowed = ", ".join(NULLABLE_FIELDS)
            raise typer.BadParameter(f"{field!r} cannot be unset; one of: {allowed}", param_hint="--unset")
        if field in given:
            raise typer.BadParameter(f"{field!r} is both set and unset", param_hint="--unset")
    return dict.fromkeys(fields)


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, name: PolicyName) -> None:
    """Delete a policy. Refused while a keypair uses it, and for the system policy."""
    state = _state(ctx)
    with state.ledger() as ledger:
        processor = ledger.processors.keypair_resource_policy.delete_keypair_resource_policy
        result = state.run(processor, DeleteKeyPairResourcePolicyAction(name=name))
    before: KeyPairResourcePolicyData = result.keypair_resource_policy
    state.output(before.to_json(), lambda: typer.echo(f"deleted keypair resource policy {name!r}"))


@policy_app.command("show")
def policy_show(ctx: typer.Context, name: PolicyName, at: AtOption = None, version: VersionOption = None) -> None:
    """Show one policy: now, or as it stood --at a time or after --version N."""
    state = _state(ctx)
    if at is not None or version is not None:
        return show_state(state, POLICY_TYPE, name, at, version)
    with state.ledger() as ledger:
        policy = ledger.queries.keypair_resource_policy(name)
    if policy is None:
        raise entity_not_found(POLICY_TYPE, name)
    state.output(policy.to_json(), lambda: _print(_policy_table(policy)))


@policy_app.command("diff")
def policy_diff(ctx: typer.Context, name: PolicyName, older: FromOption, newer: ToOption) -> None:
    """What changed in a policy between two versions or times: field, old, new."""
    show_diff(_state(ctx), POLICY_TYPE, name, older, newer)


@policy_app.command("list")
def policy_list(ctx: typer.Context) -> None:
    """List the live policies."""
    state = _state(ctx)
    with state.ledger() as ledger:
        policies = ledger.queries.keypair_resource_policies()
    state.output([p.to_json() for p in policies], lambda: _print(_policies_table(policies)))


@policy_app.command("history")
def policy_history(ctx: typer.Context, name: PolicyName) -> None:
    """Every event of a policy, across all its incarnations: who changed what, when."""
    _history(_state(ctx), POLICY_TYPE, name)


# Keypair commands

AccessKeyArg = Annotated[str, typer.Argument(metavar="ACCESS_KEY")]
PolicyOption = Annotated[str, typer.Option("--resource-policy", metavar="NAME", help="Policy name.")]


@keypair_app.command("create")
def keypair_create(
    ctx: typer.Context,
    access_key: AccessKeyArg,
    owner: Annotated[
        str,
        typer.Option(
            "--owner",
            metavar="UUID",
            help="The user who owns the keypair (the root --user-id is the actor, not the owner).",
        ),
    ],
    resource_policy: PolicyOption,
    domain_name: Annotated[
        str | None,
        typer.Option("--domain-name", help="The keypair's domain. Default: the root --domain."),
    ] = None,
) -> None:
    """Create a keypair (or create again one that was deleted) using an existing policy."""
    state = _state(ctx)
    domain = domain_name or state.meta.domain_name
    action = CreateKeyPairAction(
        access_key=access_key, user_id=owner, domain_name=domain, resource_policy=resource_policy
    )
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.create_keypair, action)
    _show_keypair(state, result.keypair, "created")


@keypair_app.command("modify")
def keypair_modify(ctx: typer.Context, access_key: AccessKeyArg, resource_policy: PolicyOption) -> None:
    """Move a keypair to another policy."""
    state = _state(ctx)
    action = ModifyKeyPairAction(access_key=access_key, resource_policy=resource_policy)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.modify_keypair, action)
    _show_keypair(state, result.keypair, "modified")


@keypair_app.command("delete")
def keypair_delete(ctx: typer.Context, access_key: AccessKeyArg) -> None:
    """Delete a keypair; its policy is no longer in use by it."""
    state = _state(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.keypair.delete_keypair, DeleteKeyPairAction(access_key=access_key))
    state.output(keypair_json(result.keypair), lambda: typer.echo(f"deleted keypair {access_key!r}"))


@keypair_app.command("show")
def keypair_show(ctx: typer.Context, access_key: AccessKeyArg) -> None:
    """Show one keypair."""
    state = _state(ctx)
    with state.ledger() as ledger:
        keypair = ledger.queries.keypair(access_key)
    if keypair is None:
        raise entity_not_found(KEYPAIR_TYPE, access_key)
    _show_keypair(state, keypair, "")


@keypair_app.command("list")
def keypair_list(
    ctx: typer.Context,
    resource_policy: Annotated[
        str | None, typer.Option("--resource-policy", metavar="NAME", help="Only keypairs using this policy.")
    ] = None,
) -> None:
    """List the live keypairs."""
    state = _state(ctx)
    with state.ledger() as ledger:
        keypairs = ledger.queries.keypairs(resource_policy)
    state.output([keypair_json(k) for k in keypairs], lambda: _print(_keypairs_table(keypairs)))


@keypair_app.command("history")
def keypair_history(ctx: typer.Context, access_key: AccessKeyArg) -> None:
    """Every event of a keypair, across all its incarnations."""
    _history(_state(ctx), KEYPAIR_TYPE, access_key)


# The demo

DEMO_POLICY = "dev-policy"
DEMO_KEYPAIR = "AKDEMO"
DEMO_OWNER = uuid.UUID("00000000-0000-4000-8000-00000000de40")
DEMO_FIELDS: dict[str, Any] = {
    "allowed_vfolder_hosts": ["storage1", "storage2"],
    "default_for_unspecified": "LIMITED",
    "idle_timeout": 3600,
    "max_concurrent_sessions": 5,
    "max_containers_per_session": 3,
    "max_pending_session_count": 10,
    "max_pending_session_resource_slots": {"cpu": "10", "memory": "64G"},
    "max_session_lifetime": 86400,
    "total_resource_slots": {"cpu": "50", "memory": "256G", "gpu": "4"},
}


class Demo:
    """Seed 001's policy through its whole life: each step one line, then its history."""

    def __init__(self, state: State, ledger: Ledger) -> None:
        self.state, self.ledger = state, ledger
        self.steps: list[str] = []
        self.policies = ledger.processors.keypair_resource_policy
        self.keypairs = ledger.processors.keypair

    def say(self, line: str) -> None:
        self.steps.append(line)
        if not self.state.as_json:
            typer.echo(line)

    def clean_up(self) -> None:
        """A run that was interrupted may have left the keypair or the policy behind."""
        queries = self.ledger.queries
        if queries.keypair(DEMO_KEYPAIR) is not None:
            self.state.run(self.keypairs.delete_keypair, DeleteKeyPairAction(access_key=DEMO_KEYPAIR))
            self.say(f"cleaned up keypair {DEMO_KEYPAIR!r} left by an earlier run")
        if queries.keypair_resource_policy(DEMO_POLICY) is not None:
            action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
            self.state.run(self.policies.delete_keypair_resource_policy, action)
            self.say(f"cleaned up policy {DEMO_POLICY!r} left by an earlier run")

    def create(self) -> None:
        again = bool(self.ledger.queries.history(POLICY_TYPE, DEMO_POLICY))
        creator = {"name": DEMO_POLICY, **DEMO_FIELDS}
        action = CreateKeyPairResourcePolicyAction(creator=creator)
        self.state.run(self.policies.create_keypair_resource_policy, action)
        verb = "re-created" if again else "created"
        self.say(f"{verb} policy {DEMO_POLICY!r} with seed 001's values (max_concurrent_sessions=5)")

    def modify(self) -> None:
        action = ModifyKeyPairResourcePolicyAction(name=DEMO_POLICY, modifier={"max_concurrent_sessions": 10})
        self.state.run(self.policies.modify_keypair_resource_policy, action)
        self.say(f"modified policy {DEMO_POLICY!r}: max_concurrent_sessions 5 -> 10")

    def assign(self) -> None:
        action = CreateKeyPairAction(
            access_key=DEMO_KEYPAIR,
            user_id=DEMO_OWNER,
            domain_name=self.state.meta.domain_name or "default",
            resource_policy=DEMO_POLICY,
        )
        self.state.run(self.keypairs.create_keypair, action)
        self.say(f"created keypair {DEMO_KEYPAIR!r} using policy {DEMO_POLICY!r}")

    def refused_delete(self) -> None:
        action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
        try:
            self.state.run(self.policies.delete_keypair_resource_policy, action)
        except PolicyInUse as exc:
            self.say(f"deleting policy {DEMO_POLICY!r} was refused: {exc.code}: {exc.message}")
            return
        raise LedgerError(f"deleting policy {DEMO_POLICY!r} in use was not refused")

    def tear_down(self) -> None:
        self.state.run(self.keypairs.delete_keypair, DeleteKeyPairAction(access_key=DEMO_KEYPAIR))
        self.say(f"deleted keypair {DEMO_KEYPAIR!r}")
        action = DeleteKeyPairResourcePolicyAction(name=DEMO_POLICY)
        self.state.run(self.policies.delete_keypair_resource_policy, action)
        self.say(f"deleted policy {DEMO_POLICY!r}")

    def run(self) -> list[HistoryEntry]:
        for step in (self.clean_up, self.create, self.modify, self.assign, self.refused_delete, self.tear_down):
            step()
        return self.ledger.queries.history(POLICY_TYPE, DEMO_POLICY)


@app.command("demo")
def demo(ctx: typer.Context) -> None:
    """Walk policy 'dev-policy' through its life and print its history. Safe to re-run:
    each run adds one more incarnation to the same history."""
    state = _state(ctx)
    with state.ledger() as ledger:
        runner = Demo(state, ledger)
        entries = runner.run()
        trail = ledger.queries.audit_log(POLICY_TYPE, DEMO_POLICY)
        chain = verify(ledger.app.recorder)
    title = f"history of {POLICY_TYPE} {DEMO_POLICY!r}"
    outcomes = collections.Counter(entry.status for entry in trail)
    data = {
        "steps": runner.steps,
        "history": [e.to_json() for e in entries],
        "audit": dict(outcomes),
        "verify": chain.to_json(),
    }

    def human() -> None:
        _print(history_table(title, entries))
        counted = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
        typer.echo(f"audit trail of {DEMO_POLICY!r}: {counted} (ledger audit --entity-id {DEMO_POLICY})")
        verdict = "intact" if chain.ok else "BROKEN (ledger verify names the event)"
        typer.echo(f"hash chain over {chain.checked} events {verdict}; head {chain.head_position}:{chain.head_hash}")

    state.output(data, human)


try:
    # `ledger group ...` and `ledger workload ...`: that module adds its sub-apps to `app`.
    import adapters.cli_groups

    # `ledger projections ...` (read models' status, the follower, rebuilds): likewise.
    import adapters.cli_projections  # noqa: F401
    from adapters import cli_audit, cli_usage  # noqa: F401  (`ledger usage|audit|metrics`, `... diff`)
except Exception as exc:  # as the imports above
    _refuse_import(exc)


def main() -> None:
    app()


if __name__ == "__main__":
    # Run the importable `adapters.cli`, the one `adapters.cli_groups` extends, not this `__main__` copy.
    from adapters.cli import main as run_imported

    run_imported()
