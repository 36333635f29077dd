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
from test_misuse import MISUSE
from test_misuse import PRELUDE as MISUSE_PRELUDE

PRELUDE = """
import goalloc_ffi as ga
from goalloc_ffi import ffi, lib
def buf(p, n): return bytes(ffi.buffer(p, n))
"""


def run(code: str, goalloc: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GOALLOC"}
    # misuse aborts, as under the preload (goalloc_ffi would raise HeapMisuse)
    env["GOALLOC"] = goalloc if "on_error=" in goalloc else ",".join(filter(None, [goalloc, "on_error=abort"]))
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


# --------------------------------------------------------------------------
# GOALLOC=harden=1: canaries after every object, freed large objects and
# malloc(0) inaccessible, clobberfree, uafcheck=1

HARDEN = "harden=1"


def test_harden_sets_the_options_it_stands_for_and_later_items_win() -> None:
    code = """
        print(*(lib.ga_test_option(k) for k in (b'canary', b'protect', b'clobberfree', b'uafcheck', b'tiny')))
    """
    r = run(code, HARDEN)
    assert r.returncode == 0 and r.stdout.split() == ["1", "1", "1", "1", "0"], r.stderr
    r = run(code, "harden=1,uafcheck=100,protect=0,tiny=1")
    assert r.returncode == 0 and r.stdout.split() == ["1", "0", "1", "100", "1"], r.stderr
    r = run(code, "canary=1,harden=0")
    assert r.returncode == 0 and r.stdout.split() == ["0", "0", "0", "0", "0"], r.stderr


#: Sizes whose canary slack is 0 (24 -> 32 B, 32760 -> 32 KiB), small, one
#: byte into a large object's last page, and large.
OVERFLOW_SIZES = [1, 8, 24, 100, 1000, 32760, 32761, 40000, 100000]


@pytest.mark.parametrize("size", OVERFLOW_SIZES)
def test_canary_catches_a_one_byte_overflow_at_free(size: int) -> None:
    r = run(f"""
        p = ga.malloc({size})
        ffi.memmove(p, b'a' * {size}, {size})   # the object itself: fine
        ffi.cast('char *', p)[{size}] = b'\\0'   # the classic off-by-one NUL
        ga.free(p)
        print('not caught')
    """, HARDEN)
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1, r.stderr
    assert f"free(): heap overflow: written past the end of the {size}-byte object at 0x" in lines[0]


@pytest.mark.parametrize(("size", "named"), [(24, ""), (100, ""), (100000, "100000-byte ")])
def test_canary_catches_an_overflow_at_realloc_and_a_far_one(size: int, named: str) -> None:
    """16 bytes past a 24- or 100-byte object reach the tail word, and the
    size is lost with it; a large object's slack holds them."""
    r = run(f"""
        p = ga.malloc({size})
        ffi.memmove(ffi.cast('char *', p) + {size}, b'xyzw' * 4, 16)  # 16 bytes past the end
        ga.realloc(p, {size} * 2)
    """, HARDEN)
    assert r.returncode == -signal.SIGABRT, r.stderr
    assert f"realloc(): heap overflow: written past the end of the {named}object at 0x" in r.stderr


def test_canary_overflow_in_report_mode_keeps_the_object_and_goes_on() -> None:
    r = run("""
        p = ga.malloc(40); ffi.cast('char *', p)[40] = b'!'
        ga.free(p)                                   # reported, not freed
        print(lib.ga_malloc_usable_size(p))          # still live, canary still broken
        ga.check_heap(); print('alive')
    """, HARDEN + ",on_error=report")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "alive"], r.stdout + r.stderr
    assert r.stderr.count("heap overflow") == 2, r.stderr


def test_hardened_sizes_are_the_requested_ones() -> None:
    """malloc_usable_size says n (the canary follows), realloc in place and
    out of place keep the contents, calloc zeroes, aligned allocations keep
    their alignment, sized frees want the exact size class of n."""
    r = run("""
        out = []
        for n in (1, 7, 24, 48, 1000, 32760, 40000, 100000):
            p = ga.malloc(n); out.append(lib.ga_malloc_usable_size(p) == n)
            ffi.memmove(p, bytes(range(256)) * (n // 256) + bytes(range(n % 256)), n)
            q = ga.realloc(p, n + 5)          # in place or moved: the canary moves along
            out.append(buf(q, n) == bytes(range(256)) * (n // 256) + bytes(range(n % 256)))
            ffi.memmove(ffi.cast('char *', q) + n, b'12345', 5)
            q = ga.realloc(q, n)              # shrink: the old bytes past n are the canary now
            out.append(lib.ga_malloc_usable_size(q) == n)
            ga.free(q)
            c = ga.calloc(1, n); out.append(buf(c, n) == bytes(n)); ga.free(c)
        for align in (32, 64, 4096, 65536):
            a = lib.ga_aligned_alloc(align, 100)
            out.append(int(ffi.cast('uintptr_t', a)) % align == 0 and lib.ga_malloc_usable_size(a) == 100)
            ffi.memmove(a, b'q' * 100, 100)
            lib.ga_free_aligned_sized(a, align, 100)
        s = ga.malloc(48); lib.ga_free_sized(s, 48)
        print(all(out), len(out))
        ga.check_heap()
    """, HARDEN)
    assert r.returncode == 0 and r.stdout.split() == ["True", "36"], r.stdout + r.stderr


def test_hardened_double_free_is_still_reported_as_one() -> None:
    r = run("p = ga.malloc(48); ga.free(p); ga.free(p)", HARDEN)
    assert r.returncode == -signal.SIGABRT
    assert "free(): double free" in r.stderr and "heap overflow" not in r.stderr, r.stderr


def test_hardened_correct_program_is_quiet() -> None:
    r = run("""
        import random
        rng = random.Random(11); live = []
        for i in range(20000):
            if live and rng.random() < 0.5:
                p, n = live.pop(rng.randrange(len(live)))
                if rng.random() < 0.2:
                    q = ga.realloc(p, rng.choice([0, 3, 50, 5000, 70000]))
                    if q is not None: live.append((q, lib.ga_malloc_usable_size(q)))
                else:
                    ga.free(p)
            else:
                n = rng.choice([0, 1, 9, 24, 100, 700, 3000, 32760, 40000])
                p = ga.malloc(n); u = lib.ga_malloc_usable_size(p)
                ffi.memmove(p, b'z' * u, u)          # every usable byte, no more
                live.append((p, u))
        for p, n in live: ga.free(p)
        ga.check_heap(); print('ok')
    """, HARDEN)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


SEGV = -signal.SIGSEGV


def test_protect_makes_a_freed_large_object_inaccessible_until_reused() -> None:
    write_after_free = run("""
        p = ga.malloc(100000); ga.free(p)
        print('freed', flush=True)
        ffi.cast('char *', p)[5000] = b'x'
        print('not caught', flush=True)
    """, HARDEN)
    assert write_after_free.returncode == SEGV, write_after_free.stdout + write_after_free.stderr
    assert write_after_free.stdout.split() == ["freed"]
    reuse = run("""
        p = ga.malloc(100000); ga.free(p)
        q = ga.malloc(100000)                 # the same pages, accessible again
        ffi.memmove(q, b'y' * 100000, 100000); print(q == p, buf(q, 3))
        r = ga.realloc(q, 50000)              # shrunk in place: the tail pages go back
        print(r == q, flush=True)
        ffi.cast('char *', r)[90000] = b'x'
    """, HARDEN)
    assert reuse.returncode == SEGV, reuse.stdout + reuse.stderr
    assert reuse.stdout.split() == ["True", "b'yyy'", "True"]


def test_protect_makes_malloc_0_a_no_access_object() -> None:
    ok = run("""
        ps = [ga.malloc(0) for _ in range(1000)] + [ga.calloc(0, 8), lib.ga_aligned_alloc(16, 0)]
        print(len({int(ffi.cast('uintptr_t', p)) for p in ps}), all(int(ffi.cast('uintptr_t', p)) % 16 == 0 for p in ps))
        print(lib.ga_malloc_usable_size(ps[0]))
        q = ga.realloc(ps[1], 10); ffi.memmove(q, b'0123456789', 10); print(buf(q, 10))
        for p in ps[2:]: ga.free(p)
        lib.ga_free_sized(ps[0], 0)
        ga.free(q); ga.check_heap()
    """, HARDEN)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["1002", "True", "0", "b'0123456789'"]
    for access in ("x = ffi.cast('char *', p)[0]", "ffi.cast('char *', p)[0] = b'x'"):
        r = run(f"p = ga.malloc(0); print('got', flush=True); {access}; print('not caught')", HARDEN)
        assert r.returncode == SEGV and r.stdout.split() == ["got"], r.stdout + r.stderr
    sized = run("p = ga.malloc(0); lib.ga_free_sized(p, 8)", HARDEN)
    assert sized.returncode == -signal.SIGABRT
    assert "free_sized(): size 8 does not match the object 0x" in sized.stderr
    assert "(a zero-size object, no access)" in sized.stderr


def test_harden_keeps_the_fast_paths_closed_and_default_open() -> None:
    code = """
        lo, span, hard = ffi.new('size_t *'), ffi.new('size_t *'), ffi.new('int *')
        lib.ga_test_fast_paths(lo, span, hard); print(hard[0])
    """
    assert run(code, HARDEN).stdout.split() == ["1"]
    assert run(code, "").stdout.split() == ["0"]


@pytest.mark.parametrize("case", sorted(k for k in MISUSE if "tiny" not in k))
def test_hardened_mode_reports_every_default_misuse_the_same_way(case: str) -> None:
    code, what, _ = MISUSE[case]
    r = subprocess.run([sys.executable, "-c", MISUSE_PRELUDE + textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=60,
                       env={**{k: v for k, v in os.environ.items() if k != "GOALLOC"}, "GOALLOC": HARDEN + ",on_error=abort"})
    assert r.returncode == -signal.SIGABRT, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1 and what in lines[0], r.stderr
