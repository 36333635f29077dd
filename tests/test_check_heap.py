"""check_heap() finds broken invariants and names them."""

from __future__ import annotations

import pytest
from conftest import ptr_info

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib


def test_clean_heap_passes() -> None:
    ps = [ga.malloc(n) for n in (1, 7, 16, 100, 5000, 40000, 1 << 20)]
    ga.check_heap()
    for p in ps:
        ga.free(p)
    ga.check_heap()


@pytest.mark.parametrize(
    ("what", "size", "message"),
    [
        (0, 64, "mspan: nlocal disagrees with local_free"),
        (1, 64, "mheap: treap max_pages wrong"),
        (3, 64, "mcache: kept pages disagree with the lists"),
    ],
)
def test_broken_invariant_is_named(what: int, size: int, message: str) -> None:
    p = ga.malloc(size)
    lib.ga_test_corrupt(p, what, 1)
    try:
        with pytest.raises(ga.HeapCorruption, match=message):
            ga.check_heap()
    finally:
        lib.ga_test_corrupt(p, what, 0)
    ga.check_heap()
    ga.free(p)


def test_broken_page_map_is_named() -> None:
    p = ga.malloc(1 << 20)
    page = ffi.cast("char *", p) + 3 * lib.ga_page_size()
    assert ptr_info(page).span_base == ptr_info(p).span_base
    lib.ga_test_corrupt(page, 2, 1)
    try:
        with pytest.raises(ga.HeapCorruption, match="mheap: in-use span page not mapped to it"):
            ga.check_heap()
    finally:
        lib.ga_test_repair_page(page, p)
    ga.check_heap()
    ga.free(p)
