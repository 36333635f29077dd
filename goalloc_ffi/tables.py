"""Tables that never cut a number (rich).

A rich table wider than its console shrinks its columns and ends cut cells
with "…", so through a pipe (80 columns) a count such as 342117 became
"342…". Here every column is at least as wide as its widest cell and the
longest word of its heading (headings wrap between words, cells never
break), and a table that does not fit is split into several, each
repeating the first *keep* columns (the row's key), titled "(1/2)",
"(2/2)": the table folds, the digits stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Union

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Cell = Union[str, Text]


@dataclass(frozen=True)
class Column:
    heading: str
    justify: str = "right"


def _plain(c: Cell) -> str:
    return c.plain if isinstance(c, Text) else c


def min_width(col: Column, cells: Sequence[Cell]) -> int:
    """The narrowest the column can be without breaking a cell (a figure
    and its unit stay on one line) or a word of its heading."""
    longest_cell = max((cell_len(line) for c in cells for line in _plain(c).splitlines()), default=0)
    return max(longest_cell, max((cell_len(w) for w in col.heading.split()), default=0), 1)


def natural_width(col: Column, cells: Sequence[Cell]) -> int:
    """The column's width with its heading on one line."""
    return max(min_width(col, cells), cell_len(col.heading))


def fit_tables(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int,
               keep: int = 1) -> List[Table]:
    """The table in as many parts as needed to fit *width* cells (each part
    the first *keep* columns plus as many others as fit). Every column gets
    a fixed width (rich's own shrinking would cut cells): at least its
    minimum, and the room left goes to headings that would wrap."""
    least = [min_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    most = [natural_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    groups: List[List[int]] = []
    base = sum(w + 3 for w in least[:keep]) + 1  # padding 1 + 1 and one rule per column, one more per table
    for i in range(keep, len(columns)):
        if not groups or base + sum(least[j] + 3 for j in groups[-1]) + least[i] + 3 > width:
            groups.append([])
        groups[-1].append(i)
    tables = []
    for n, group in enumerate(groups or [[]], start=1):
        part = f" ({n}/{len(groups)})" if len(groups) > 1 else ""
        shown = [*range(keep), *group]
        widths = {i: least[i] for i in shown}
        spare = width - 1 - sum(widths[i] + 3 for i in shown)
        for i in shown:  # headings on one line where the room allows
            grow = min(spare, most[i] - widths[i])
            widths[i] += grow
            spare -= grow
        t = Table(title=title + part if title else None)
        for i in shown:
            t.add_column(columns[i].heading, justify=columns[i].justify,  # type: ignore[arg-type]
                         width=widths[i])
        for r in rows:
            t.add_row(*(r[i] for i in shown))
        tables.append(t)
    return tables


def markdown(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> str:
    """The same rows as a GitHub-flavoured Markdown table."""
    def esc(c: Cell) -> str:
        return _plain(c).replace("|", "\\|").replace("\n", " ")

    align = {"right": "---:", "center": ":---:"}
    lines = ["| " + " | ".join(esc(c.heading) for c in columns) + " |",
             "| " + " | ".join(align.get(c.justify, "---") for c in columns) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
