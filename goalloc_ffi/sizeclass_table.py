"""Size-class tables: Go's mksizeclasses algorithm, the checks every table
must pass, and the generator's TSV format.

Pure Python, no compiled code: tools/mksizeclasses.py loads this file by
path to write csrc/sizeclasses.c (the extension is built from that file),
and goalloc_ffi.sizeclass_fit builds tables fitted to a workload with it.
The geometry (page size, lookup grids, limits) is a parameter, never a
literal here: the generator reads it from csrc/sizeclasses.h
(``Geometry.from_header``), the package from the compiled library
(``goalloc_ffi.sizeclass_fit.geometry``).

The algorithm (Go's runtime/mksizeclasses.go, re-implemented):

Pass 1, candidates
    Walk ``size`` from 8 to 32768 in steps of ``align`` (initially 8). When
    ``size`` is a power of two the step grows: to 256 from 2048, to size/8 from
    128, and to 16 from the *alignment threshold* T. T is the only difference
    between Go's two tables: T = 16 (Go 1.12-1.15, every class >= 16 B is
    16-byte aligned) and T = 32 (Go >= 1.16, which adds the 24-byte class).
    Each candidate gets the smallest span (a whole number of pages) whose tail
    is at most 1/8 of the span. A candidate with the same page count and the
    same objects per span as the previous class replaces that class's size.
Pass 2, widening
    Each class grows to ``span // objects`` rounded down to a multiple of 128
    when that is larger: same objects per span, less tail waste.
Pass 3, checks (``finish``)
    Sizes increase and sit on the lookup grid, the last is the largest small
    size, every span holds 1..max_objs_per_span objects, the 32-bit divide
    magic ``floor((2**32 - 1) / size) + 1`` is exact for every byte offset of
    the span, and the table fits the compiled maximum of classes.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

#: Columns of the generator's TSV format (and of Go's reference data).
TSV_COLUMNS = ("class", "bytes_per_obj", "npages", "bytes_per_span", "objects", "tail_waste",
               "max_waste_pct", "magic32")


@dataclass(frozen=True)
class Geometry:
    """The rules of sizeclasses.h that every table obeys.

    Field names are those of C's ``ga_sizeclass_geometry_t``; each is the
    GA_ macro of the same name in upper case.
    """

    page_size: int  # bytes per page; spans are whole pages
    max_small_size: int  # the last class; larger requests are large objects
    small_size_div: int  # grid of size_to_class8: sizes <= small_size_max
    small_size_max: int
    large_size_div: int  # grid of size_to_class128: sizes above small_size_max
    max_size_classes: int  # compiled maximum, class 0 included
    max_objs_per_span: int

    @property
    def class8_len(self) -> int:
        return self.small_size_max // self.small_size_div + 1

    @property
    def class128_len(self) -> int:
        return (self.max_small_size - self.small_size_max) // self.large_size_div + 1

    def grid(self, size: int) -> int:
        """The lookup granularity at ``size``: class sizes are multiples of it."""
        return self.small_size_div if size <= self.small_size_max else self.large_size_div

    @classmethod
    def from_header(cls, path: Path) -> "Geometry":
        """The geometry from the ``#define GA_...`` lines of sizeclasses.h."""
        return cls(**{f.name: v for f, v in zip(fields(cls), _header_values(path, [f.name for f in fields(cls)]))})


_BINOPS: Dict[type, Callable[[int, int], int]] = {
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.Add: operator.add,
    ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.floordiv,
}


def _header_values(path: Path, names: Sequence[str]) -> List[int]:
    """Integer values of GA_<NAME> macros (unsigned suffixes, + - * / << >>
    and earlier macros allowed in their definitions)."""
    macros: Dict[str, str] = {}
    for m in re.finditer(r"^#define\s+(GA_\w+)\s+([^/\n]+?)\s*(?:/\*.*)?$", path.read_text(), re.M):
        macros[m.group(1)] = m.group(2)

    def value(name: str) -> int:
        expr = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", macros[name])

        def ev(node: ast.AST) -> int:
            if isinstance(node, ast.Constant) and isinstance(node.value, int):
                return node.value
            if isinstance(node, ast.Name):
                return value(node.id)
            if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
                return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
            raise ValueError(f"{path}: cannot evaluate {name} = {macros[name]!r}")

        return ev(ast.parse(expr, mode="eval").body)

    out = []
    for n in names:
        macro = "GA_" + n.upper()
        if macro not in macros:
            raise ValueError(f"{path}: no #define {macro}")
        out.append(value(macro))
    return out


@dataclass(frozen=True)
class SizeClass:
    """One size class with the figures of Go's comment table.

    Class 0 is the dummy (all fields zero). ``max_waste_pct`` is the waste, in
    percent of the span, when every object is one byte larger than the
    previous class: ``((size - prev - 1) * objects + tail_waste) / span``.
    """

    size: int  # bytes per object
    npages: int  # pages per span
    objects: int  # objects per span
    tail_waste: int  # bytes at the end of the span that hold no object
    max_waste_pct: float
    magic: int  # 32-bit divide magic: offset // size == (offset * magic) >> 32
    span_bytes: int  # npages * page size

    @property
    def footprint(self) -> float:
        """Bytes of span per object, tail included: ``span_bytes / objects``."""
        return self.span_bytes / self.objects if self.objects else 0.0


DUMMY_CLASS = SizeClass(size=0, npages=0, objects=0, tail_waste=0, max_waste_pct=0.0, magic=0, span_bytes=0)


@dataclass(frozen=True)
class Variant:
    """A named Go table: the alignment threshold and the class count Go asserts."""

    name: str
    threshold: int
    nclasses: int  # class 0 included
    summary: str

    @property
    def align(self) -> int:
        """Alignment of every class of 16 B or more: 16 when the 16-byte
        step starts at 16, else 8 (the classes below the threshold)."""
        return 16 if self.threshold <= 16 else 8


VARIANTS: Tuple[Variant, ...] = (
    Variant(
        name="go1.12",
        threshold=16,
        nclasses=67,
        summary="Go 1.12 to 1.15, alignment threshold 16: every class >= 16 B is 16-byte aligned",
    ),
    Variant(
        name="go1.16",
        threshold=32,
        nclasses=68,
        summary="Go >= 1.16, alignment threshold 32: adds the 24-byte class, only 8-byte aligned",
    ),
)


def variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise KeyError(f"no Go table {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


@dataclass(frozen=True)
class Table:
    """A complete table, in the shape of ``ga_sizeclass_table_t``."""

    name: str
    summary: str
    classes: Tuple[SizeClass, ...]  # index == class number; [0] is the dummy
    size_to_class8: Tuple[int, ...]
    size_to_class128: Tuple[int, ...]

    @property
    def c_symbol(self) -> str:
        """Name of the C definition, e.g. ``ga_sizeclasses_go1_12``."""
        return "ga_sizeclasses_" + self.name.replace(".", "_")


# --------------------------------------------------------------------------
# The three passes
# --------------------------------------------------------------------------


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def span_pages(size: int, g: Geometry) -> int:
    """Smallest number of pages whose span wastes at most 1/8 at its tail."""
    span = g.page_size
    while span % size > span // 8:
        span += g.page_size
    return span // g.page_size


def candidates(threshold: int, g: Geometry) -> List[Tuple[int, int]]:
    """Pass 1: ``(size, npages)`` of the real classes, before widening.

    ``threshold`` is the size from which the step is 16 bytes (16 or 32).
    """
    if not _is_pow2(threshold) or not 8 < threshold < 128:
        raise ValueError(f"alignment threshold must be a power of two in 16..64, got {threshold}")
    classes: List[Tuple[int, int]] = []
    align = 8
    size = align
    while size <= g.max_small_size:
        if _is_pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= threshold:
                align = 16
        npages = span_pages(size, g)
        span = npages * g.page_size
        if classes and classes[-1][1] == npages and span // classes[-1][0] == span // size:
            classes[-1] = (size, npages)  # same span and object count: replaces the previous class
        else:
            classes.append((size, npages))
        size += align
    return classes


def widen(classes: Iterable[Tuple[int, int]], g: Geometry) -> List[Tuple[int, int]]:
    """Pass 2: grow each class into its tail waste, in steps of 128 bytes.

    The rounding keeps sizes above 1 KiB on the 128-byte grid of
    ``size_to_class128``; the object count per span does not change.
    """
    widened: List[Tuple[int, int]] = []
    for size, npages in classes:
        span = npages * g.page_size
        wide = span // (span // size) // g.large_size_div * g.large_size_div
        widened.append((max(size, wide), npages))
    return widened


def divide_magic(size: int) -> int:
    """Go's 32-bit divide magic, ``floor((2**32 - 1) / size) + 1``."""
    return (2**32 - 1) // size + 1


def magic_is_exact(size: int, magic: int, limit: int, exhaustive: bool = False) -> bool:
    """True if ``(o * magic) >> 32 == o // size`` for every ``o`` in 0..limit.

    With ``magic * size == 2**32 + e`` (0 <= e < size) and ``o = q*size + r``,
    ``(o * magic) >> 32 == q + floor((r * 2**32 + o * e) / (size * 2**32))``,
    which is q when ``o * e < 2**32`` since r <= size - 1. So
    ``limit * e < 2**32`` proves exactness at once; otherwise (or with
    ``exhaustive``) every offset is tried.
    """
    e = magic * size - 2**32
    if not exhaustive and 0 <= e and limit * e < 2**32:
        return True
    return all((o * magic) >> 32 == o // size for o in range(limit + 1))


def make_class(size: int, npages: int, prev_size: int, g: Geometry) -> SizeClass:
    """The figures of one class (no checks; see ``finish``)."""
    span = npages * g.page_size
    objects = span // size
    tail = span - objects * size
    max_waste = ((size - prev_size - 1) * objects + tail) / span * 100
    return SizeClass(size, npages, objects, tail, max_waste, divide_magic(size), span)


def finish(classes: Sequence[Tuple[int, int]], g: Geometry, exhaustive: bool = False) -> List[SizeClass]:
    """Pass 3: derive the per-class figures and check every invariant.

    ``classes`` are the real classes as ``(size, npages)``; the result starts
    with the dummy class 0. Raises ``ValueError`` if the table is unusable by
    goalloc (see csrc/sizeclasses.h for the invariants). ``exhaustive``
    checks the divide magic offset by offset (see ``magic_is_exact``).
    """
    result = [DUMMY_CLASS]
    for size, npages in classes:
        prev = result[-1]
        if size <= prev.size:
            raise ValueError(f"sizes must strictly increase: {size} after {prev.size}")
        grid = g.grid(size)
        if size % grid:
            raise ValueError(f"size {size} is off the {grid}-byte lookup grid")
        if npages < 1 or npages * g.page_size < size:
            raise ValueError(f"size {size}: {npages} pages hold no object")
        cls = make_class(size, npages, prev.size, g)
        if cls.objects > g.max_objs_per_span:
            raise ValueError(f"size {size}: {cls.objects} objects per span > {g.max_objs_per_span}")
        if not magic_is_exact(size, cls.magic, cls.span_bytes, exhaustive):
            raise ValueError(f"size {size}: divide magic {cls.magic} is not exact over the span")
        result.append(cls)
    if result[-1].size != g.max_small_size:
        raise ValueError(f"the last class must be {g.max_small_size}, got {result[-1].size}")
    if len(result) > g.max_size_classes:
        raise ValueError(f"{len(result)} classes > GA_MAX_SIZE_CLASSES = {g.max_size_classes}")
    return result


def generate(threshold: int, g: Geometry, exhaustive: bool = False) -> List[SizeClass]:
    """Go's size classes for an alignment threshold (16: go1.12, 32: go1.16).

    Index ``i`` of the result is class ``i``; index 0 is the dummy class.
    """
    return finish(widen(candidates(threshold, g), g), g, exhaustive)


def classes_for_sizes(sizes: Iterable[int], g: Geometry, *, widen_classes: bool = True) -> List[SizeClass]:
    """Size classes for arbitrary object sizes, each with Go's span length;
    with ``widen_classes`` the classes are then widened as in pass 2. The
    sizes must be increasing, on the lookup grid and end at the largest
    small size (``finish`` checks)."""
    pairs = [(size, span_pages(size, g)) for size in sizes]
    return finish(widen(pairs, g) if widen_classes else pairs, g)


def lookup_tables(classes: Sequence[SizeClass], g: Geometry) -> Tuple[List[int], List[int]]:
    """``(size_to_class8, size_to_class128)`` for a table starting at class 0.

    ``size_to_class8[i]`` is the first class of at least ``8*i`` bytes and
    ``size_to_class128[i]`` the first class of at least ``1024 + 128*i`` bytes.
    """

    def first_fit(sizes: Iterable[int]) -> List[int]:
        out: List[int] = []
        cls = 0
        for want in sizes:
            while classes[cls].size < want:
                cls += 1  # IndexError would mean want > max_small_size: impossible
            out.append(cls)
        return out

    class8 = first_fit(g.small_size_div * i for i in range(g.class8_len))
    class128 = first_fit(g.small_size_max + g.large_size_div * i for i in range(g.class128_len))
    return class8, class128


def build_table(v: Variant, g: Geometry, exhaustive: bool = False) -> Table:
    """Generate one of Go's tables and check Go's class count."""
    classes = generate(v.threshold, g, exhaustive)
    if len(classes) != v.nclasses:
        raise ValueError(f"{v.name}: {len(classes)} classes, Go has {v.nclasses} (class 0 included)")
    class8, class128 = lookup_tables(classes, g)
    return Table(v.name, v.summary, tuple(classes), tuple(class8), tuple(class128))


def class_of(classes: Sequence[SizeClass], size: int) -> SizeClass:
    """The class a request of ``size`` bytes (1..last class) goes to."""
    lo, hi = 1, len(classes) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if classes[mid].size >= size:
            hi = mid
        else:
            lo = mid + 1
    return classes[lo]


# --------------------------------------------------------------------------
# Go's human-readable table and the generator's TSV format
# --------------------------------------------------------------------------

_COLUMNS = ("class", "bytes/obj", "bytes/span", "objects", "tail waste", "max waste")


def render_comment_table(classes: Sequence[SizeClass]) -> List[str]:
    """Go's human-readable table, one ``//`` line per real class."""
    widths = [len(c) for c in _COLUMNS]
    lines = ["// " + "  ".join(_COLUMNS)]
    for i, c in enumerate(classes[1:], start=1):
        cells = (i, c.size, c.span_bytes, c.objects, c.tail_waste, f"{c.max_waste_pct:.2f}%")
        lines.append("// " + "  ".join(f"{v:>{w}}" for v, w in zip(cells, widths)))
    return lines


def tsv_text(classes: Sequence[SizeClass], title: str, g: Geometry, notes: Sequence[str] = ()) -> str:
    """A table in the generator's TSV format: ``#`` comment lines (a title,
    then what the columns mean), the header, one row per class from 0."""
    lines = [f"# {title} ({len(classes)} entries incl. dummy class 0)"]
    lines += [f"# {n}" for n in notes]
    lines += [
        f"# page = {g.page_size} bytes; objects = bytes_per_span // bytes_per_obj; "
        "tail_waste = bytes_per_span - objects*bytes_per_obj",
        "# max_waste_pct = ((bytes_per_obj - previous_class_bytes - 1)*objects + tail_waste) "
        "/ bytes_per_span * 100",
        "# magic32 = floor((2**32-1)/bytes_per_obj)+1 ; object index of byte offset o within the span "
        "= (o*magic32) >> 32 (exact for every o <= bytes_per_span)",
        "\t".join(TSV_COLUMNS),
    ]
    for i, c in enumerate(classes):
        lines.append("\t".join(str(v) for v in (i, c.size, c.npages, c.span_bytes, c.objects, c.tail_waste,
                                                f"{c.max_waste_pct:.2f}", c.magic)))
    return "\n".join(lines) + "\n"


def parse_tsv(text: str, g: Geometry, source: str = "table") -> Tuple[List[SizeClass], List[str]]:
    """``(classes, comment lines)`` of a table in the generator's TSV format.

    Raises ``ValueError`` naming the line when the header, the class
    numbers or any derived column disagree with ``bytes_per_obj`` and
    ``npages``, or when the table breaks a rule of ``finish``.
    """
    comments: List[str] = []
    header: Optional[List[str]] = None
    rows: List[Tuple[int, List[int], str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        cells = line.split("\t")
        if header is None:
            header = cells
            if tuple(cells) != TSV_COLUMNS:
                raise ValueError(f"{source}:{lineno}: header {cells} is not {list(TSV_COLUMNS)}")
            continue
        if len(cells) != len(TSV_COLUMNS):
            raise ValueError(f"{source}:{lineno}: {len(cells)} columns, expected {len(TSV_COLUMNS)}")
        try:
            values = [int(v) if k != "max_waste_pct" else 0 for k, v in zip(TSV_COLUMNS, cells)]
            float(cells[TSV_COLUMNS.index("max_waste_pct")])
        except ValueError:
            raise ValueError(f"{source}:{lineno}: not a number in {line!r}") from None
        rows.append((lineno, values, cells[TSV_COLUMNS.index("max_waste_pct")]))
    if header is None or not rows:
        raise ValueError(f"{source}: no table (expected the header {' '.join(TSV_COLUMNS)} and rows)")
    col = {k: i for i, k in enumerate(TSV_COLUMNS)}
    for n, (lineno, values, _) in enumerate(rows):
        if values[col["class"]] != n:
            raise ValueError(f"{source}:{lineno}: class {values[col['class']]}, expected {n}")
    if any(rows[0][1][1:]):
        raise ValueError(f"{source}:{rows[0][0]}: class 0 must be the dummy (all zero)")
    try:
        classes = finish([(v[col["bytes_per_obj"]], v[col["npages"]]) for _, v, _ in rows[1:]], g)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    for (lineno, values, pct), c in zip(rows[1:], classes[1:]):
        derived = {"bytes_per_span": c.span_bytes, "objects": c.objects, "tail_waste": c.tail_waste,
                   "magic32": c.magic}
        for name, want in derived.items():
            if values[col[name]] != want:
                raise ValueError(f"{source}:{lineno}: {name} {values[col[name]]}, expected {want}")
        if abs(float(pct) - c.max_waste_pct) > 0.006:
            raise ValueError(f"{source}:{lineno}: max_waste_pct {pct}, expected {c.max_waste_pct:.2f}")
    return classes, comments
