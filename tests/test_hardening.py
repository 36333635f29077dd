"""GOALLOC=on_error=report and the hardening options (clobberfree, fillnew,
uafcheck). Each case runs in a child Python process, since options are read
at start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import goalloc_ffi as ga
from goalloc_ffi import ffi, lib
def buf(p, n): return bytes(ffi.buffer(p, n))
"""


def run(code: str, goalloc: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GOALLOC"}
    env["GOALLOC"] = goalloc
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env=env)


def test_report_mode_counts_and_goes_on() -> None:
    r = run("""
        p = ga.malloc(48); ga.free(p); ga.free(p)          # owner double free
        q = ga.malloc(100000); ga.free(q); ga.free(q)      # large double free
        t = ga.malloc(5); ga.free(t); ga.free(t)           # tiny double free
        ga.free(ffi.cast('char *', ga.malloc(64)) + 8)     # interior pointer
        print(lib.ga_malloc_usable_size(ffi.cast('char *', ga.malloc(64)) + 1))
        ga.check_heap()
        print('alive', ga.usable_size(ga.malloc(10)) >= 10)
    """, "on_error=report")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "alive", "True"]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 5 and all("():" in ln for ln in lines), r.stderr


def test_report_mode_realloc_of_a_bad_pointer_returns_null() -> None:
    r = run("""
        import errno
        p = ga.malloc(100000); ga.free(p)
        ga.set_errno(0)
        print(ga.realloc(p, 10) is None, ga.errno() == errno.EINVAL)
    """, "on_error=report")
    assert r.returncode == 0 and r.stdout.split() == ["True", "True"], r.stderr


@pytest.mark.parametrize("size", [5, 48, 3000, 100000])
def test_clobberfree_fills_freed_objects(size: int) -> None:
    r = run(f"""
        lib.ga_test_release_cache()
        keep = ga.malloc({size})  # keeps a tiny block alive next to p
        p = ga.malloc({size})
        ffi.memmove(p, b'x' * {size}, {size})
        ga.free(p)
        print(buf(p, {min(size, 5)}) == b'\\xdf' * {min(size, 5)})
    """, "clobberfree=1")
    assert r.returncode == 0 and r.stdout.split() == ["True"], r.stderr


@pytest.mark.parametrize("size", [3, 64, 5000, 70000])
def test_fillnew_fills_new_objects_but_calloc_still_zeroes(size: int) -> None:
    r = run(f"""
        p = ga.malloc({size}); q = ga.calloc(1, {size})
        print(buf(p, {size}) == b'\\xd0' * {size}, buf(q, {size}) == bytes({size}))
    """, "fillnew=1")
    assert r.returncode == 0 and r.stdout.split() == ["True", "True"], r.stderr


def test_uafcheck_catches_a_write_after_free() -> None:
    r = run("""
        lib.ga_test_release_cache()
        ps = [ga.malloc(256) for _ in range(32)]   # one span of the 256-byte class
        for p in ps: ga.free(p)
        ffi.cast('char *', ps[7])[10] = b'!'       # use after free
        for _ in range(64): ga.malloc(256)          # reuses the slots: the write is seen
    """, "uafcheck=1")
    assert r.returncode == -signal.SIGABRT
    assert "malloc(): use after free: a freed object was written at" in r.stderr
    assert "(size class" in r.stderr


def test_uafcheck_is_quiet_on_a_correct_program() -> None:
    r = run("""
        import random
        rng = random.Random(5); live = []
        for i in range(20000):
            if live and rng.random() < 0.5:
                ga.free(live.pop(rng.randrange(len(live))))
            else:
                n = rng.choice([8, 24, 100, 700, 3000, 40000])
                p = ga.malloc(n); ffi.memmove(p, b'z' * n, n); live.append(p)
        for p in live: ga.free(p)
        ga.check_heap(); print('ok')
    """, "uafcheck=1,fillnew=1")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# --------------------------------------------------------------------------
# mallopt(M_PERTURB): glibc's fill-on-malloc/free, mapped onto fillnew and
# clobberfree with glibc's bytes (new objects ~value, freed ones value)

M_PERTURB = -6


@pytest.mark.parametrize("size", [5, 48, 3000, 100000])
def test_mallopt_perturb_fills_as_glibc_and_zero_turns_it_off(size: int) -> None:
    r = run(f"""
        n = {size}; k = min(n, 5)
        lib.ga_test_release_cache()
        print(lib.ga_mallopt({M_PERTURB}, 0xA5))
        keep = ga.malloc(n)  # keeps a tiny block alive next to p
        p = ga.malloc(n)
        print(buf(p, n) == b'\\x5a' * n)                    # ~0xA5 when allocated
        q = ga.calloc(1, n); print(buf(q, n) == bytes(n))   # calloc still zeroes
        ffi.memmove(p, b'x' * n, n); ga.free(p)
        print(buf(p, k) == b'\\xa5' * k)                    # 0xA5 when freed
        print(lib.ga_mallopt({M_PERTURB}, 0))
        lo, span, hard = ffi.new('size_t *'), ffi.new('size_t *'), ffi.new('int *')
        lib.ga_test_fast_paths(lo, span, hard); print(hard[0])  # the fast paths open again
        p = ga.malloc(n); ffi.memmove(p, b'y' * n, n); ga.free(p)
        print(buf(p, k) != b'\\xa5' * k)                    # no longer clobbered
        ga.check_heap()
    """, "")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "True", "True", "True", "1", "0", "True"], r.stdout + r.stderr


def test_mallopt_perturb_zero_keeps_the_goalloc_options() -> None:
    r = run(f"""
        lib.ga_mallopt({M_PERTURB}, 7); lib.ga_mallopt({M_PERTURB}, 0)
        print(lib.ga_test_option(b'fillnew'), lib.ga_test_option(b'clobberfree'))
        p = ga.malloc(64); print(buf(p, 64) == b'\\xd0' * 64)  # goalloc's byte again
    """, "fillnew=1")
    assert r.returncode == 0 and r.stdout.split() == ["1", "0", "True"], r.stderr


def test_mallopt_perturb_with_uafcheck_keeps_the_checked_byte() -> None:
    r = run(f"""
        lib.ga_test_release_cache()
        lib.ga_mallopt({M_PERTURB}, 0x11)
        ps = [ga.malloc(256) for _ in range(32)]
        for p in ps: ga.free(p)
        print(buf(ps[3], 4) == b'\\xdf' * 4)    # uafcheck's byte, not 0x11
        for _ in range(64): ga.malloc(256)      # reuse: no false use-after-free report
        ga.check_heap(); print('ok')
    """, "uafcheck=1")
    assert r.returncode == 0 and r.stdout.split() == ["True", "ok"], r.stderr


def test_mallopt_perturb_switched_while_threads_allocate() -> None:
    """ga_test_threads' workers pattern-check every object while the main
    thread turns M_PERTURB on and off: no object is corrupted, the heap
    stays sound, and the last setting holds afterwards."""
    r = run(f"""
        import threading
        out = []
        t = threading.Thread(target=lambda: out.append(lib.ga_test_threads(4, 40000, 3)))
        t.start()
        i = 0
        while t.is_alive():
            lib.ga_mallopt({M_PERTURB}, 0x3C if i % 2 == 0 else 0); i += 1
        t.join()
        lib.ga_mallopt({M_PERTURB}, 0x3C)
        p = ga.malloc(100)
        print(out[0], i > 10, buf(p, 100) == b'\\xc3' * 100)
        ga.free(p); ga.check_heap()
    """, "")
    assert r.returncode == 0 and r.stdout.split() == ["0", "True", "True"], r.stdout + r.stderr
