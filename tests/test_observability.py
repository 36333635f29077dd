"""Observability: internal fragmentation (exact through the FFI), the
library without statistics, the live statistics file (goalloc top, run
--live, run --timeline), stats --plot, and the self-view of a Python that
cannot import the cffi extension."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import goalloc_ffi
import goalloc_ffi as ga
from goalloc_ffi import lib, live
from goalloc_ffi import stats as st

GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]
PKG = Path(goalloc_ffi.__file__).resolve().parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOALLOC", "GOALLOC_STATS", "LD_PRELOAD")}
    env.update(extra)
    return env


def child(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=clean_env(**extra))


def goalloc(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOALLOC, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(COLUMNS="200"))


def png_size(path: Path) -> tuple[int, int]:
    """Checks the PNG signature, then reads the size with PIL (matplotlib's
    dependency) and from the IHDR chunk, which must agree."""
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    w, h = struct.unpack(">II", data[16:24])
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (w, h)
    return w, h


def sqlite_cmd(rows: int = 30000) -> List[str]:
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed (make deps)")
    return ["sqlite3", ":memory:", "create table t(x, y); with recursive c(i) as (select 1 union all "
            f"select i+1 from c where i < {rows}) insert into t select i, printf('%0*d', i % 300, i) from c; "
            "create index ty on t(y); select count(*), sum(length(y)) from t;"]


# ---- internal fragmentation, exact through the FFI ----------------------------------


def test_fragmentation_of_known_mallocs_is_exact() -> None:
    r = child("""
        import json, goalloc_ffi as ga
        from goalloc_ffi import lib, stats as st
        def row(n):
            return st.stats().classes[lib.ga_test_size_to_class(n) - 1]
        ps = [ga.malloc(24) for _ in range(1000)]      # class 32: 8 bytes lost each
        c = row(24)
        out = [c.size, c.mallocs, c.requested_bytes, c.frag_cumulative_bytes, c.frag_live_estimate_bytes]
        for p in ps[:500]:
            ga.free(p)
        c = row(24)
        out += [c.frag_cumulative_bytes, c.frag_live_estimate_bytes]
        qs = [ga.malloc(33) for _ in range(100)]        # class 48: 15 bytes lost each
        c = row(33)
        out += [c.size, c.frag_cumulative_bytes]
        a = ga.memalign(64, 40)                         # the first class that is a multiple of 64
        c = row(64)
        out += [c.size, c.requested_bytes, c.frag_cumulative_bytes]
        t = st.stats().totals
        out += [t.requested_bytes, t.frag_cumulative_bytes, t.frag_live_estimate_bytes]
        print(json.dumps(out))
    """)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out[:5] == [32, 1000, 24000, 8000, 8000]
    assert out[5:7] == [8000, 4000]  # cumulative stays; the estimate follows the live objects
    assert out[7:9] == [48, 1500]
    assert out[9:12] == [64, 40, 24]
    assert out[12:14] == [24000 + 3300 + 40, 8000 + 1500 + 24]
    assert out[14] == 4000 + 1500 + 24


def test_tiny_objects_count_their_requested_bytes() -> None:
    r = child("""
        import json, goalloc_ffi as ga
        from goalloc_ffi import stats as st
        ps = [ga.malloc(5) for _ in range(30)]   # 4-aligned: two per 16-byte block
        t = st.stats().totals
        print(json.dumps([t.tiny_blocks, t.tiny_objects, t.requested_bytes, t.frag_cumulative_bytes,
                          t.frag_live_estimate_bytes, t.tiny_bytes_saved]))
    """, GOALLOC="tiny=1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [15, 30, 150, 15 * 16 - 150, 90, 15 * 16]


def test_fragmentation_counters_follow_mallocs_in_this_process() -> None:
    cls = lib.ga_test_size_to_class(40) - 1
    before = st.stats()
    ps = [ga.malloc(40) for _ in range(300)]  # class 48
    after = st.stats()
    b, a = before.classes[cls], after.classes[cls]
    assert a.size == 48
    assert a.requested_bytes - b.requested_bytes == 300 * 40
    assert a.frag_cumulative_bytes - b.frag_cumulative_bytes == 300 * 8
    assert after.totals.frag_cumulative_bytes - before.totals.frag_cumulative_bytes == 300 * 8
    for p in ps:
        ga.free(p)
    assert all(c.frag_cumulative_bytes == c.mallocs * c.size - c.requested_bytes for c in st.stats().classes)


def test_schema_version_and_new_names_come_from_c() -> None:
    assert st.VERSION == lib.ga_stats_version() == 3
    for name in ("requested_bytes", "frag_cumulative_bytes", "frag_live_estimate_bytes"):
        assert name in st.TOTAL_NAMES and name in st.CLASS_FIELD_NAMES
    assert "ESTIMATE" in st.CLASS_FIELD_DOCS["frag_live_estimate_bytes"]
    assert "bytes_free_in_spans" in st.TOTAL_NAMES
    assert {"peak_span_bytes", "peak_class_span_bytes"} <= set(st.CLASS_FIELD_NAMES)  # version 3
    doc = st.stats().to_json()
    assert doc["version"] == 3 and "frag_cumulative_bytes" in doc["classes"][0]
    assert st.from_json(json.loads(json.dumps(doc))) == st.from_json(doc)


def test_json_into_a_buffer_reports_the_needed_length() -> None:
    from goalloc_ffi import ffi

    need = lib.ga_stats_json(ffi.NULL, 0)
    small = ffi.new("char[]", 64)
    assert lib.ga_stats_json(small, 64) >= 64 and len(ffi.string(small)) == 63  # truncated, terminated
    buf = ffi.new("char[]", need + 4096)
    n = lib.ga_stats_json(buf, len(buf))
    doc = json.loads(ffi.string(buf).decode())
    assert n == len(ffi.string(buf)) and doc["version"] == st.VERSION
    assert st.from_json(doc).totals.small_mallocs > 0


# ---- the library without statistics ------------------------------------------------


def fast_path_instructions(path: str) -> int:
    """Instructions of ga_malloc up to its first ret (the inline fast path)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    # malloc, __libc_malloc and ga_malloc share one address: objdump labels
    # it with any of them, so it is found by address.
    syms = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(line.split()[0], 16) for line in syms.splitlines() if line.split()[-1] == "ga_malloc"]
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                         check=True).stdout
    start = re.search(rf"^0*{addr:x} <[^>]+>:\n", out, re.M)
    assert start is not None, f"no function at {addr:#x}"
    body = out[start.end():].split("\n\n")[0].splitlines()
    n = 0
    for line in body:
        n += 1
        if re.search(r"\tret", line):
            return n
    raise AssertionError("no ret in ga_malloc")


@pytest.mark.preload
def test_requested_bytes_cost_the_fast_path_one_instruction() -> None:
    with_stats = fast_path_instructions(goalloc_ffi.lib_path())
    without = fast_path_instructions(goalloc_ffi.lib_path(nostats=True))
    assert with_stats == without + 1


@pytest.mark.preload
def test_nostats_library_runs_programs_and_says_compiled_out(tmp_path: Path) -> None:
    r = goalloc("lib", "--nostats")
    path = r.stdout.strip()
    assert r.returncode == 0 and Path(path).is_file() and path.endswith("libgoalloc-nostats.so")
    env = clean_env(LD_PRELOAD=path, PYTHONMALLOC="malloc", GOALLOC_STATS=str(tmp_path / "s-%p.json"),
                    GOALLOC="live=1")
    # Without the extension, whose private heap would write GOALLOC_STATS too.
    code = ("import sys; sys.modules['goalloc_ffi._goalloc'] = None\n"
            "from goalloc_ffi import stats as st\n"
            "d = {i: str(i) for i in range(20000)}\n"
            "try:\n    st.preloaded_stats()\nexcept st.StatsUnavailable as e:\n    print('unavailable:', e)\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "unavailable:" in p.stdout and "compiled out" in p.stdout
    assert "live=1: statistics are compiled out" in p.stderr
    (doc_path,) = tmp_path.glob("s-*.json")
    doc = json.loads(doc_path.read_text())
    assert {k: doc[k] for k in ("version", "pid", "stats")} == {
        "version": st.VERSION, "pid": int(doc_path.stem[2:]), "stats": "compiled out"}
    assert doc["options"]["live"] == "0" and doc["argv"][1] == "-c"  # provenance too; live refused here
    with pytest.raises(st.StatsUnavailable):
        st.load(doc_path)
    assert not Path(live.live_path(int(doc_path.stem[2:]))).exists()
    sq = subprocess.run(sqlite_cmd(), env=clean_env(LD_PRELOAD=path), capture_output=True, text=True, timeout=60)
    assert sq.returncode == 0 and sq.stdout.startswith("30000|"), sq.stderr
    s = goalloc("stats", str(doc_path))
    assert s.returncode == 0 and "compiled out" in s.stdout


def test_lib_refuses_debug_and_nostats_together() -> None:
    r = goalloc("lib", "--debug", "--nostats")
    assert r.returncode != 0 and "different builds" in r.stderr


# ---- the live statistics file ----------------------------------------------------


def test_live_file_of_the_private_heap_matches_a_snapshot() -> None:
    """The cffi module's heap publishes too (GOALLOC=live=1): after the
    cache is folded, the live figures equal the snapshot's."""
    r = child("""
        import json, os
        import goalloc_ffi as ga
        from goalloc_ffi import lib, live, stats as st
        ps = [ga.malloc(24) for _ in range(1000)]
        lib.ga_test_release_cache()                 # folds: the live view lags no more
        first = live.read(os.getpid())
        lib.ga_test_advance_clock(50 * 1000 * 1000)  # past the update interval
        lib.ga_test_scavenge_tick()                 # a slow-path tick publishes
        snap, s = live.read(os.getpid()), st.stats()
        row = lib.ga_test_size_to_class(24) - 1
        lc, sc = snap.classes[row], s.classes[row]
        print(json.dumps({
            "updates": [first.updates, snap.updates],
            "class": [lc[k] == getattr(sc, k) for k in ("size", "mallocs", "frees", "objects_in_use",
                      "bytes_in_use", "requested_bytes", "frag_cumulative_bytes", "frag_live_estimate_bytes",
                      "spans_partial", "spans_full", "spans_cached", "mcentral_grows")],
            "frag": lc["frag_cumulative_bytes"],
            "totals": [snap.totals[k] == getattr(s.totals, k) for k in ("small_mallocs", "small_frees",
                       "bytes_mapped", "large_objects", "requested_bytes", "frag_cumulative_bytes")],
            "unavailable": [snap.totals["tiny_objects"], snap.totals["peak_rss_bytes"]],
            "pid": snap.pid == os.getpid(), "path": live.live_path(os.getpid()),
            "table": snap.size_classes == s.size_classes,
        }))
    """, GOALLOC="live=1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["updates"][1] > out["updates"][0] >= 1
    assert all(out["class"]) and all(out["totals"]) and out["frag"] == 8000
    assert out["unavailable"] == [None, None] and out["pid"] and out["table"]
    assert not Path(out["path"]).exists()  # removed at exit


def test_bad_live_option_is_named() -> None:
    r = child("""
        from goalloc_ffi import lib
        lib.ga_test_parse_options(b"live=2")
        print(lib.ga_test_option(b"live"))
    """)
    assert r.returncode == 0 and r.stdout.strip() == "0"
    assert "live=2" in r.stderr


ALLOCATOR = r"""
import os, sys, time
keep = []
def batch(n):
    keep.extend(str(i) * 4 for i in range(n))
    time.sleep(0.03)                   # past the update interval
    keep.extend([i] * 3 for i in range(2000))   # slow paths after it: an update
batch(20000)
print(os.getpid(), flush=True)
for line in sys.stdin:
    batch(20000)
    print("ok", flush=True)
"""


def top_counts(pid: int) -> Dict[str, int]:
    """The counts table of `goalloc top PID --once`, by column name."""
    r = goalloc("top", str(pid), "--once")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if "atomic frees" in ln)
    names = [c.strip() for c in lines[i].strip("┃ ").split("┃")]
    values = [c.strip() for c in lines[i + 2].strip("│ ").split("│")]
    assert "goalloc top pid" in r.stdout and "busiest size classes" in r.stdout
    return dict(zip(names, map(int, values)))


@pytest.mark.preload
def test_top_once_sees_a_live_process_advance() -> None:
    env = clean_env(PYTHONMALLOC="malloc")
    p = subprocess.Popen([*GOALLOC, "run", "--live", "--", sys.executable, "-c", ALLOCATOR], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdin is not None
        pid = int(p.stdout.readline())
        assert pid == p.pid  # run --live execs the command
        first = top_counts(pid)
        p.stdin.write("more\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "ok"
        second = top_counts(pid)
        assert second["mallocs"] > first["mallocs"] > 20000
        assert second["live objects"] > first["live objects"]
        assert Path(live.live_path(pid)).exists()
    finally:
        if p.stdin:
            p.stdin.close()
        p.wait(timeout=60)
    assert p.returncode == 0
    assert not Path(live.live_path(pid)).exists()  # removed at exit
    r = goalloc("top", str(pid), "--once")
    assert r.returncode == 1 and "no live statistics" in r.stderr


@pytest.mark.preload
def test_top_removes_the_file_of_a_killed_process() -> None:
    env = clean_env(LD_PRELOAD=goalloc_ffi.lib_path(), PYTHONMALLOC="malloc", GOALLOC="live=1")
    p = subprocess.Popen([sys.executable, "-c", ALLOCATOR], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    pid = int(p.stdout.readline())
    p.kill()
    p.wait()
    assert Path(live.live_path(pid)).exists()  # no destructor ran
    r = goalloc("top", str(pid), "--once")
    assert r.returncode == 1 and f"process {pid} is gone" in r.stderr
    assert not Path(live.live_path(pid)).exists()


@pytest.mark.preload
def test_top_explains_a_process_without_live_statistics() -> None:
    p = subprocess.Popen(["sleep", "30"])
    try:
        r = goalloc("top", str(p.pid), "--once")
        assert r.returncode == 1 and "not run with GOALLOC=live=1" in r.stderr
    finally:
        p.kill()
        p.wait()


FORKER = r"""
import os, sys, time
def work():
    keep = [str(i) * 3 for i in range(30000)]
    time.sleep(0.15)                   # a child publishes after 100 ms
    keep += [[i] for i in range(3000)]
    return keep
keep = work()
quick = os.fork()
if quick == 0:                         # a little work, then _exit: no file left
    keep3 = [str(i) for i in range(30000)]
    os._exit(0)
os.waitpid(quick, 0)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    keep2 = work()
    os.write(w, b"x")
    sys.stdin.read()
    sys.exit(0)
os.close(w)
os.read(r, 1)
print(os.getpid(), pid, quick, flush=True)
sys.stdin.read()
os.waitpid(pid, 0)
"""


@pytest.mark.preload
def test_fork_child_publishes_in_its_own_file() -> None:
    from goalloc_ffi import live

    env = clean_env(LD_PRELOAD=goalloc_ffi.lib_path(), PYTHONMALLOC="malloc", GOALLOC="live=1")
    p = subprocess.Popen([sys.executable, "-c", FORKER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout is not None and p.stdin is not None
        parent, kid, quick = map(int, p.stdout.readline().split())
        assert not Path(live.live_path(quick)).exists()
        a, b = live.read(parent), live.read(kid)
        assert (a.pid, b.pid) == (parent, kid)
        assert a.totals["small_mallocs"] > 0 and b.totals["small_mallocs"] > 0
        assert b.updates >= 1 and Path(live.live_path(kid)).exists()
    finally:
        if p.stdin:
            p.stdin.close()
        p.wait(timeout=60)
    assert p.returncode == 0
    assert not Path(live.live_path(parent)).exists() and not Path(live.live_path(kid)).exists()


# ---- run --timeline and stats --plot ---------------------------------------------


@pytest.mark.preload
@pytest.mark.parametrize("program", ["python", "sqlite3"])
def test_run_timeline_writes_samples_and_a_png(program: str, tmp_path: Path) -> None:
    if program == "python":
        cmd = [sys.executable, "-c", "import time\nx = []\nfor i in range(12):\n"
               "    x.append([str(j) for j in range(20000)]); time.sleep(0.04)\nprint(len(x))"]
    else:
        cmd = sqlite_cmd(300000)
    png = tmp_path / "tl.png"
    r = goalloc("run", "--timeline", str(png), "--", *cmd, env=clean_env(PYTHONMALLOC="malloc"))
    assert r.returncode == 0, r.stderr
    w, h = png_size(png)
    assert w > 400 and h > 300
    doc = json.loads(png.with_suffix(".json").read_text())
    samples = doc["samples"]
    assert doc["meta"]["command"] == cmd and doc["meta"]["exit_status"] == 0
    assert samples and all(s["bytes_mapped"] >= 64 << 20 for s in samples if s["bytes_mapped"] is not None)
    assert any(s["bytes_in_use"] for s in samples) and any(s["rss_bytes"] for s in samples)
    if program == "python":  # about half a second of growth: several samples, rising
        assert len(samples) >= 4
        running = [s for s in samples if not s.get("final")]
        assert running[-1]["bytes_in_use"] > running[0]["bytes_in_use"]
        assert samples[-1].get("final") and samples[-1]["processes"] == 1  # as published at exit
        assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    assert not Path(live.live_path(doc["meta"]["pid"])).exists()


@pytest.mark.preload
def test_run_timeline_follows_the_process_tree(tmp_path: Path) -> None:
    """The command is a shell that stays the parent (`; true` keeps it from
    exec'ing): the samples are the tree's, so the Python child's heap shows."""
    code = ("import time\nx = []\nfor i in range(10):\n"
            "    x.append([str(j) * 4 for j in range(30000)]); time.sleep(0.05)\n")
    cmd = ["sh", "-c", f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; true"]
    png = tmp_path / "tree.png"
    r = goalloc("run", "--timeline", str(png), "--", *cmd, env=clean_env(PYTHONMALLOC="malloc"))
    assert r.returncode == 0, r.stderr
    samples = json.loads(png.with_suffix(".json").read_text())["samples"]
    assert max(s["processes"] for s in samples) >= 2  # the shell and Python, both preloaded
    assert max(s["bytes_in_use"] or 0 for s in samples) > 8 << 20


FREE_THEN_SLEEP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void ms(long m) { struct timespec t = {m / 1000, (m % 1000) * 1000000L}; nanosleep(&t, NULL); }
int main(int argc, char **argv) {
    enum { N = 1000000 };
    static void *p[N];
    for (int i = 0; i < N; i++) memset(p[i] = malloc(100), 1, 100);  /* about 107 MiB of slots */
    ms(400);
    for (int i = 0; i < N; i++) free(p[i]);
    FILE *f = fopen(argv[1], "w");  /* when the frees ended, CLOCK_MONOTONIC */
    fprintf(f, "%.6f\n", now());
    fclose(f);
    ms(argc > 2 ? atol(argv[2]) : 2000);
    return 0;
}
"""


@pytest.mark.preload
def test_run_timeline_shows_the_drop_after_the_frees(tmp_path: Path) -> None:
    """A program allocates 1 M objects of 100 B, sleeps, frees them all and
    sleeps 2 s: a sample soon after the frees shows bytes in use down (the
    live file is published from the free side: spans going back to the page
    heap), RSS falls before the program ends (the scavenger needs no
    allocation), and the final sample is the program's own at exit."""
    src, exe, mark = tmp_path / "fs.c", tmp_path / "fs", tmp_path / "freed"
    src.write_text(FREE_THEN_SLEEP)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    png = tmp_path / "fs.png"
    r = goalloc("run", "--timeline", str(png), "--", str(exe), str(mark), "2000", env=clean_env())
    assert r.returncode == 0, r.stderr
    doc = json.loads(png.with_suffix(".json").read_text())
    samples, freed = doc["samples"], float(mark.read_text()) - doc["meta"]["start_monotonic"]
    peak = max(s["bytes_in_use"] for s in samples)
    assert peak > 64 << 20
    after = [s for s in samples if s["t"] >= freed]
    soon = [s for s in after if s["t"] <= freed + 0.5]  # generous: 50 ms samples on a noisy machine
    assert any(s["bytes_in_use"] < peak // 10 for s in soon), (freed, samples)
    peak_rss = max(s["rss_bytes"] for s in samples if s["t"] < freed)
    running = [s for s in after if not s.get("final")]
    assert running[-1]["rss_bytes"] < peak_rss // 2, (freed, samples)  # given back during the sleep
    assert samples[-1].get("final") and samples[-1]["bytes_in_use"] < peak // 10, samples[-1]


def test_run_timeline_says_when_the_command_ended_before_the_first_sample(tmp_path: Path) -> None:
    png = tmp_path / "short.png"
    r = goalloc("run", "--timeline", str(png), "--", "true")
    assert r.returncode == 0
    assert "before the first sample" in r.stderr and "no timeline written" in r.stderr
    assert "Warning" not in r.stderr and not png.exists()


def test_run_timeline_wants_a_png_name(tmp_path: Path) -> None:
    r = goalloc("run", "--timeline", str(tmp_path / "x.svg"), "--", "true")
    assert r.returncode == 2 and ".png" in r.stderr


@pytest.mark.preload
def test_stats_plot_and_fragmentation_columns(tmp_path: Path) -> None:
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    # Objects still live at exit: C mallocs never freed (Python frees its own).
    code = "import ctypes; m = ctypes.CDLL(None).malloc; keep = [m(300) for _ in range(40000)]"
    r = goalloc("run", "--stats", str(out), "--", sys.executable, "-c", code, env=clean_env(PYTHONMALLOC="malloc"))
    assert r.returncode == 0, r.stderr
    s = goalloc("stats", str(out), "--plot", str(png))
    assert s.returncode == 0, s.stderr
    assert "frag, all mallocs" in s.stdout and "frag, live (est.)" in s.stdout and "frag %" in s.stdout
    assert "internal fragmentation" in s.stdout
    w, h = png_size(png)
    assert w > 600 and h > 400
    from goalloc_ffi.plots import rss_parts

    parts = dict(rss_parts(st.load(out)))
    assert sum(parts.values()) >= st.load(out).totals.rss_bytes
    assert parts["in use (live objects)"] >= 40000 * 320
    row = st.load(out).classes[lib.ga_test_size_to_class(300) - 1]
    assert row.size == 320 and row.objects_in_use >= 40000 and row.frag_live_estimate_bytes >= 40000 * 20 * 0.9


# ---- the self-view without the compiled extension -------------------------------


SELF_VIEW = """
import json, sys
{prelude}
from goalloc_ffi import stats as st
a = st.preloaded_stats()
keep = [str(i) * 2 for i in range(30000)]
b = st.preloaded_stats()
print(json.dumps({{
    "mallocs": [a.totals.small_mallocs, b.totals.small_mallocs],
    "frag": b.totals.frag_cumulative_bytes, "names": st.TOTAL_NAMES == list(b.to_json()["totals"]),
    "version": b.version, "ext": "goalloc_ffi._goalloc" in sys.modules and sys.modules["goalloc_ffi._goalloc"] is not None,
    "cffi": "_cffi_backend" in sys.modules, "classes": len(b.classes),
}}))
"""


def check_self_view(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mallocs"][1] > out["mallocs"][0] + 30000
    assert out["frag"] > 0 and out["names"] and out["version"] == st.VERSION
    assert out["ext"] is False and out["cffi"] is False
    assert out["classes"] == len(ga.sizeclasses())


@pytest.mark.preload
def test_self_view_with_the_extension_unimportable() -> None:
    prelude = "sys.modules['goalloc_ffi._goalloc'] = None  # import of the extension now fails"
    env = clean_env(LD_PRELOAD=goalloc_ffi.lib_path(), PYTHONMALLOC="malloc")
    r = subprocess.run([sys.executable, "-c", SELF_VIEW.format(prelude=prelude)], env=env, capture_output=True,
                       text=True, timeout=60)
    check_self_view(r)
    with pytest.raises(LookupError):
        st.preloaded_stats()  # this process runs on glibc


@pytest.mark.preload
def test_self_view_from_a_copy_of_the_pure_python_files(tmp_path: Path) -> None:
    """No site-packages (-S): neither cffi nor the installed goalloc_ffi;
    only the package's .py files, copied."""
    (tmp_path / "goalloc_ffi").mkdir()
    for f in PKG.glob("*.py"):
        shutil.copy(f, tmp_path / "goalloc_ffi" / f.name)
    env = clean_env(LD_PRELOAD=goalloc_ffi.lib_path(), PYTHONMALLOC="malloc", PYTHONPATH=str(tmp_path))
    probe = subprocess.run([sys.executable, "-S", "-c", "import cffi"], env=env, capture_output=True)
    assert probe.returncode != 0  # cffi really is out of reach
    r = subprocess.run([sys.executable, "-S", "-c", SELF_VIEW.format(prelude="")], env=env, capture_output=True,
                       text=True, timeout=60)
    check_self_view(r)
    heap = subprocess.run([sys.executable, "-S", "-c", "import goalloc_ffi; goalloc_ffi.malloc(8)"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert heap.returncode != 0 and "extension is not importable" in heap.stderr
