"""The mcache refill batch (GOALLOC=refill=N, csrc/mcache.c refill and
csrc/mcentral.c cacheSpan): Go's mcache.refill takes one span from mcentral
(N = 1, the default); with N > 1 a thread cache takes N spans at once —
partial ones first, then new ones — allocates from the first and stashes
the others, so it goes to mcentral (and its lock) N times less often and
holds up to N - 1 more spans per class. The stash goes back with the rest
of the cache (thread exit, idle flush, reclaim / malloc_trim)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

import goalloc_ffi as ga
from goalloc_ffi import lib
from goalloc_ffi import stats as st

from conftest import goalloc_options, join_fully

SIZE = 20000  # a class with few objects per span that other tests hardly use
NSPANS = 14   # not a multiple of 4: the last batch of 4 leaves 2 stashed


@pytest.fixture(autouse=True)
def go_cache() -> Iterator[None]:
    """Spans as Go's mcache holds them (mcache_keep=0): the counts below
    are of the current span and the refill stash only."""
    with goalloc_options("mcache_keep=0"):
        yield


@pytest.fixture
def refill() -> Iterator[Callable[[int], None]]:
    def set_refill(n: int) -> None:
        lib.ga_test_parse_options(f"refill={n}".encode())
        assert lib.ga_test_option(b"refill") == n

    yield set_refill
    set_refill(1)


def class_row(cls: int) -> Any:
    return st.stats().classes[cls - 1]


def in_thread(fn: Callable[[], None]) -> None:
    t = threading.Thread(target=fn)
    t.start()
    join_fully(t)


def fill(n: int) -> Dict[str, int]:
    """In a new thread: allocate n spans' worth of SIZE objects; report the
    refills and grows that took, what the thread holds, then free them."""
    cls = lib.ga_test_size_to_class(SIZE)
    nelems = lib.ga_sizeclass_objects(cls)
    before = class_row(cls)
    out: Dict[str, int] = {}

    def work() -> None:
        ptrs = [lib.ga_malloc(SIZE) for _ in range(n * nelems)]
        assert all(p != ga.ffi.NULL for p in ptrs)
        mid = class_row(cls)
        out.update(refills=mid.mcache_refills - before.mcache_refills,
                   grows=mid.mcentral_grows - before.mcentral_grows,
                   cached=mid.spans_cached, stash=lib.ga_test_cache_stash(cls))
        for p in ptrs:
            lib.ga_free(p)

    in_thread(work)
    # spans of this class other threads hold (earlier tests' main thread)
    out["others"] = before.spans_cached
    out["cached_after_exit"] = class_row(cls).spans_cached
    return out


def test_default_is_gos_one_span_per_refill() -> None:
    assert lib.ga_test_option(b"refill") == 1
    got = fill(NSPANS)
    assert got["refills"] >= NSPANS
    assert got["stash"] == 0


@pytest.mark.parametrize("n", [2, 4, 16])
def test_batch_refills_take_n_spans(n: int, refill: Callable[[int], None]) -> None:
    one = fill(NSPANS)
    refill(n)
    batched = fill(NSPANS)
    # Every refill hands over n spans: at most one refill more than the
    # minimum (a partial span some other test left behind).
    assert math.ceil(NSPANS / n) <= batched["refills"] <= math.ceil(NSPANS / n) + 1
    assert batched["refills"] < one["refills"]
    # The last batch's unused spans are stashed, and held by the cache
    # besides the one it allocates from.
    unused = (n - NSPANS % n) % n
    assert unused - 1 <= batched["stash"] <= unused
    assert batched["cached"] - batched["stash"] - batched["others"] == 1
    assert one["cached"] - one["others"] == 1
    # and all of it went back when the thread exited
    assert batched["cached_after_exit"] == batched["others"]
    assert one["cached_after_exit"] == one["others"]


def test_stash_of_fresh_spans_goes_back_on_trim(refill: Callable[[int], None]) -> None:
    refill(8)
    cls = lib.ga_test_size_to_class(SIZE)
    seen: Dict[str, int] = {}

    def work() -> None:
        p = lib.ga_malloc(SIZE)
        seen["stash"] = lib.ga_test_cache_stash(cls)
        lib.ga_malloc_trim(0)  # reclaim: stashed spans without objects go back
        seen["after_trim"] = lib.ga_test_cache_stash(cls)
        lib.ga_free(p)

    in_thread(work)
    assert seen["stash"] >= 6  # 8 taken, one in use (a partial span may be among them)
    assert seen["after_trim"] == 0


def test_stash_goes_back_on_release(refill: Callable[[int], None]) -> None:
    refill(4)
    cls = lib.ga_test_size_to_class(SIZE)
    seen: Dict[str, int] = {}

    def work() -> None:
        p = lib.ga_malloc(SIZE)
        seen["stash"] = lib.ga_test_cache_stash(cls)
        lib.ga_test_release_cache()
        seen["released"] = lib.ga_test_cache_stash(cls)
        ga.check_heap()
        lib.ga_free(p)

    in_thread(work)
    assert seen["stash"] >= 2 and seen["released"] == 0


@pytest.mark.parametrize("n", [3, 16])
def test_threads_with_batch_refills(n: int, refill: Callable[[int], None]) -> None:
    """Cross-thread frees, tiny blocks, thread exits, with stashes around."""
    refill(n)
    assert lib.ga_test_threads(4, 20000, 7 + n) == 0
    ga.check_heap()


@pytest.mark.preload
def test_cpython_with_batch_refills() -> None:
    workload = Path(__file__).resolve().parents[1] / "goalloc_ffi" / "workloads" / "alloc_heavy.py"
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
    env.pop("LD_PRELOAD", None)
    base = subprocess.run([sys.executable, str(workload)], capture_output=True, text=True, timeout=300, env=env)
    ours = subprocess.run([sys.executable, str(workload)], capture_output=True, text=True, timeout=300,
                          env=dict(env, LD_PRELOAD=ga.lib_path(True), GOALLOC="refill=8"))
    assert base.returncode == ours.returncode == 0, ours.stderr
    assert (ours.stdout, ours.stderr) == (base.stdout, "")
