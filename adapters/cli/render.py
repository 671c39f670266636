"""How the CLI shows things: escaped text, one-line errors, field values, tables, times.

Values are shown, never obeyed: control and invisible format characters in any value
(stored by an older, laxer ledger, say) are printed as escapes (`\\x1b`, `\\u202e`) and
rich markup in them is not interpreted.

Escaping and one-line errors come first and need nothing but the standard library and the
error hierarchy: they also report a CLI that cannot even be imported (configuration a
module reads at import, a broken install).
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NoReturn

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from domain.errors import InvalidAPIParameters, LedgerError
from domain.shown import NO_LIMIT_AT_NULL, NO_LIMIT_AT_ZERO
from domain.shown import plural as plural  # re-exported: the commands count with it

if TYPE_CHECKING:
    from adapters.read.queries import HistoryEntry

DEBUG_VARIABLE = "LEDGER_DEBUG"
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, invisible formats (bidi), separators


def debug() -> bool:
    """Whether LEDGER_DEBUG asks for tracebacks."""
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


SHORT = 8  # an id's characters shown in a table, at least (like git's short hashes)


def shortener(ids: Iterable[str]) -> Callable[[str], str]:
    """A function that shortens ids to the shortest prefix, SHORT characters at least, that
    tells all of `ids` apart (two ids sharing their first 8 would read as one)."""
    ordered = sorted(set(ids))
    size = SHORT
    for a, b in pairwise(ordered):
        while a[:size] == b[:size] and size < max(len(a), len(b)):  # rare: random UUIDs differ early
            size += 1
    return lambda value: safe(value[:size])


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
        return f"error: {one_line(exc.code)}: {one_line(exc.message)}{_also(exc)}"
    return f"internal error: {one_line(f'{type(exc).__name__}: {exc}')} ({DEBUG_VARIABLE}=1 shows the traceback)"


def error_json(exc: BaseException) -> dict[str, Any]:
    """What --json shows of an exception: the ledger's own errors with their code,
    message, field (the option the user typed, when one names it), status and what a
    refusal weighed (`LedgerError.weighed`); anything else `internal`. Escaped as
    `error_line` escapes."""
    if isinstance(exc, LedgerError):
        return {
            "code": safe(exc.code),
            "message": one_line(exc.message),
            "field": None if exc.field is None else safe(str(exc.field)),
            "status": exc.status,
            **{name: safe(value) for name, value in exc.weighed().items()},  # as over HTTP
            **_every_refusal(exc),
        }
    return {"code": "internal", "message": one_line(f"{type(exc).__name__}: {exc}")}


def _also(exc: LedgerError) -> str:
    """The input's other refusals, on the same line: `; also --idle-timeout: ...`."""
    others = exc.others if isinstance(exc, InvalidAPIParameters) else ()
    return "".join(f"; also {one_line(other.message)}" for other in others)


def _every_refusal(exc: LedgerError) -> dict[str, Any]:
    """`errors`: every refused field, when an input has more than one (as over HTTP)."""
    if not isinstance(exc, InvalidAPIParameters) or not exc.others:
        return {}
    return {
        "errors": [
            {"field": None if each.field is None else safe(each.field), "reason": one_line(each.reason)}
            for each in exc.every()
        ]
    }


def refuse_import(exc: Exception) -> NoReturn:
    """The CLI cannot even load (configuration read at import, a broken install): one line
    and exit 1 rather than a traceback; the cause stays chained for programmatic importers."""
    if debug():
        raise exc
    raise SystemExit(error_line(exc)) from exc


try:
    from domain.hosts import ALL_VFOLDER_PERMISSIONS
    from domain.slots import shown_quantity
except Exception as exc:  # any failure to load is reported, not hidden: see error_line
    refuse_import(exc)


# Field values


def fmt(field: str, value: Any) -> str:
    """A field value, compact: slots as k=v, hosts with all permissions as bare names, lists
    comma-separated, an empty string as "". Safe to print: every value shown goes through
    here (or `safe`), so control characters in it are escaped, newlines too."""
    return safe(_compact(field, value))


def _compact(field: str, value: Any) -> str:
    if field in NO_LIMIT_AT_ZERO and (value is None or (type(value) is int and value == 0)):
        return f"{'null' if value is None else 0} (no limit)"
    if value is None:
        return "null (no limit)" if field in NO_LIMIT_AT_NULL else "null"
    if field == "dotfiles" and isinstance(value, str) and value:
        # Stored as base64 (up to 64 KiB of it): its size, as `group show` says it.
        try:
            return f"{len(base64.b64decode(value, validate=True))} bytes"
        except ValueError:  # not base64: "[erased]" after a purge
            pass
    if field == "allowed_vfolder_hosts" and isinstance(value, dict):
        full = sorted(p.value for p in ALL_VFOLDER_PERMISSIONS)
        hosts = [h if sorted(p) == full else f"{h}({', '.join(p)})" for h, p in value.items()]
        return ", ".join(hosts) or "-"
    if isinstance(value, list) and value and all(_is_check(item) for item in value):
        return "; ".join(map(_check_line, value))
    if isinstance(value, dict):
        # A pending cap's slot at 0 is no cap for that slot, as the map's null is none at all.
        lifted = field in NO_LIMIT_AT_NULL
        return ", ".join(f"{k}={_nested(k, v)}{_lifted(v) if lifted else ''}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_nested("", v) for v in value) or "-"
    return str(value) if value != "" else '""'


def _lifted(amount: Any) -> str:
    try:
        return " (no limit)" if Decimal(str(amount)) == 0 else ""
    except ArithmeticError:  # not a number: said as it is
        return ""


# A limit a session decision weighed (`AdmissionCheck.to_json`), as `session history` shows
# a decision's checks and reasons: as the decision tables of `session show` read them.
_CHECK_KEYS = frozenset({"limit", "scope", "scope_id", "slot", "requested", "used", "allowed"})
AMOUNTS = ("requested", "used", "allowed")  # a check's numbers, in the order they are shown


def _is_check(item: object) -> bool:
    return isinstance(item, dict) and item.keys() >= _CHECK_KEYS


def check_parts(check: dict[str, Any]) -> tuple[str, list[str]]:
    """A weighed limit's label (`field.slot` for a slot) and its amounts in `AMOUNTS`'
    order, a byte slot's in binary units (3g, not 3221225472), as `policy show` writes them."""
    slot = check.get("slot")
    limit = check["limit"] if slot is None else f"{check['limit']}.{slot}"
    return limit, [str(check[key]) if slot is None else quantity(slot, check[key]) for key in AMOUNTS]


def _check_line(check: dict[str, Any]) -> str:
    limit, amounts = check_parts(check)
    shown = ", ".join(f"{key} {amount}" for key, amount in zip(AMOUNTS, amounts, strict=True))
    return f"{check['scope']} {check['scope_id']}: {limit}: {shown}"


def _nested(field: str, value: Any) -> str:
    """A value inside a map or a list (a decision's policy and its fallback, a mount's
    grants): braces and brackets around its parts, null for None, never a Python repr."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_nested(k, v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_nested(field, v) for v in value) + "]"
    return quantity(field, value)


def quantity(slot: str, value: Any) -> str:
    """Byte slots in the largest binary unit that divides them exactly (274877906944 -> 256g)."""
    return shown_quantity(slot, value)


def utc_time(at: datetime) -> str:
    """A time in UTC on two lines, date then time (narrow columns)."""
    at = at.astimezone(UTC) if at.tzinfo else at  # naive times are UTC already (SQLite drops the zone)
    return at.strftime("%Y-%m-%d\n%H:%M:%S")


# Tables


class SafeTable(Table):
    """A rich table whose text cells and title are shown as given: escaped by `safe` (line
    breaks the CLI puts in a cell kept) and never read as rich markup, so a description
    `[red]x[/red]` prints literally and a malformed tag cannot crash the command. Cells
    that are already renderables (`Text`) were built by the CLI and pass as they are."""

    def __init__(
        self, *headers: str, title: str | None = None, leave_out: tuple[str, ...] = (), **options: Any
    ) -> None:
        super().__init__(*headers, title=None if title is None else _cell(title), **options)
        # Headers of columns `print_table` may leave out, first first, where the terminal is
        # too narrow for every column at its least (rich would cut or drop some silently).
        self.leave_out = leave_out

    def add_row(
        self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        cells = [_cell(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


def _cell(value: str) -> Text:
    return Text(safe(value, keep="\n"))


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 itself; the root command exits 141 for every closed stdout.
        raise BrokenPipeError(errno.EPIPE, "stdout's reader went away")


def print_table(table: Table) -> None:
    console = _Console(markup=False)  # markup off: a string that slipped past SafeTable stays literal
    every = list(table.columns)
    left_out = _fit(console, table) if isinstance(table, SafeTable) else []
    # Only a column kept whole or a leave-out can make rich cut: the others fold.
    checked = isinstance(table, SafeTable) and (left_out or any(column.no_wrap for column in table.columns))
    if checked and not _fits(console, table):  # too narrow even so: every column, row by row
        table.columns = every
        return _records(console, table)
    console.print(table)
    if left_out:
        named = ", ".join(header.replace("\n", " ") for header in left_out)
        note = f"Left out to fit {console.width} columns: {named} (a wider terminal or --json shows every column)."
        console.print(Text(note))


def _fits(console: Console, table: Table) -> bool:
    """Whether rich lays the table out within the console without cutting a cell: no
    wider than the console (rich crops what is wider) and every `no_wrap` column whole."""
    budget = console.options.update_width(max(1, console.width - table._extra_width))
    widths = table._calculate_column_widths(console, budget)  # rich's own layout, private
    _, right, _, left = table.padding  # in rich's widths
    if sum(widths) - right > budget.max_width:  # a last blank of padding cropped is no loss
        return False
    wide = console.options.update_width(10**6)
    for column, width in zip(table.columns, widths, strict=True):
        least = column.min_width or 1
        if column.no_wrap:
            least = max(Measurement.get(console, wide, cell).maximum for cell in [column.header, *column.cells])
        if width - left - right < least:
            return False
    return True


def _records(console: Console, table: Table) -> None:
    """The table as one `header: value` block per row: what no narrower layout would cut."""
    if table.title is not None:
        console.print(table.title)
    headers = [str(column.header).replace("\n", " ") for column in table.columns]
    for n, row in enumerate(zip(*(column.cells for column in table.columns), strict=True)):
        if n or table.title is not None:
            console.print()
        for header, cell in zip(headers, row, strict=True):
            text = cell.plain if isinstance(cell, Text) else str(cell)
            console.print(Text(f"{header}: " + text.replace("\n", "\n" + " " * (len(header) + 2))))


def _fit(console: Console, table: SafeTable) -> list[str]:
    """Leaves out `table.leave_out`'s columns in order until the rest fits; their headers."""
    left_out: list[str] = []
    for header in table.leave_out:
        if _fits(console, table):
            break
        kept = [column for column in table.columns if column.header != header]
        # A column's place is its `_index`: rich pads and aligns by it.
        table.columns = [dataclasses.replace(column, _index=i) for i, column in enumerate(kept)]
        left_out.append(header)
    return left_out


def new_table(*headers: str, title: str | None = None, whole: tuple[str, ...] = ()) -> Table:
    """A table that folds long cells instead of cutting them, so narrow output loses nothing;
    the `whole` columns (ids: a UUID folded in two cannot be copied) never wrap, the others
    give them room."""
    table = SafeTable(title=title)
    for header in headers:
        table.add_column(header, overflow="fold", no_wrap=header in whole)
    return table


def fields_table(fields: dict[str, Any], title: str | None = None) -> Table:
    """One row per field: its name and its value (`fmt`)."""
    table = new_table("field", "value", title=title)
    for field, value in fields.items():
        table.add_row(field, fmt(field, value))
    return table


def history_table(title: str, entries: Sequence[HistoryEntry]) -> Table:
    """One row per event. Fits 80 columns: fixed columns stay whole, changes get most of the rest."""
    # Below 80 columns the actor goes first, then the time: the changes are what a history is for.
    leave_out = ("actor / request id", "time (UTC)")
    table = SafeTable(title=title, box=box.HORIZONTALS, show_lines=True, expand=True, leave_out=leave_out)
    for header in ("ver", "event", "time (UTC)"):
        table.add_column(header, no_wrap=True)
    table.add_column("actor / request id", overflow="fold", ratio=1, min_width=10)
    table.add_column("changes", overflow="fold", ratio=2, min_width=12)
    for e in entries:
        table.add_row(str(e.version), safe(e.event), utc_time(e.occurred_at), _actor(e), _changes(e))
    return table


def _actor(entry: HistoryEntry) -> str:
    """Role, user and access key, then the request id, one per line (narrow terminals)."""
    actor = entry.actor
    parts = (actor.get("role"), actor.get("user_id"), actor.get("access_key"))
    request = [f"request {entry.request_id}"] if entry.request_id else []
    return "\n".join(safe(str(line)) for line in [*(p for p in parts if p), *request])


def _changes(entry: HistoryEntry) -> str:
    # Creations list every field, unset ones as null -> null. Any other pair is a change,
    # even one that now reads alike: an erased value is [erased] on both sides.
    changed = {f: c for f, c in entry.changes.items() if c.get("old") is not None or c.get("new") is not None}
    lines = [f"{safe(f)}: {fmt(f, c.get('old'))} -> {fmt(f, c.get('new'))}" for f, c in changed.items()]
    lines += [f"{safe(k)}: {fmt(k, v)}" for k, v in entry.details.items()]
    return "\n".join(lines)


def cancelled_line(cancelled: Sequence[str], by: str) -> str:
    """The pending sessions a delete or a purge cancelled, said on a line of their own (an
    operator would not otherwise learn that the command ended them); nothing when none."""
    if not cancelled:
        return ""
    from domain.shown import some

    return f"\ncancelled {plural(len(cancelled), 'pending session')} with the {by}: {some(cancelled)}"


def compact_advice(kind: str) -> str:
    """After an erasure on PostgreSQL: the read models' old row versions keep the erased
    values in their files until `ledger compact` (the key table is rewritten already)."""
    if kind != "postgresql":
        return ""
    return "\nthe read models' old row versions keep the erased values on disk until `ledger compact`"
