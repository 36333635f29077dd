"""goalloc's statistics as typed Python objects.

The field names come from C (csrc/mstats.h): Python never restates the
list. Totals and ClassStats are dataclasses made from a list of names: the
names the cffi extension reports (ga_stats_*_name), or, in a Python without
the extension, those of the goalloc preloaded into this process; a JSON
document (load(), from_json()) and the self-view (preloaded_stats()) carry
their own names. The same types describe the private heap of the cffi
module (stats()), the allocator serving this very process under LD_PRELOAD
(preloaded_stats(), through ctypes on the already loaded library: no
compiled extension needed, and importing this module does not import it)
and a JSON file written at exit with GOALLOC_STATS=PATH (load()).

Internal fragmentation: ``frag_cumulative_bytes`` is exact (bytes handed
out minus bytes requested, over every malloc so far); free does not know
the requested size, so ``frag_live_estimate_bytes`` is an ESTIMATE (live
objects x average waste per malloc of the class).
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, field, fields, make_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

#: The JSON value of "stats" in a library built with GA_STATS=0.
_COMPILED_OUT_KEY = "stats"


class StatsFileError(ValueError):
    """A file that is not a goalloc statistics document (empty, cut short,
    a size profile, any other file); the message names the file and why."""


class StatsUnavailable(RuntimeError):
    """The goalloc library was built with statistics compiled out
    (GA_STATS=0, libgoalloc-nostats.so): there is nothing to read."""


@dataclass(frozen=True)
class Schema:
    """The names, descriptions and schema version of a goalloc build."""

    version: int
    total_names: Tuple[str, ...]
    class_names: Tuple[str, ...]
    total_docs: Tuple[str, ...]
    class_docs: Tuple[str, ...]


def _read_schema(version: int, count: Callable[[str], int], name: Callable[[str, int], str]) -> Schema:
    nt, nc = count("ntotals"), count("nclass_fields")
    return Schema(
        version,
        tuple(name("total_name", i) for i in range(nt)),
        tuple(name("class_field_name", i) for i in range(nc)),
        tuple(name("total_doc", i) for i in range(nt)),
        tuple(name("class_field_doc", i) for i in range(nc)),
    )


def _preloaded_library() -> ctypes.CDLL:
    """The goalloc serving this process, found by the process's own symbol
    lookup (the preload library exports ga_*; the cffi extension does not)."""
    so = ctypes.CDLL(None)
    if not hasattr(so, "ga_stats_json"):
        raise LookupError("goalloc is not loaded in this process (run it with LD_PRELOAD, or `goalloc run`)")
    for fn in ("ga_stats_total_name", "ga_stats_class_field_name", "ga_stats_total_doc",
               "ga_stats_class_field_doc"):
        getattr(so, fn).restype = ctypes.c_char_p
        getattr(so, fn).argtypes = [ctypes.c_uint]
    so.ga_stats_json.restype = ctypes.c_size_t
    so.ga_stats_json.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return so


@lru_cache(maxsize=None)
def schema() -> Schema:
    """The names of this goalloc: from the cffi extension if it can be
    imported, else from the preloaded library; ImportError if neither."""
    try:
        from ._goalloc import ffi, lib
    except ImportError as e:
        try:
            so = _preloaded_library()
        except LookupError:
            raise ImportError(f"goalloc statistics need the goalloc_ffi extension ({e}) "
                              "or a preloaded goalloc") from e
        return _read_schema(int(so.ga_stats_version()), lambda f: int(getattr(so, "ga_stats_" + f)()),
                            lambda f, i: getattr(so, "ga_stats_" + f)(i).decode())
    return _read_schema(int(lib.ga_stats_version()), lambda f: int(getattr(lib, "ga_stats_" + f)()),
                        lambda f, i: ffi.string(getattr(lib, "ga_stats_" + f)(i)).decode())


@lru_cache(maxsize=None)
def _types(total_names: Tuple[str, ...], class_names: Tuple[str, ...]) -> Tuple[Any, Any]:
    totals = make_dataclass("Totals", [(n, int) for n in total_names], frozen=True)
    classes = make_dataclass("ClassStats", [("cls", int)] + [(n, int) for n in class_names], frozen=True)
    return totals, classes


def __getattr__(name: str) -> Any:
    """TOTAL_NAMES, CLASS_FIELD_NAMES, TOTAL_DOCS, CLASS_FIELD_DOCS, VERSION,
    Totals (one int field per C counter) and ClassStats (one size class;
    ``cls`` is the class number), made from schema() on first use."""
    lazy: Dict[str, Callable[[Schema], Any]] = {
        "TOTAL_NAMES": lambda s: list(s.total_names),
        "CLASS_FIELD_NAMES": lambda s: list(s.class_names),
        "TOTAL_DOCS": lambda s: dict(zip(s.total_names, s.total_docs)),
        "CLASS_FIELD_DOCS": lambda s: dict(zip(s.class_names, s.class_docs)),
        "VERSION": lambda s: s.version,
        "Totals": lambda s: _types(s.total_names, s.class_names)[0],
        "ClassStats": lambda s: _types(s.total_names, s.class_names)[1],
    }
    if name in lazy:
        return lazy[name](schema())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Stats:
    version: int
    pid: int
    size_classes: str  # the table in use, e.g. "go1.12"
    totals: Any  # Totals
    classes: List[Any]  # ClassStats, class 1 first
    # How it was made (schema 3; empty for the private heap's snapshot):
    goalloc_version: str = ""
    comm: str = ""  # the process's name (/proc/PID/comm)
    argv: Tuple[str, ...] = ()  # its command line
    options: Dict[str, str] = field(default_factory=dict)  # every option in effect, as $GOALLOC spells it

    @property
    def command(self) -> str:
        """The command line, shell-quoted ("" if unknown)."""
        import shlex

        return shlex.join(self.argv)

    def to_json(self) -> Dict[str, Any]:
        return {
            "version": self.version,
            "pid": self.pid,
            "goalloc_version": self.goalloc_version,
            "comm": self.comm,
            "argv": list(self.argv),
            "options": dict(self.options),
            "size_classes": self.size_classes,
            "totals": {f.name: getattr(self.totals, f.name) for f in fields(self.totals)},
            "classes": [{"class": c.cls, **{f.name: getattr(c, f.name) for f in fields(c) if f.name != "cls"}}
                        for c in self.classes],
        }


def _known_version() -> Optional[int]:
    try:
        return schema().version
    except ImportError:
        return None


def from_json(doc: Dict[str, Any]) -> Stats:
    """Stats from the JSON document goalloc writes. Raises StatsUnavailable
    for a library built without statistics, ValueError for a schema version
    other than this goalloc's."""
    if _COMPILED_OUT_KEY in doc:
        raise StatsUnavailable(f"goalloc statistics of pid {doc.get('pid')} are {doc[_COMPILED_OUT_KEY]} "
                               "(a library built with GA_STATS=0, e.g. libgoalloc-nostats.so)")
    known = _known_version()
    if known is not None and doc.get("version") != known:
        raise ValueError(f"stats schema version {doc.get('version')!r}, this goalloc reads {known}")
    rows = doc["classes"]
    class_names = tuple(k for k in rows[0] if k != "class") if rows else schema().class_names
    totals_type, class_type = _types(tuple(doc["totals"]), class_names)
    classes = [class_type(cls=row["class"], **{n: row[n] for n in class_names}) for row in rows]
    return Stats(doc["version"], doc["pid"], doc["size_classes"], totals_type(**doc["totals"]), classes,
                 str(doc.get("goalloc_version", "")), str(doc.get("comm", "")),
                 tuple(str(a) for a in doc.get("argv", ())),
                 {str(k): str(v) for k, v in doc.get("options", {}).items()})


def load(path: "str | Path") -> Stats:
    """The statistics file at path. Raises OSError when it cannot be read,
    StatsUnavailable for a library without statistics, StatsFileError for
    anything else that is not a statistics document of this goalloc."""
    text = Path(path).read_text(errors="replace")
    try:
        doc = json.loads(text)
    except ValueError as e:
        what = "empty" if not text.strip() else f"not JSON ({e.msg} at line {e.lineno})"
        raise StatsFileError(f"{path}: not a goalloc statistics file: {what}") from None
    if not isinstance(doc, dict) or "version" not in doc or "pid" not in doc:
        kind = "a size profile" if isinstance(doc, dict) and "goalloc_profile" in doc else "no version and pid"
        raise StatsFileError(f"{path}: not a goalloc statistics file ({kind})")
    try:
        return from_json(doc)
    except StatsUnavailable:
        raise
    except ValueError as e:
        raise StatsFileError(f"{path}: {e}") from None
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise StatsFileError(f"{path}: not a goalloc statistics file (malformed: {e!r})") from None


def stats() -> Stats:
    """A snapshot of the cffi module's private heap."""
    import os

    from ._goalloc import ffi, lib

    s = schema()
    nt, nf, nr = len(s.total_names), len(s.class_names), int(lib.ga_stats_nclasses())
    t, c = ffi.new("uint64_t[]", nt), ffi.new("uint64_t[]", nr * nf)
    rc = lib.ga_stats_snapshot(t, nt, c, nr, nf)
    if rc != 0:
        raise RuntimeError(f"ga_stats_snapshot returned {rc}")
    totals_type, class_type = _types(s.total_names, s.class_names)
    classes = [class_type(r + 1, *[c[r * nf + i] for i in range(nf)]) for r in range(nr)]
    return Stats(s.version, os.getpid(), ffi.string(lib.ga_sizeclass_table_name()).decode(),
                 totals_type(*t), classes)


def preloaded_json() -> Dict[str, Any]:
    """The JSON document of the goalloc that serves this process
    (ga_stats_json through ctypes); LookupError when it is not preloaded."""
    so = _preloaded_library()
    size = int(so.ga_stats_json(None, 0))
    while True:
        buf = ctypes.create_string_buffer(size + 4096)  # the figures may grow meanwhile
        size = int(so.ga_stats_json(buf, len(buf)))
        if size < len(buf):
            return json.loads(buf.value.decode())


def preloaded_stats() -> Stats:
    """A snapshot of the goalloc that serves this process (LD_PRELOAD),
    with the names that library reports; works without the cffi extension.
    Raises LookupError when goalloc is not preloaded, StatsUnavailable when
    its statistics are compiled out."""
    return from_json(preloaded_json())


def busiest(s: Stats, n: int = 10) -> List[Any]:
    """The n classes whose spans held the most bytes when the heap peaked,
    then the most bytes in use, then handed out (at exit little may be in
    use)."""
    return sorted((c for c in s.classes if c.mallocs), key=class_order)[:n]


def class_order(c: Any) -> Tuple[int, int, int]:
    """Sort key of a class row (ClassStats or a live dict), busiest first:
    bytes at the heap's peak, bytes in use, bytes handed out."""
    def get(name: str) -> int:
        v = c.get(name) if isinstance(c, dict) else getattr(c, name, None)
        return v or 0

    return -get("peak_span_bytes"), -get("bytes_in_use"), -get("mallocs") * get("size")


def is_bytes(name: str) -> bool:
    """Whether the figure called name counts bytes (by the C naming rule)."""
    return name.endswith("bytes") or "bytes_" in name


def summary_rows(s: Stats) -> List[Tuple[str, str]]:
    """(name, value) rows of the totals, bytes shown in MiB."""
    rows = []
    for f in fields(s.totals):
        v = getattr(s.totals, f.name)
        rows.append((f.name, f"{v / 2**20:.1f} MiB" if is_bytes(f.name) else str(v)))
    return rows


def as_dict(obj: Any) -> Dict[str, int]:
    """A Totals or ClassStats as {name: value}."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
