"""The thread cache's kept spans (GOALLOC=mcache_keep): exhausted spans stay
with the thread that filled them, its frees into them stay local, and a
kept span it freed into is reused before mcentral is asked."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List

import pytest
from conftest import addr, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import lib

SIZE = 256  # 32 objects per one-page span


def set_keep(pages: int) -> None:
    lib.ga_test_parse_options(f"mcache_keep={pages}".encode())


@pytest.fixture(autouse=True)
def keep_default() -> Iterator[None]:
    old = lib.ga_test_option(b"mcache_keep")
    lib.ga_test_release_cache()
    yield
    lib.ga_test_release_cache()
    set_keep(old)


def fill_spans(n: int) -> List[List[Any]]:
    """n fresh spans of SIZE's class, each allocated completely."""
    assert lib.ga_test_fresh_span(SIZE) > 0
    first = ga.malloc(SIZE)
    per = ptr_info(first).nelems
    objs = [first] + [ga.malloc(SIZE) for _ in range(per * n - 1)]
    spans: dict[int, List[Any]] = {}
    for p in objs:
        spans.setdefault(ptr_info(p).span_base, []).append(p)
    return [v for v in spans.values() if len(v) == per]


@pytest.mark.parametrize("quarter", [True, False])
def test_owner_free_into_a_kept_span_moves_it_to_avail_and_it_is_reused_first(quarter: bool) -> None:
    """The owner's first free into a kept exhausted span moves it to the
    avail list; the next refill takes it back once a quarter of its slots
    are free (fewer would trade spans every few allocations)."""
    set_keep(512)
    spans = fill_spans(3)
    old = spans[0]
    assert ptr_info(old[0]).cache_list == "kept full"
    n = len(old) // 4 - (0 if quarter else 1)
    victims = old[3:3 + n]
    for p in victims:
        ga.free(p)
    info = ptr_info(old[0])
    assert (info.cache_list, info.nlocal, info.nremote) == ("kept avail", len(victims), 0)
    ga.check_heap()
    # Use up the current span: the refill then takes the avail span back, or not.
    cur = ptr_info(spans[-1][0])
    extra = [ga.malloc(SIZE) for _ in range(cur.nelems + len(victims))]
    got = [p for p in extra if ptr_info(p).span_base == info.span_base]
    if quarter:
        assert sorted(addr(p) for p in got) == sorted(addr(p) for p in victims)
        assert ptr_info(old[0]).cache_list == "kept full"  # filled again, kept again
    else:
        assert got == [] and ptr_info(old[0]).cache_list == "kept avail"
    ga.check_heap()
    for p in [p for s in spans for p in s if p not in victims] + extra:
        ga.free(p)
    ga.check_heap()


def test_keep_budget_sends_the_oldest_spans_to_mcentral() -> None:
    set_keep(4)  # pages: four one-page spans at most
    spans = fill_spans(8)
    lists = [ptr_info(s[0]).cache_list for s in spans]
    states = [ptr_info(s[0]).state for s in spans]
    assert lists.count("kept full") == 4, lists
    assert states[:3] == ["full"] * 3, states  # the oldest went to mcentral
    ga.check_heap()
    for s in spans:
        for p in s:
            ga.free(p)
    ga.check_heap()


def test_remote_frees_into_a_kept_span_are_found_at_refill() -> None:
    set_keep(512)
    spans = fill_spans(3)
    old = spans[0]
    t = threading.Thread(target=lambda: [ga.free(p) for p in old])  # all of it, remotely
    t.start()
    t.join()
    info = ptr_info(old[0])
    assert (info.state, info.cache_list, info.nremote) == ("cached", "kept full", len(old))
    # The current span runs out; the refill looks at the oldest kept spans.
    got = [ga.malloc(SIZE) for _ in range(2 * len(old))]
    assert any(ptr_info(p).span_base == info.span_base for p in got)
    ga.check_heap()
    for p in [p for s in spans[1:] for p in s] + got:
        ga.free(p)
    ga.check_heap()


def test_release_and_thread_exit_hand_kept_spans_back() -> None:
    set_keep(512)
    result: List[Any] = []

    def worker() -> None:
        spans = fill_spans(3)
        result.extend(p for s in spans for p in s)
        assert ptr_info(spans[0][0]).cache_list == "kept full"
        lib.ga_test_exit_cache()  # what the thread-exit destructor does

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    info = ptr_info(result[0])
    assert (info.state, info.cache_list, info.owned) == ("full", "current", False)
    for p in result:
        ga.free(p)
    ga.check_heap()


def test_mcache_keep_is_a_checked_option() -> None:
    set_keep(77)
    assert lib.ga_test_option(b"mcache_keep") == 77
    set_keep(0)
    assert lib.ga_test_option(b"mcache_keep") == 0


def test_empty_kept_spans_of_a_class_no_longer_used_go_back() -> None:
    """Kept spans whose every slot was freed leave the cache as other
    classes refill (a few classes checked per refill, round robin), so a
    class the thread stopped using holds no empty spans."""
    set_keep(512)
    spans = fill_spans(3)
    for s in spans:
        for p in s:
            ga.free(p)
    kept = [ptr_info(s[0]) for s in spans[:-1]]  # the last one is the current span
    assert all(i.state == "cached" and i.cache_list.startswith("kept") for i in kept)
    other = [ga.malloc(64) for _ in range(40 * lib.ga_sizeclass_objects(lib.ga_test_size_to_class(64)))]
    # Their pages may serve the new class now: what must be gone is a cached
    # span of the old class at those addresses.
    after = [ptr_info(ffi_ptr(i.span_base)) for i in kept]
    assert all(not (i.state == "cached" and i.spc == kept[0].spc) for i in after), \
        [(i.spc, i.state, i.cache_list) for i in after]
    for p in other:
        ga.free(p)
    ga.check_heap()


def ffi_ptr(address: int) -> Any:
    return ga.ffi.cast("void *", address)


@pytest.mark.parametrize("keep", [0, 512])
def test_empty_current_span_of_a_class_no_longer_used_goes_back(keep: int) -> None:
    """A class's current span whose every object was freed leaves the cache
    as other classes refill (round robin, like empty kept spans), so that
    each class the thread once used does not hold a span of its own."""
    set_keep(keep)
    assert lib.ga_test_fresh_span(SIZE) > 0
    objs = [ga.malloc(SIZE) for _ in range(5)]
    info = ptr_info(objs[0])
    assert (info.state, info.cache_list) == ("cached", "current")
    for p in objs:
        ga.free(p)
    other = [ga.malloc(64) for _ in range(40 * lib.ga_sizeclass_objects(lib.ga_test_size_to_class(64)))]
    after = ptr_info(ffi_ptr(info.span_base))
    assert not (after.state == "cached" and after.spc == info.spc), (after.state, after.spc)
    for p in other:
        ga.free(p)
    ga.check_heap()


def test_current_span_with_a_live_object_stays() -> None:
    """The same round robin leaves a current span alone while one of its
    objects is live: it goes on serving its class."""
    set_keep(512)
    assert lib.ga_test_fresh_span(SIZE) > 0
    objs = [ga.malloc(SIZE) for _ in range(5)]
    for p in objs[1:]:
        ga.free(p)
    other = [ga.malloc(64) for _ in range(40 * lib.ga_sizeclass_objects(lib.ga_test_size_to_class(64)))]
    info = ptr_info(objs[0])
    assert (info.state, info.cache_list) == ("cached", "current")
    q = ga.malloc(SIZE)
    assert ptr_info(q).span_base == info.span_base
    for p in other + [objs[0], q]:
        ga.free(p)
    ga.check_heap()


def test_trim_round_robin_covers_the_table_in_a_few_refills() -> None:
    """The round robin of trim_empty walks the table's classes only (not
    every slot of the compiled maximum): a few refills (1 class per
    exhausted span, 4 per refill) reach every class, so each empty current
    span of the table goes back, and again in the next round."""
    set_keep(512)
    n = lib.ga_sizeclass_count()
    refill_spc = lib.ga_test_size_to_class(64)
    per = lib.ga_sizeclass_objects(refill_spc)
    # The walk has n stops (classes 1..n-1 and tiny); each exhausted span of
    # the 64-byte class makes 5 of them. A walk over every slot of the
    # compiled maximum spends most of a second round on unused slots.
    refills = -(-n // 5) + 1
    for _ in range(2):
        live = {}
        for spc in range(1, n):  # one live object per class: no span is empty yet
            size = lib.ga_sizeclass_size(spc)
            if spc != refill_spc and size >= 16:  # below 16 B: the tiny allocator
                live[spc] = ga.malloc(size)
        probes = {spc: ptr_info(p).span_base for spc, p in live.items()}
        for p in live.values():
            ga.free(p)  # now each of those classes has an empty current span
        assert lib.ga_test_fresh_span(64) > 0
        other = [ga.malloc(64) for _ in range(refills * per)]
        left = [spc for spc, base in probes.items()
                if (i := ptr_info(ffi_ptr(base))).state == "cached" and i.spc == spc
                and i.cache_list == "current"]
        assert not left, left
        for p in other:
            ga.free(p)
        lib.ga_test_release_cache()  # the next round's spans come from mcentral again
    ga.check_heap()
