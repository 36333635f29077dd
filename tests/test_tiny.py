"""The tiny allocator: 1..15-byte requests packed into 16-byte blocks with
C23 alignment, every sub-object freeable, sized and realloc'able."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest
from conftest import addr, ptr_info

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib


@pytest.fixture(autouse=True)
def fresh_block() -> Iterator[None]:
    """Start each test with no current tiny block and tiny on."""
    lib.ga_test_set_tiny(1)
    lib.ga_test_release_cache()
    yield
    lib.ga_test_set_tiny(1)


def c23_align(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1) if n < 16 else 16


def test_sixteen_one_byte_objects_share_one_block() -> None:
    ps = [ga.malloc(1) for _ in range(16)]
    base = addr(ps[0])
    assert [addr(p) - base for p in ps] == list(range(16))
    assert base % 16 == 0
    info = ptr_info(ps[0])
    assert info.kind == "tiny" and info.elemsize == 16
    assert info.tiny_word & 0xFFFF == 0xFFFF
    for p in ps:
        ga.free(p)


def test_a_full_block_with_nothing_live_starts_over() -> None:
    """A malloc/free loop of small objects stays in one block: when the
    current block is full but all its sub-objects are freed, it is carved
    again from offset 0 instead of being traded for a new block."""
    first = ga.malloc(8)
    base = addr(first)
    ga.free(first)
    for _ in range(10):
        p = ga.malloc(8)
        assert addr(p) - base in (0, 8)
        ga.free(p)
    # With a sub-object still live, a full block is not carved again.
    live = [ga.malloc(8) for _ in range(2)]  # fills the block (cursor at 8 or 16 now)
    in_block = [p for p in live if base <= addr(p) < base + 16]
    assert in_block, "the loop's block was left"
    more = ga.malloc(8)
    assert not base <= addr(more) < base + 16
    for p in live + [more]:
        ga.free(p)


@pytest.mark.parametrize("n", range(1, 16))
def test_alignment_is_c23(n: int) -> None:
    ps = [ga.malloc(n) for _ in range(64)]
    assert all(addr(p) % c23_align(n) == 0 for p in ps)
    assert all(ptr_info(p).kind == "tiny" for p in ps)
    assert all(ga.usable_size(p) >= n for p in ps)
    for p in ps:
        ga.free(p)


def test_mixed_sizes_pack_with_alignment() -> None:
    a = ga.malloc(12)  # 0..11 in a fresh block
    b = ga.malloc(3)  # 2-aligned: 12..14
    c = ga.malloc(1)  # 15
    assert addr(b) - addr(a) == 12 and addr(c) - addr(a) == 15
    d = ga.malloc(2)  # no room: a new block
    assert addr(d) // 16 != addr(a) // 16
    for p in (a, b, c, d):
        ga.free(p)


def test_objects_do_not_overlap_and_keep_contents() -> None:
    ps: List[Any] = []
    for i in range(2000):
        n = 1 + i % 15
        p = ga.malloc(n)
        ffi.memmove(p, bytes([i % 251]) * n, n)
        ps.append((p, n, i % 251))
    for j, (p, n, v) in enumerate(ps):
        assert ffi.buffer(p, n)[:] == bytes([v]) * n, j
        if j % 3 == 0:
            ga.free(p)
    for j, (p, n, v) in enumerate(ps):
        if j % 3:
            assert ffi.buffer(p, n)[:] == bytes([v]) * n, j
            ga.free(p)


def test_block_returns_to_its_span_when_last_sub_object_is_freed() -> None:
    a, b = ga.malloc(4), ga.malloc(4)
    assert addr(b) - addr(a) == 4
    lib.ga_test_release_cache()  # the block is no longer held by the cache
    span_before = ptr_info(a)
    ga.free(a)
    assert ptr_info(b).tiny_word & 0xFFFF == 1 << (addr(b) % 16)
    ga.free(b)
    # The span is uncached, so the block went back by a remote free (or,
    # if it was the span's last object, the span went back to the heap).
    after = ptr_info(a)
    assert after.nremote == span_before.nremote + 1 or after.state in ("free", "dead")


def test_held_block_is_freed_when_the_cache_lets_go() -> None:
    a = ga.malloc(2)
    ga.free(a)
    info = ptr_info(a)
    assert info.tiny_word & 0xFFFF == 0 and info.tiny_word & (1 << 21)  # HELD, empty
    lib.ga_test_release_cache()


def test_usable_size_never_overlaps_the_next_object() -> None:
    a = ga.malloc(3)
    assert ga.usable_size(a) == 3  # last object of the held block: exact
    b = ga.malloc(4)  # at offset 4
    assert ga.usable_size(a) == addr(b) - addr(a)
    lib.ga_test_release_cache()
    assert ga.usable_size(b) == 16 - addr(b) % 16  # block released: up to its end
    ga.free(a)
    ga.free(b)


def test_realloc_in_place_within_usable_size_then_moves() -> None:
    a = ga.malloc(3)
    ffi.memmove(a, b"xyz", 3)
    b = ga.malloc(8)
    size = ga.usable_size(a)
    assert ga.realloc(a, size) == a
    moved = ga.realloc(a, 40)
    assert moved is not None and moved != a
    assert ffi.buffer(moved, 3)[:] == b"xyz"
    assert ptr_info(moved).kind == "small"
    shrunk = ga.realloc(moved, 5)
    assert ffi.buffer(shrunk, 3)[:] == b"xyz" and ptr_info(shrunk).kind == "tiny"
    ga.free(shrunk)
    ga.free(b)


def test_calloc_of_tiny_sizes_is_zeroed() -> None:
    for _ in range(50):
        p = ga.malloc(7)
        ffi.memmove(p, b"\xff" * 7, 7)
        ga.free(p)
        q = ga.calloc(1, 7)
        assert ffi.buffer(q, 7)[:] == bytes(7)
        ga.free(q)


def test_tiny_off_uses_size_classes() -> None:
    lib.ga_test_set_tiny(0)
    p = ga.malloc(3)
    info = ptr_info(p)
    assert info.kind == "small" and info.elemsize == 8 and addr(p) % 8 == 0
    q = ga.malloc(12)
    assert ptr_info(q).elemsize == 16 and addr(q) % 16 == 0
    ga.free(p)
    ga.free(q)
