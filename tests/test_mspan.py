"""Spans of small objects: allocBits and the allocCache window, frees by
the owner, folding freed slots back in, and the magic index."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest
from conftest import addr, goalloc_options, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import lib


@pytest.fixture(autouse=True)
def no_tiny() -> Iterator[None]:
    """These tests are about size-class spans: sizes below 16 included."""
    lib.ga_test_set_tiny(0)
    yield
    lib.ga_test_set_tiny(1)


def fill_span(size: int) -> List[Any]:
    """Starts a fresh span of size's class and allocates all of it."""
    assert lib.ga_test_fresh_span(size) > 0
    first = ga.malloc(size)
    info = ptr_info(first)
    assert info.freeindex == 1
    return [first] + [ga.malloc(size) for _ in range(info.nelems - 1)]


@pytest.mark.parametrize("size", [8, 16, 48, 112, 1024, 3200, 9472, 32768])
def test_objects_are_carved_in_address_order(size: int) -> None:
    ps = fill_span(size)
    info = ptr_info(ps[0])
    elem = info.elemsize
    assert [addr(p) - info.span_base for p in ps] == [i * elem for i in range(len(ps))]
    assert len({addr(p) for p in ps}) == len(ps)
    assert all(ptr_info(p).span_base == info.span_base for p in ps)
    assert elem == lib.ga_sizeclass_size(lib.ga_test_size_to_class(size))
    for p in ps:
        ga.free(p)


@pytest.mark.parametrize("keep", ["0", "512"])
def test_owner_frees_are_deferred_then_folded_into_the_same_span(keep: str) -> None:
    """Go folds any pending frees into the exhausted span (mcache_keep=0);
    with kept spans, 22 of 128 is under the quarter worth folding, so the
    span waits on the avail list and a new one serves."""
    with goalloc_options(f"mcache_keep={keep}"):
        deferred_then_folded(keep == "0")


def deferred_then_folded(go: bool) -> None:
    ps = fill_span(64)
    info = ptr_info(ps[0])
    assert info.owned and info.state == "cached"
    freed = ps[5:70:3]
    for p in freed:
        ga.free(p)
    assert ptr_info(ps[0]).nlocal == len(freed)
    # The span is exhausted: the next allocations fold the owner's frees and
    # reuse exactly those slots, lowest address first.
    again = [ga.malloc(64) for _ in freed]
    if go:
        assert sorted(addr(p) for p in again) == sorted(addr(p) for p in freed)
        assert [addr(p) for p in again] == sorted(addr(p) for p in again)
        assert ptr_info(ps[0]).nlocal == 0
    else:
        assert all(ptr_info(p).span_base != ptr_info(ps[0]).span_base for p in again)
        assert (ptr_info(ps[0]).nlocal, ptr_info(ps[0]).cache_list) == (len(freed), "kept avail")
    for p in ps[:5] + ps[70:] + again + [p for p in ps[5:70] if p not in freed]:
        ga.free(p)


@pytest.mark.parametrize("keep", [0, 512])
def test_full_span_is_traded_for_a_new_one(keep: int) -> None:
    """Go hands the exhausted span to mcentral's full list (mcache_keep=0);
    by default the cache keeps it on its own full list."""
    old = lib.ga_test_option(b"mcache_keep")
    lib.ga_test_parse_options(f"mcache_keep={keep}".encode())
    try:
        ps = fill_span(256)
        nxt = ga.malloc(256)
        assert ptr_info(nxt).span_base != ptr_info(ps[0]).span_base
        info = ptr_info(ps[0])
        if keep:
            assert (info.state, info.cache_list, info.owned) == ("cached", "kept full", True)
        else:
            assert (info.state, info.cache_list, info.owned) == ("full", "current", False)
        for p in ps + [nxt]:
            ga.free(p)
    finally:
        lib.ga_test_parse_options(f"mcache_keep={old}".encode())


def test_window_refill_crosses_64_slot_boundaries() -> None:
    ps = fill_span(16)  # 512 slots: 8 windows
    for p in ps[60:200]:
        ga.free(p)
    again = [ga.malloc(16) for _ in range(140)]
    assert sorted(map(addr, again)) == sorted(map(addr, ps[60:200]))
    for p in ps[:60] + ps[200:] + again:
        ga.free(p)


def test_usable_size_is_the_class_size() -> None:
    for n in (16, 17, 100, 1000, 1025, 20000, 32768):
        p = ga.malloc(n)
        assert ga.usable_size(p) == ptr_info(p).elemsize >= n
        ga.free(p)


def test_calloc_clears_reused_slots() -> None:
    ps = fill_span(96)
    from goalloc_ffi import ffi

    for p in ps:
        ffi.memmove(p, b"\xa5" * 96, 96)
    for p in ps:
        ga.free(p)
    qs = [ga.calloc(1, 96) for _ in ps]
    assert all(ffi.buffer(q, 96)[:] == bytes(96) for q in qs)
    for q in qs:
        ga.free(q)


def test_inline_free_index_is_exact_at_every_offset() -> None:
    """ga_free's one-multiply slot lookup agrees with division for every
    byte of a span of every class: slot starts accepted with the right
    index, interior pointers and the tail past the last object refused."""
    for cls in range(1, lib.ga_sizeclass_count()):
        assert lib.ga_test_check_slot_index(cls) == 0, f"class {cls}"
