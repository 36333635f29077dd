"""Text renderings of goalloc's statistics and size classes (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from rich.console import Console
from rich.table import Table

from . import stats as st

if TYPE_CHECKING:
    from . import SizeClass


def _mib(v: int) -> str:
    return f"{v / 2**20:.1f}"


def print_report(path: str, classes: int = 15, console: Optional[Console] = None) -> None:
    """Totals, where the resident memory goes, and the busiest classes."""
    console = console or Console()
    try:
        s = st.load(path)
    except FileNotFoundError:
        console.print(f"goalloc: no statistics at {path} (did the program exit normally?)")
        return
    t = s.totals
    console.print(f"[bold]goalloc statistics[/] of pid {s.pid} (size classes {s.size_classes})")
    where = Table(title="memory (MiB)")
    for name in ("bytes_in_use", "bytes_free_resident", "bytes_released", "bytes_mapped",
                 "bytes_metadata", "rss_bytes", "peak_rss_bytes", "peak_heap_bytes"):
        where.add_column(name.replace("_bytes", "").replace("bytes_", ""), justify="right")
    where.add_row(*(_mib(getattr(t, n)) for n in (
        "bytes_in_use", "bytes_free_resident", "bytes_released", "bytes_mapped", "bytes_metadata",
        "rss_bytes", "peak_rss_bytes", "peak_heap_bytes")))
    console.print(where)
    counts = Table(title="counts")
    for name in ("small_mallocs", "small_frees", "large_mallocs", "large_frees", "remote_frees",
                 "tiny_objects", "mcache_refills", "mcentral_grows", "scavenged_pages",
                 "reclaimed_pages", "misuse_errors"):
        counts.add_column(name, justify="right")
    counts.add_row(*(str(getattr(t, n)) for n in (
        "small_mallocs", "small_frees", "large_mallocs", "large_frees", "remote_frees",
        "tiny_objects", "mcache_refills", "mcentral_grows", "scavenged_pages",
        "reclaimed_pages", "misuse_errors")))
    console.print(counts)
    table = Table(title=f"busiest size classes (of {sum(1 for c in s.classes if c.mallocs)} used)")
    for name in ("class", "size", "mallocs", "frees", "objects_in_use", "bytes_in_use",
                 "spans_cached", "spans_partial", "spans_full"):
        table.add_column(name, justify="right")
    for c in st.busiest(s, classes):
        table.add_row(str(c.cls), str(c.size), str(c.mallocs), str(c.frees), str(c.objects_in_use),
                      str(c.bytes_in_use), str(c.spans_cached), str(c.spans_partial), str(c.spans_full))
    console.print(table)


def sizeclass_table(classes: Sequence[Any], title: str) -> Table:
    """Real classes (class 1 first; anything with size, npages, objects and
    tail_waste) in Go's columns: tail waste and max waste as in Go's
    generated sizeclasses.go."""
    table = Table(title=title)
    for name in ("class", "bytes/obj", "bytes/span", "objects", "tail waste", "max waste"):
        table.add_column(name, justify="right")
    prev = 0
    for i, c in enumerate(classes, start=1):
        span = c.objects * c.size + c.tail_waste
        max_waste = ((c.size - prev - 1) * c.objects + c.tail_waste) / span * 100
        table.add_row(str(i), str(c.size), str(span), str(c.objects), str(c.tail_waste), f"{max_waste:.2f}%")
        prev = c.size
    return table


def print_sizeclasses(console: Optional[Console] = None, name: Optional[str] = None,
                      classes: "Optional[List[SizeClass]]" = None) -> None:
    """The table in use (or *classes* named *name*) in Go's columns."""
    from . import malloc_alignment, sizeclass_table_name, sizeclasses

    console = console or Console()
    if classes is None:
        name, classes = f"{sizeclass_table_name()} (in use; malloc alignment {malloc_alignment()})", sizeclasses()
    console.print(sizeclass_table(classes, f"size classes {name}"))
