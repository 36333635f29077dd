"""goalloc's statistics as typed Python objects.

The field names come from C (csrc/mstats.h, through ga_stats_*_name): the
dataclasses below are built from them when this module is imported, so
Python never restates the list. The same types describe the private heap
of the cffi module (stats()), the allocator serving this very process
under LD_PRELOAD (preloaded_stats(), through ctypes: no compiled extension
needed) and a JSON file written at exit with GOALLOC_STATS=PATH (load()).
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, fields, make_dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._goalloc import ffi, lib


def _names(count: int, name: Callable[[int], Any]) -> List[str]:
    return [ffi.string(name(i)).decode() for i in range(count)]


TOTAL_NAMES = _names(lib.ga_stats_ntotals(), lib.ga_stats_total_name)
CLASS_FIELD_NAMES = _names(lib.ga_stats_nclass_fields(), lib.ga_stats_class_field_name)
TOTAL_DOCS = dict(zip(TOTAL_NAMES, _names(len(TOTAL_NAMES), lib.ga_stats_total_doc)))
CLASS_FIELD_DOCS = dict(zip(CLASS_FIELD_NAMES, _names(len(CLASS_FIELD_NAMES), lib.ga_stats_class_field_doc)))
VERSION = int(lib.ga_stats_version())

#: Process-wide figures (one int field per C counter).
Totals = make_dataclass("Totals", [(n, int) for n in TOTAL_NAMES], frozen=True)
#: One size class's figures; ``cls`` is the class number.
ClassStats = make_dataclass("ClassStats", [("cls", int)] + [(n, int) for n in CLASS_FIELD_NAMES], frozen=True)


@dataclass(frozen=True)
class Stats:
    version: int
    pid: int
    size_classes: str  # the table in use, e.g. "go1.12"
    totals: Any  # Totals
    classes: List[Any]  # ClassStats, class 1 first

    def to_json(self) -> Dict[str, Any]:
        return {
            "version": self.version,
            "pid": self.pid,
            "size_classes": self.size_classes,
            "totals": {f.name: getattr(self.totals, f.name) for f in fields(self.totals)},
            "classes": [{"class": c.cls, **{n: getattr(c, n) for n in CLASS_FIELD_NAMES}} for c in self.classes],
        }


def from_json(doc: Dict[str, Any]) -> Stats:
    """Stats from the JSON document goalloc writes (schema VERSION)."""
    if doc.get("version") != VERSION:
        raise ValueError(f"stats schema version {doc.get('version')!r}, this goalloc reads {VERSION}")
    classes = [ClassStats(cls=row["class"], **{n: row[n] for n in CLASS_FIELD_NAMES}) for row in doc["classes"]]
    return Stats(doc["version"], doc["pid"], doc["size_classes"], Totals(**doc["totals"]), classes)


def load(path: "str | Path") -> Stats:
    return from_json(json.loads(Path(path).read_text()))


def _build(totals: Sequence[int], rows: Sequence[Sequence[int]], pid: int, table: str) -> Stats:
    classes = [ClassStats(i + 1, *row) for i, row in enumerate(rows)]
    return Stats(VERSION, pid, table, Totals(*totals), classes)


def stats() -> Stats:
    """A snapshot of the cffi module's private heap."""
    import os

    nt, nf, nr = len(TOTAL_NAMES), len(CLASS_FIELD_NAMES), int(lib.ga_stats_nclasses())
    t, c = ffi.new("uint64_t[]", nt), ffi.new("uint64_t[]", nr * nf)
    if lib.ga_stats_snapshot(t, nt, c, nr, nf) != 0:
        raise RuntimeError("ga_stats_snapshot refused the array sizes")
    rows = [[c[r * nf + i] for i in range(nf)] for r in range(nr)]
    return _build(list(t), rows, os.getpid(), ffi.string(lib.ga_sizeclass_table_name()).decode())


def _preloaded_library() -> Optional[str]:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if Path(path).name.startswith("libgoalloc") and path.endswith(".so"):
                return path
    return None


def preloaded_stats() -> Stats:
    """A snapshot of the goalloc that serves this process (LD_PRELOAD),
    read through ctypes; raises LookupError when goalloc is not preloaded."""
    import os

    path = _preloaded_library()
    if path is None:
        raise LookupError("goalloc is not loaded in this process (run it with LD_PRELOAD, or `goalloc run`)")
    so = ctypes.CDLL(path)
    for name, restype in (("ga_stats_ntotals", ctypes.c_uint), ("ga_stats_nclass_fields", ctypes.c_uint),
                          ("ga_stats_nclasses", ctypes.c_uint), ("ga_sizeclass_table_name", ctypes.c_char_p)):
        getattr(so, name).restype = restype
    nt, nf, nr = so.ga_stats_ntotals(), so.ga_stats_nclass_fields(), so.ga_stats_nclasses()
    if (nt, nf) != (len(TOTAL_NAMES), len(CLASS_FIELD_NAMES)):
        raise RuntimeError(f"{path} has another statistics layout than this goalloc_ffi")
    t, c = (ctypes.c_uint64 * nt)(), (ctypes.c_uint64 * (nr * nf))()
    if so.ga_stats_snapshot(t, nt, c, nr, nf) != 0:
        raise RuntimeError("ga_stats_snapshot refused the array sizes")
    rows = [list(c[r * nf:(r + 1) * nf]) for r in range(nr)]
    return _build(list(t), rows, os.getpid(), so.ga_sizeclass_table_name().decode())


def busiest(s: Stats, n: int = 10) -> List[Any]:
    """The n classes with the most bytes in use."""
    return sorted((c for c in s.classes if c.mallocs), key=lambda c: -c.bytes_in_use)[:n]


def summary_rows(s: Stats) -> List[Tuple[str, str]]:
    """(name, value) rows of the totals, bytes shown in MiB."""
    rows = []
    for name in TOTAL_NAMES:
        v = getattr(s.totals, name)
        rows.append((name, f"{v / 2**20:.1f} MiB" if name.endswith("bytes") or "bytes_" in name else str(v)))
    return rows
