"""atheris (libFuzzer for Python) over goalloc_ffi's private heap.

    .venv/bin/python tests/fuzz/fuzz_heap.py [libFuzzer flags] [corpus dir]

`make fuzz` runs it for a few minutes (see the Makefile).  Each input is one
operation sequence of tests/fuzz/heap_ops.py: allocator calls with pattern,
alignment, usable-size and errno checks, remote frees and short-lived
threads, then every block freed and check_heap().  A failed check raises,
and goalloc's misuse reports abort the process: libFuzzer then writes the
input to crash-<sha1> (in the working directory, or -artifact_prefix=) and
exits non-zero.  Replay one input with

    .venv/bin/python tests/fuzz/fuzz_heap.py crash-<sha1>

FUZZ_GOALLOC=key=val,... in the environment sets GOALLOC options of the
private heap before the first input (as GOALLOC does for the preload
library; run-time options only, e.g. mcache_keep=4096,refill=8; `make
fuzz FUZZ_GOALLOC=...`).

The coverage that guides atheris is that of the Python interpreter of the
sequences (which operations, branches and size kinds ran); the C code is
not instrumented (it is built with gcc), so this is a random operation
fuzzer with Python-level feedback.  Every 30 s it prints the number of
sequences and operations so far; libFuzzer's own last line ("Done N runs in
S second(s)") gives the total.
"""

from __future__ import annotations

import os
import sys
import time

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports():
    import heap_ops

REPORT_EVERY = 30.0
_stats = {"sequences": 0, "ops": 0}
_start = _last = time.monotonic()


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    global _last
    _stats["ops"] += heap_ops.run_sequence(data)
    _stats["sequences"] += 1
    now = time.monotonic()
    if now - _last >= REPORT_EVERY:
        _last = now
        print(f"fuzz_heap: {now - _start:.0f} s: {_stats['sequences']} sequences, "
              f"{_stats['ops']} operations, check_heap after each: ok", flush=True)


def main() -> None:
    options = os.environ.get("FUZZ_GOALLOC", "")
    if options:
        heap_ops.set_options(options)
        print(f"fuzz_heap: FUZZ_GOALLOC={options}: " + ", ".join(
            f"{k}={heap_ops.lib.ga_test_option(k.encode())}" for k in heap_ops.option_keys(options)),
            flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
