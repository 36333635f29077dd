"""Statistics: counters exact for known sequences, JSON at exit (with %p),
typed Python objects from C names, the view of a preloaded goalloc, and the
stats / sizeclasses / run --report commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import goalloc_ffi
import goalloc_ffi as ga
from goalloc_ffi import lib
from goalloc_ffi import stats as st


def child(code: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOALLOC", "GOALLOC_STATS", "LD_PRELOAD")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_names_come_from_c() -> None:
    assert st.TOTAL_NAMES[0] == "bytes_in_use" and "misuse_errors" in st.TOTAL_NAMES
    assert st.CLASS_FIELD_NAMES[:2] == ["size", "mallocs"]
    assert all(st.TOTAL_DOCS[n] for n in st.TOTAL_NAMES)


def test_counters_follow_mallocs_and_frees() -> None:
    cls = lib.ga_test_size_to_class(24) - 1
    before = st.stats()
    ps = [ga.malloc(24) for _ in range(1000)]
    mid = st.stats()
    row, row0 = mid.classes[cls], before.classes[cls]
    assert row.size == 32
    assert row.mallocs - row0.mallocs == 1000 and row.frees == row0.frees
    assert row.objects_in_use - row0.objects_in_use == 1000
    assert row.bytes_in_use - row0.bytes_in_use == 32000
    assert mid.totals.small_mallocs - before.totals.small_mallocs == 1000
    for p in ps:
        ga.free(p)
    after = st.stats().classes[cls]
    assert after.frees - row0.frees == 1000 and after.objects_in_use == row0.objects_in_use
    assert all(c.mallocs - c.frees == c.objects_in_use for c in st.stats().classes)


@pytest.mark.parametrize(("keep", "full", "cached"), [("0", 3, 1), ("512", 0, 4)])
def test_exact_span_counts_on_a_fresh_heap(keep: str, full: int, cached: int) -> None:
    """1000 objects of 24 B: four spans of the 32-byte class (256 each); the
    three exhausted ones are on mcentral's full list (Go, mcache_keep=0) or
    kept by the thread's cache (the default)."""
    r = child("""
        import json, goalloc_ffi as ga
        from goalloc_ffi import stats as st
        ps = [ga.malloc(24) for _ in range(1000)]   # 256 per span of the 32-byte class
        c = st.stats().classes[2]
        print(json.dumps([c.spans_full, c.spans_cached, c.mcentral_grows, c.mcache_refills]))
    """, {"GOALLOC": f"mcache_keep={keep}"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [full, cached, 4, 4]


def test_large_and_tiny_totals() -> None:
    from conftest import goalloc_options

    before = st.stats().totals
    big = [ga.malloc(100000) for _ in range(3)]
    with goalloc_options("tiny=1"):
        tiny = [ga.malloc(3) for _ in range(4)]  # 2-aligned, 4 per 16-byte block
    t = st.stats().totals
    assert t.large_mallocs - before.large_mallocs == 3 and t.large_objects - before.large_objects == 3
    assert t.large_bytes - before.large_bytes == 3 * 13 * 8192
    assert t.tiny_objects - before.tiny_objects == 4
    for p in big + tiny:
        ga.free(p)


def test_json_round_trip() -> None:
    s = st.stats()
    assert st.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(ValueError):
        st.from_json({**s.to_json(), "version": 999})


def test_json_written_at_exit(tmp_path: Path) -> None:
    r = child("""
        import goalloc_ffi as ga
        keep = [ga.malloc(100) for _ in range(50)]
    """, {"GOALLOC_STATS": str(tmp_path / "s-%p.json")})
    assert r.returncode == 0, r.stderr
    files = list(tmp_path.glob("s-*.json"))
    assert len(files) == 1
    s = st.load(files[0])
    assert s.pid == int(files[0].stem[2:]) and s.classes[7].size == 112
    assert s.classes[7].objects_in_use == 50 and s.totals.objects_in_use == 50


@pytest.mark.preload
def test_pid_files_of_parent_and_child(tmp_path: Path) -> None:
    env = dict(os.environ, LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC_STATS=str(tmp_path / "%p.json"),
               PYTHONMALLOC="malloc")
    code = "import os\npid = os.fork()\nif pid == 0:\n    x = [str(i) for i in range(1000)]\nelse:\n    os.waitpid(pid, 0)\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    docs = [st.load(f) for f in tmp_path.glob("*.json")]
    assert len(docs) == 2 and len({d.pid for d in docs}) == 2
    assert all(d.totals.small_mallocs > 0 for d in docs)


@pytest.mark.preload
@pytest.mark.parametrize("program", ["python", "sqlite3"])
def test_run_report_and_stats_commands(program: str, tmp_path: Path) -> None:
    goalloc = [sys.executable, "-m", "goalloc_ffi.cli"]
    if program == "python":
        cmd = [sys.executable, "-c", "d = {i: str(i) * 3 for i in range(50000)}; print(len(d))"]
        env = dict(os.environ, PYTHONMALLOC="malloc")
    else:
        cmd = ["sqlite3", ":memory:", "create table t(x); insert into t select value from "
               "generate_series(1, 20000); select count(*) from t;"]
        env = dict(os.environ)
        if subprocess.run(["sqlite3", ":memory:", "select 1 from generate_series(1,1)"],
                          capture_output=True).returncode != 0:
            cmd[2] = ("create table t(x); with recursive c(i) as (select 1 union all select i+1 from c "
                      "where i < 20000) insert into t select i from c; select count(*) from t;")
    out = tmp_path / "stats.json"
    r = subprocess.run([*goalloc, "run", "--stats", str(out), "--report", "--", *cmd], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "goalloc statistics of pid" in r.stderr and "busiest size classes" in r.stderr
    assert "goalloc" not in r.stdout  # the program's own output alone (jemalloc's stats_print: stderr too)
    assert st.load(out).totals.small_mallocs > 100
    r2 = subprocess.run([*goalloc, "stats", str(out)], capture_output=True, text=True, timeout=60)
    assert r2.returncode == 0 and "memory (MiB)" in r2.stdout


@pytest.mark.preload
def test_run_report_through_a_shell_shows_the_programs_it_ran(tmp_path: Path) -> None:
    """`goalloc run --report -- sh -c '...'`: the shell itself never calls
    malloc, so the report is that of the busiest process it started, and
    the others are listed below it."""
    goalloc = [sys.executable, "-m", "goalloc_ffi.cli"]
    busy = f"{shlex.quote(sys.executable)} -c 'd = {{i: str(i) for i in range(60000)}}'"
    small = f"{shlex.quote(sys.executable)} -c 'x = [1] * 10'"
    shell = shutil.which("dash") or "sh"
    cmd = [shell, "-c", f"{busy}; {small}; true"]
    r = subprocess.run([*goalloc, "run", "--report", "--", *cmd], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONMALLOC="malloc", COLUMNS="150"))
    assert r.returncode == 0, r.stderr
    shown = re.search(r"goalloc statistics of pid (\d+)", r.stderr)
    assert shown, r.stderr
    assert "other processes of the command" in r.stderr and "busiest size classes" in r.stderr
    rows = [ln.split("│") for ln in r.stderr.splitlines() if ln.count("│") == 8]
    others = {int(c[1]): int(c[4]) for c in rows if c[1].strip().isdigit()}  # pid -> mallocs
    assert others and int(shown.group(1)) not in others
    named = [c for c in rows if c[1].strip().isdigit()]
    assert all(c[2].strip() not in ("", "?") and "-c" in c[3] for c in named), named  # comm and command line
    counts = [ln.split("│") for ln in r.stderr.splitlines() if ln.count("│") == 13]  # the counts table (12 columns)
    shown_mallocs = int(counts[0][1])
    if "left no statistics" in r.stderr:  # the shell allocated nothing: its busiest child is shown
        assert shown_mallocs >= max(others.values()) and shown_mallocs > 60000, (shown_mallocs, others)


def test_sizeclasses_command_prints_gos_table() -> None:
    r = subprocess.run([sys.executable, "-m", "goalloc_ffi.cli", "sizeclasses"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, COLUMNS="120"))
    assert r.returncode == 0
    rows = [ln.split("│") for ln in r.stdout.splitlines() if ln.count("│") >= 6]
    assert len(rows) == len(ga.sizeclasses())
    assert [c.strip() for c in rows[-1][1:7]] == ["66", "32768", "32768", "1", "0", "12.50%"]


def test_atomic_and_cross_thread_frees_are_told_apart() -> None:
    """One thread that frees its own objects after its spans went back to
    mcentral takes the atomic path but frees nothing of another thread's;
    a consumer thread freeing what a live producer's cache holds does."""
    r = child("""
        import threading
        import goalloc_ffi as ga
        from goalloc_ffi import stats as st
        def totals(): t = st.stats().totals; return t.atomic_frees, t.cross_thread_frees
        a0, c0 = totals()
        ps = [ga.malloc(64) for _ in range(200000)]      # 1563 pages: beyond mcache_keep's 512, to mcentral
        for p in ps: ga.free(p)
        a1, c1 = totals()
        print(a1 - a0 > 0, c1 - c0)
        made, done = [], threading.Event()
        def producer():
            made.extend(ga.malloc(48) for _ in range(1000))  # its cache keeps the spans
            done.wait()
        t = threading.Thread(target=producer); t.start()
        while len(made) < 1000: pass
        for p in made: ga.free(p)                          # another thread's cached spans
        a2, c2 = totals()
        done.set(); t.join()
        print(c2 - c1, a2 - a1 >= c2 - c1)
    """, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "0", "1000", "True"], r.stdout + r.stderr


def test_peak_heap_follows_a_large_block_grown_in_place() -> None:
    """A 40 KB block realloc'd in place to 4 MB (the pages after it are
    free): the all-time peak must count the grown block."""
    r = child("""
        import goalloc_ffi as ga
        from goalloc_ffi import stats as st
        p = ga.malloc(40000)
        q = ga.realloc(p, 4000000)
        t = st.stats().totals
        print(q == p, t.large_bytes >= 4000000, t.peak_heap_bytes >= t.large_bytes)
    """, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "True"], r.stdout
