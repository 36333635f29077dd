"""Heap misuse gets one clear line on stderr and an abort; bad options get
a message naming them. Each case runs in a child Python process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import Dict, Optional

import pytest

PRELUDE = """
import threading
import goalloc_ffi as ga
from goalloc_ffi import ffi, lib
def other_thread(fn):
    t = threading.Thread(target=fn); t.start(); t.join()
"""


def run(code: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """code in a child Python; GOALLOC=on_error=abort unless env says
    otherwise (goalloc_ffi would raise HeapMisuse instead)."""
    full_env = {k: v for k, v in os.environ.items() if k != "GOALLOC"}
    full_env["GOALLOC"] = "on_error=abort,tiny=1"  # the tiny cases need the tiny allocator
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


MISUSE = {
    "owner double free": ("p = ga.malloc(48); ga.free(p); ga.free(p)", "free(): double free", "size class"),
    "remote double free": (
        "p = ga.malloc(48); other_thread(lambda: ga.free(p)); other_thread(lambda: ga.free(p))",
        "free(): double free of",
        "48 B",
    ),
    "remote then owner free": (
        "p = ga.malloc(48); other_thread(lambda: ga.free(p)); ga.free(p)",
        "free(): double free",
        "48 B",
    ),
    "tiny double free": ("p = ga.malloc(5); ga.free(p); ga.free(p)", "free(): double free", "tiny"),
    "large double free": ("p = ga.malloc(100000); ga.free(p); ga.free(p)", "free(): ", "0x"),
    "interior pointer": ("p = ga.malloc(64); ga.free(ffi.cast('char *', p) + 8)", "middle of an object", "64 B"),
    "interior of large": ("p = ga.malloc(1 << 20); ga.free(ffi.cast('char *', p) + 8192)", "middle of a large object", "large"),
    "foreign pointer": ("buf = ffi.new('char[64]'); ga.free(buf)", "never handed it out", "outside every goalloc arena"),
    "free page run": (
        "p = ga.malloc(1 << 20); q = ffi.cast('char *', p) + (1 << 19); ga.free(p); ga.free(q)",
        "free(): invalid pointer",
        "free page run",
    ),
    "realloc of freed": ("p = ga.malloc(100000); ga.free(p); ga.realloc(p, 10)", "realloc(): ", "0x"),
    "usable size of interior": ("p = ga.malloc(64); lib.ga_malloc_usable_size(ffi.cast('char *', p) + 1)", "malloc_usable_size(): pointer into the middle", "64 B"),
    # malloc_usable_size of a freed object is misuse, as free's
    "usable size of freed small": (
        "p = ga.malloc(48); ga.free(p); lib.ga_malloc_usable_size(p)",
        "malloc_usable_size(): pointer to a freed or never allocated object",
        "(size class 4, 48 B)",
    ),
    "usable size of remotely freed": (  # its bit is only in remote_free
        "p = ga.malloc(48); other_thread(lambda: ga.free(p)); lib.ga_malloc_usable_size(p)",
        "malloc_usable_size(): pointer to a freed or never allocated object",
        "48 B",
    ),
    "usable size of freed tiny": (
        "k = ga.malloc(5); p = ga.malloc(5); ga.free(p); lib.ga_malloc_usable_size(p)",
        "malloc_usable_size(): pointer to a freed or never allocated tiny object",
        "(tiny block)",
    ),
    "usable size of freed large": (
        "p = ga.malloc(100000); ga.free(p); lib.ga_malloc_usable_size(p)",
        "malloc_usable_size(): pointer to a freed or never allocated object",
        "(in a free page run)",
    ),
    "realloc of freed small in its class": (
        "p = ga.malloc(48); ga.free(p); ga.realloc(p, 40)",
        "realloc(): pointer to a freed or never allocated object",
        "48 B",
    ),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_aborts_with_one_line(case: str) -> None:
    code, what, detail = MISUSE[case]
    r = run(code)
    assert r.returncode == -signal.SIGABRT, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1, r.stderr
    assert what in lines[0] and detail in lines[0], lines[0]


ADDR = r"0x[0-9a-f]+"
ARENA = 64 << 20
#: Misuse whose whole line is known: the code, then the line as a regex.
EXACT = {
    "large double free": (
        "p = ga.malloc(100000); ga.free(p); ga.free(p)",
        rf"goalloc: free\(\): invalid pointer or double free of {ADDR} \(in a free page run\)",
    ),
    "inside an arena, in no span": (
        # 40 MiB into the arena holding p: an inner page of the arena's free
        # run, which no span of this small heap has reached
        f"p = ga.malloc(100); a = (int(ffi.cast('uintptr_t', p)) & -{ARENA}) + (40 << 20);"
        "ga.free(ffi.cast('void *', a))",
        rf"goalloc: free\(\): invalid pointer \(goalloc never handed it out\) {ADDR} "
        r"\(inside a goalloc arena, in no span\)",
    ),
    "outside every arena": (
        "buf = ffi.new('char[64]'); ga.free(buf)",
        rf"goalloc: free\(\): invalid pointer \(goalloc never handed it out\) {ADDR} "
        r"\(outside every goalloc arena\)",
    ),
    # y's inner pages keep their page-map entry, y's span struct, which
    # z (5 pages at y's start) then reuses: the page is in a free run.
    "free_sized of a small object": (
        "p = ga.malloc(48); lib.ga_free_sized(p, 100)",
        rf"goalloc: free_sized\(\): size 100 does not match the object {ADDR} \(size class 4, 48 B\)",
    ),
    "free_sized of a tiny object": (
        "p = ga.malloc(5); lib.ga_free_sized(p, 16)",
        rf"goalloc: free_sized\(\): size 16 does not match the object {ADDR} \(tiny block\)",
    ),
    "free_sized of a small object with a tiny size": (
        "p = ga.malloc(20); lib.ga_free_sized(p, 5)",
        rf"goalloc: free_sized\(\): size 5 does not match the object {ADDR} \(size class 3, 32 B\)",
    ),
    "free_sized of a large object": (  # 13 pages, not 12
        "p = ga.malloc(100000); lib.ga_free_sized(p, 12 * 8192)",
        rf"goalloc: free_sized\(\): size 98304 does not match the object {ADDR} "
        rf"\(large object at {ADDR}, 106496 B\)",
    ),
    "free_aligned_sized with another alignment": (  # aligned_alloc(4096, 100) is a 4096 B slot
        "p = lib.ga_aligned_alloc(4096, 100); lib.ga_free_aligned_sized(p, 16, 100)",
        rf"goalloc: free_aligned_sized\(\): size 100 with alignment 16 does not match the "
        rf"object {ADDR} \(size class \d+, 4096 B\)",
    ),
    "free_sized of a freed object": (
        "p = ga.malloc(48); ga.free(p); lib.ga_free_sized(p, 48)",
        rf"goalloc: free_sized\(\): double free or free of unallocated memory {ADDR} "
        r"\(size class 4, 48 B\)",
    ),
    "stale page-map entry": (
        "x = ga.malloc(100000); y = ga.malloc(100000); g = ga.malloc(100000);"
        "ga.free(y); ga.free(x); x2 = ga.malloc(100000); z = ga.malloc(40000);"
        "ga.free(ffi.cast('char *', y) + 7 * 8192)",
        rf"goalloc: free\(\): invalid pointer or double free of {ADDR} \(in a free page run\)",
    ),
}


@pytest.mark.parametrize("case", sorted(EXACT))
def test_misuse_message_is_exact(case: str) -> None:
    import re

    code, line = EXACT[case]
    r = run(code)
    assert r.returncode == -signal.SIGABRT, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1 and re.fullmatch(line, lines[0]), r.stderr


def test_usable_size_of_freed_objects_reports_and_returns_zero() -> None:
    r = run("""
        p = ga.malloc(48); ga.free(p)
        t = ga.malloc(5); ga.free(t)
        q = ga.malloc(100000); ga.free(q)
        r = ga.malloc(48); other_thread(lambda: ga.free(r))
        live = ga.malloc(48)
        print(*(lib.ga_malloc_usable_size(x) for x in (p, t, q, r, live)))
        ga.check_heap()
    """, {"GOALLOC": "on_error=report"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0", "0", "48"]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: malloc_usable_size(): ")]
    assert len(lines) == 4, r.stderr


def test_free_sized_with_a_wrong_size_in_report_mode_keeps_the_object() -> None:
    r = run("""
        p = ga.malloc(48)
        lib.ga_free_sized(p, 100)
        print(lib.ga_malloc_usable_size(p))   # still live
        lib.ga_free_sized(p, 33)              # right: 33..48 is class 4
        ga.check_heap()
    """, {"GOALLOC": "on_error=report"})
    assert r.returncode == 0 and r.stdout.split() == ["48"], r.stderr
    assert r.stderr.count("goalloc: ") == 1 and "free_sized(): size 100" in r.stderr


def test_unknown_option_is_named_once_and_ignored() -> None:
    r = run("print(ga.usable_size(ga.malloc(3)))", {"GOALLOC": "bogus=1,tiny=1"})
    assert r.returncode == 0
    assert r.stderr.count("unknown option 'bogus'") == 1
    assert r.stdout.strip() == "3"  # tiny still on


def test_bad_value_is_named_and_the_default_kept() -> None:
    r = run("print(lib.ga_test_option(b'tiny'))", {"GOALLOC": "tiny=maybe"})
    assert "bad value in 'tiny=maybe'" in r.stderr
    assert r.stdout.strip() == "0"


def test_option_without_value_is_reported() -> None:
    r = run("ga.malloc(1)", {"GOALLOC": "tiny"})
    assert "option without a value 'tiny'" in r.stderr


def test_tiny_is_off_by_default_and_can_be_turned_on() -> None:
    """tiny=0 by default (bench/README.md: the tiny path cost twice the
    16-byte class's and saved memory only below 5 bytes)."""
    code = "p = ga.malloc(3); print(ga.usable_size(p), lib.ga_test_option(b'tiny'))"
    assert run(code, {"GOALLOC": ""}).stdout.split() == ["8", "0"]
    assert run(code, {"GOALLOC": "tiny=1"}).stdout.split() == ["3", "1"]


@pytest.mark.preload
def test_preload_reports_bad_options_once() -> None:
    import goalloc_ffi

    env = dict(os.environ, LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC="nosuch=3")
    r = subprocess.run(["true"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert r.stderr.count("unknown option 'nosuch'") == 1


@pytest.mark.preload
def test_preload_double_free_in_c_program(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import goalloc_ffi

    src = tmp_path / "df.c"
    src.write_text("#include <stdlib.h>\nint main(void){char *volatile p=malloc(200);free(p);free(p);return 0;}\n")
    subprocess.run(["cc", "-O0", "-o", str(tmp_path / "df"), str(src)], check=True)
    env = dict(os.environ, LD_PRELOAD=goalloc_ffi.lib_path())
    r = subprocess.run([str(tmp_path / "df")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == -signal.SIGABRT
    assert "goalloc: free(): double free" in r.stderr and "208 B" in r.stderr


def test_private_heap_misuse_raises_heap_misuse_and_the_heap_goes_on() -> None:
    """Without on_error in $GOALLOC, goalloc_ffi turns each report into a
    HeapMisuse exception carrying the line; the bad call is not done."""
    r = run("""
        import goalloc_ffi
        caught = []
        for bad in (lambda p: (ga.free(p), ga.free(p)),                  # double free
                    lambda p: ga.free(ffi.cast('char *', p) + 8),        # interior pointer
                    lambda p: (ga.free(p), ga.realloc(p, 10)),           # realloc of freed
                    lambda p: (ga.free(p), ga.usable_size(p))):          # usable size of freed
            try:
                bad(ga.malloc(48))
            except goalloc_ffi.HeapMisuse as e:
                caught.append(str(e))
        for line in caught: print(line)
        ga.check_heap(); print('alive', ga.usable_size(ga.malloc(10)))
    """, {"GOALLOC": ""})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and lines[-1] == "alive 16", r.stdout
    assert lines[0].startswith("goalloc: free(): double free") and "(size class 4, 48 B)" in lines[0]
    assert "free(): pointer into the middle of an object" in lines[1]
    assert lines[2].startswith("goalloc: realloc(): ") and lines[3].startswith("goalloc: malloc_usable_size(): ")


def test_explicit_on_error_report_keeps_counting_without_exceptions() -> None:
    r = run("p = ga.malloc(48); ga.free(p); ga.free(p); print('went on')", {"GOALLOC": "on_error=report"})
    assert r.returncode == 0 and r.stdout.split() == ["went", "on"], r.stderr
    assert r.stderr.count("goalloc: free(): double free") == 1
