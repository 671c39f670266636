"""`--domain`, `--limit N` and `--after CURSOR` for the list commands: policies, keypairs,
groups, domains, users, kernels, vfolders and sessions.

Each list has one stable sort key, and its cursor is the last row's key: the next page
is the rows after it (a keyset, so rows created or removed between pages never shift
another row out of sight). A command asks its query for one row more than `--limit`
to know whether more exist; then the table is followed by `more: --after CURSOR` on
stderr (shell-quoted), and with --json the output is `{"items": [...], "next_after": CURSOR or null}`
(without --limit it stays the plain list it always was).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from adapters.cli.app import State
from adapters.cli.render import print_table, safe

if TYPE_CHECKING:
    from rich.table import Table

T = TypeVar("T")


def parse_limit_option(raw: str) -> int:
    """`--limit N` as the HTTP API's `limit` reads it, its bound in the domain's words
    (`app.domain_integers` has read its form, as every integer option's)."""
    from domain.errors import InvalidAPIParameters
    from domain.parsers import parse_positive_int

    try:
        return parse_positive_int(raw, "--limit")
    except InvalidAPIParameters as exc:
        raise typer.BadParameter(exc.reason) from None


LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        parser=parse_limit_option,
        metavar="N",
        help="At most N rows (a positive integer). If more exist, the next cursor follows: "
        "'more: --after CURSOR' on stderr; with --json the output is "
        '{"items": [...], "next_after": CURSOR or null}.',
    ),
]


def after_option(key: str) -> Any:
    """`--after CURSOR`: start after the row whose sort key is CURSOR (`key` says what it is)."""
    return typer.Option(
        "--after", metavar="CURSOR", help=f"Start after this {key}: the cursor a previous --limit page printed."
    )


def domain_filter(noun: str) -> Any:
    """`--domain DOMAIN` (or `--domain-name`) of a list: a filter. Options belong to the
    command they follow, so `ledger --domain X ... list --domain Y` acts as X, lists Y."""
    return typer.Option(
        "--domain",
        "--domain-name",
        metavar="DOMAIN",
        help=f"Only {noun} of this domain. After 'list' it filters; the root "
        "'ledger --domain X' before the subcommand is the actor's domain and filters nothing.",
    )


def fetch_size(limit: int | None) -> int | None:
    """How many rows to ask for: one more than shown tells whether another page exists
    (none past the largest limit: a query's limit is a 64-bit integer)."""
    from domain.parsers import INT64_MAX

    return None if limit is None else min(limit + 1, INT64_MAX)


def output_page(
    state: State,
    rows: Sequence[T],
    limit: int | None,
    cursor: Callable[[T], str],
    to_json: Callable[[T], Any],
    table: Callable[[Sequence[T]], Table],
) -> None:
    """Shows at most `limit` of `rows` (fetched with `fetch_size`) and the next cursor if
    more rows exist."""
    shown = rows if limit is None else rows[:limit]
    next_after = cursor(shown[-1]) if limit is not None and len(rows) > limit else None
    if state.as_json:
        items = [to_json(row) for row in shown]
        state.output(items if limit is None else {"items": items, "next_after": next_after}, lambda: None)
        return
    print_table(table(shown))
    if next_after is not None:
        typer.echo(f"more: --after {shlex.quote(safe(next_after))}", err=True)  # quoted: names may hold spaces
