"""goalloc_ffi: the goalloc allocator as a Python module, on a private heap.

The cffi extension ``_goalloc`` compiles the same C sources as the
LD_PRELOAD library, with ``ga_``-prefixed entry points and its own heap, so
it never serves (or frees) the Python process's own memory. ``ffi`` and
``lib`` are re-exported as the low-level ("hazmat") surface used by tests;
the functions here are the typed layer over them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

from ._paths import lib_path
from .launch import OPTIONS_ENV

#: Whether heap misuse on the private heap raises HeapMisuse: unless
#: $GOALLOC chooses on_error itself, the first use of the extension sets
#: on_error=report (the bad call is reported and not done) and the
#: functions below turn each report into the exception.
_raise_misuse = False


def _extension() -> Any:
    """The compiled extension, imported on first use: importing goalloc_ffi
    (the CLI does) neither loads it nor starts its private heap, which reads
    $GOALLOC and would warn about it a second time."""
    try:
        from . import _goalloc
    except ImportError as error:
        # Without the compiled extension the pure-Python modules still work
        # (stats.preloaded_stats under LD_PRELOAD, stats.load, the CLI's run);
        # the heap functions below then raise this error when called.
        raise ImportError(f"the goalloc_ffi extension is not importable ({error}); run 'make build'") from error
    global _raise_misuse
    if not _raise_misuse and "on_error=" not in os.environ.get(OPTIONS_ENV, ""):
        _goalloc.lib.ga_test_parse_options(b"on_error=report")
        _raise_misuse = True
    return _goalloc


class _Lazy:
    """ffi or lib of the extension, bound on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(getattr(_extension(), self._name), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "_name":
            object.__setattr__(self, attr, value)
        else:
            setattr(getattr(_extension(), self._name), attr, value)


ffi: Any = _Lazy("ffi")
lib: Any = _Lazy("lib")

__all__ = [
    "HeapCorruption",
    "HeapMisuse",
    "SizeClass",
    "calloc",
    "check_heap",
    "errno",
    "ffi",
    "free",
    "lib",
    "lib_path",
    "malloc",
    "malloc_alignment",
    "memalign",
    "realloc",
    "set_errno",
    "read_sizeclass_table",
    "SizeClassTableError",
    "sizeclass_table_name",
    "sizeclasses",
    "usable_size",
]

Pointer = Any  # a cffi "void *"


class HeapCorruption(AssertionError):
    """check_heap() found a broken invariant; the message names it."""


class HeapMisuse(RuntimeError):
    """A call on the private heap was misuse (a double free, a pointer goalloc
    never handed out, ...): the message is goalloc's one-line report, and the
    call was not done."""


def _ptr(p: Pointer) -> Optional[Pointer]:
    return None if p == ffi.NULL else p


def _checked(call: Any, *args: Any) -> Any:
    """call(*args) on the extension, raising HeapMisuse for what it reported."""
    before = lib.ga_test_misuse_count()
    result = call(*args)
    if _raise_misuse and lib.ga_test_misuse_count() != before:
        buf = ffi.new("char[]", 256)
        lib.ga_test_last_misuse(buf, len(buf))
        raise HeapMisuse(ffi.string(buf).decode(errors="replace"))
    return result


def malloc(n: int) -> Optional[Pointer]:
    """ga_malloc(n): a pointer, or None (errno() then says why)."""
    return _ptr(lib.ga_malloc(n))


def calloc(count: int, size: int) -> Optional[Pointer]:
    return _ptr(lib.ga_calloc(count, size))


def realloc(p: Optional[Pointer], n: int) -> Optional[Pointer]:
    return _ptr(_checked(lib.ga_realloc, ffi.NULL if p is None else p, n))


def memalign(align: int, n: int) -> Optional[Pointer]:
    return _ptr(lib.ga_memalign(align, n))


def free(p: Optional[Pointer]) -> None:
    _checked(lib.ga_free, ffi.NULL if p is None else p)


def usable_size(p: Optional[Pointer]) -> int:
    return int(_checked(lib.ga_malloc_usable_size, ffi.NULL if p is None else p))


def errno() -> int:
    """errno as the last ga_ call in this thread left it (cffi saves it
    after each call and restores it before the next: ffi.errno)."""
    return int(ffi.errno)


def set_errno(value: int) -> None:
    """Sets the errno that the next ga_ call in this thread starts with."""
    ffi.errno = value


def check_heap() -> None:
    """Walks every invariant of the private heap; raises HeapCorruption."""
    buf = ffi.new("char[]", 512)
    if lib.ga_check_heap(buf, len(buf)) != 0:
        raise HeapCorruption(ffi.string(buf).decode())


@dataclass(frozen=True)
class SizeClass:
    """One row of the size-class table in use."""

    cls: int
    size: int  # bytes per object
    npages: int  # 8 KiB pages per span
    objects: int  # objects per span

    @property
    def tail_waste(self) -> int:
        return self.npages * int(lib.ga_page_size()) - self.objects * self.size


def sizeclasses() -> List[SizeClass]:
    """The small size classes (1..n-1) of the table chosen at start-up."""
    return [
        SizeClass(c, lib.ga_sizeclass_size(c), lib.ga_sizeclass_npages(c), lib.ga_sizeclass_objects(c))
        for c in range(1, lib.ga_sizeclass_count())
    ]


def sizeclass_table_name() -> str:
    return ffi.string(lib.ga_sizeclass_table_name()).decode()


def malloc_alignment() -> int:
    """What malloc(n >= 16) is aligned to with the table in use: 16, or 8."""
    return int(lib.ga_malloc_alignment())


class SizeClassTableError(ValueError):
    """The C loader refused a table; the message is its reason."""


def read_sizeclass_table(spec: str, align: int = 16) -> List[SizeClass]:
    """The small classes of a table as GOALLOC=sizeclasses=SPEC,align=ALIGN
    would load it (SPEC: go1.12, go1.16 or a TSV file), read and checked by
    the C loader without being used; raises SizeClassTableError."""
    cap = int(lib.ga_sizeclass_max())
    size, npages, objects = (ffi.new("uint32_t[]", cap) for _ in range(3))
    why = ffi.new("char[]", 512)
    n = lib.ga_sizeclass_table_read(spec.encode(), align, size, npages, objects, cap, why, len(why))
    if n < 0:
        raise SizeClassTableError(f"{spec}: {ffi.string(why).decode(errors='replace')}")
    return [SizeClass(c, size[c], npages[c], objects[c]) for c in range(1, n)]
