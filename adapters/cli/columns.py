"""Plain-text columns for listings too long for rich tables: one line per row, no box,
no wrapping, laid out in time linear in the cells (a rich table of 27,000 rows measured
and wrapped every cell and took 15 times as long as the JSON of the same report).

Columns are chosen to fit the width: every column has a rank, and columns are kept in
rank order while they fit (rank 0 always); the display order stays the declared one. A
`cut` column (names) may be shortened to fit, never below `MIN_CUT` cells, its end shown
as `…`; nothing else is ever cut or wrapped, so ids stay whole. Cells must be safe to
print already (`render.safe`); widths are terminal cells (wide characters count two).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

SEPARATOR = "  "
MIN_CUT = 8


@dataclass(frozen=True)
class Column:
    header: str
    rank: int  # columns are kept in rank order while they fit; rank 0 always
    right: bool = False  # numbers: aligned right
    cut: bool = False  # names: may be shortened (to MIN_CUT cells at least) to fit


def width_of(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _fit(columns: Sequence[Column], natural: list[int], width: int) -> dict[int, int]:
    """{column index: its width} of the columns kept within `width`."""
    cost = [min(n, MIN_CUT) if c.cut else n for c, n in zip(columns, natural, strict=True)]
    kept: dict[int, int] = {}
    used = -len(SEPARATOR)
    for i in sorted(range(len(columns)), key=lambda i: columns[i].rank):
        if columns[i].rank == 0 or used + len(SEPARATOR) + cost[i] <= width:
            kept[i] = cost[i]
            used += len(SEPARATOR) + cost[i]
    for i in sorted(kept, key=lambda i: columns[i].rank):  # what is left widens cut columns back
        extra = max(0, min(natural[i] - kept[i], width - used))
        kept[i] += extra
        used += extra
    return dict(sorted(kept.items()))


def _cell(text: str, size: int, column: Column) -> str:
    have = width_of(text)
    if have > size:  # only a cut column can be narrower than its cells
        text, have = set_cell_size(text, size - 1) + "…", size
    pad = " " * (size - have)
    return pad + text if column.right else text + pad


def _widest(texts: list[str]) -> int:
    if "".join(texts).isascii():  # the common case, at C speed
        return max(map(len, texts), default=0)
    return max(map(width_of, texts), default=0)


def lay_out(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> tuple[list[str], list[str]]:
    """(the header and row lines, the headers of the columns left out). A row of no cells
    is a blank line."""
    filled = [row for row in rows if row]
    natural = [max(width_of(c.header), _widest([row[i] for row in filled])) for i, c in enumerate(columns)]
    kept = [(i, size, columns[i].right) for i, size in _fit(columns, natural, width).items()]
    lines = [_line(columns, kept, [c.header for c in columns])]
    lines.extend(_line(columns, kept, row) if row else "" for row in rows)
    return lines, [c.header for i, c in enumerate(columns) if i not in {k[0] for k in kept}]


def _line(columns: Sequence[Column], kept: list[tuple[int, int, bool]], row: Sequence[str]) -> str:
    cells = []
    for i, size, right in kept:
        text = row[i]
        if text.isascii() and len(text) <= size:  # the common case, without the general path
            cells.append(text.rjust(size) if right else text.ljust(size))
        else:
            cells.append(_cell(text, size, columns[i]))
    return SEPARATOR.join(cells).rstrip()


def wrapped(text: str, width: int) -> Iterator[str]:
    """A note under a listing, wrapped at `width` on spaces only (never inside an id)."""
    yield from textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def notes(lines: Iterable[str], width: int) -> list[str]:
    return [line for text in lines for line in wrapped(text, width)]
