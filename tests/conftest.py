"""Shared fixtures: the private heap's invariants are checked after every
test that is not a preload (subprocess) test."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest


#: Sections printed at the end of the pytest run (figures tests collect).
_report_sections: Dict[str, List[str]] = {}


def report(section: str, lines: List[str]) -> None:
    """Adds lines to a section of the terminal summary."""
    _report_sections.setdefault(section, []).extend(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, lines in _report_sections.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _heap_checked(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.node.get_closest_marker("preload") is None:
        import goalloc_ffi

        goalloc_ffi.check_heap()


@dataclass(frozen=True)
class PtrInfo:
    kind: str  # "none", "tiny", "small", "large"
    spc: int
    elemsize: int
    npages: int
    span_base: int
    state: str
    nelems: int
    alloc_count: int
    freeindex: int
    nlocal: int
    nremote: int
    owned: bool
    needzero: bool
    tiny_word: int
    cache_list: str


def ptr_info(p: Any) -> PtrInfo:
    """What the allocator knows of pointer p (testing.h ga_test_ptr_info)."""
    from goalloc_ffi import ffi, lib

    i = ffi.new("ga_test_ptr_info_t *")
    lib.ga_test_ptr_info(p, i)
    return PtrInfo(
        kind=("none", "tiny", "small", "large")[i.kind],
        spc=i.spc,
        elemsize=i.elemsize,
        npages=i.npages,
        span_base=int(i.span_base),
        state=ffi.string(lib.ga_test_state_name(i.state)).decode(),
        nelems=i.nelems,
        alloc_count=i.alloc_count,
        freeindex=i.freeindex,
        nlocal=i.nlocal,
        nremote=i.nremote,
        owned=bool(i.owned_by_caller),
        needzero=bool(i.needzero),
        tiny_word=i.tiny_word,
        cache_list=("current", "kept full", "kept avail")[i.cache_list],
    )


@dataclass(frozen=True)
class HeapInfo:
    narenas: int
    pages_inuse: int
    pages_free: int
    free_runs: int
    largest_free_run: int
    pages_released: int
    retained: int
    scav_credit: int
    reclaim_credit: int
    scavenged_total: int
    reclaimed_total: int
    goal: int


def heap_info() -> HeapInfo:
    from goalloc_ffi import ffi, lib

    h = ffi.new("ga_test_heap_info_t *")
    lib.ga_test_heap_info(h)
    return HeapInfo(*(getattr(h, f) for f in HeapInfo.__dataclass_fields__))


def join_fully(thread: "threading.Thread") -> None:
    """Joins thread and waits until the OS thread is gone, so that its exit
    destructor (which returns its mcache) has run: Thread.join returns a
    little before that."""
    thread.join()
    task = Path(f"/proc/self/task/{thread.native_id}")
    deadline = time.monotonic() + 10
    while task.exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def addr(p: Any) -> int:
    from goalloc_ffi import ffi

    return int(ffi.cast("uintptr_t", p))


@contextlib.contextmanager
def goalloc_options(text: str) -> Iterator[None]:
    """Sets GOALLOC-style options on the FFI heap for a block, then puts
    back the values they had (numeric options only)."""
    from goalloc_ffi import lib

    keys = [item.partition("=")[0] for item in text.split(",") if item]
    old = {k: lib.ga_test_option(k.encode()) for k in keys}
    lib.ga_test_parse_options(text.encode())
    try:
        yield
    finally:
        lib.ga_test_parse_options(",".join(f"{k}={v}" for k, v in old.items()).encode())


#: The test programs of tests/c.
C_PROGRAMS = Path(__file__).resolve().parent / "c"


def build_c_program(factory: pytest.TempPathFactory, name: str, cxx: bool = False) -> Path:
    """tests/c/NAME.c (NAME.cc with cxx) compiled, warnings as errors, into
    a fresh temporary directory; skips the test when there is no compiler."""
    import shutil
    import subprocess

    compiler, package, suffix = ("g++", "g++", ".cc") if cxx else ("cc", "gcc", ".c")
    if shutil.which(compiler) is None:
        pytest.skip(f"no {compiler}: install the Debian package '{package}'")
    exe = factory.mktemp(name) / name
    subprocess.run([compiler, "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", str(exe),
                    str(C_PROGRAMS / f"{name}{suffix}")], check=True, timeout=120)
    return exe
