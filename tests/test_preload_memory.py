"""Memory given back under LD_PRELOAD: a program that frees 90 % of what it
allocated sees its RSS fall after an idle pause and after malloc_trim, and
glibc's mallinfo2/malloc_stats describe goalloc's heap."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Optional

import pytest

import goalloc_ffi

pytestmark = pytest.mark.preload
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rss_return(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("rss") / "rss_return"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "memory" / "rss_return.c")], check=True)
    return exe


def run(exe: Path, preload: Optional[str], goalloc: str = "") -> Dict[str, Dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    if preload:
        env.update(LD_PRELOAD=preload, GOALLOC=goalloc)
    r = subprocess.run([str(exe), "192", "1200"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    print(f"{'goalloc ' + goalloc if preload else 'glibc'}:\n{r.stdout}")
    return {step: {k: int(v) for k, v in (f.split("=") for f in fields)}
            for step, *fields in (line.split() for line in r.stdout.splitlines())}


@pytest.mark.parametrize("options", ["", "scavenger=background", "madvise=free"])
def test_rss_falls_after_the_pause_and_after_trim(rss_return: Path, options: str) -> None:
    g = run(rss_return, goalloc_ffi.lib_path(), options)
    peak = g["peak"]["rss_kib"]
    if options == "":
        assert g["after_pause"]["rss_kib"] < 0.7 * peak
    elif options == "scavenger=background":  # paced at ~1 % of a CPU: under way
        assert g["after_pause"]["rss_kib"] < g["after_free"]["rss_kib"]
    if options != "madvise=free":  # MADV_FREE pages stay in RSS until memory is short
        assert g["after_trim"]["rss_kib"] < 0.7 * peak
    assert g["after_free"]["in_use_kib"] < 0.2 * g["peak"]["in_use_kib"]
    assert g["after_trim"]["releasable_kib"] == 0


def test_goalloc_gives_back_at_least_what_glibc_does(rss_return: Path) -> None:
    glibc, g = run(rss_return, None), run(rss_return, goalloc_ffi.lib_path())
    assert g["after_pause"]["rss_kib"] <= glibc["after_free"]["rss_kib"]
    assert g["after_trim"]["rss_kib"] <= 1.1 * glibc["after_trim"]["rss_kib"] + 4096


def test_malloc_stats_prints_goallocs_summary(tmp_path: Path) -> None:
    src = tmp_path / "stats.c"
    src.write_text("#include <malloc.h>\n#include <stdlib.h>\n"
                   "int main(void){void *p=malloc(100000);malloc_stats();free(p);return 0;}\n")
    subprocess.run(["cc", "-o", str(tmp_path / "stats"), str(src)], check=True)
    env = dict(os.environ, LD_PRELOAD=goalloc_ffi.lib_path())
    r = subprocess.run([str(tmp_path / "stats")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "goalloc: heap:" in r.stderr and "large objects: 1" in r.stderr


# ---- giving back when the program goes quiet (issue 19) ---------------------------


def build(tmp: Path, src: Path, *flags: str) -> Path:
    exe = tmp / src.stem
    subprocess.run(["cc", "-O2", *flags, "-o", str(exe), str(src)], check=True)
    return exe


def steps(exe: Path, args: list, preload: Optional[str], goalloc: str = "") -> Dict[str, Dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    if preload:
        env.update(LD_PRELOAD=preload, GOALLOC=goalloc)
    r = subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    print(f"{'goalloc' if preload else 'glibc'} {exe.name}:\n{r.stdout}")
    return {step: {k: int(v) for k, v in (f.split("=") for f in fields)}
            for step, *fields in (line.split() for line in r.stdout.splitlines())}


def test_a_burst_then_quiet_goes_back_without_another_allocation(tmp_path: Path) -> None:
    """256 MiB, 97 % of the objects of 8..488 B and 3 % of 40..440 KB, 90 %
    freed at random, then 1.5 s of sleep and 1000 fast-path malloc(64)/free
    pairs: goalloc's RSS after the pause is at most glibc's after the frees
    (glibc unmaps its large blocks at free; goalloc used to keep the peak
    until malloc_trim, as jemalloc, tcmalloc and mimalloc do)."""
    exe = build(tmp_path, ROOT / "bench" / "memory" / "burst_idle.c")
    glibc, g = steps(exe, [256, 1500], None), steps(exe, [256, 1500], goalloc_ffi.lib_path())
    assert g["after_free"]["rss_kib"] > 0.8 * g["peak"]["rss_kib"]  # the frees alone keep it
    assert g["after_pause"]["rss_kib"] <= glibc["after_free"]["rss_kib"]


def test_the_memory_of_many_idle_threads_goes_back_once_freed(tmp_path: Path) -> None:
    """200 threads each allocate 2 MiB of 16..512 B objects, free 90 % at
    random and wait; then they exit, the main thread frees the rest and
    sleeps 1.5 s: goalloc's RSS then is at most glibc's. (While the threads
    are alive and idle each keeps its own spans, 10 % full: see README,
    "Memory given back".)"""
    exe = build(tmp_path, ROOT / "bench" / "memory" / "thread_idle.c", "-pthread")
    glibc, g = steps(exe, [200, 2048, 1500], None), steps(exe, [200, 2048, 1500], goalloc_ffi.lib_path())
    assert g["freed_idle"]["rss_kib"] <= glibc["freed_idle"]["rss_kib"]


def test_the_scavenger_thread_starts_only_when_there_is_much_to_release(tmp_path: Path) -> None:
    """No thread in a program that never frees much; one once 96 MiB are
    freed, which gives them back and, idle for four delays, ends; a fork
    child starts its own."""
    exe = build(tmp_path, ROOT / "tests" / "c" / "scavenge_thread.c")
    lib = goalloc_ffi.lib_path()
    assert steps(exe, ["small", 1000], lib)["small"]["threads"] == 1
    out = steps(exe, ["burst", 1200], lib, "scavenge_delay=100")
    assert out["parent"]["threads_after_free"] == 2 and out["parent"]["threads"] == 1
    assert out["parent"]["rss_kib"] < 24 << 10 and out["child"]["rss_kib"] < 24 << 10
