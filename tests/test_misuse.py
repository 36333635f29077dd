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
    full_env = {k: v for k, v in os.environ.items() if k != "GOALLOC"}
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
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_aborts_with_one_line(case: str) -> None:
    code, what, detail = MISUSE[case]
    r = run(code)
    assert r.returncode == -signal.SIGABRT, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1, r.stderr
    assert what in lines[0] and detail in lines[0], lines[0]


def test_unknown_option_is_named_once_and_ignored() -> None:
    r = run("print(ga.usable_size(ga.malloc(3)))", {"GOALLOC": "bogus=1,tiny=1"})
    assert r.returncode == 0
    assert r.stderr.count("unknown option 'bogus'") == 1
    assert r.stdout.strip() == "3"  # tiny still on


def test_bad_value_is_named_and_the_default_kept() -> None:
    r = run("print(lib.ga_test_option(b'tiny'))", {"GOALLOC": "tiny=maybe"})
    assert "bad value in 'tiny=maybe'" in r.stderr
    assert r.stdout.strip() == "1"


def test_option_without_value_is_reported() -> None:
    r = run("ga.malloc(1)", {"GOALLOC": "tiny"})
    assert "option without a value 'tiny'" in r.stderr


def test_tiny_can_be_turned_off() -> None:
    r = run("p = ga.malloc(3); print(ga.usable_size(p), lib.ga_test_option(b'tiny'))", {"GOALLOC": "tiny=0"})
    assert r.stdout.split() == ["8", "0"]


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
