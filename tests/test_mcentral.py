"""Central lists and remote frees: spans change hands between threads,
full spans become allocatable again on the first free from another thread,
and a span whose objects are all freed goes back to the page heap."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List

import pytest
from conftest import heap_info, join_fully, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import lib

SIZE = 512  # class with 16 objects per 8 KiB span


def in_thread(fn: Callable[[], Any]) -> Any:
    """Runs fn in a new OS thread (its own mcache) and returns its result
    once the OS thread is gone, so that its exit destructor has run
    (Thread.join returns a little before that)."""
    out: List[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    join_fully(t)
    return out[0]


@pytest.fixture
def full_span() -> Iterator[List[Any]]:
    """A span of SIZE's class filled by this thread, then given back to
    mcentral as full."""
    assert lib.ga_test_fresh_span(SIZE) > 0
    first = ga.malloc(SIZE)
    ps = [first] + [ga.malloc(SIZE) for _ in range(ptr_info(first).nelems - 1)]
    lib.ga_test_release_cache()
    assert ptr_info(first).state == "full"
    yield ps


def test_remote_free_moves_a_full_span_to_partial(full_span: List[Any]) -> None:
    spc = ptr_info(full_span[0]).spc
    partial, full = lib.ga_test_central_spans(spc, 0), lib.ga_test_central_spans(spc, 1)
    in_thread(lambda: ga.free(full_span[3]))
    info = ptr_info(full_span[0])
    assert info.state == "partial" and info.nremote == 1
    assert lib.ga_test_central_spans(spc, 0) == partial + 1
    assert lib.ga_test_central_spans(spc, 1) == full - 1
    # It is allocatable again: with one free slot it waits at the back of the
    # partial list, behind spans with more room, and its slot comes back
    # once those are used up.
    taken = []
    while full_span[3] not in taken and len(taken) < 100000:
        taken.append(ga.malloc(SIZE))
    assert taken[-1] == full_span[3]
    for p in full_span[:3] + full_span[4:] + taken:
        ga.free(p)


def test_span_emptied_by_remote_frees_returns_to_the_heap(full_span: List[Any]) -> None:
    lib.ga_malloc_trim(0)  # no kept empty span: the next one emptied is kept
    spc = ptr_info(full_span[0]).spc
    in_thread(lambda: [ga.free(p) for p in full_span])
    kept = ptr_info(full_span[0])
    assert kept.state == "partial" and kept.nremote == kept.alloc_count  # mcentral keeps one
    assert lib.ga_test_central_spans(spc, 0) >= 1
    assert lib.ga_test_fresh_span(SIZE) > 0  # uses no partial span
    first = ga.malloc(SIZE)
    more = [first] + [ga.malloc(SIZE) for _ in range(ptr_info(first).nelems - 1)]
    lib.ga_test_release_cache()
    npages = ptr_info(more[0]).npages
    used = heap_info().pages_inuse
    in_thread(lambda: [ga.free(p) for p in more])  # a second empty span: to the heap
    assert heap_info().pages_inuse == used - npages
    assert ptr_info(more[0]).state == "free"


def test_owner_free_after_remote_free_of_same_span(full_span: List[Any]) -> None:
    in_thread(lambda: ga.free(full_span[0]))
    for p in full_span[1:]:
        ga.free(p)  # this thread no longer owns the span: remote frees too
    info = ptr_info(full_span[0])  # back in the heap, or kept empty by mcentral
    assert info.state == "free" or (info.state == "partial" and info.nremote == info.alloc_count)


def test_cached_span_receives_remote_frees_and_folds_them() -> None:
    assert lib.ga_test_fresh_span(SIZE) > 0
    ps = [ga.malloc(SIZE) for _ in range(8)]
    info = ptr_info(ps[0])
    assert info.owned
    in_thread(lambda: [ga.free(p) for p in ps[:4]])
    assert ptr_info(ps[0]).nremote == 4 and ptr_info(ps[0]).state == "cached"
    rest = [ga.malloc(SIZE) for _ in range(info.nelems - 8)]  # exhaust the span
    again = [ga.malloc(SIZE) for _ in range(4)]  # folded: the 4 remote frees
    assert sorted(again) == sorted(ps[:4])
    for p in ps[4:] + rest + again:
        ga.free(p)


def test_exited_thread_cache_goes_back_and_later_frees_work() -> None:
    def allocate() -> List[Any]:
        return [ga.malloc(n) for n in (3, 24, 100, 1000, 5000, 40000) for _ in range(20)]

    objs = in_thread(allocate)  # the thread exits: its destructor releases its cache
    for p in objs:
        info = ptr_info(p)
        assert not info.owned and info.state in ("partial", "full", "large")
    for p in objs:
        ga.free(p)


def test_allocations_after_the_exit_destructor_use_the_shared_cache() -> None:
    def run() -> bool:
        p = ga.malloc(64)
        lib.ga_test_exit_cache()  # what the pthread key destructor does
        q = ga.malloc(64)  # now through the shared cache
        r = ga.malloc(7)
        ok = q is not None and r is not None and not ptr_info(q).owned
        for x in (p, q, r):
            ga.free(x)
        return ok

    assert in_thread(run)


def kept_empty_span_of(size: int) -> Any:
    """A span of size's class that mcentral now keeps empty."""
    lib.ga_malloc_trim(0)  # no kept empty span anywhere
    assert lib.ga_test_fresh_span(size) > 0
    p = ga.malloc(size)
    ga.free(p)
    lib.ga_test_release_cache()
    info = ptr_info(p)
    assert info.state == "partial" and info.alloc_count == info.nremote == 0
    return p


def grow_other_class(n: int) -> None:
    """n new spans of another class from the page heap (each emptied)."""
    for _ in range(n):
        assert lib.ga_test_fresh_span(2048) > 0
    lib.ga_test_release_cache()


def test_kept_empty_span_stays_while_spans_of_other_classes_are_few() -> None:
    p = kept_empty_span_of(SIZE)
    grow_other_class(10)
    info = ptr_info(p)
    assert info.state == "partial" and info.spc == lib.ga_test_size_to_class(SIZE)
    ga.check_heap()


def test_kept_empty_span_goes_back_once_other_classes_grew_enough() -> None:
    """mcentral's empty span of a class no longer used returns to the page
    heap after GA_EMPTY_AGE grows of other classes (one class checked per
    grow, round robin), so its pages can serve them."""
    spc = lib.ga_test_size_to_class(SIZE)
    p = kept_empty_span_of(SIZE)
    grow_other_class(400)  # past the age, and round the classes twice
    info = ptr_info(p)
    assert not (info.state == "partial" and info.spc == spc), (info.state, info.spc)
    assert lib.ga_test_central_spans(spc, 0) == 0
    ga.check_heap()
