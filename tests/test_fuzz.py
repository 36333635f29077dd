"""The operation-sequence fuzzer's interpreter (tests/fuzz/heap_ops.py) on
seeded random inputs, so that make test runs it and it cannot rot; `make
fuzz` runs it for minutes under atheris (tests/fuzz/fuzz_heap.py).

Each input is one sequence of up to 64 operations (malloc, calloc, realloc,
reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
free, remote frees and allocations on a second thread, short-lived
threads, cache releases, impossible sizes) with pattern, alignment,
usable-size and errno checks, then every block freed and check_heap().
Inputs that once failed can be kept in tests/fuzz/corpus/ (any file name):
they are replayed here first.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Iterator

import pytest

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ_DIR))

import heap_ops  # noqa: E402

SEEDS = range(8)
SEQUENCES_PER_SEED = 60


@pytest.fixture(autouse=True)
def _quiesced() -> Iterator[None]:
    """No helper thread and no cached span outlives a test."""
    yield
    heap_ops.quiesce()


def test_fuzz_corpus_inputs() -> None:
    """Replays tests/fuzz/corpus/* (none at the moment is fine)."""
    d = FUZZ_DIR / "corpus"
    for path in sorted(d.iterdir()) if d.is_dir() else []:
        if path.is_file():
            try:
                heap_ops.run_sequence(path.read_bytes())
            except AssertionError as exc:
                raise AssertionError(f"{path.name}: {exc}") from exc


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_random_sequences(seed: int) -> None:
    rng = random.Random(seed)
    ops = 0
    for _ in range(SEQUENCES_PER_SEED):
        data = rng.randbytes(rng.randrange(1, 2 + 8 * heap_ops.MAX_OPS))
        ops += heap_ops.run_sequence(data)
    assert ops > SEQUENCES_PER_SEED * 10


def test_fuzz_every_operation_runs() -> None:
    """Input bytes reach every operation: byte 0 picks tiny on/off, then
    each operation starts with its index."""
    for index in range(len(heap_ops.Sequence.OPS)):
        data = bytes([1]) + bytes([index, 5, 9, 200, 7, 3, 1, 2, 4] * 3)
        heap_ops.run_sequence(data + bytes([11, 0]))  # and a free


#: GOALLOC option sets the fuzzer also runs under (FUZZ_GOALLOC): no kept
#: spans (Go), one page of them, many, and a refill stash.
OPTION_SETS = ["mcache_keep=0", "mcache_keep=1", "mcache_keep=4096", "mcache_keep=8,refill=8"]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_fuzz_random_sequences_under_options(options: str) -> None:
    from conftest import goalloc_options

    rng = random.Random(options)
    ops = 0
    with goalloc_options(options):
        for key, _, value in (item.partition("=") for item in options.split(",")):
            assert heap_ops.lib.ga_test_option(key.encode()) == int(value)
        for _ in range(SEQUENCES_PER_SEED):
            data = rng.randbytes(rng.randrange(1, 2 + 8 * heap_ops.MAX_OPS))
            ops += heap_ops.run_sequence(data)
        heap_ops.quiesce()
    assert ops > SEQUENCES_PER_SEED * 10


def test_fuzz_options_are_checked() -> None:
    """FUZZ_GOALLOC with a key goalloc does not know, or a value it refuses,
    stops the fuzzer instead of fuzzing the defaults."""
    with pytest.raises(ValueError, match="unknown"):
        heap_ops.set_options("mcache_kept=5")
    with pytest.raises(ValueError, match="refused"):
        heap_ops.set_options("refill=99")
