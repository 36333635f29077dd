"""Size-class tables fitted to a recorded workload (``goalloc sizeclasses --fit``).

A size profile (``GOALLOC_PROFILE=PATH``: how many requests of each small
size a program made, and how many of them were live at its peak; read by
goalloc_ffi.profile) goes in;
a table in the generator's TSV format (goalloc_ffi/sizeclass_table.py)
comes out, which the library can load with ``GOALLOC=sizeclasses=FILE``.

Rules kept (the geometry comes from the library: ``geometry()``)
    Sizes are multiples of 8 and, from 16 bytes on, of the alignment (16,
    or 8 with ``align=8`` as Go >= 1.16 allows), multiples of 128 above
    1024 bytes (the lookup grids of sizeclasses.h); the last class is
    32768; at most 1024 objects per span; an exact 32-bit divide magic;
    at most ``max_classes`` real classes (default: as many as the Go table
    of that alignment has; never more than the compiled maximum less the
    dummy class 0).
Pages per span
    Go's rule: the smallest page count whose tail is at most 1/8 of the
    span, applied as Go applies it: to a size C0 <= C on the lookup grid
    that packs as many objects per span as C, which Go's widening pass then
    grows to C. Of those spans, C gets the one with the smallest footprint
    (below). C0 = C is always one of them. This is how Go's own tables are
    built (Go 1.12's 3072-byte class uses the 3 pages of 2816 bytes, where
    3072 on its own would get 2), so each Go table is a candidate too.
Objective
    A request of s bytes (0 counts as 1, as malloc serves it) goes to the
    first class C >= s, whose spans of P pages hold n = P*page // C
    objects. Each object occupies C bytes plus its share of the span's
    tail, so it costs ``footprint(C) - s`` bytes beyond what was asked,
    with ``footprint(C) = P*page / n``. The fit minimises

        W = sum over requested sizes s of  w(s) * (footprint(class(s)) - s)

    with w(s) = live_at_peak (default ``weight="live"``: bytes wasted at the
    recorded peak, spans assumed full) or count (``weight="count"``:
    cumulative over every request). Counting the tail keeps the fit from
    trading rounding waste for span tail waste. Large objects and sizes
    served by the tiny allocator are not affected by the table; the
    profile's small sizes are all counted (as with ``tiny=0``).
Algorithm
    Sizes in one grid cell always share a class, so the candidates are
    the distinct requested sizes rounded up to the class grid, v_1 < ... <
    v_K, plus 32768. A class serving v_i..v_j may be any grid size in
    [v_j, v_(j+1)); the best one (smallest footprint, then the largest
    size) depends on j alone, so the cost of a segment is
    ``fp_j * W(i..j) - S(i..j)`` from prefix sums of w and w*s. An exact
    dynamic programme over (classes used, last candidate covered) then
    finds the optimum for every class budget k <= max_classes in
    O(K^2 * max_classes); K is at most the number of grid cells (376).
    The fewest classes reaching the optimum are kept.
Filling
    Classes left in the budget are filled with classes of the Go table of
    the same alignment that take no size of weight > 0 from its class
    (they sit between a class and the first such size above it), widest
    gap first, so that sizes the profile never saw (or, with weight live,
    saw none of live at the peak) still round as in Go. They change
    nothing in W.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import sizeclass_table as sct
from ._goalloc import ffi, lib
from .profile import SizeProfile, SizeRequests

SizeClass = sct.SizeClass
WEIGHTS = ("live", "count")
ALIGNS = (16, 8)
#: Go table whose class count is the default budget, and which fills the rest, per alignment.
GO_TABLE_FOR_ALIGN = {v.align: v.name for v in sct.VARIANTS}


@lru_cache(maxsize=None)
def geometry() -> sct.Geometry:
    """The size-class rules compiled into the library (``ga_sizeclass_geometry``)."""
    g = ffi.new("ga_sizeclass_geometry_t *")
    lib.ga_sizeclass_geometry(g)
    return sct.Geometry(**{f.name: int(getattr(g, f.name)) for f in fields(sct.Geometry)})


@lru_cache(maxsize=None)
def go_classes(name: str) -> Tuple[SizeClass, ...]:
    """One of Go's tables (``go1.12``, ``go1.16``), class 0 first."""
    return sct.build_table(sct.variant(name), geometry()).classes


def _weight(r: SizeRequests, weight: str) -> int:
    return r.live_at_peak if weight == "live" else r.count


# --------------------------------------------------------------------------
# Waste of a table on a profile
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Waste:
    """What a table wastes on a profile (see the module's objective)."""

    nclasses: int  # real classes (class 0 not counted)
    peak: float  # sum of live_at_peak * (footprint - size): the objective with weight live
    peak_rounding: int  # sum of live_at_peak * (class size - size)
    cumulative: float  # sum of count * (footprint - size): the objective with weight count
    cumulative_rounding: int  # sum of count * (class size - size)
    requested_peak: int  # sum of live_at_peak * size
    requested_total: int  # sum of count * size

    def objective(self, weight: str) -> float:
        return self.peak if weight == "live" else self.cumulative

    @property
    def peak_pct(self) -> Optional[float]:
        return 100 * self.peak / self.requested_peak if self.requested_peak else None

    @property
    def cumulative_pct(self) -> Optional[float]:
        return 100 * self.cumulative / self.requested_total if self.requested_total else None


def evaluate(classes: Sequence[SizeClass], profile: SizeProfile) -> Waste:
    """The waste of a table (class 0 first) on a profile."""
    sizes = [c.size for c in classes]
    peak = cum = 0.0
    peak_r = cum_r = req_peak = req_total = 0
    for r in profile.requests:
        s = max(r.size, 1)
        c = classes[bisect.bisect_left(sizes, s, 1)]
        over = c.footprint - s
        peak += r.live_at_peak * over
        cum += r.count * over
        peak_r += r.live_at_peak * (c.size - s)
        cum_r += r.count * (c.size - s)
        req_peak += r.live_at_peak * s
        req_total += r.count * s
    return Waste(len(classes) - 1, peak, peak_r, cum, cum_r, req_peak, req_total)


# --------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------


def class_grid(align: int, g: sct.Geometry) -> List[int]:
    """Every size a class may have: multiples of 8 below 16, of ``align`` up
    to small_size_max, of large_size_div above, up to max_small_size."""
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align}")
    small = [s for s in range(g.small_size_div, g.small_size_max + 1, g.small_size_div)
             if s < 16 or s % align == 0]
    large = list(range(g.small_size_max + g.large_size_div, g.max_small_size + 1, g.large_size_div))
    return small + large


def _lookup_grid(g: sct.Geometry) -> List[int]:
    return class_grid(8, g)


@lru_cache(maxsize=None)
def _spans(g: sct.Geometry) -> Dict[int, Tuple[int, float]]:
    """For every size of the lookup grid that can be a class: ``(npages,
    footprint)`` of its best span under Go's rule (module docstring)."""
    grid = _lookup_grid(g)
    own = {c0: sct.span_pages(c0, g) for c0 in grid}
    out: Dict[int, Tuple[int, float]] = {}
    for c in grid:
        best: Optional[Tuple[float, int]] = None
        for c0 in grid:
            if c0 > c:
                break
            p = own[c0]
            span = p * g.page_size
            n = span // c
            if n < 1 or span // c0 != n or n > g.max_objs_per_span:
                continue
            cand = (span / n, p)
            if best is None or cand < best:
                best = cand
        if best is not None and sct.magic_is_exact(c, sct.divide_magic(c), best[1] * g.page_size):
            out[c] = (best[1], best[0])
    return out


@dataclass(frozen=True)
class Fit:
    """A fitted table and how it was made."""

    classes: Tuple[SizeClass, ...]  # class 0 first
    weight: str
    align: int
    max_classes: int  # the budget of real classes
    fitted: int  # real classes chosen by the programme; the others are fill from Go's table
    objective: float  # W of the chosen classes (module docstring)


def default_max_classes(align: int) -> int:
    """Real classes of the Go table of this alignment (go1.12: 66, go1.16: 67)."""
    return len(go_classes(GO_TABLE_FOR_ALIGN[align])) - 1


def fit(profile: SizeProfile, max_classes: Optional[int] = None, weight: str = "live", align: int = 16) -> Fit:
    """The table minimising the objective (module docstring) on ``profile``."""
    import numpy as np

    g = geometry()
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    grid = class_grid(align, g)
    limit = g.max_size_classes - 1
    budget = default_max_classes(align) if max_classes is None else max_classes
    if not 1 <= budget <= limit:
        raise ValueError(f"max_classes must be in 1..{limit} (the compiled maximum less class 0), got {budget}")
    spans = _spans(g)
    # Candidates: requested sizes rounded up to the class grid, with their weights.
    acc: Dict[int, List[int]] = {}
    for r in profile.requests:
        s = max(r.size, 1)
        v = grid[bisect.bisect_left(grid, s)]
        w = _weight(r, weight)
        a = acc.setdefault(v, [0, 0])
        a[0] += w
        a[1] += w * s
    acc.setdefault(g.max_small_size, [0, 0])
    atoms = sorted(acc)
    k_atoms = len(atoms)
    # Best class per candidate j: grid sizes in [v_j, v_(j+1)); the last is max_small_size.
    best: List[Optional[Tuple[int, int, float]]] = []  # (size, npages, footprint)
    for j, v in enumerate(atoms):
        hi = atoms[j + 1] if j + 1 < k_atoms else v + 1
        choice: Optional[Tuple[int, int, float]] = None
        for c in grid[bisect.bisect_left(grid, v):bisect.bisect_left(grid, hi)]:
            if c in spans and (choice is None or (spans[c][1], -c) <= (choice[2], -choice[0])):
                choice = (c, spans[c][0], spans[c][1])
        best.append(choice)
    w_prefix = np.concatenate([[0.0], np.cumsum([acc[v][0] for v in atoms], dtype=float)])
    s_prefix = np.concatenate([[0.0], np.cumsum([acc[v][1] for v in atoms], dtype=float)])
    fp = np.array([b[2] if b else np.inf for b in best])  # class of the segment ending at atom j-1
    # cost[i, j]: atoms i..j-1 in one class (the best for atom j-1); inf unless i < j.
    with np.errstate(invalid="ignore"):
        cost = fp[None, :] * (w_prefix[None, 1:] - w_prefix[:-1, None]) - (s_prefix[None, 1:] - s_prefix[:-1, None])
    cost = np.where(np.triu(np.ones((k_atoms, k_atoms), dtype=bool)) & np.isfinite(fp)[None, :], cost, np.inf)
    # f[j]: least cost of atoms 0..j-1 with k classes; prev[k][j]: where the last class starts.
    f = np.full(k_atoms + 1, np.inf)
    f[0] = 0.0
    prev: List[Any] = []
    finals: List[float] = []
    for _ in range(min(budget, k_atoms)):
        m = f[:-1, None] + cost  # m[i, j-1]: first i atoms before, atoms i..j-1 in the new class
        arg = m.argmin(axis=0)
        nf = np.full(k_atoms + 1, np.inf)
        nf[1:] = m[arg, np.arange(k_atoms)]
        prev.append(arg)
        f = nf
        finals.append(float(f[k_atoms]))
    optimum = min(finals)
    tolerance = 1e-12 * max(1.0, abs(optimum))
    k_best = next(k for k, v in enumerate(finals) if v <= optimum + tolerance)
    pairs: List[Tuple[int, int]] = []
    j = k_atoms
    for k in range(k_best, -1, -1):
        b = best[j - 1]
        assert b is not None
        pairs.append((b[0], b[1]))
        j = int(prev[k][j - 1])
    assert j == 0
    pairs.reverse()
    fitted = len(pairs)
    pairs = _fill(pairs, [v for v in atoms if acc[v][0] > 0], budget, align)
    classes = tuple(sct.finish(pairs, g))
    return Fit(classes, weight, align, budget, fitted, optimum)


def _fill(pairs: List[Tuple[int, int]], atoms: Sequence[int], budget: int, align: int) -> List[Tuple[int, int]]:
    """Adds classes of Go's table that take no size of ``atoms`` (the class
    grid sizes with weight) from its class: W does not change."""
    sizes = [s for s, _ in pairs]
    spare = [(c.size, c.npages) for c in go_classes(GO_TABLE_FOR_ALIGN[align])[1:] if c.size not in sizes]
    out = list(pairs)
    while len(out) < budget:
        pick: Optional[Tuple[float, float, int]] = None
        for size, npages in spare:
            pos = bisect.bisect_left(sizes, size)
            below = sizes[pos - 1] if pos else 0
            nxt = bisect.bisect_right(atoms, below)  # first requested size above the class below
            if nxt < len(atoms) and atoms[nxt] <= size:
                continue  # would take weighted requests from the class above
            above = sizes[pos]
            gap = above / max(below, 1)
            off = abs(math.log(size / math.sqrt(max(below, 1) * above)))
            cand = (-gap, off, size)
            if pick is None or cand < pick:
                pick = cand
        if pick is None:
            break
        size = pick[2]
        pos = bisect.bisect_left(sizes, size)
        sizes.insert(pos, size)
        out.insert(pos, next(p for p in spare if p[0] == size))
        spare = [p for p in spare if p[0] != size]
    return out


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def write_tsv(f: Fit, path: "str | Path", source: str = "") -> None:
    """Writes the fitted table in the generator's TSV format."""
    notes = [f"fitted by goalloc sizeclasses --fit{f' to {source}' if source else ''}: weight {f.weight}, "
             f"align {f.align}, at most {f.max_classes} classes ({f.fitted} fitted, "
             f"{len(f.classes) - 1 - f.fitted} from {GO_TABLE_FOR_ALIGN[f.align]} where the profile has no weight)"]
    Path(path).write_text(sct.tsv_text(f.classes, "goalloc fitted size classes", geometry(), notes))


def read_tsv(path: "str | Path") -> List[SizeClass]:
    """A table in the generator's TSV format, checked (class 0 first)."""
    return sct.parse_tsv(Path(path).read_text(), geometry(), str(path))[0]


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def compare_tables(f: Fit, profile: SizeProfile) -> List[Tuple[str, Waste]]:
    """``(name, waste)`` of the fitted table and of Go's tables on the profile."""
    rows = [("fitted", evaluate(f.classes, profile))]
    rows += [(v.name, evaluate(go_classes(v.name), profile)) for v in sct.VARIANTS]
    return rows


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}%"


def print_fit(f: Fit, profile: SizeProfile, source: str = "", show_table: bool = True,
              console: Optional[Any] = None) -> None:
    """The fitted table (Go's columns) and its waste next to Go's tables."""
    from rich.console import Console
    from rich.table import Table

    from .report import sizeclass_table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 120))  # logs: keep a row on one line
    filled = len(f.classes) - 1 - f.fitted
    title = (f"fitted size classes{f' for {source}' if source else ''}: weight {f.weight}, align {f.align}, "
             f"{len(f.classes) - 1} classes ({f.fitted} fitted, {filled} from "
             f"{GO_TABLE_FOR_ALIGN[f.align]} where the profile has no weight)")
    if show_table:
        console.print(sizeclass_table(f.classes[1:], title))
    else:
        console.print(title)
    go_align = ", ".join(f"{v.name} align {v.align}" for v in sct.VARIANTS)
    t = Table(title="waste on the profile in bytes: beyond each request, span tails included",
              caption=f"rounding: class size - request only; % of the requested bytes ({go_align})",
              title_justify="left", caption_justify="left")
    for name in ("table", "classes", "at peak", "%", "rounding", "cumulative", "% ", "rounding "):
        t.add_column(name, justify="left" if name == "table" else "right", no_wrap=True)
    for name, w in compare_tables(f, profile):
        t.add_row(name, str(w.nclasses), f"{w.peak:,.0f}", _pct(w.peak_pct), f"{w.peak_rounding:,}",
                  f"{w.cumulative:,.0f}", _pct(w.cumulative_pct), f"{w.cumulative_rounding:,}",
                  style="bold" if name == "fitted" else None)
    console.print(t)
    live = sum(r.live_at_peak for r in profile.requests)
    total = sum(r.count for r in profile.requests)
    large = profile.large.count
    console.print(f"profile: {len(profile.requests)} small sizes, {total:,} requests, {live:,} live at the peak"
                  + (f"; {large:,} large objects (no size class)" if large else "")
                  + f". Minimised: the {'at peak' if f.weight == 'live' else 'cumulative'} column.",
                  style="dim")
