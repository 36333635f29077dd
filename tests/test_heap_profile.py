"""Sampled heap profiles (issue 15): GOALLOC=profile_rate (Go's
MemProfileRate) and GOALLOC_HEAP_PROFILE, written by csrc/pprof.c as
gzipped profile.proto, read back with the protobuf library, by `go tool
pprof` (Debian's golang-go) and by `goalloc profile`.

The programs: tests/c/heap_sites.c (two call sites with a 3:1 ratio of
bytes; a multithreaded mode that hands objects to other threads and ends
with ga_check_heap), tests/c/mt_alloc.c, tests/c/fork_alloc.c,
tests/c/stress.c and CPython, each run with and without profiling."""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from click.testing import CliRunner
from conftest import build_c_program

import goalloc_ffi
from goalloc_ffi import heapprof, pprof
from goalloc_ffi.cli import cli

pytestmark = pytest.mark.preload
TIMEOUT = 120.0
OBJ = 4096  # heap_sites.c's object size


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_program(tmp_path_factory, "heap_sites")


def run(cmd: List[str], options: str = "", heap: Optional[Path] = None,
        preload: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC") and k != "LD_PRELOAD"}
    env["LC_ALL"] = "C"
    if preload:
        env["LD_PRELOAD"] = goalloc_ffi.lib_path()
    if options:
        env["GOALLOC"] = options
    if heap is not None:
        env["GOALLOC_HEAP_PROFILE"] = str(heap)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def by_function(hp: heapprof.HeapProfile) -> Dict[str, Dict[str, int]]:
    return {s.frame.function: dict(s.values) for s in hp.sites()}


def test_two_call_sites_come_out_three_to_one(sites: Path, tmp_path: Path) -> None:
    """The raw file: gzip, Go's sample types and period, the executable's
    mapping with its build id; both functions named with 3:1 bytes, and
    Go's scaling turns the samples into estimates of the true counts."""
    out = tmp_path / "heap.pb.gz"
    rounds = 4000
    r = run([str(sites), str(rounds)], "profile_rate=16k", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert gzip.decompress(out.read_bytes())  # a valid gzip stream (stored blocks, CRC, size)
    prof = pprof.load(out)
    st = prof.string_table
    assert [(st[t.type], st[t.unit]) for t in prof.sample_type] == [
        ("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"),
        ("inuse_space", "bytes"), ("alloc_waste", "bytes"), ("inuse_waste", "bytes")]
    assert prof.period == 16384 and st[prof.default_sample_type] == "inuse_space"
    exe = [m for m in prof.mapping if st[m.filename] == str(sites)]
    assert exe, [st[m.filename] for m in prof.mapping]
    readelf = subprocess.run(["readelf", "-n", str(sites)], capture_output=True, text=True, check=True).stdout
    assert st[exe[0].build_id] == re.search(r"Build ID: ([0-9a-f]+)", readelf).group(1)  # type: ignore[union-attr]

    f = by_function(heapprof.read(str(out)))
    small, big = f["small_site"], f["big_site"]
    for kind in ("alloc_space", "inuse_space", "alloc_objects"):
        assert 2.7 <= big[kind] / small[kind] <= 3.3, (kind, big, small)
    # Scaled estimates, not sample counts: within 10 % of what was allocated.
    assert abs(small["alloc_objects"] - rounds) <= 0.1 * rounds, small
    assert abs(big["alloc_space"] - 3 * rounds * OBJ) <= 0.1 * 3 * rounds * OBJ, big
    assert small["alloc_waste"] == 0  # 4096 is a size class: nothing lost to rounding


def test_go_tool_pprof_reads_and_symbolizes_it(sites: Path, tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no go: install the Debian package 'golang-go' (make deps)")
    out = tmp_path / "heap.pb.gz"
    assert run([str(sites), "4000"], "profile_rate=16k", out).returncode == 0
    env = {**os.environ, "HOME": str(tmp_path), "GOCACHE": str(tmp_path / "gocache"), "PPROF_TMPDIR": str(tmp_path)}
    env.pop("LD_PRELOAD", None)
    r = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=alloc_space", str(sites), str(out)],
                       capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 0, r.stderr
    flat = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)([kMG]?B)\s+[\d.]+%\s+[\d.]+%\s+\S+\s+[\d.]+%\s+(\w+)", line)
        if m:
            flat[m.group(3)] = float(m.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m.group(2)]
    assert "big_site" in flat and "small_site" in flat, r.stdout
    assert 2.7 <= flat["big_site"] / flat["small_site"] <= 3.3, r.stdout


def test_frees_of_sampled_objects_leave_only_the_allocation(sites: Path, tmp_path: Path) -> None:
    """big_site's objects are all freed at the end: its bytes are in the
    alloc view only; small_site's stay live."""
    out = tmp_path / "heap.pb.gz"
    assert run([str(sites), "4000", "free"], "profile_rate=16k", out).returncode == 0
    f = by_function(heapprof.read(str(out)))
    big, small = f["big_site"], f["small_site"]
    assert big["inuse_space"] == 0 and big["inuse_objects"] == 0 and big["alloc_space"] > 0
    assert small["inuse_space"] == small["alloc_space"] > 0
    assert 2.7 <= big["alloc_space"] / small["alloc_space"] <= 3.3


def test_rate_1_records_every_object_and_every_free_by_any_thread(sites: Path, tmp_path: Path) -> None:
    """8 threads, half the objects freed by another thread, reallocs;
    every allocation is a sample (exact counts), every one is freed, and
    the heap checks out afterwards (ga_check_heap, in the process)."""
    out = tmp_path / "heap.pb.gz"
    plain = run([str(sites), "threads", "20000"])
    r = run([str(sites), "threads", "20000"], "profile_rate=1", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout == plain.stdout and "checked" in r.stdout
    hp = heapprof.read(str(out))
    workers = [s for s in hp.sites() if s.frame.function == "worker"]
    assert sum(s.values["alloc_objects"] for s in workers) >= 8 * 20000
    assert sum(s.values["inuse_objects"] for s in workers) == 0
    assert hp.period == 1


def test_stress_at_rate_1_no_corruption_no_deadlock(tmp_path_factory: pytest.TempPathFactory,
                                                    tmp_path: Path) -> None:
    stress = build_c_program(tmp_path_factory, "stress")
    out = tmp_path / "heap-%p.pb.gz"
    r = run([str(stress), "-s", "2", "-r", "6"], "profile_rate=1", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "stress: corruptions=0 ok" in r.stdout and r.stderr == ""
    (written,) = list(tmp_path.glob("heap-*.pb.gz"))
    assert heapprof.read(str(written)).total("alloc_objects") > 0


@pytest.mark.parametrize("name,args", [("mt_alloc", ["4", "20000"]), ("fork_alloc", ["40"])])
def test_threads_and_forks_give_the_same_output(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                                name: str, args: List[str]) -> None:
    exe = build_c_program(tmp_path_factory, name)
    plain = run([str(exe), *args])
    assert plain.returncode == 0, plain.stderr
    out = tmp_path / "heap-%p.pb.gz"
    r = run([str(exe), *args], "profile_rate=4k", out)
    assert r.returncode == 0 and r.stdout == plain.stdout, r.stderr
    files = list(tmp_path.glob("heap-*.pb.gz"))
    assert files and all(pprof.load(f).sample for f in files)
    if name == "fork_alloc":  # children that _exit write nothing; the parent's is there
        assert any(f.name == f"heap-{int(f.name[5:-6])}.pb.gz" for f in files)


CPYTHON_SCRIPT = ("import json, collections\n"
                  "d = {str(i): [i] * (i % 7) for i in range(20000)}\n"
                  "c = collections.Counter(len(v) for v in d.values())\n"
                  "print(json.dumps(sorted(c.items())), len(json.dumps(d)))\n")


def test_cpython_under_the_profile_prints_the_same(tmp_path: Path) -> None:
    python = shutil.which("python3.11") or sys.executable
    plain = run([python, "-c", CPYTHON_SCRIPT])
    out = tmp_path / "heap.pb.gz"
    r = run([python, "-c", CPYTHON_SCRIPT], "profile_rate=1k", out)
    assert r.returncode == 0 and r.stdout == plain.stdout, r.stderr
    assert len(gzip.decompress(out.read_bytes())) > 65535  # several deflate blocks of the C writer
    hp = heapprof.read(str(out))
    names = {f.function for frames, _ in hp.stacks for f in frames}
    assert any(n.startswith("PyObject_") or n.startswith("_PyObject_") or "list" in n for n in names), names


def test_without_a_rate_the_default_is_gos(sites: Path, tmp_path: Path) -> None:
    out = tmp_path / "heap.pb.gz"
    assert run([str(sites), "4000"], heap=out).returncode == 0
    assert pprof.load(out).period == 512 * 1024


def test_profile_rate_is_checked(sites: Path) -> None:
    r = run([str(sites), "10"], "profile_rate=lots")
    assert "bad value in 'profile_rate=lots'" in r.stderr


def test_goalloc_run_and_profile(sites: Path, tmp_path: Path) -> None:
    """The CLI: run --heap-profile --rate writes CMD's own profile;
    profile prints the top call sites and draws the flame graph."""
    out, svg = tmp_path / "out.pb.gz", tmp_path / "flame.svg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    r = subprocess.run([sys.executable, "-m", "goalloc_ffi.cli", "run", "--heap-profile", str(out), "--rate", "16k",
                        "--", str(sites), "2000", "free"], capture_output=True, text=True, env=env,
                       timeout=TIMEOUT, check=False)
    assert r.returncode == 0, r.stderr
    res = CliRunner().invoke(cli, ["profile", str(out), "--top", "5", "--flame", str(svg)], terminal_width=200)
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if "_site" in line]
    assert rows[0].split("│")[1].strip() == "small_site"  # most live bytes first: big_site's are freed
    assert any(r.split("│")[1].strip() == "small_site" and "│ c/heap_sites.c:" in r for r in rows)  # file:line
    assert svg.read_text().lstrip().startswith("<?xml") and "small_site" in svg.read_text()
    res = CliRunner().invoke(cli, ["profile", str(out), "--sort", "alloc"], terminal_width=200)
    rows = [line for line in res.output.splitlines() if "_site" in line]
    assert rows[0].split("│")[1].strip() == "big_site"


def test_goalloc_profile_refuses_what_is_no_profile(tmp_path: Path) -> None:
    bad = tmp_path / "x.pb.gz"
    bad.write_bytes(b"\x1f\x8b not really")
    res = CliRunner().invoke(cli, ["profile", str(bad)])
    assert res.exit_code == 1 and "x.pb.gz" in res.output


def test_a_misuse_report_carries_the_stack_and_symbolize_names_it(sites: Path, tmp_path: Path) -> None:
    """The report's one "goalloc: " line, then the frames of the bad call
    (object and offset each, taken without malloc), which `goalloc
    symbolize` turns into functions and lines."""
    r = run([str(sites), "doublefree"])
    assert r.returncode == -6, r.stderr  # SIGABRT
    lines = r.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("goalloc: ")] == [lines[0]] and "double free" in lines[0]
    frames = [ln for ln in lines if re.match(r"\s+#\d+ 0x[0-9a-f]+ /\S+\+0x[0-9a-f]+$", ln)]
    assert frames and frames[0].split()[2].startswith(f"{sites}+0x"), r.stderr
    report = tmp_path / "report.txt"
    report.write_text(r.stderr)
    res = CliRunner().invoke(cli, ["symbolize", str(report)])
    assert res.exit_code == 0, res.output
    named = [ln for ln in res.output.splitlines() if "#" in ln]
    assert "bad_free" in named[0] and "heap_sites.c:" in named[0], res.output
    assert "main" in named[1]


def _per_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: str, size: int,
              pairs: int = 500000) -> float:
    """Instructions per malloc(size)+free pair in the hot loop (callgrind),
    as the difference quotient of two runs."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("no valgrind: install the Debian package 'valgrind' (make deps)")
    from goalloc_ffi import launch
    from goalloc_ffi.bench import callgrind_ir

    exe = launch.build_programs(tmp_path / "bin", ["hotloop"])["hotloop"]
    monkeypatch.setenv("GOALLOC", options)
    lo = callgrind_ir(valgrind, exe, 20000, size, goalloc_ffi.lib_path(), tmp_path)
    hi = callgrind_ir(valgrind, exe, 20000 + pairs, size, goalloc_ffi.lib_path(), tmp_path)
    return (hi - lo) / pairs


@pytest.mark.parametrize("size, bound", [(64, 1.04), (512, 1.16)])
def test_sampling_keeps_the_inline_paths_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              size: int, bound: float) -> None:
    """Instructions per malloc+free pair in the hot loop at the default
    rate against sampling off, where closing the inline paths (as the size
    profile does) costs about 4.5 times. What is left is mostly the walks
    (Go's rate: one per 512 KiB, about 12 000 instructions each, so 1.5
    per pair at 64 B and 12 at 512 B) and a few instructions per window
    refill (every 64 and 16 objects). Measured 94.4 -> 96.8 (64 B) and
    113.3 -> 128.5 (512 B), noise about 0.5 between runs (the sample
    count); before the refill's inline count-down and the shorter walk
    99.0 and 138.9."""
    off = _per_pair(tmp_path, monkeypatch, "profile_rate=0", size)
    on = _per_pair(tmp_path, monkeypatch, "profile_rate=512k", size)
    assert on <= bound * off, (off, on)


def test_a_sample_walks_only_the_callers_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At profile_rate=1 every malloc(64) is a sample: the pair's
    instructions are mostly the stack walk, which starts at malloc's caller
    (the record is a tail call of malloc's, and the walk inline in it)
    rather than unwinding goalloc's own frames first, at about 1 500
    instructions each of libgcc's unwinder: 12 400 per pair here (Debian
    12's libgcc), 18 200 with the five frames more it walked before."""
    per_pair = _per_pair(tmp_path, monkeypatch, "profile_rate=1", 64, pairs=10000)
    assert per_pair <= 15000, per_pair


def test_a_long_lived_sample_keeps_its_spans_frees_cheap(tmp_path: Path) -> None:
    """bench's churn (objects of 8..512 B live for a window of 20 000
    allocations, every 64th for 16 windows): a span holding a sample sends
    its frees to the slow path, where those the span's filter clears take
    the inline path's way (its owner's). Whole-program instructions
    (callgrind) with sampling at the default rate within 2.2 % of off:
    measured +1.6 %, +2.6 % when every such free went through free_named's
    checks, +4.3 % before the refill's inline count-down too."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("no valgrind: install the Debian package 'valgrind' (make deps)")
    from goalloc_ffi import launch

    exe = launch.build_programs(tmp_path / "bin", ["churn"])["churn"]

    def instructions(options: str) -> int:
        out = tmp_path / "cg.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC") and k != "LD_PRELOAD"}
        env.update(LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC=options)
        r = subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", str(exe),
                            "2000000", "20000"], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        m = re.search(r"^summary: (\d+)", out.read_text(), re.M)
        assert m is not None
        return int(m.group(1))

    off, on = instructions("profile_rate=0"), instructions("profile_rate=512k")
    assert on <= 1.022 * off, (off, on, on / off)


def test_sampling_maps_little_metadata(sites: Path, tmp_path: Path) -> None:
    """The profile's own memory grows with what it records: the chain heads
    (one page at the first stack, doubled past as many stacks) and the
    map of live samples (one page at first). A few stacks at the default
    rate: the metadata mapped (GOALLOC_STATS) within 64 KiB of sampling
    off; 8 KiB measured, 640 KiB when the heads (512 KiB) and the map
    (128 KiB) were mapped whole."""
    import json

    def metadata(options: str) -> int:
        stats = tmp_path / f"stats-{options}.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC") and k != "LD_PRELOAD"}
        env.update(LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC=options, GOALLOC_STATS=str(stats))
        r = subprocess.run([str(sites), "pairs", "100000"], env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        found = re.search(r'"bytes_metadata": (\d+)', stats.read_text())
        assert found is not None
        return int(found.group(1))

    off, on = metadata("profile_rate=0"), metadata("profile_rate=512k")
    assert on - off <= 64 << 10, (off, on)


def test_many_stacks_grow_the_chain_heads(sites: Path, tmp_path: Path) -> None:
    """heap_sites stacks: 2048 distinct stacks (a binary tree of calls, 11
    levels deep), every allocation sampled, in two passes: the heads grow
    from 512 to 4096 during the first and the second finds each stack's
    one bucket (4096 objects in 2048 buckets of 2, not 4096 of 1)."""
    out = tmp_path / "heap.pb.gz"
    r = run([str(sites), "stacks"], "profile_rate=1", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    deep = [tuple(s.location_id) for s in pprof.load(out).sample if len(s.location_id) >= 13]
    by_stack = {stk: [v for v in (s.value[0] for s in pprof.load(out).sample
                                  if tuple(s.location_id) == stk)] for stk in set(deep)}
    assert len(deep) == 2048 and all(v == [2] for v in by_stack.values()), (len(deep), len(by_stack))


def test_small_classes_count_down_every_window_refill(sites: Path, tmp_path: Path) -> None:
    """Hot loops of malloc+free pairs of 64, 512 and 2000 bytes (a window
    refill every 64, 16 and 4 objects) and a sliding window of 512: each
    site's scaled estimate within 8 % of the objects it allocated (at
    4 KiB, thousands of samples each: a refill's count-down that lost or
    added objects would move them by far more), and nothing live."""
    out = tmp_path / "heap.pb.gz"
    n = 400000
    r = run([str(sites), "pairs", str(n)], "profile_rate=4k", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    f = by_function(heapprof.read(str(out)))
    for site, count in (("pairs_64", n), ("pairs_512", n // 4), ("pairs_2000", n // 16),
                        ("window_512", n // 4)):
        assert abs(f[site]["alloc_objects"] - count) <= 0.08 * count, (site, count, f[site])
        assert f[site]["inuse_objects"] == 0, (site, f[site])


def test_a_running_process_writes_its_profile_when_asked(sites: Path, tmp_path: Path) -> None:
    """goalloc profile --pid: no signal, a request file the process looks
    for on its slow paths; the profile shows what is live at that moment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC="profile_rate=16k",
               GOALLOC_HEAP_PROFILE=str(tmp_path / "h-%p.pb.gz"))
    proc = subprocess.Popen([str(sites), "serve", "20"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "serving\n"
        res = CliRunner().invoke(cli, ["profile", "--pid", str(proc.pid)], terminal_width=200)
        assert res.exit_code == 0, res.output
        assert (tmp_path / f"h-{proc.pid}.pb.gz").exists() and proc.poll() is None  # written while running
        assert not (tmp_path / f"h-{proc.pid}.pb.gz.request").exists()
        live = by_function(heapprof.read(str(tmp_path / f"h-{proc.pid}.pb.gz")))["small_site"]["inuse_space"]
        assert abs(live - 2000 * OBJ) <= 0.25 * 2000 * OBJ, live  # the 2000 live objects, estimated
    finally:
        proc.kill()
        proc.wait()
    res = CliRunner().invoke(cli, ["profile", "--pid", str(os.getpid())])
    assert res.exit_code == 1 and "not started with GOALLOC_HEAP_PROFILE" in res.output
