"""An operation-sequence interpreter over goalloc_ffi's private heap, for
fuzzers: a byte string is decoded into a sequence of allocator calls.

run_sequence(data) decodes `data` into up to MAX_OPS operations on at most
MAX_LIVE live blocks: malloc, calloc, realloc, reallocarray (overflowing
products included), posix_memalign, aligned_alloc and memalign (valid and
invalid alignments), valloc, pvalloc, free, frees and allocations on a
second, long-lived thread (remote frees, blocks owned by another cache), a
short-lived thread that allocates, frees and exits (leaving blocks behind),
returning this thread's cache to mcentral, impossible sizes, and check_heap
in the middle of the sequence.  The first byte chooses the tiny allocator
on or off for the sequence.

Every block is filled with its own byte over its requested size and checked
before it is freed, moved or shrunk; calloc must give zeroes; usable size
must cover the request; alignments must hold; failures must be NULL with
the right errno (posix_memalign: the return code, *memptr untouched).  At
the end every block left is checked and freed and check_heap() must pass:
any broken rule raises AssertionError (goalloc's own misuse aborts kill the
process, which a fuzzer records too).

tests/fuzz/fuzz_heap.py runs this under atheris (make fuzz);
tests/test_fuzz.py runs it on seeded random inputs in make test.
"""

from __future__ import annotations

import errno as errno_mod
import os
import queue
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

MAX_OPS = 64
MAX_LIVE = 48
KiB, MiB = 1 << 10, 1 << 20
SIZE_MAX = (1 << 64) - 1
PTRDIFF_MAX = (1 << 63) - 1

#: Sizes at the edges of the allocator's ladders: tiny, class sizes, the
#: largest small size, page multiples.
_EDGE_SIZES: List[int] = sorted(
    {0, 1, 2, 3, 7, 8, 15, 16, 17, 1023, 1024, 1025, 4096, 8191, 8192, 8193,
     32767, 32768, 32769, 65536, 65537, 1 * MiB, 1 * MiB + 1}
    | {c.size for c in ga.sizeclasses()}
    | {c.size + 1 for c in ga.sizeclasses()}
)
_ALIGNMENTS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 4096, 8192, 16384, 65536, 1 * MiB, 4 * MiB]
_BAD_ALIGNMENTS = [0, 3, 5, 12, 24, 48, 100, 4097, 3 * MiB, PTRDIFF_MAX, SIZE_MAX]
_IMPOSSIBLE = [PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 4095, 1 << 62, 1 << 48]


class Reader:
    """Reads small integers from the fuzzer's bytes; zeros once exhausted."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        return self.byte() | self.byte() << 8

    def u24(self) -> int:
        return self.u16() | self.byte() << 16

    def pick(self, seq: List[Any]) -> Any:
        return seq[self.byte() % len(seq)]

    def size(self) -> int:
        """Weighted to small: tiny, small, medium, large, edges."""
        kind = self.byte() % 16
        if kind < 4:
            return self.byte() % 16
        if kind < 9:
            return 16 + self.u16() % 1009
        if kind < 12:
            return 1025 + self.u16() % (32768 - 1024)
        if kind < 13:
            return 32769 + self.u24() % (2 * MiB)
        return self.pick(_EDGE_SIZES)


class Block:
    __slots__ = ("ptr", "size", "byte")

    def __init__(self, ptr: Any, size: int, byte: int) -> None:
        self.ptr, self.size, self.byte = ptr, size, byte


def _addr(p: Any) -> int:
    return int(ffi.cast("uintptr_t", p))


class Helper:
    """A long-lived second thread that runs calls for the sequence (remote
    frees, allocations into its own cache)."""

    def __init__(self) -> None:
        self.jobs: "queue.Queue[Optional[Tuple[Callable[[], Any], queue.Queue[Any]]]]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="heap-ops-helper", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, out = job
            try:
                out.put((True, fn()))
            except BaseException as exc:  # handed back to the caller
                out.put((False, exc))

    def call(self, fn: Callable[[], Any]) -> Any:
        out: "queue.Queue[Any]" = queue.Queue()
        self.jobs.put((fn, out))
        ok, value = out.get(timeout=60)
        if not ok:
            raise value
        return value


_helper: Optional[Helper] = None


def wait_thread_gone(tid: int) -> None:
    """Thread.join() returns before the OS thread has run its TLS
    destructors (goalloc's cache release among them); check_heap() during
    that window sees a cache half given back.  Waits until the kernel has
    reaped the thread."""
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/self/task/{tid}"):
        assert time.monotonic() < deadline, f"thread {tid} never finished exiting"
        time.sleep(0.0001)


def helper() -> Helper:
    global _helper
    if _helper is None:
        _helper = Helper()
    return _helper


def quiesce() -> None:
    """Ends the helper thread (its exit gives its cache back) and returns
    this thread's cached spans to mcentral, so that later tests in the same
    process find as few leftovers as possible."""
    global _helper
    if _helper is not None:
        tid = _helper.call(threading.get_native_id)
        _helper.jobs.put(None)
        _helper.thread.join(60)
        wait_thread_gone(tid)
        _helper = None
    lib.ga_test_release_cache()


class Sequence:
    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.live: List[Block] = []
        self.serial = 0

    # -- bookkeeping ---------------------------------------------------------

    def _new_byte(self) -> int:
        self.serial += 1
        return self.serial % 251 + 1

    def track(self, p: Any, n: int, what: str, align: int = 1, zeroed: bool = False) -> None:
        assert p != ffi.NULL, f"{what} = NULL (errno {ga.errno()})"
        assert _addr(p) % align == 0, f"{what} = {_addr(p):#x}, not {align}-aligned"
        usable = ga.usable_size(p)
        assert usable >= n, f"{what}: usable size {usable} < {n}"
        if zeroed:
            assert ffi.buffer(p, n)[:] == bytes(n), f"{what}: not zeroed"
        b = Block(p, n, self._new_byte())
        ffi.memmove(p, bytes([b.byte]) * n, n)
        self.live.append(b)
        if len(self.live) > MAX_LIVE:
            self.free_block(self.live.pop(0), "evicted")

    def check(self, b: Block, what: str, n: Optional[int] = None) -> None:
        n = b.size if n is None else n
        got = ffi.buffer(b.ptr, n)[:]
        if got != bytes([b.byte]) * n:
            off = next(i for i in range(n) if got[i] != b.byte)
            raise AssertionError(
                f"{what}: block {_addr(b.ptr):#x} of {b.size} B changed at byte {off}: "
                f"{got[off]:#04x}, expected {b.byte:#04x}")

    def take(self) -> Optional[Block]:
        if not self.live:
            return None
        return self.live.pop(self.r.byte() % len(self.live))

    def free_block(self, b: Block, what: str) -> None:
        self.check(b, f"free ({what})")
        ga.set_errno(4321)
        ga.free(b.ptr)
        assert ga.errno() == 4321, f"free changed errno to {ga.errno()}"

    def expect_failure(self, p: Any, err: int, what: str) -> None:
        e = ga.errno()
        if p != ffi.NULL:
            ga.free(p)
        assert p == ffi.NULL and e == err, f"{what} = {p}, errno {e}: expected NULL, errno {err}"

    # -- operations ----------------------------------------------------------

    def op_malloc(self) -> None:
        n = self.r.size()
        self.track(lib.ga_malloc(n), n, f"malloc({n})")

    def op_calloc(self) -> None:
        count, size = self.r.byte() % 40, self.r.size() % 8192
        if self.r.byte() % 8 == 0:  # overflowing product
            count, size = self.r.pick([(1 << 32, 1 << 32), (SIZE_MAX, 2), (3, PTRDIFF_MAX // 3 + 1)])
            self.expect_failure(lib.ga_calloc(count, size), errno_mod.ENOMEM, f"calloc({count}, {size})")
            return
        self.track(lib.ga_calloc(count, size), count * size, f"calloc({count}, {size})", zeroed=True)

    def _resized(self, b: Block, q: Any, n: int, what: str) -> None:
        keep = min(b.size, n)
        assert q != ffi.NULL, f"{what} = NULL (errno {ga.errno()})"
        self.check(Block(q, b.size, b.byte), f"{what}: contents", keep)
        self.track(q, n, what)

    def op_realloc(self) -> None:
        b = self.take()
        n = self.r.size()
        if b is None:
            self.track(lib.ga_realloc(ffi.NULL, n), n, f"realloc(NULL, {n})")
            return
        self.check(b, "before realloc")
        if self.r.byte() % 16 == 0:  # impossible: NULL, ENOMEM, the block kept
            big = self.r.pick(_IMPOSSIBLE)
            ga.set_errno(0)
            q = lib.ga_realloc(b.ptr, big)
            self.expect_failure(q, errno_mod.ENOMEM, f"realloc(p, {big:#x})")
            self.check(b, "after a failed realloc")
            self.live.append(b)
            return
        if n == 0:  # glibc's rule: frees the block, returns NULL
            assert lib.ga_realloc(b.ptr, 0) == ffi.NULL, "realloc(p, 0) did not free"
            return
        self._resized(b, lib.ga_realloc(b.ptr, n), n, f"realloc({b.size} -> {n})")

    def op_reallocarray(self) -> None:
        b = self.take()
        count, size = 1 + self.r.byte() % 8, self.r.size() // 8
        p = ffi.NULL if b is None else b.ptr
        if self.r.byte() % 6 == 0:  # overflow: NULL, ENOMEM, the block kept
            count, size = self.r.pick([(1 << 32, 1 << 32), (SIZE_MAX, 2), (2, PTRDIFF_MAX)])
            ga.set_errno(0)
            q = lib.ga_reallocarray(p, count, size)
            self.expect_failure(q, errno_mod.ENOMEM, f"reallocarray(p, {count}, {size})")
            if b is not None:
                self.check(b, "after a failed reallocarray")
                self.live.append(b)
            return
        if b is None:
            self.track(lib.ga_reallocarray(p, count, size), count * size, "reallocarray(NULL)")
        elif count * size == 0:
            assert lib.ga_reallocarray(p, count, size) == ffi.NULL
        else:
            self.check(b, "before reallocarray")
            self._resized(b, lib.ga_reallocarray(p, count, size), count * size, "reallocarray")

    def op_posix_memalign(self) -> None:
        n = self.r.size()
        out = ffi.new("void **", ffi.cast("void *", 0x1234))
        ga.set_errno(777)
        if self.r.byte() % 5 == 0:
            align = self.r.pick(_BAD_ALIGNMENTS)
            rc = lib.ga_posix_memalign(out, align, n)
            assert rc == errno_mod.EINVAL, f"posix_memalign(&p, {align}, {n}) = {rc}"
            assert _addr(out[0]) == 0x1234, "posix_memalign changed *memptr on failure"
            assert ga.errno() == 777, "posix_memalign set errno"
            return
        align = max(8, self.r.pick(_ALIGNMENTS))
        rc = lib.ga_posix_memalign(out, align, n)
        assert rc == 0, f"posix_memalign(&p, {align}, {n}) = {rc}"
        self.track(out[0], n, f"posix_memalign({align}, {n})", align)

    def op_aligned_alloc(self) -> None:
        n = self.r.size()
        if self.r.byte() % 5 == 0:
            align = self.r.pick(_BAD_ALIGNMENTS)
            ga.set_errno(0)
            self.expect_failure(lib.ga_aligned_alloc(align, n), errno_mod.EINVAL,
                                f"aligned_alloc({align}, {n})")
            return
        align = self.r.pick(_ALIGNMENTS)
        self.track(lib.ga_aligned_alloc(align, n), n, f"aligned_alloc({align}, {n})", align)

    def op_memalign(self) -> None:
        n = self.r.size()
        align = self.r.pick(_ALIGNMENTS + [0, 3, 24, 100, 5000])
        expect = 16
        while expect < align:
            expect *= 2
        self.track(lib.ga_memalign(align, n), n, f"memalign({align}, {n})", expect)

    def op_valloc(self) -> None:
        n = self.r.size()
        if self.r.byte() % 2:
            self.track(lib.ga_valloc(n), n, f"valloc({n})", 4096)
        else:
            rounded = (n + 4095) // 4096 * 4096
            self.track(lib.ga_pvalloc(n), rounded, f"pvalloc({n})", 4096)

    def op_free(self) -> None:
        b = self.take()
        if b is not None:
            self.free_block(b, "owner")
        else:
            ga.free(None)

    def op_remote_free(self) -> None:
        b = self.take()
        if b is not None:
            self.check(b, "before remote free")
            helper().call(lambda: ga.free(b.ptr))

    def op_remote_malloc(self) -> None:
        n = self.r.size()
        p = helper().call(lambda: lib.ga_malloc(n))
        self.track(p, n, f"malloc({n}) on the helper thread")

    def op_thread(self) -> None:
        """A thread that allocates, frees some of its own and some of ours,
        and exits leaving the rest to us."""
        sizes = [self.r.size() for _ in range(1 + self.r.byte() % 6)]
        theirs = [b for b in (self.take() for _ in range(self.r.byte() % 3)) if b is not None]
        for b in theirs:
            self.check(b, "before a free on a short-lived thread")
        got: List[Any] = []
        tid: List[int] = []

        def body() -> None:
            tid.append(threading.get_native_id())
            ps = [lib.ga_malloc(n) for n in sizes]
            for b in theirs:
                ga.free(b.ptr)
            for p, n in zip(ps, sizes):
                if n % 3 == 0:
                    ga.free(p)
                else:
                    got.append((p, n))

        t = threading.Thread(target=body)
        t.start()
        t.join(60)
        assert not t.is_alive(), "short-lived thread hung"
        wait_thread_gone(tid[0])
        for p, n in got:
            self.track(p, n, f"malloc({n}) on an exited thread")

    def op_release_cache(self) -> None:
        lib.ga_test_release_cache()

    def op_impossible(self) -> None:
        n = self.r.pick(_IMPOSSIBLE)
        ga.set_errno(0)
        self.expect_failure(lib.ga_malloc(n), errno_mod.ENOMEM, f"malloc({n:#x})")

    def op_usable(self) -> None:
        if self.live:
            b = self.live[self.r.byte() % len(self.live)]
            assert ga.usable_size(b.ptr) >= b.size
            self.check(b, "usable size")

    def op_check_heap(self) -> None:
        ga.check_heap()

    OPS: List[Callable[["Sequence"], None]] = [
        op_malloc, op_malloc, op_malloc, op_calloc, op_realloc, op_realloc, op_reallocarray,
        op_posix_memalign, op_aligned_alloc, op_memalign, op_valloc,
        op_free, op_free, op_free, op_remote_free, op_remote_malloc, op_thread,
        op_release_cache, op_impossible, op_usable, op_check_heap,
    ]

    def run(self) -> int:
        """Runs the operations; returns how many ran."""
        done = 0
        while done < MAX_OPS and not self.r.exhausted():
            self.OPS[self.r.byte() % len(self.OPS)](self)
            done += 1
        return done

    def finish(self) -> None:
        while self.live:
            self.free_block(self.live.pop(), "at the end")
        ga.check_heap()


def option_keys(text: str) -> List[str]:
    return [item.partition("=")[0] for item in text.split(",") if item]


def set_options(text: str) -> None:
    """Sets GOALLOC-style options (key=val,...) on the private heap; a key
    it does not know, or a bad value, raises ValueError (the C parser only
    warns on stderr)."""
    for key in option_keys(text):
        if lib.ga_test_option(key.encode()) < 0:
            raise ValueError(f"unknown GOALLOC option {key!r}")
    lib.ga_test_parse_options(text.encode())
    for item in text.split(","):
        key, _, value = item.partition("=")
        if item and value.isdigit() and lib.ga_test_option(key.encode()) != int(value):
            raise ValueError(f"GOALLOC option {item!r} refused")


def run_sequence(data: bytes) -> int:
    """Decodes and runs one sequence; the heap must be sound afterwards.
    Returns the number of operations run."""
    r = Reader(data)
    tiny = r.byte() % 4 != 0  # tiny allocator on in 3 sequences out of 4
    if not tiny:
        lib.ga_test_set_tiny(0)
    seq = Sequence(r)
    try:
        done = seq.run()
        seq.finish()
    finally:
        if not tiny:
            lib.ga_test_set_tiny(1)
    return done
