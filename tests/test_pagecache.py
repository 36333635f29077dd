"""The per-thread page cache (mpagecache.c): a thread's freed large objects
come back to its next large malloc of the same page count without the heap,
bounded by GOALLOC=pagecache, visible in the statistics, emptied at thread
exit, malloc_trim and in a fork child, never used with protect; a freed
block in it is still a freed block to free and realloc."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib
from goalloc_ffi import stats as st

from conftest import addr, goalloc_options

KIB64 = 64 << 10
ON = "pagecache=2m"


@pytest.fixture(autouse=True)
def pagecache_on() -> Iterator[None]:
    """Off by default for now (init.c): these tests turn it on."""
    with goalloc_options(ON):
        yield


def totals() -> Any:
    return st.stats().totals


def test_a_freed_block_comes_back_to_the_next_malloc_of_its_size() -> None:
    lib.ga_malloc_trim(0)
    p = ga.malloc(KIB64)
    before = totals()
    ga.free(p)
    held = totals()
    assert held.pagecache_objects - before.pagecache_objects == 1
    assert held.pagecache_bytes - before.pagecache_bytes == KIB64
    assert before.large_bytes - held.large_bytes == KIB64  # freed for the program
    assert held.heap_pages_in_use == before.heap_pages_in_use  # still the thread's
    q = ga.malloc(KIB64)
    after = totals()
    assert addr(q) == addr(p)
    assert after.pagecache_hits - held.pagecache_hits == 1
    assert after.pagecache_bytes == before.pagecache_bytes
    r = ga.malloc(KIB64 + 8192)  # another page count: from the heap
    assert addr(r) != addr(p) and totals().pagecache_hits == after.pagecache_hits
    ga.free(q)
    ga.free(r)


def test_calloc_of_a_reused_block_is_zeroed() -> None:
    p = ga.malloc(KIB64)
    ffi.memmove(p, b"\xab" * KIB64, KIB64)
    ga.free(p)
    q = ga.calloc(1, KIB64)
    assert addr(q) == addr(p) and bytes(ffi.buffer(q, KIB64)) == bytes(KIB64)
    ga.free(q)


def test_the_budget_bounds_it_and_the_oldest_go_back() -> None:
    lib.ga_malloc_trim(0)
    with goalloc_options("pagecache=262144"):
        blocks = [ga.malloc(KIB64) for _ in range(8)]
        big = ga.malloc(512 << 10)  # more than the whole budget
        for p in blocks:
            ga.free(p)
        ga.free(big)
        t = totals()
        assert t.pagecache_bytes == 256 << 10 and t.pagecache_objects == 4
        newest = [ga.malloc(KIB64) for _ in range(4)]
        assert sorted(addr(p) for p in newest) == sorted(addr(p) for p in blocks[4:])
        for p in newest:
            ga.free(p)
    with goalloc_options("pagecache=0"):
        lib.ga_malloc_trim(0)
        p = ga.malloc(KIB64)
        ga.free(p)
        assert totals().pagecache_objects == 0


def test_objects_over_a_mebibyte_are_not_kept() -> None:
    lib.ga_malloc_trim(0)
    with goalloc_options("pagecache=16m"):
        p = ga.malloc((1 << 20) + 1)
        ga.free(p)
        assert totals().pagecache_objects == 0
        p = ga.malloc(1 << 20)
        ga.free(p)
        assert totals().pagecache_objects == 1


def test_malloc_trim_and_thread_exit_empty_it() -> None:
    lib.ga_malloc_trim(0)
    base = totals().pagecache_bytes
    assert base == 0
    for _ in range(3):
        ga.free(ga.malloc(KIB64 * 2))
    assert totals().pagecache_bytes == KIB64 * 2
    lib.ga_malloc_trim(0)
    assert totals().pagecache_bytes == 0

    seen: list[int] = []

    def worker() -> None:
        ga.free(ga.malloc(KIB64 * 3))
        seen.append(totals().pagecache_bytes)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [KIB64 * 3]
    assert totals().pagecache_bytes == 0  # the exit destructor gave it back


def test_another_thread_frees_into_its_own_cache() -> None:
    lib.ga_malloc_trim(0)
    p = ga.malloc(KIB64)
    got: list[int] = []

    def worker() -> None:
        ga.free(p)
        q = ga.malloc(KIB64)  # the freeing thread's cache has it now
        got.append(addr(q))
        ga.free(q)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert got == [addr(p)]
    assert totals().pagecache_objects == 0  # gone back with the thread


def run(code: str, goalloc: str = ON) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOALLOC", "LD_PRELOAD")}
    env["GOALLOC"] = goalloc
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_double_free_of_a_cached_block_is_reported() -> None:
    r = run("""
        import goalloc_ffi as ga
        p = ga.malloc(1 << 16)
        ga.free(p)
        ga.free(p)
    """)
    assert r.returncode != 0
    assert "double free" in r.stderr and "kept in a page cache" in r.stderr, r.stderr


def test_protect_keeps_none() -> None:
    r = run("""
        import goalloc_ffi as ga
        from goalloc_ffi import stats as st
        ga.free(ga.malloc(1 << 16))
        print(st.stats().totals.pagecache_objects)
    """, "protect=1," + ON)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"]


def test_a_fork_child_takes_back_the_caches_of_lost_threads() -> None:
    r = run("""
        import os, threading, warnings
        import goalloc_ffi as ga
        from goalloc_ffi import stats as st
        warnings.simplefilter("ignore", DeprecationWarning)
        ready, done = threading.Event(), threading.Event()
        def worker():
            for _ in range(4):
                ga.free(ga.malloc(3 << 16))
            ready.set()
            done.wait()
        t = threading.Thread(target=worker)
        t.start()
        ready.wait()
        print("parent", st.stats().totals.pagecache_bytes)
        pid = os.fork()
        if pid == 0:
            ga.check_heap()
            print("child", st.stats().totals.pagecache_bytes, flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        done.set()
        t.join()
        ga.check_heap()
        print("status", status)
    """)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split() for line in r.stdout.splitlines())
    assert lines == {"parent": str(3 << 16), "child": "0", "status": "0"}
