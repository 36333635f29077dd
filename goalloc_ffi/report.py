"""Text renderings of goalloc's statistics and size classes (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from . import stats as st
from .tables import Column, fit_tables

if TYPE_CHECKING:
    from . import SizeClass


def _mib(v: int) -> str:
    return f"{v / 2**20:.1f}"


#: Short column headings of the totals tables (the names are C's).
_SHORT = {"small_mallocs": "mallocs", "small_frees": "frees", "large_mallocs": "large mallocs",
          "large_frees": "large frees", "atomic_frees": "atomic frees", "cross_thread_frees": "cross-thread frees", "tiny_objects": "tiny objects",
          "objects_in_use": "live objects", "mcache_refills": "refills", "mcentral_grows": "grows",
          "scavenged_pages": "scavenged pages", "reclaimed_pages": "reclaimed pages", "misuse_errors": "misuse"}


def _heading(name: str) -> str:
    if name in _SHORT:
        return _SHORT[name]
    return name.replace("_bytes", "").replace("bytes_", "").replace("_", " ")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _table(console: Console, title: str, names: Sequence[str], values: Sequence[str]) -> None:
    """One row of figures, folded into as many tables as the width needs."""
    cols = [Column(_heading(n)) for n in names]
    for t in fit_tables(title, cols, [list(values)], console.width, keep=0):
        console.print(t)


def _who(s: "st.Stats") -> str:
    """pid, name and command line of the process a file describes."""
    who = f"pid {s.pid}"
    if s.comm:
        who += f" {_printable(s.comm)}"
    if s.argv:
        who += f" ({_printable(_short(s.command, 120))})"
    return who


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def print_report(s: "st.Stats", classes: int = 15, console: Optional[Console] = None) -> None:
    """Totals, where the resident memory goes, internal fragmentation and
    the busiest classes (by bytes at the heap's peak) of loaded statistics."""
    console = console or Console(stderr=True)
    t = s.totals
    version = f", goalloc {s.goalloc_version}" if s.goalloc_version else ""
    console.print(Text.assemble(("goalloc statistics", "bold"),
                                f" of {_who(s)} (size classes {_printable(s.size_classes)}{version})"))
    names = ("bytes_in_use", "bytes_free_in_spans", "bytes_free_resident", "bytes_released", "bytes_mapped",
             "bytes_metadata", "rss_bytes", "peak_rss_bytes", "peak_heap_bytes")
    _table(console, "memory (MiB)", names, [_mib(getattr(t, n)) for n in names])
    names = ("small_mallocs", "small_frees", "large_mallocs", "large_frees", "atomic_frees", "cross_thread_frees", "tiny_objects",
             "mcache_refills", "mcentral_grows", "scavenged_pages", "reclaimed_pages", "misuse_errors")
    _table(console, "counts", names, [str(getattr(t, n)) for n in names])
    handed = t.requested_bytes + t.frag_cumulative_bytes
    console.print(f"internal fragmentation (small and tiny objects): {_mib(t.frag_cumulative_bytes)} MiB "
                  f"over all mallocs ({_pct(t.frag_cumulative_bytes, handed)} of the bytes handed out, exact); "
                  f"in live objects about {_mib(t.frag_live_estimate_bytes)} MiB (estimate)")
    used = sum(1 for c in s.classes if c.mallocs)
    for table in class_tables(s.classes, classes, f"busiest size classes (of {used} used; by bytes at the "
                              f"heap's peak of {_mib(t.peak_heap_bytes)} MiB)", console.width):
        console.print(table)


def load_busiest_first(paths: Sequence[str]) -> List[Tuple[str, "st.Stats"]]:
    """The statistics files that loaded, with their paths, most mallocs
    first (a file of a process killed while writing it is left out)."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path, st.load(path)))
        except (OSError, ValueError, st.StatsUnavailable):
            continue
    loaded.sort(key=lambda ps: -(ps[1].totals.small_mallocs + ps[1].totals.large_mallocs))
    return loaded


def print_other_processes(loaded: Sequence["st.Stats"], console: Optional[Console] = None,
                          rows: int = 10, title: str = "other processes of the command") -> None:
    """A table of other processes' statistics (pid, name, command, mallocs,
    peaks), as `goalloc run --report` shows them after the summary: a shell
    or a driver may have done little of the allocating."""
    if not loaded:
        return
    console = console or Console(stderr=True)
    names = ("small_mallocs", "large_mallocs", "peak_heap_bytes", "peak_rss_bytes")
    cols = [Column("pid"), Column("process", "left"), Column("command", "left"),
            *(Column(_heading(n) + (" (MiB)" if n.endswith("_bytes") else "")) for n in names)]
    body = []
    for s in loaded[:rows]:
        t = s.totals
        body.append([str(s.pid), _printable(s.comm) or "?", _printable(_short(s.command, 40)) or "?",
                     *(_mib(getattr(t, n)) if n.endswith("_bytes") else str(getattr(t, n)) for n in names)])
    for table in fit_tables(f"{title} ({len(loaded)}; --report-pid PID summarises one)", cols, body,
                            console.width, keep=1):
        console.print(table)
    if len(loaded) > rows:
        console.print(f"... and {len(loaded) - rows} more")


#: Columns of the per-class table: (field, heading).
CLASS_COLUMNS = (("size", "size"), ("mallocs", "mallocs"), ("peak_span_bytes", "bytes at heap peak"),
                 ("objects_in_use", "live objects"), ("bytes_in_use", "bytes in use"),
                 ("frag_cumulative_bytes", "frag, all mallocs"), ("frag_live_estimate_bytes", "frag, live (est.)"))


def class_tables(rows: Sequence[Any], n: int, title: str, width: int) -> List[Table]:
    """The n busiest classes of rows (ClassStats or live dicts; by bytes of
    their spans at the heap's peak, then bytes in use, then handed out) with
    the internal fragmentation columns: over all mallocs (exact; "frag %"
    of the bytes handed out) and in the live objects (an estimate); spans:
    cached/partial/full. Folded to *width*, the class repeated."""
    def get(r: Any, name: str) -> Any:
        return r.get(name) if isinstance(r, dict) else getattr(r, name, None)

    cols = [Column("class"), *(Column(h) for _, h in CLASS_COLUMNS), Column("frag %"), Column("spans c/p/f")]
    body = []
    for r in sorted((r for r in rows if get(r, "mallocs")), key=st.class_order)[:n]:
        handed = get(r, "mallocs") * get(r, "size")
        body.append([str(get(r, "class") if isinstance(r, dict) else r.cls),
                     *("-" if get(r, f) is None else str(get(r, f)) for f, _ in CLASS_COLUMNS),
                     _pct(get(r, "frag_cumulative_bytes") or 0, handed),
                     "/".join(str(get(r, f)) for f in ("spans_cached", "spans_partial", "spans_full"))])
    return fit_tables(title, cols, body, width, keep=1)


def _printable(s: str) -> str:
    """s with its control characters (terminal escapes) shown as U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in s)


def _live_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """A live class row with every field class_table uses: one the file
    does not name is None ("-"), and size and mallocs, which it multiplies,
    are 0 rather than None."""
    fields = (*(f for f, _ in CLASS_COLUMNS), "spans_cached", "spans_partial", "spans_full")
    r = {**dict.fromkeys(fields), **row}
    r["size"], r["mallocs"] = r["size"] or 0, r["mallocs"] or 0
    return r


def live_view(snap: Any, classes: int = 12, width: int = 100) -> Group:
    """What `goalloc top` shows of a live.LiveSnapshot."""
    t = snap.totals
    comm = ""
    try:
        with open(f"/proc/{snap.pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        pass
    # comm and the table's name are the process's to choose: plain text, not markup.
    head = Text.assemble(
        ("goalloc top", "bold"), f" pid {snap.pid} ", _printable(comm), "  size classes ",
        _printable(snap.size_classes),
        f"  updates {snap.updates}, last {snap.age_s:.2f} s ago (at most every {snap.interval_ms} ms, "
        "on allocation slow paths)")
    names = ("bytes_in_use", "bytes_free_in_spans", "bytes_free_resident", "bytes_released", "bytes_mapped",
             "bytes_metadata", "rss_bytes", "frag_live_estimate_bytes")
    mem = fit_tables("memory (MiB)", [Column(_heading(n)) for n in names],
                     [["-" if t.get(n) is None else _mib(t[n]) for n in names]], width, keep=0)
    names = ("objects_in_use", "small_mallocs", "small_frees", "large_mallocs", "large_frees", "atomic_frees",
             "cross_thread_frees", "mcache_refills", "mcentral_grows", "scavenged_pages", "misuse_errors")
    counts = fit_tables("counts", [Column(_heading(n)) for n in names],
                        [["-" if t.get(n) is None else str(t[n]) for n in names]], width, keep=0)
    rows = [_live_row(c) for c in snap.classes]
    used = sum(1 for c in rows if c["mallocs"])
    return Group(head, *mem, *counts,
                 *class_tables(rows, classes, f"busiest size classes (of {used} used)", width))


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
