"""Giving memory back: releasing free pages to the OS (malloc_trim, idle
delay, retained goal with growth credit, hard limit), reclaim of empty
cached spans, and glibc's mallinfo2/mallopt on goalloc's figures."""

from __future__ import annotations

import errno
import os
from typing import Any, Iterator, List

import pytest
from conftest import heap_info, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

PAGE = int(lib.ga_page_size())
MiB = 1 << 20
OS_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * OS_PAGE


def touch(p: Any, n: int, byte: int = 0xAB) -> None:
    ffi.buffer(p, n)[:] = bytes([byte]) * n


def set_options(text: str) -> None:
    lib.ga_test_parse_options(text.encode())


@pytest.fixture(autouse=True)
def default_options() -> Iterator[None]:
    yield
    set_options("scavenger=sync,madvise=dontneed,scavenge_delay=500,retain=110,limit=0,reclaim=1")


def big_blocks(count: int, size: int) -> List[Any]:
    ps = [ga.malloc(size) for _ in range(count)]
    for p in ps:
        touch(p, size)
    return ps


def test_malloc_trim_releases_freed_pages_and_rss_drops() -> None:
    ps = big_blocks(40, 4 * MiB)
    before = rss()
    for p in ps:
        ga.free(p)
    assert rss() > before - 16 * MiB  # freed, but kept resident for reuse
    released = heap_info().pages_released
    assert lib.ga_malloc_trim(0) == 1
    assert heap_info().pages_released >= released + 40 * 4 * MiB // PAGE
    assert rss() < before - 150 * MiB
    assert lib.ga_malloc_trim(0) == 0  # nothing left to release


def test_released_pages_read_zero_and_calloc_skips_clearing() -> None:
    p = ga.malloc(8 * MiB)
    touch(p, 8 * MiB)
    ga.free(p)
    lib.ga_malloc_trim(0)
    q = ga.calloc(1, 8 * MiB)  # first fit: the same, released, pages
    assert not ptr_info(q).needzero
    assert ffi.buffer(q, 8 * MiB)[:] == bytes(8 * MiB)
    ga.free(q)


def test_madvise_free_pages_are_cleared_by_calloc() -> None:
    set_options("madvise=free")
    p = ga.malloc(4 * MiB)
    touch(p, 4 * MiB)
    ga.free(p)
    lib.ga_malloc_trim(0)
    q = ga.calloc(1, 4 * MiB)
    assert ptr_info(q).needzero  # MADV_FREE: contents undefined until reused
    assert ffi.buffer(q, 4 * MiB)[:] == bytes(4 * MiB)
    ga.free(q)


MS = 1000 * 1000


def advance_and_tick(ms: int, step: int = 100) -> None:
    for _ in range(ms // step):
        lib.ga_test_advance_clock(step * MS)
        lib.ga_test_scavenge_tick()


def settle() -> None:
    """Releases everything, then lets 15 quiet seconds pass: a window that
    earlier tests' re-use widened is back to half the delay."""
    lib.ga_malloc_trim(0)
    advance_and_tick(15000, step=200)


def test_idle_free_runs_are_released_after_the_delay() -> None:
    settle()
    ps = big_blocks(8, 4 * MiB)
    for p in ps:
        ga.free(p)
    lib.ga_test_advance_clock(10 * 1000 * 1000)  # 10 ms: not idle yet, but a tick is due
    lib.ga_test_scavenge_tick()
    mid = heap_info()
    assert mid.retained >= mid.pages_inuse + 8 * 4 * MiB // PAGE
    lib.ga_test_advance_clock(600 * 1000 * 1000)  # past the 500 ms delay
    lib.ga_test_scavenge_tick()
    after = heap_info()
    assert after.pages_released - mid.pages_released >= 8 * 4 * MiB // PAGE
    assert after.scavenged_total - mid.scavenged_total == after.pages_released - mid.pages_released


def test_goal_follows_the_pages_in_use_not_the_peak() -> None:
    """Go's goal is 110 % of a heap goal that follows the live heap after
    every GC: here the pages in use now, or their peak over the last window
    (half the delay), so that a burst's pages are surplus soon after it is
    freed."""
    settle()
    ps = big_blocks(16, 4 * MiB)
    for p in ps:
        ga.free(p)
    lib.ga_test_advance_clock(10 * MS)
    lib.ga_test_scavenge_tick()
    mid = heap_info()
    assert mid.goal >= mid.pages_inuse + 16 * 4 * MiB // PAGE  # the burst is recent: kept
    advance_and_tick(800)  # two windows and a tick
    after = heap_info()
    assert after.goal <= after.pages_inuse * 110 // 100 + 1
    assert after.retained <= after.goal
    assert after.pages_released - mid.pages_released >= 16 * 4 * MiB // PAGE - mid.pages_inuse // 10


def test_churn_does_not_release_and_refault_every_cycle() -> None:
    """A program that holds 64 MiB for 600 ms, frees it for 600 ms and
    allocates it again, twelve times: releasing after each free and
    faulting the pages back in after each allocation would be 64 MiB each
    way per cycle. Released pages that the heap hands out again widen the
    goal window (up to 4 times): after a cycle or two the pages stay."""
    settle()
    start = heap_info()
    cycles, block = 12, 8 * MiB
    per_cycle = 8 * block // PAGE
    for _ in range(cycles):
        ps = big_blocks(8, block)
        advance_and_tick(600)
        for p in ps:
            ga.free(p)
        advance_and_tick(600)
    churned = heap_info().scavenged_total - start.scavenged_total
    print(f"released in {cycles} cycles: {churned / per_cycle:.2f} x 64 MiB")
    assert churned <= 3 * per_cycle  # before the window widened: 12 x 64 MiB
    advance_and_tick(5000)  # quiet at last: the surplus goes back after all
    after = heap_info()
    assert after.retained <= after.goal
    assert after.pages_free - after.pages_released <= after.pages_inuse // 10 + 256


def test_scavenger_off_keeps_pages() -> None:
    set_options("scavenger=off")
    ps = big_blocks(4, 4 * MiB)
    for p in ps:
        ga.free(p)
    before = heap_info()
    lib.ga_test_advance_clock(5 * 1000 * 1000 * 1000)
    lib.ga_test_scavenge_tick()
    assert heap_info().pages_released == before.pages_released
    lib.ga_malloc_trim(0)  # an explicit trim still releases


@pytest.mark.parametrize("npages", [1, 300, 5000])
def test_growth_releases_with_go_1_12_credit(npages: int) -> None:
    set_options("retain=100")
    ps = big_blocks(6, 4 * MiB)
    for p in ps:
        ga.free(p)
    before = heap_info()
    lib.ga_test_scavenge_for_growth(npages)
    after = heap_info()
    released = after.scavenged_total - before.scavenged_total
    assert released == after.pages_released - before.pages_released
    need = min(npages, before.retained + npages - before.goal)
    if need <= 0:
        assert released == 0 and after.scav_credit == before.scav_credit
    elif before.scav_credit >= need:
        assert released == 0 and after.scav_credit == before.scav_credit - need
    else:
        owed = need - before.scav_credit
        assert released >= min(owed, before.pages_free - before.pages_released)
        assert after.scav_credit == max(released - owed, 0)
        assert released % 256 == 0 or released < owed + 256  # 2 MiB steps


def test_hard_limit_is_kept() -> None:
    lib.ga_malloc_trim(0)
    base = heap_info().retained * PAGE
    set_options(f"limit={base + 64 * MiB}")
    a = big_blocks(1, 40 * MiB)[0]
    ga.free(a)  # 40 MiB free but resident
    b = ga.malloc(60 * MiB)  # fits only after the free pages are released
    assert b is not None
    assert heap_info().retained * PAGE <= base + 64 * MiB
    ga.set_errno(0)
    c = ga.malloc(60 * MiB)  # cannot be kept under the limit
    assert c is None and ga.errno() == errno.ENOMEM
    ga.free(b)
    set_options("limit=0")
    c = ga.malloc(60 * MiB)
    assert c is not None
    ga.free(c)


def test_reclaim_recovers_the_callers_empty_cached_span() -> None:
    assert lib.ga_test_fresh_span(2048) > 0
    first = ga.malloc(2048)
    objs = [first] + [ga.malloc(2048) for _ in range(ptr_info(first).nelems - 1)]
    span = ptr_info(first)
    for p in objs:
        ga.free(p)  # owner frees: pending in the cached span
    assert ptr_info(first).state == "cached" and ptr_info(first).nlocal == span.nelems
    before = heap_info()
    big = ga.malloc((before.largest_free_run + 1) * PAGE)  # fits no free run: reclaim first
    after = heap_info()
    assert after.reclaimed_total - before.reclaimed_total >= span.npages
    assert ptr_info(first).state in ("free", "large")  # back in the page heap, maybe reused
    assert after.reclaim_credit <= before.reclaim_credit + after.reclaimed_total - before.reclaimed_total
    ga.free(big)


def test_free_then_allocate_cycle_does_not_grow_the_heap() -> None:
    def cycle(size: int) -> List[Any]:
        return [ga.malloc(size) for _ in range(64 * MiB // size)]

    objs = cycle(1024) + [ga.malloc(3 * MiB) for _ in range(10)]
    arenas = heap_info().narenas
    for p in objs:
        ga.free(p)
    again = cycle(2048) + [ga.malloc(3 * MiB) for _ in range(10)]
    assert heap_info().narenas == arenas
    for p in again:
        ga.free(p)


def test_mallinfo2_matches_goallocs_own_figures() -> None:
    def info() -> Any:
        m = ffi.new("ga_mallinfo_t *")
        lib.ga_mallinfo2(m)
        return m

    before = info()
    ps = [ga.malloc(100 * 1024) for _ in range(5)]  # 13 pages each
    smalls = [ga.malloc(100) for _ in range(100)]  # 112-byte class
    m, h = info(), heap_info()
    assert m.arena == h.narenas * (64 * MiB)
    assert m.ordblks == h.free_runs
    assert m.hblks == before.hblks + 5 and m.hblkhd == before.hblkhd + 5 * 13 * PAGE
    assert m.uordblks == before.uordblks + 5 * 13 * PAGE + 100 * 112
    assert m.keepcost == (h.pages_free - h.pages_released) * PAGE
    assert m.fordblks == h.pages_inuse * PAGE - m.uordblks + m.keepcost
    for p in ps + smalls:
        ga.free(p)


def test_mallopt_maps_trim_threshold() -> None:
    M_TRIM_THRESHOLD = -1
    assert lib.ga_mallopt(M_TRIM_THRESHOLD, -1) == 1
    assert lib.ga_test_option(b"scavenger") == 0  # off
    assert lib.ga_mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1
    assert lib.ga_test_option(b"scavenger") == 3  # auto, the default


#: glibc's <malloc.h> numbers of the parameters that mean nothing to goalloc.
MALLOPT_ACCEPTED = {"M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3, "M_MMAP_MAX": -4,
                    "M_CHECK_ACTION": -5, "M_ARENA_TEST": -7, "M_ARENA_MAX": -8}


@pytest.mark.parametrize("value", [-1, 0, 1, 3, 64 * 1024, 1 << 30, 2**31 - 1])
@pytest.mark.parametrize("name", sorted(MALLOPT_ACCEPTED))
def test_mallopt_accepts_glibc_parameters_without_meaning(name: str, value: int) -> None:
    """What programs set at start-up is accepted (1), as glibc 2.36 does,
    and changes none of goalloc's options."""
    keys = (b"scavenger", b"fillnew", b"clobberfree", b"on_error", b"tiny")
    before = [lib.ga_test_option(k) for k in keys]
    assert lib.ga_mallopt(MALLOPT_ACCEPTED[name], value) == 1
    assert [lib.ga_test_option(k) for k in keys] == before


@pytest.mark.parametrize(("value", "accepted"), [(0, 1), (1, 1), (64, 1), (160, 1),
                                                 (161, 0), (1 << 20, 0), (-1, 0)])
def test_mallopt_mxfast_range_is_glibcs(value: int, accepted: int) -> None:
    M_MXFAST = 1  # glibc: 0 .. 80 * sizeof(size_t) / 4
    assert lib.ga_mallopt(M_MXFAST, value) == accepted


@pytest.mark.parametrize("param", [2, 3, 4, 100, -9, -100])
def test_mallopt_refuses_unknown_parameters(param: int) -> None:
    assert lib.ga_mallopt(param, 1) == 0


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("scavenger=background", "scavenger", 2),
        ("scavenger=auto", "scavenger", 3),
        ("scavenger=sync", "scavenger", 1),
        ("madvise=free", "madvise", 1),
        ("scavenge_delay=100", "scavenge_delay", 100),
        ("retain=150", "retain", 150),
        ("limit=1g", "limit", 1 << 30),
        ("limit=64k", "limit", 64 << 10),
        ("reclaim=0", "reclaim", 0),
    ],
)
def test_memory_options_parse(text: str, key: str, value: int) -> None:
    set_options(text)
    assert lib.ga_test_option(key.encode()) == value


@pytest.mark.parametrize("text", ["scavenger=sometimes", "madvise=maybe", "retain=50", "limit=12q", "scavenge_delay=-1"])
def test_bad_memory_options_are_named_and_ignored(text: str, capfd: pytest.CaptureFixture[str]) -> None:
    key = text.split("=")[0]
    old = lib.ga_test_option(key.encode())
    set_options(text)
    assert lib.ga_test_option(key.encode()) == old
    assert f"bad value in '{text}'" in capfd.readouterr().err


def test_cache_of_a_thread_idle_for_two_epochs_is_handed_back() -> None:
    assert lib.ga_test_fresh_span(256) > 0
    p = ga.malloc(256)
    ga.free(p)
    for _ in range(2):
        lib.ga_test_advance_clock(1100 * 1000 * 1000)
        lib.ga_test_scavenge_tick()
    assert ptr_info(p).state == "cached"  # nothing happens while the thread is away
    qs = [ga.malloc(20000) for _ in range(3)]  # 2 per span: a slow path for sure
    info = ptr_info(p)  # the idle cache went back, its empty span to the page heap
    assert info.elemsize != 256 or info.state != "cached"
    for q in qs:
        ga.free(q)


def test_hopeless_requests_fail_at_once_and_leave_retained_pages_alone() -> None:
    """A request larger than the address space (2^47 .. 2^63 bytes) fails
    with ENOMEM before the ladder: no scavenging of the retained pages (it
    used to release the whole heap page by page, then fail in mmap)."""
    blocks = [ga.malloc(MiB) for _ in range(8)]
    for p in blocks:
        touch(p, MiB)
    for p in blocks:
        ga.free(p)  # free runs, resident for scavenge_delay
    released = lib.ga_pages_released()
    p = ga.malloc(100)
    for k in range(47, 64):
        for call in (lambda: ga.malloc(1 << k), lambda: ga.calloc(1, 1 << k), lambda: ga.realloc(p, 1 << k),
                     lambda: ga.memalign(4096, 1 << k)):
            ga.set_errno(0)
            assert call() is None and ga.errno() == errno.ENOMEM, k
    ga.free(p)
    assert lib.ga_pages_released() == released
