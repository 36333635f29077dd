"""Conformance of goalloc's C API (the ga_ malloc family), error cases included.

Everything goes through the cffi module's private heap: the typed wrappers
of goalloc_ffi for malloc/calloc/realloc/memalign/free/usable_size, and
``goalloc_ffi.lib.ga_*`` for the rest.  Every test ends with a full heap
check (autouse fixture).

What is checked, function by function:

* malloc: usable, writable, non-overlapping blocks; malloc(0) unique and
  freeable; C23 alignment (largest power of two <= n below 16 bytes, 16 from
  there on) over many sizes and allocations, tiny allocator on and off.
* free: free(NULL) is a no-op; free never changes errno (local, remote,
  tiny, small and large frees).
* calloc: zeroed memory, also when reusing dirtied, freed memory; overflow.
* realloc / reallocarray: NULL and 0 special cases, in place within a size
  class, common prefix kept across tiny, small and large sizes, failures
  leave the block untouched.
* posix_memalign, aligned_alloc, memalign, valloc, pvalloc: argument errors,
  alignment from 1 byte up to 64 MiB, usable size; posix_memalign's ENOMEM
  is also left in errno (as glibc), its EINVAL is not.
* malloc_usable_size: 0 for NULL, >= the request for every size.
* free_sized, free_aligned_sized: free with the requested size (and
  alignment), also after calloc and an in-place realloc; NULL does nothing.
* Impossible requests (> PTRDIFF_MAX, overflowing products, huge
  alignments) fail with NULL and ENOMEM in every entry point.
"""

from __future__ import annotations

import errno
import mmap
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, Optional

import pytest

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

Pointer = Any  # a cffi "void *"

KiB, MiB = 1 << 10, 1 << 20
PTRDIFF_MAX = (1 << 63) - 1
SIZE_MAX = (1 << 64) - 1
OS_PAGE = mmap.PAGESIZE  # valloc/pvalloc alignment
MAX_SMALL = int(lib.ga_max_small_size())
TINY_SIZE = int(lib.ga_tiny_size())
CLASS_SIZES = [c.size for c in ga.sizeclasses()]

TINY_SIZES = [1, 2, 3, 7, 8, 15]
SMALL_SIZES = [16, 17, 100, 1024, 1025, 5000, MAX_SMALL]
LARGE_SIZES = [MAX_SMALL + 1, 40000, 1 * MiB, 5 * MiB + 3]
SIZES = [0, *TINY_SIZES, *SMALL_SIZES, *LARGE_SIZES]
#: Sizes no allocation can satisfy: larger than PTRDIFF_MAX.
HUGE_SIZES = [PTRDIFF_MAX + 1, 1 << 63 | 1 << 62, SIZE_MAX - 4095, SIZE_MAX]
#: Sizes accepted by the argument checks but beyond the 47-bit address space.
UNMAPPABLE_SIZES = [PTRDIFF_MAX, 1 << 62, 1 << 48]
#: Sizes with the posix_memalign/aligned_alloc matrix.
ALIGNED_SIZES = [0, 1, 100, 5000, 40000, 1 * MiB]
#: 8 B .. 4 MiB, then arena-sized (64 MiB) and beyond.
POSIX_ALIGNMENTS = [1 << k for k in range(3, 23)] + [64 * MiB, 128 * MiB]

# ga_test_ptr_info kinds
KIND_TINY, KIND_SMALL, KIND_LARGE = 1, 2, 3


# --------------------------------------------------------------------------
# Helpers


def addr(p: Pointer) -> int:
    return int(ffi.cast("uintptr_t", p))


def c23_alignment(n: int) -> int:
    """What malloc(n) must guarantee: the largest power of two <= n below
    16 bytes (C23 7.24.3), max_align_t (16) from there on; 1 for n = 0."""
    return 16 if n >= 16 else 1 << (max(n, 1).bit_length() - 1)


def next_pow2(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


def pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def write(p: Pointer, data: bytes) -> None:
    ffi.memmove(p, data, len(data))


def read(p: Pointer, n: int) -> bytes:
    return bytes(ffi.buffer(p, n))


def usable(p: Pointer) -> int:
    return ga.usable_size(p)


def ptr_info(p: Pointer) -> Any:
    info = ffi.new("ga_test_ptr_info_t *")
    lib.ga_test_ptr_info(p, info)
    return info


def assert_usable_block(p: Optional[Pointer], n: int, align: int = 1) -> Pointer:
    """p is a live block of at least n bytes aligned to align, every byte of
    which can be written and read back."""
    assert p is not None and p != ffi.NULL, f"allocation of {n} bytes failed, errno {ga.errno()}"
    assert addr(p) % align == 0, f"{addr(p):#x} is not {align}-aligned (size {n})"
    size = usable(p)
    assert size >= n, f"usable size {size} < requested {n}"
    data = pattern(size, addr(p))
    write(p, data)
    assert read(p, size) == data
    return p


def assert_usable_block_prefix(q: Optional[Pointer], n: int, prefix: bytes) -> Pointer:
    """q is a live block of at least n bytes, malloc-aligned, starting with prefix."""
    assert q is not None and q != ffi.NULL, f"reallocation to {n} bytes failed"
    assert read(q, len(prefix)) == prefix
    assert usable(q) >= n and addr(q) % c23_alignment(n) == 0
    return q


def expect_failure(call: Callable[[], Pointer], err: int) -> None:
    """call() returns NULL and sets errno to err."""
    ga.set_errno(0)
    p = call()
    assert p is None or p == ffi.NULL, f"expected NULL, got {p}"
    assert ga.errno() == err, f"errno {ga.errno()}, expected {err}"


def posix_memalign(align: int, n: int, sentinel: int = 0) -> tuple[int, Pointer]:
    """(return code, *memptr) with *memptr preset to the address sentinel."""
    out = ffi.new("void **", ffi.cast("void *", sentinel))
    rc = int(lib.ga_posix_memalign(out, align, n))
    return rc, out[0]


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def heap_checked() -> Iterator[None]:
    yield
    ga.check_heap()


@pytest.fixture(params=[True, False], ids=["tiny", "notiny"])
def tiny(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Runs the test with the tiny allocator on and off (restored to on)."""
    lib.ga_test_set_tiny(int(request.param))
    try:
        yield bool(request.param)
    finally:
        lib.ga_test_set_tiny(1)


# --------------------------------------------------------------------------
# malloc


@pytest.mark.parametrize("n", SIZES)
def test_malloc_block_is_usable(tiny: bool, n: int) -> None:
    p = assert_usable_block(ga.malloc(n), n, c23_alignment(n))
    ga.free(p)


def test_malloc_blocks_do_not_overlap(tiny: bool) -> None:
    rng = random.Random(1)
    sizes = [n for n in SIZES if n <= 40000]
    blocks = [ga.malloc(rng.choice(sizes)) for _ in range(3000)]
    spans = sorted((addr(p), addr(p) + usable(p)) for p in blocks)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"blocks overlap at {start:#x}"
    for p in blocks:
        ga.free(p)


def test_malloc_zero_is_unique_and_freeable(tiny: bool) -> None:
    blocks = [ga.malloc(0) for _ in range(100)]
    assert all(p is not None for p in blocks)
    assert len({addr(p) for p in blocks}) == len(blocks)
    for p in blocks:
        ga.free(p)


def test_malloc_alignment(tiny: bool) -> None:
    """C23 alignment for every size up to 80 bytes and some larger ones,
    allocated interleaved (so tiny blocks are shared) and in random order."""
    sizes = list(range(1, 81)) + [100, 1000, 1024, 1025, 4000, MAX_SMALL, MAX_SMALL + 1, 100000]
    order = sizes * 40
    random.Random(2).shuffle(order)
    bad: dict[int, int] = {}  # size -> a misaligned address
    blocks = []
    for n in sizes * 40 + order:
        p = ga.malloc(n)
        assert p is not None
        blocks.append(p)
        if addr(p) % c23_alignment(n):
            bad.setdefault(n, addr(p))
    for p in blocks:
        ga.free(p)
    assert not bad, {n: hex(a) for n, a in bad.items()}


# --------------------------------------------------------------------------
# free


def test_free_null_does_nothing() -> None:
    before = ffi.new("ga_test_heap_info_t *")
    after = ffi.new("ga_test_heap_info_t *")
    lib.ga_test_heap_info(before)
    ga.set_errno(4321)
    ga.free(None)
    lib.ga_free(ffi.NULL)
    assert ga.errno() == 4321
    lib.ga_test_heap_info(after)
    assert ffi.buffer(before)[:] == ffi.buffer(after)[:]


def _free_keeping_errno(p: Pointer) -> int:
    ga.set_errno(12345)
    ga.free(p)
    return ga.errno()


@pytest.mark.parametrize("remote", [False, True], ids=["same-thread", "other-thread"])
@pytest.mark.parametrize("n", SIZES)
def test_free_leaves_errno_unchanged(n: int, remote: bool) -> None:
    blocks = [ga.malloc(n) for _ in range(50)]
    seen: list[int] = []
    if remote:
        worker = threading.Thread(target=lambda: seen.extend(map(_free_keeping_errno, blocks)))
        worker.start()
        worker.join()
    else:
        seen = [_free_keeping_errno(p) for p in blocks]
    assert seen == [12345] * len(blocks)


# --------------------------------------------------------------------------
# calloc


@pytest.mark.parametrize("n", SIZES)
def test_calloc_zeroes_reused_memory(tiny: bool, n: int) -> None:
    """Dirty memory (0xAB) freed and calloc'ed again comes back zeroed.  Rounds
    go on until freed blocks have been handed out again for two rounds (a
    tiny span only recycles its blocks once all 512 have been used)."""
    count = 600 if n <= MAX_SMALL else 3
    seen: set[int] = set()
    rounds_reusing = 0
    for _ in range(50):
        if rounds_reusing == 2:
            break
        reused = False
        blocks = [ga.calloc(1, n) for _ in range(count)]
        for p in blocks:
            assert p is not None
            assert read(p, n) == bytes(n), f"calloc(1, {n}) at {addr(p):#x} is not zeroed"
            reused |= addr(p) in seen
            seen.add(addr(p))
            write(p, b"\xab" * usable(p))
        for p in blocks:
            ga.free(p)
        rounds_reusing += reused
    assert rounds_reusing == 2, "calloc did not reuse freed blocks: the test proves nothing"


@pytest.mark.parametrize(("count", "size"), [(4, 3), (3, 4), (1000, 1000), (0, 7), (7, 0), (0, 0)])
def test_calloc_product_is_the_size(count: int, size: int) -> None:
    p = assert_usable_block(ga.calloc(count, size), count * size)
    ga.free(p)


def test_calloc_zero_is_unique() -> None:
    a, b = ga.calloc(0, 0), ga.calloc(0, 1)
    assert a is not None and b is not None and addr(a) != addr(b)
    ga.free(a)
    ga.free(b)


# --------------------------------------------------------------------------
# realloc


@pytest.mark.parametrize("n", SIZES)
def test_realloc_null_is_malloc(n: int) -> None:
    p = assert_usable_block(ga.realloc(None, n), n, c23_alignment(n))
    ga.free(p)


@pytest.mark.parametrize("n", [3, 100, 100000])
def test_realloc_to_zero_frees(n: int) -> None:
    p = ga.malloc(n)
    before = ptr_info(p)
    assert ga.realloc(p, 0) is None
    after = ptr_info(p)
    if before.kind == KIND_TINY:
        assert not after.tiny_word & (1 << (addr(p) % TINY_SIZE))
    elif before.kind == KIND_SMALL:
        assert after.nlocal == before.nlocal + 1
    else:
        assert before.kind == KIND_LARGE and after.kind != KIND_LARGE


def _class_ranges(tiny: bool) -> Iterator[tuple[int, int]]:
    """(smallest, largest) request of each small size class that malloc
    serves from that class."""
    lo = 1
    for size in CLASS_SIZES:
        first = max(lo, TINY_SIZE) if tiny else lo
        if first <= size:
            yield first, size
        lo = size + 1


def test_realloc_in_place_within_class(tiny: bool) -> None:
    for lo, hi in _class_ranges(tiny):
        p = ga.malloc(lo)
        data = pattern(lo, lo)
        write(p, data)
        for n in (hi, lo, (lo + hi) // 2):
            q = ga.realloc(p, n)
            assert q is not None and addr(q) == addr(p), f"realloc({lo} -> {n}) moved"
        assert read(p, lo) == data
        ga.free(p)


@pytest.mark.parametrize("n", TINY_SIZES)
def test_realloc_tiny_in_place_within_usable(n: int) -> None:
    p = ga.malloc(n)
    size = usable(p)
    for m in range(1, size + 1):
        q = ga.realloc(p, m)
        assert q is not None and addr(q) == addr(p), f"realloc({n} -> {m}), usable {size}, moved"
    ga.free(p)


RESIZE_SIZES = [1, 7, 15, 16, 100, 1024, 1025, 20000, MAX_SMALL, MAX_SMALL + 1, 100000, 1 * MiB]


@pytest.mark.parametrize("new", RESIZE_SIZES)
@pytest.mark.parametrize("old", RESIZE_SIZES)
def test_realloc_keeps_common_prefix(tiny: bool, old: int, new: int) -> None:
    p = ga.malloc(old)
    data = pattern(old, old * 7 + new)
    write(p, data)
    q = assert_usable_block_prefix(ga.realloc(p, new), new, data[:new])
    ga.free(q)


def test_realloc_large_growth_keeps_contents() -> None:
    """Growth of a large block, in place or not (both are allowed)."""
    n = 64 * KiB
    p = ga.malloc(n)
    data = pattern(n, 5)
    write(p, data)
    for n in (100 * KiB, 1 * MiB, 3 * MiB + 1, 16 * MiB):
        p = assert_usable_block_prefix(ga.realloc(p, n), n, data)
        data = pattern(n, n)
        write(p, data)
    ga.free(p)


@pytest.mark.parametrize("old", [5, 100, 100000])
@pytest.mark.parametrize("n", [*HUGE_SIZES, *UNMAPPABLE_SIZES])
def test_realloc_impossible_size_keeps_block(old: int, n: int) -> None:
    p = ga.malloc(old)
    data = pattern(old, old)
    write(p, data)
    expect_failure(lambda: lib.ga_realloc(p, n), errno.ENOMEM)
    assert read(p, old) == data
    ga.free(p)


# --------------------------------------------------------------------------
# reallocarray


def test_reallocarray_resizes() -> None:
    p = lib.ga_reallocarray(ffi.NULL, 3, 5)
    assert_usable_block(p, 15)
    data = pattern(15, 0)
    write(p, data)
    p = lib.ga_reallocarray(p, 1000, 100)
    assert_usable_block_prefix(p, 100000, data)
    assert lib.ga_reallocarray(p, 0, 100) == ffi.NULL  # realloc(p, 0): frees p


@pytest.mark.parametrize(
    ("count", "size"),
    [(1 << 32, 1 << 32), (1 << 63, 2), (SIZE_MAX, SIZE_MAX), (3, (1 << 63) // 3 * 2),
     (1, PTRDIFF_MAX + 1), (SIZE_MAX, 1)],
)
def test_reallocarray_overflow_keeps_block(count: int, size: int) -> None:
    p = ga.malloc(100)
    data = pattern(100, 9)
    write(p, data)
    expect_failure(lambda: lib.ga_reallocarray(p, count, size), errno.ENOMEM)
    assert read(p, 100) == data
    q = assert_usable_block_prefix(lib.ga_reallocarray(p, 2, 100), 200, data)  # still valid
    ga.free(q)


# --------------------------------------------------------------------------
# posix_memalign


@pytest.mark.parametrize("align", [0, 1, 2, 4, 12, 24, 40, 100, 3 * MiB, PTRDIFF_MAX, SIZE_MAX])
def test_posix_memalign_einval(align: int) -> None:
    ga.set_errno(777)
    rc, out = posix_memalign(align, 100, sentinel=0x1234)
    assert rc == errno.EINVAL
    assert addr(out) == 0x1234, "*memptr changed on failure"
    assert ga.errno() == 777, "posix_memalign set errno"


@pytest.mark.parametrize(("align", "n"), [(16, PTRDIFF_MAX + 1), (16, SIZE_MAX), (4096, SIZE_MAX),
                                          (1 << 62, 1), (1 << 63, 1), (1 << 63, SIZE_MAX)])
def test_posix_memalign_enomem(align: int, n: int) -> None:
    ga.set_errno(777)
    rc, out = posix_memalign(align, n, sentinel=0x1234)
    assert rc == errno.ENOMEM
    assert addr(out) == 0x1234, "*memptr changed on failure"
    # glibc's posix_memalign leaves ENOMEM in errno too (not EINVAL, above).
    assert ga.errno() == errno.ENOMEM, "posix_memalign did not set errno to ENOMEM"


@pytest.mark.parametrize("n", ALIGNED_SIZES)
@pytest.mark.parametrize("align", POSIX_ALIGNMENTS)
def test_posix_memalign(align: int, n: int) -> None:
    rc, p = posix_memalign(align, n)
    assert rc == 0
    assert_usable_block(p, n, align)
    ga.free(p)


# --------------------------------------------------------------------------
# aligned_alloc


@pytest.mark.parametrize("align", [0, 3, 6, 12, 24, 100, 3 * MiB, PTRDIFF_MAX, SIZE_MAX])
def test_aligned_alloc_einval(align: int) -> None:
    expect_failure(lambda: lib.ga_aligned_alloc(align, 64), errno.EINVAL)


@pytest.mark.parametrize("n", [*ALIGNED_SIZES, 3, 17, 4097])  # any size, not only multiples
@pytest.mark.parametrize("align", [1, 2, 4, *POSIX_ALIGNMENTS])
def test_aligned_alloc(align: int, n: int) -> None:
    p = assert_usable_block(lib.ga_aligned_alloc(align, n), n, align)
    ga.free(p)


# --------------------------------------------------------------------------
# memalign (as glibc's: alignments up to 16 give 16, others round up to a
# power of two, and any alignment above SIZE_MAX/2+1 is EINVAL)


@pytest.mark.parametrize("n", [0, 1, 100, 5000, 40000])
@pytest.mark.parametrize("align", [0, 1, 2, 8, 16, 24, 48, 100, 4096, 5000, 1 * MiB, 64 * MiB])
def test_memalign(align: int, n: int) -> None:
    p = assert_usable_block(ga.memalign(align, n), n, max(16, next_pow2(align)))
    ga.free(p)


@pytest.mark.parametrize("align", [(1 << 63) + 1, SIZE_MAX])
def test_memalign_einval_beyond_half_address_space(align: int) -> None:
    expect_failure(lambda: lib.ga_memalign(align, 1), errno.EINVAL)


# --------------------------------------------------------------------------
# valloc and pvalloc


@pytest.mark.parametrize("n", [0, 1, 100, OS_PAGE - 1, OS_PAGE, OS_PAGE + 1, 5000, 40000, 1 * MiB + 1])
def test_valloc(n: int) -> None:
    p = assert_usable_block(lib.ga_valloc(n), n, OS_PAGE)
    ga.free(p)


@pytest.mark.parametrize("n", [0, 1, 100, OS_PAGE - 1, OS_PAGE, OS_PAGE + 1, 5000, 40000, 1 * MiB + 1])
def test_pvalloc(n: int) -> None:
    rounded = -(-n // OS_PAGE) * OS_PAGE
    p = assert_usable_block(lib.ga_pvalloc(n), rounded, OS_PAGE)
    ga.free(p)


# --------------------------------------------------------------------------
# malloc_usable_size


def test_usable_size_of_null() -> None:
    assert ga.usable_size(None) == 0


def _probe_sizes() -> list[int]:
    boundaries = {s + d for s in [*CLASS_SIZES, TINY_SIZE] for d in (-1, 0, 1)}
    return sorted(set(range(0, MAX_SMALL + 2, 13)) | boundaries
                  | {MAX_SMALL + 1, 65535, 65536, 65537, 1 * MiB - 1, 1 * MiB + 1})


def test_usable_size_covers_request(tiny: bool) -> None:
    short = {}
    for n in _probe_sizes():
        p = ga.malloc(n)
        assert p is not None
        if usable(p) < n:
            short[n] = usable(p)
        ga.free(p)
    assert not short, f"usable size below the request: {short}"


# --------------------------------------------------------------------------
# free_sized and free_aligned_sized (C23): free after a size check; wrong
# sizes are misuse (tests/test_misuse.py)


def assert_freed(p: Pointer, before: Any) -> None:
    """p, whose ptr_info was before, has just been freed."""
    after = ptr_info(p)
    if before.kind == KIND_TINY:
        assert not after.tiny_word & (1 << (addr(p) % TINY_SIZE)), "tiny object still live"
    elif before.kind == KIND_SMALL:
        assert after.nlocal == before.nlocal + 1, "no free recorded in the span"
    else:
        assert before.kind == KIND_LARGE and after.kind != KIND_LARGE, "large object still live"


@pytest.mark.parametrize("n", SIZES)
def test_free_sized_frees_with_the_requested_size(tiny: bool, n: int) -> None:
    for make in (lambda: ga.malloc(n), lambda: ga.calloc(1, n)):
        p = make()
        before = ptr_info(p)
        ga.set_errno(4321)
        lib.ga_free_sized(p, n)
        assert ga.errno() == 4321
        assert_freed(p, before)


@pytest.mark.parametrize("n", SIZES)
def test_free_sized_accepts_every_size_of_the_class(n: int) -> None:
    """Any request the object's class (or page count) serves is its size:
    the largest one too, and what realloc in place resized it to."""
    p = ga.malloc(n)
    m = usable(p) if n else 0
    q = ga.realloc(p, m) if n else p  # in place: the same class or pages
    assert addr(q) == addr(p)
    before = ptr_info(q)
    lib.ga_free_sized(q, m)
    assert_freed(q, before)


def test_free_sized_null_does_nothing() -> None:
    ga.set_errno(4321)
    lib.ga_free_sized(ffi.NULL, 100)
    lib.ga_free_aligned_sized(ffi.NULL, 64, 100)
    assert ga.errno() == 4321


@pytest.mark.parametrize("n", [*ALIGNED_SIZES, 3, 17, 4097])
@pytest.mark.parametrize("align", [1, 2, 4, *POSIX_ALIGNMENTS])
def test_free_aligned_sized_frees_aligned_alloc_blocks(align: int, n: int) -> None:
    p = lib.ga_aligned_alloc(align, n)
    assert p != ffi.NULL
    before = ptr_info(p)
    lib.ga_free_aligned_sized(p, align, n)
    assert_freed(p, before)


# --------------------------------------------------------------------------
# Impossible requests: NULL and ENOMEM from every entry point (posix_memalign,
# realloc and reallocarray, which have more to check, are tested above)


def _request(name: str, *args: int) -> Any:
    shown = ", ".join(f"{a:#x}" if a > 1 << 20 else str(a) for a in args)
    return pytest.param(name, args, id=f"{name}({shown})")


IMPOSSIBLE = [
    *(_request("malloc", n) for n in [*HUGE_SIZES, *UNMAPPABLE_SIZES]),
    *(_request("calloc", c, n) for c, n in [
        (1 << 32, 1 << 32), (1 << 63, 2), (2, 1 << 63), (SIZE_MAX, SIZE_MAX),
        (3, (1 << 63) // 3 + 1), (1, PTRDIFF_MAX + 1), (PTRDIFF_MAX + 1, 1), (SIZE_MAX, 1)]),
    *(_request("aligned_alloc", a, n) for a, n in [
        (16, PTRDIFF_MAX + 1), (64, SIZE_MAX), (4096, SIZE_MAX), (1 << 62, 1), (1 << 63, 1)]),
    # glibc's memalign: alignments up to SIZE_MAX/2+1 are accepted
    *(_request("memalign", a, n) for a, n in [
        (1 << 62, 1), (1 << 62, 0), (1 << 63, 1), (1 << 63, 1 << 62),
        (16, PTRDIFF_MAX + 1), (4096, SIZE_MAX)]),
    *(_request("valloc", n) for n in [*HUGE_SIZES, *UNMAPPABLE_SIZES]),
    *(_request("pvalloc", n) for n in [*HUGE_SIZES, *UNMAPPABLE_SIZES]),
]


@pytest.mark.parametrize(("name", "args"), IMPOSSIBLE)
def test_impossible_request(tiny: bool, name: str, args: tuple[int, ...]) -> None:
    function = getattr(lib, f"ga_{name}")
    expect_failure(lambda: function(*args), errno.ENOMEM)

