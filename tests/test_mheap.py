"""The page heap: large objects, address-ordered first fit, coalescing of
freed runs, aligned runs and growth by whole arenas."""

from __future__ import annotations

from conftest import addr, heap_info, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

PAGE = int(lib.ga_page_size())
ARENA = 64 << 20


def large(npages: int):  # type: ignore[no-untyped-def]
    p = ga.malloc(npages * PAGE)
    assert p is not None
    info = ptr_info(p)
    assert info.kind == "large" and info.npages == npages and info.span_base == addr(p)
    return p


def test_large_objects_take_whole_pages() -> None:
    for n in (32769, 40000, 65536, 1 << 20, (3 << 20) + 1):
        p = ga.malloc(n)
        info = ptr_info(p)
        assert info.kind == "large" and addr(p) % PAGE == 0
        assert info.npages == -(-n // PAGE) and ga.usable_size(p) == info.npages * PAGE
        ga.free(p)


def larger_than_any_hole() -> int:
    """A run size (pages) that no free run left by earlier tests can hold:
    objects of this size come, in address order, from one fresh run."""
    return heap_info().largest_free_run + 1


def test_freed_neighbours_coalesce_and_first_fit_takes_the_lowest_address() -> None:
    n = larger_than_any_hole()
    a, b, c = large(n), large(n), large(n)
    assert addr(b) == addr(a) + n * PAGE and addr(c) == addr(b) + n * PAGE
    before = heap_info()
    ga.free(b)
    assert heap_info().free_runs == before.free_runs + 1
    ga.free(a)  # merges with b's run (and with a free run just below a, if any)
    assert heap_info().free_runs == before.free_runs + 1
    d = large(2 * n)  # only the coalesced run holds it
    assert addr(d) <= addr(a)
    ga.free(d)
    ga.free(c)
    assert heap_info().pages_inuse == before.pages_inuse - 3 * n


def test_free_runs_merge_on_both_sides() -> None:
    n = larger_than_any_hole()
    a, b, c, d = large(n), large(n), large(n), large(n)
    runs = heap_info().free_runs
    ga.free(a)
    ga.free(c)
    assert heap_info().free_runs in (runs + 1, runs + 2)  # a may join a run below it
    ga.free(b)  # joins a's run and c's run into one
    assert heap_info().free_runs in (runs, runs + 1)
    joined = large(3 * n)
    assert addr(joined) <= addr(a)
    ga.free(joined)
    ga.free(d)


def test_aligned_large_runs() -> None:
    for align in (16 * PAGE, 1 << 20, 4 << 20, 32 << 20):
        out = ffi.new("void **")
        assert lib.ga_posix_memalign(out, align, 3 * PAGE) == 0
        p = out[0]
        assert addr(p) % align == 0 and ptr_info(p).npages == 3
        ga.free(p)


def test_heap_grows_by_whole_arenas_and_reuses_freed_pages() -> None:
    before = heap_info()
    size = before.largest_free_run * PAGE + (100 << 20)  # fits no free run
    big = ga.malloc(size)
    mid = heap_info()
    assert mid.narenas >= before.narenas + 2  # 100 MiB more than was free: two arenas or more
    ga.free(big)
    again = ga.malloc(size)
    assert heap_info().narenas == mid.narenas  # no new arena: the pages were reused
    ga.free(again)


def test_large_realloc_shrinks_and_grows_in_place() -> None:
    hole = large(2000)
    p = large(20)
    ga.free(hole)
    ffi.memmove(p, b"head", 4)
    q = ga.realloc(p, 10 * PAGE)
    assert q == p and ptr_info(p).npages == 10
    r = ga.realloc(q, 18 * PAGE)  # the 10 pages freed just behind it are free
    assert r == p and ptr_info(p).npages == 18
    assert ffi.buffer(r, 4)[:] == b"head"
    ga.free(r)


def test_realloc_between_small_and_large_keeps_contents() -> None:
    p = ga.malloc(100)
    ffi.memmove(p, bytes(range(100)), 100)
    q = ga.realloc(p, 50000)
    assert ptr_info(q).kind == "large" and ffi.buffer(q, 100)[:] == bytes(range(100))
    r = ga.realloc(q, 60)
    assert ptr_info(r).kind == "small" and ffi.buffer(r, 60)[:] == bytes(range(60))
    ga.free(r)
