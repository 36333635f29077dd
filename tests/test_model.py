"""Random sequences of malloc/calloc/realloc/memalign/free (hypothesis
stateful testing): every block is filled with its own byte and checked
before it is freed or moved; the heap's invariants hold after each
sequence."""

from __future__ import annotations

from typing import Any, Dict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, rule

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

MiB = 1 << 20
# Weighted to small: each branch is picked about equally often.
sizes = st.one_of(
    st.integers(0, 15),
    st.integers(16, 256),
    st.integers(0, 1024),
    st.integers(1025, 32768),
    st.integers(32769, 2 * MiB),
)
alignments = st.sampled_from([8, 16, 32, 64, 256, 4096, 8192, 65536, 1 << 20])


class HeapModel(RuleBasedStateMachine):
    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.live: Dict[int, tuple[Any, int, int]] = {}  # id -> (ptr, size, byte)
        self.next_id = 0

    def _track(self, p: Any, n: int, zeroed: bool = False) -> int:
        assert p is not None
        assert ga.usable_size(p) >= n
        if zeroed:
            assert ffi.buffer(p, n)[:] == bytes(n)
        byte = self.next_id % 251 + 1
        ffi.buffer(p, n)[:] = bytes([byte]) * n
        self.next_id += 1
        self.live[self.next_id] = (p, n, byte)
        return self.next_id

    def _check(self, key: int) -> tuple[Any, int, int]:
        p, n, byte = self.live.pop(key)
        assert ffi.buffer(p, n)[:] == bytes([byte]) * n, f"block {key} of {n} B corrupted"
        return p, n, byte

    @rule(target=blocks, n=sizes)
    def malloc(self, n: int) -> int:
        return self._track(ga.malloc(n), n)

    @rule(target=blocks, count=st.integers(0, 64), size=st.integers(0, 4096))
    def calloc(self, count: int, size: int) -> int:
        return self._track(ga.calloc(count, size), count * size, zeroed=True)

    @rule(target=blocks, align=alignments, n=sizes)
    def memalign(self, align: int, n: int) -> int:
        p = ga.memalign(align, n)
        assert int(ffi.cast("uintptr_t", p)) % align == 0
        return self._track(p, n)

    @rule(target=blocks, key=consumes(blocks), n=sizes)
    def realloc(self, key: int, n: int) -> int:
        p, old, byte = self._check(key)
        q = ga.realloc(p, n)
        if n == 0:
            assert q is None  # glibc semantics: freed
            return self._track(ga.malloc(0), 0)
        keep = min(old, n)
        assert ffi.buffer(q, keep)[:] == bytes([byte]) * keep
        return self._track(q, n)

    @rule(key=consumes(blocks))
    def free(self, key: int) -> None:
        p, _, _ = self._check(key)
        ga.free(p)

    def teardown(self) -> None:
        for key in list(self.live):
            ga.free(self._check(key)[0])
        ga.check_heap()


def model_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


HeapModel.TestCase.settings = model_settings(150, 60)
TestHeapModel = HeapModel.TestCase


class TinyOffModel(HeapModel):
    """The same with the tiny allocator off."""

    def __init__(self) -> None:
        super().__init__()
        lib.ga_test_set_tiny(0)

    def teardown(self) -> None:
        super().teardown()
        lib.ga_test_set_tiny(1)


TinyOffModel.TestCase.settings = model_settings(40, 40)
TestTinyOffModel = TinyOffModel.TestCase
