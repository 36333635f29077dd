"""The aligned-allocation calls at their edges, through the FFI and under
LD_PRELOAD (tests/test_api.py has the rest of the API's conformance):

- posix_memalign with alignment 3 (and the other alignments below 8 that
  are not a multiple of sizeof(void *)) -> EINVAL, *memptr untouched,
  errno unchanged;
- memalign at every power of two up to 4 MiB (test_api.py checks 4096,
  1 MiB and 64 MiB; posix_memalign and aligned_alloc go through every
  power of two there).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

MiB = 1 << 20
BAD_SMALL_ALIGNMENTS = [3, 5, 6, 7]
POWERS_UP_TO_4MIB = [1 << k for k in range(0, 23)]


def addr(p: object) -> int:
    return int(ffi.cast("uintptr_t", p))


@pytest.mark.parametrize("align", BAD_SMALL_ALIGNMENTS)
def test_posix_memalign_einval_small_alignments(align: int) -> None:
    out = ffi.new("void **", ffi.cast("void *", 0x1234))
    ga.set_errno(777)
    rc = lib.ga_posix_memalign(out, align, 100)
    assert rc == errno.EINVAL
    assert addr(out[0]) == 0x1234, "*memptr changed on failure"
    assert ga.errno() == 777, "posix_memalign set errno"


@pytest.mark.parametrize("n", [0, 1, 100, 5000, 40000, 1 * MiB + 3])
def test_memalign_every_power_of_two_up_to_4mib(n: int) -> None:
    for align in POWERS_UP_TO_4MIB:
        p = ga.memalign(align, n)
        assert p is not None, f"memalign({align}, {n}) failed, errno {ga.errno()}"
        assert addr(p) % max(16, align) == 0, f"memalign({align}, {n}) = {addr(p):#x}"
        assert ga.usable_size(p) >= n
        ffi.memmove(p, b"\xa5" * n, n)
        ga.free(p)


PRELOAD_SCRIPT = textwrap.dedent(r"""
    import ctypes, errno
    libc = ctypes.CDLL(None, use_errno=True)
    libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
    libc.memalign.restype = ctypes.c_void_p
    libc.memalign.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    libc.malloc_usable_size.restype = ctypes.c_size_t
    libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    bad = 0
    for align in (3, 5, 6, 7):
        out = ctypes.c_void_p(0x1234)
        ctypes.set_errno(777)
        rc = libc.posix_memalign(ctypes.byref(out), align, 100)
        if rc != errno.EINVAL or out.value != 0x1234 or ctypes.get_errno() != 777:
            print("FAIL posix_memalign", align, rc, out.value, ctypes.get_errno()); bad += 1
    for n in (0, 100, 40000, 1 << 20):
        for k in range(23):
            align = 1 << k
            p = libc.memalign(align, n)
            if not p or p % max(16, align) or libc.malloc_usable_size(p) < n:
                print("FAIL memalign", align, n, p); bad += 1
            ctypes.memset(p, 0x5A, n)
            libc.free(p)
    print("checks done, failed:", bad)
""")


@pytest.mark.preload
def test_under_preload() -> None:
    path = os.environ.get("GOALLOC_TEST_LIB") or ga.lib_path()
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    env["LD_PRELOAD"] = os.path.abspath(path)
    proc = subprocess.run([sys.executable, "-c", PRELOAD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1:] == ["checks done, failed: 0"], proc.stdout
