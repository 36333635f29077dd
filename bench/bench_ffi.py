"""pytest-benchmark: goalloc's private heap against the system malloc, timed in C.

    make bench-ffi                                   # or:
    .venv/bin/python -m pytest bench/bench_ffi.py    # not part of `make test`

Each benchmark is ONE call into a loop of csrc/benchloops.c that does many
allocator operations (n malloc/free pairs of one size, a mixed-size window,
a cross-thread hand-off); the same C loop runs on goalloc's heap
(ga_malloc/ga_free) and on the system malloc/free, so the figures compare
allocators, not the cost of crossing the FFI. Compare the two rows of each
group; the summary printed at the end gives nanoseconds per operation and
the goalloc/system ratio.

Caveats: the extension is built with GA_DEBUG=2 by default (asserts on in
goalloc's paths); `make build GOALLOC_DEBUG=0` first for release-like
figures (the summary prints the level). "system" is whatever malloc this
Python process uses (glibc, unless something is preloaded). Timings are
reported, never asserted. GOALLOC_BENCH_QUICK=1 shrinks every loop (the
smoke test in tests/test_bench.py runs it that way once).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from goalloc_ffi import lib

QUICK = os.environ.get("GOALLOC_BENCH_QUICK") == "1"
SCALE = 100 if QUICK else 1
HEAPS = {"system": lib.GA_BENCH_SYSTEM, "goalloc": lib.GA_BENCH_GOALLOC}
PAIR_SIZES = [16, 32, 64, 256, 1024, 8192, 65536]
FAILED = 2**64 - 1

#: (group, heap) -> (ns per operation, operations per call)
_results: Dict[Tuple[str, str], Tuple[float, int]] = {}


def _time(benchmark, group: str, heap: str, ops: int, fn: Callable[[], int]) -> None:
    benchmark.group = group
    benchmark.extra_info.update(heap=heap, operations=ops, ga_debug=int(lib.ga_bench_debug_level()))
    rounds = 3 if QUICK else 7
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0 if QUICK else 1)
    assert result != FAILED, f"{group} on {heap}: an allocation failed"
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None with --benchmark-disable
        ns = stats.stats.median * 1e9 / ops
        benchmark.extra_info["ns_per_op_median"] = round(ns, 2)
        _results[(group, heap)] = (ns, ops)


@pytest.mark.parametrize("heap", list(HEAPS))
@pytest.mark.parametrize("size", PAIR_SIZES)
def test_pairs(benchmark, heap: str, size: int) -> None:
    """n times malloc(size) + free: the single-thread fast paths (large
    sizes: the page heap)."""
    n = (2_000_000 if size <= 8192 else 200_000) // SCALE
    _time(benchmark, f"pairs {size:>5} B", heap, n, lambda: lib.ga_bench_pairs(HEAPS[heap], size, n))


@pytest.mark.parametrize("heap", list(HEAPS))
@pytest.mark.parametrize("window", [100, 10000])
def test_mixed(benchmark, heap: str, window: int) -> None:
    """Mixed sizes (16 B .. 16 KiB, mostly small) replacing random slots of
    a window of live blocks."""
    n = 1_000_000 // SCALE
    _time(benchmark, f"mixed window {window}", heap, n,
          lambda: lib.ga_bench_mixed(HEAPS[heap], n, window, 12345))


@pytest.mark.parametrize("heap", list(HEAPS))
@pytest.mark.parametrize("size", [32, 512])
def test_cross_thread(benchmark, heap: str, size: int) -> None:
    """One thread allocates, another frees (every free is remote)."""
    n = 1_000_000 // SCALE
    _time(benchmark, f"cross-thread {size} B", heap, n,
          lambda: lib.ga_bench_cross_thread(HEAPS[heap], size, n))


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _results:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    lines: List[str] = [
        "",
        f"ns per operation, median of the rounds (one C call each; GA_DEBUG={lib.ga_bench_debug_level()})",
        f"{'loop':<22}{'system':>10}{'goalloc':>10}{'goalloc/system':>16}",
    ]
    for group in sorted({g for g, _ in _results}, key=lambda g: (g.split()[0], g)):
        sys_ns = _results.get((group, "system"), (float("nan"), 0))[0]
        ga_ns = _results.get((group, "goalloc"), (float("nan"), 0))[0]
        lines.append(f"{group:<22}{sys_ns:>10.1f}{ga_ns:>10.1f}{ga_ns / sys_ns:>15.2f}×")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():  # module teardown output is captured otherwise
        for line in lines:
            tr.write_line(line)
