"""Text renderings of goalloc's statistics and size classes (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from . import stats as st

if TYPE_CHECKING:
    from . import SizeClass


def _mib(v: int) -> str:
    return f"{v / 2**20:.1f}"


#: Short column headings of the totals tables (the names are C's).
_SHORT = {"small_mallocs": "mallocs", "small_frees": "frees", "large_mallocs": "large mallocs",
          "large_frees": "large frees", "remote_frees": "remote frees", "tiny_objects": "tiny objects",
          "objects_in_use": "live objects", "mcache_refills": "refills", "mcentral_grows": "grows",
          "scavenged_pages": "scavenged pages", "reclaimed_pages": "reclaimed pages", "misuse_errors": "misuse"}


def _heading(name: str) -> str:
    if name in _SHORT:
        return _SHORT[name]
    return name.replace("_bytes", "").replace("bytes_", "").replace("_", " ")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def print_report(path: str, classes: int = 15, console: Optional[Console] = None) -> None:
    """Totals, where the resident memory goes, internal fragmentation and
    the busiest classes."""
    console = console or Console()
    try:
        s = st.load(path)
    except FileNotFoundError:
        console.print(f"goalloc: no statistics at {path} (did the program exit normally?)")
        return
    except st.StatsUnavailable as e:
        console.print(f"goalloc: {e}")
        return
    t = s.totals
    console.print(f"[bold]goalloc statistics[/] of pid {s.pid} (size classes {s.size_classes})")
    where = Table(title="memory (MiB)")
    names = ("bytes_in_use", "bytes_free_in_spans", "bytes_free_resident", "bytes_released", "bytes_mapped",
             "bytes_metadata", "rss_bytes", "peak_rss_bytes", "peak_heap_bytes")
    for name in names:
        where.add_column(_heading(name), justify="right")
    where.add_row(*(_mib(getattr(t, n)) for n in names))
    console.print(where)
    counts = Table(title="counts")
    names = ("small_mallocs", "small_frees", "large_mallocs", "large_frees", "remote_frees", "tiny_objects",
             "mcache_refills", "mcentral_grows", "scavenged_pages", "reclaimed_pages", "misuse_errors")
    for name in names:
        counts.add_column(_heading(name), justify="right")
    counts.add_row(*(str(getattr(t, n)) for n in names))
    console.print(counts)
    handed = t.requested_bytes + t.frag_cumulative_bytes
    console.print(f"internal fragmentation (small and tiny objects): {_mib(t.frag_cumulative_bytes)} MiB "
                  f"over all mallocs ({_pct(t.frag_cumulative_bytes, handed)} of the bytes handed out, exact); "
                  f"in live objects about {_mib(t.frag_live_estimate_bytes)} MiB (estimate)")
    console.print(class_table(s.classes, classes, f"busiest size classes (of {sum(1 for c in s.classes if c.mallocs)} used)"))


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
                          rows: int = 10) -> None:
    """A table of other processes' statistics (pid, mallocs, peaks), as
    `goalloc run --report` shows them after the command's own: a shell or a
    driver may have done little of the allocating."""
    if not loaded:
        return
    console = console or Console()
    table = Table(title=f"other processes of the command ({len(loaded)})")
    names = ("small_mallocs", "large_mallocs", "peak_heap_bytes", "peak_rss_bytes")
    table.add_column("pid", justify="right")
    for name in names:
        table.add_column(_heading(name) + (" (MiB)" if name.endswith("_bytes") else ""), justify="right")
    for s in loaded[:rows]:
        t = s.totals
        table.add_row(str(s.pid), *(_mib(getattr(t, n)) if n.endswith("_bytes") else str(getattr(t, n))
                                    for n in names))
    console.print(table)
    if len(loaded) > rows:
        console.print(f"... and {len(loaded) - rows} more")


#: Columns of the per-class table: (field, heading).
CLASS_COLUMNS = (("size", "size"), ("mallocs", "mallocs"), ("objects_in_use", "live objects"),
                 ("bytes_in_use", "bytes in use"), ("frag_cumulative_bytes", "frag, all mallocs"),
                 ("frag_live_estimate_bytes", "frag, live (est.)"))


def class_table(rows: Sequence[Any], n: int, title: str) -> Table:
    """The n classes of rows (ClassStats or live dicts) with the most bytes
    in use (then the most bytes handed out), with the internal fragmentation
    columns: over all mallocs (exact; "frag %" of the bytes handed out) and
    in the live objects (an estimate); spans: cached/partial/full."""
    def get(r: Any, name: str) -> Any:
        return r[name] if isinstance(r, dict) else getattr(r, name)

    used = [r for r in rows if get(r, "mallocs")]
    table = Table(title=title)
    table.add_column("class", justify="right")
    for _, heading in CLASS_COLUMNS:
        table.add_column(heading, justify="right")
    table.add_column("frag %", justify="right")
    table.add_column("spans c/p/f", justify="right")
    def order(r: Any) -> tuple[int, int]:
        return -(get(r, "bytes_in_use") or 0), -get(r, "mallocs") * get(r, "size")

    for r in sorted(used, key=order)[:n]:
        handed = get(r, "mallocs") * get(r, "size")
        table.add_row(str(get(r, "class") if isinstance(r, dict) else r.cls),
                      *("-" if get(r, f) is None else str(get(r, f)) for f, _ in CLASS_COLUMNS),
                      _pct(get(r, "frag_cumulative_bytes") or 0, handed),
                      "/".join(str(get(r, f)) for f in ("spans_cached", "spans_partial", "spans_full")))
    return table


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


def live_view(snap: Any, classes: int = 12) -> Group:
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
    mem = Table(title="memory (MiB)")
    names = ("bytes_in_use", "bytes_free_in_spans", "bytes_free_resident", "bytes_released", "bytes_mapped",
             "bytes_metadata", "rss_bytes", "frag_live_estimate_bytes")
    for name in names:
        mem.add_column(_heading(name), justify="right")
    mem.add_row(*("-" if t.get(n) is None else _mib(t[n]) for n in names))
    counts = Table(title="counts")
    names = ("objects_in_use", "small_mallocs", "small_frees", "large_mallocs", "large_frees", "remote_frees",
             "mcache_refills", "mcentral_grows", "scavenged_pages", "misuse_errors")
    for name in names:
        counts.add_column(_heading(name), justify="right")
    counts.add_row(*("-" if t.get(n) is None else str(t[n]) for n in names))
    rows = [_live_row(c) for c in snap.classes]
    used = sum(1 for c in rows if c["mallocs"])
    return Group(head, mem, counts, class_table(rows, classes, f"busiest size classes (of {used} used)"))


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
