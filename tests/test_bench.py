"""The benchmark suite (goalloc bench, bench/README.md) as a smoke test.

`goalloc bench --quick` for glibc and goalloc (every workload once, at
small sizes), its JSON and PNG, FAIL cells for failing runs, the launcher's
measurements, the redis shim, and the C loops of csrc/benchloops.c that
pytest-benchmark times (bench/bench_ffi.py). Timings are printed by the
suite, never asserted here.
"""

from __future__ import annotations

import io
import json
import re
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rich.console import Console

from goalloc_ffi import allocators, bench, benchreport, benchsuite, benchwork, launch, lib

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "goalloc_ffi.cli", "bench"]
FAILED = 2**64 - 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

preload = pytest.mark.preload


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output directory per module, so the workloads compile once."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def quick_run(outdir: Path) -> Dict[str, Any]:
    """`goalloc bench --quick -a glibc,goalloc`, run once for the module."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "COLUMNS")}
    r = subprocess.run([*CLI, "--quick", "-a", "glibc,goalloc", "--out", str(outdir)],
                       capture_output=True, text=True, timeout=110, env=env)
    jsons = sorted(outdir.glob("bench-quick-*.json"))
    pngs = sorted(outdir.glob("bench-quick-*.png"))
    return {"proc": r, "json": jsons[-1] if jsons else None, "png": pngs[-1] if pngs else None}


# ---------------------------------------------------------------------------
# goalloc bench --quick


@preload
def test_quick_run_passes_for_glibc_and_goalloc(quick_run: Dict[str, Any]) -> None:
    r = quick_run["proc"]
    fails = [ln for ln in r.stdout.splitlines() if "FAIL" in ln]
    assert r.returncode == 0, f"exit {r.returncode}\n" + "\n".join(fails) + r.stderr[-3000:]
    for text in ("wall time", "peak RSS", "geometric mean", "glibc", "goalloc"):
        assert text in r.stdout


@preload
def test_quick_run_writes_valid_json(quick_run: Dict[str, Any]) -> None:
    assert quick_run["json"] is not None, quick_run["proc"].stdout[-2000:]
    data = json.loads(quick_run["json"].read_text())
    assert data["schema"] == benchreport.SCHEMA
    assert data["config"]["quick"] is True and data["config"]["reps"] == 1
    assert [a["name"] for a in data["allocators"]] == ["glibc", "goalloc"]
    assert data["allocators"][0]["preload"] is None and data["allocators"][1]["preload"].endswith("libgoalloc.so")
    machine = data["machine"]
    assert machine["nproc"] >= 1 and machine["glibc"].startswith("glibc")
    names = {w.name for w in benchwork.workloads()}
    ran = {w["name"] for w in data["workloads"]}
    assert ran | set(data["skipped"]) == names and not ran & set(data["skipped"])
    assert len(data["runs"]) == 2 * len(ran)
    for run in data["runs"]:
        assert run["ok"], run
        assert run["wall"] > 0 and run["maxrss_kib"] > 0 and run["user"] >= 0 and run["sys"] >= 0
    for name in ran:
        cell = data["summary"][name]["goalloc"]
        assert cell["ok"] == 1 and cell["failed"] == 0
        assert cell["wall_ratio"] > 0 and cell["maxrss_kib_ratio"] > 0
        assert data["summary"][name]["glibc"]["wall_ratio"] == pytest.approx(1.0)
    geo = data["geomean"]["goalloc"]
    assert geo["wall_ratio"] > 0 and geo["wall_workloads"] == len(ran)


@preload
def test_quick_run_draws_a_png(quick_run: Dict[str, Any]) -> None:
    assert quick_run["png"] is not None, quick_run["proc"].stdout[-2000:]
    raw = quick_run["png"].read_bytes()
    assert raw[:8] == PNG_MAGIC and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert width >= 600 and height >= 400
    from matplotlib import image

    assert image.imread(str(quick_run["png"])).shape[:2] == (height, width)


@preload
def test_redis_under_glibc_gets_glibc_malloc(quick_run: Dict[str, Any]) -> None:
    """Debian's redis-server links jemalloc: the glibc column must preload the
    shim, and ld.so must bind redis-server's malloc to it."""
    data = json.loads(quick_run["json"].read_text())
    if "redis" in data["skipped"]:
        pytest.skip(f"redis: {data['skipped']['redis']}")
    served = data["redis_malloc_served_by"]
    assert served["glibc"].endswith(launch.SHIM)
    assert served["goalloc"].endswith("libgoalloc.so")


# ---------------------------------------------------------------------------
# FAIL cells


def _run_failing_suite(outdir: Path) -> benchsuite.Suite:
    good = next(w for w in benchwork.workloads() if w.name == "simple")
    crash = benchwork.Workload("crashes", "pattern", "exits 3", lambda ctx: ["sh", "-c", "echo ok; exit 3"])
    silent = benchwork.Workload("silent", "pattern", "prints nothing", lambda ctx: ["true"])
    # prints something else under a preload: the output check must catch it
    differs = benchwork.Workload("differs", "pattern", "output depends on LD_PRELOAD",
                             lambda ctx: ["sh", "-c", 'echo "ok ${LD_PRELOAD:+preloaded}"'])
    absent = benchwork.Workload("absent", "program", "needs a program that is not installed", lambda ctx: [],
                            needs=("goalloc-no-such-program",))
    allocs = allocators.discover_allocators(["glibc", "goalloc"])
    console = Console(file=io.StringIO())
    return benchsuite.run_suite(allocs, [crash, silent, absent, differs, good], reps=1, quick=True, outdir=outdir,
                           console=console)


@preload
def test_a_failing_run_is_a_fail_cell_and_the_run_goes_on(outdir: Path) -> None:
    suite = _run_failing_suite(outdir)
    assert len(suite.runs) == 8  # nothing stopped the run
    assert suite.skipped == {"absent": "goalloc-no-such-program not installed"}
    errors = {(r.workload, r.allocator): r.error for r in suite.runs if not r.ok}
    assert errors[("crashes", "glibc")] == "exit status 3"
    assert errors[("crashes", "goalloc")] == "exit status 3"
    assert "does not match" in errors[("silent", "glibc")]
    assert ("differs", "glibc") not in errors
    assert errors[("differs", "goalloc")].startswith("output differs from glibc's")
    assert all(r.ok for r in suite.runs if r.workload == "simple")
    assert suite.any_failed
    assert suite.ratio("crashes", "goalloc", "wall") is None
    assert suite.ratio("simple", "goalloc", "wall") is not None
    assert suite.geomean("goalloc", "wall")[1] == 1  # only the clean workload counts

    console = Console(record=True, width=200, file=io.StringIO())
    benchreport.print_report(suite, console)
    text = console.export_text()
    rows = {ln.split()[1]: ln for ln in text.splitlines() if ln.startswith("│ ")}
    assert rows["crashes"].count("FAIL 1/1") == 2
    assert rows["differs"].count("FAIL 1/1") == 1
    assert "FAIL" not in rows["simple"]
    assert "absent" not in rows  # skipped workloads are listed under the tables
    assert "skipped: absent (goalloc-no-such-program not installed)" in text

    data = json.loads(json.dumps(benchreport.to_json(suite)))
    assert data["summary"]["crashes"]["goalloc"]["failed"] == 1
    assert data["summary"]["crashes"]["goalloc"]["errors"] == ["exit status 3"]
    png = outdir / "fails.png"
    benchreport.plot(suite, png)
    assert png.read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------
# The launcher and the CLI


@preload
def test_launcher_measures_the_child_not_the_runner(outdir: Path, tmp_path: Path) -> None:
    bins = launch.build_programs(outdir / "bin")
    env = launch.clean_env(keep_goalloc=True)
    small, out, err = launch.launch(bins["launcher"], ["true"], None, env, 30, tmp_path)
    assert small["exit"] == 0 and small["signal"] == 0 and out == "" and err == ""
    # This pytest process is far larger than `true`; a fork from it would
    # start with its RSS. The launcher is small, so its child stays small.
    import resource

    assert small["maxrss_kib"] < 16 * 1024 < resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    big, _, _ = launch.launch(bins["launcher"], [sys.executable, "-c", "b = bytearray(96 << 20)"], None,
                             env, 30, tmp_path)
    assert big["maxrss_kib"] >= 96 * 1024
    killed, _, _ = launch.launch(bins["launcher"], ["sh", "-c", "kill -SEGV $$"], None, env, 30, tmp_path)
    assert killed["signal"] == 11 and launch.status_error(killed, 30) == "killed by SIGSEGV"
    slow, _, _ = launch.launch(bins["launcher"], ["sleep", "30"], None, env, 1, tmp_path)
    assert slow["timeout"] == 1 and launch.status_error(slow, 1).startswith("timed out")


@preload
def test_cli_lists_workloads_and_rejects_unknown_names() -> None:
    listing = subprocess.run([*CLI, "--list"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    for w in benchwork.workloads():
        assert w.name in listing.stdout
    bad = subprocess.run([*CLI, "--quick", "-a", "glibc,nosuchalloc"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "nosuchalloc" in bad.stdout


# ---------------------------------------------------------------------------
# csrc/benchloops.c (the loops bench/bench_ffi.py times)


@pytest.mark.parametrize("loop, args", [
    ("pairs", (32, 5000)),
    ("pairs", (70000, 300)),
    ("mixed", (20000, 500, 7)),
    ("cross_thread", (48, 10000)),
])
def test_bench_loops_do_the_same_work_on_both_heaps(loop: str, args: tuple) -> None:
    fn = getattr(lib, f"ga_bench_{loop}")
    on_system = fn(lib.GA_BENCH_SYSTEM, *args)
    on_goalloc = fn(lib.GA_BENCH_GOALLOC, *args)
    assert on_system != FAILED and on_system == on_goalloc


def test_bench_loops_reject_bad_arguments() -> None:
    assert lib.ga_bench_pairs(7, 32, 10) == FAILED
    assert lib.ga_bench_pairs(lib.GA_BENCH_GOALLOC, 0, 10) == FAILED
    assert lib.ga_bench_mixed(lib.GA_BENCH_GOALLOC, 10, 0, 1) == FAILED
    assert lib.ga_bench_cross_thread(-1, 32, 10) == FAILED
    assert lib.ga_bench_debug_level() in (0, 1, 2, 3)


def test_pytest_benchmark_file_runs_quick() -> None:
    pytest.importorskip("pytest_benchmark")
    env = dict(os.environ, GOALLOC_BENCH_QUICK="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                        str(ROOT / "bench" / "bench_ffi.py")], capture_output=True, text=True, timeout=120,
                       env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    counts: List[str] = [ln for ln in r.stdout.splitlines() if " passed" in ln]
    assert counts and "failed" not in counts[-1]


@preload
def test_tables_fold_instead_of_cutting_figures(outdir: Path) -> None:
    """Four columns of figures through a pipe 60 columns wide: the tables
    fold into parts, no figure ends in "…" and no line is wider."""
    from goalloc_ffi import lib_path

    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "COLUMNS")}
    env["COLUMNS"] = "60"
    r = subprocess.run([*CLI, "--quick", "-w", "simple", "-a", "glibc,goalloc",
                        "--lib", f"nostats={lib_path(nostats=True)}", "--lib", f"debug={lib_path(debug=True)}",
                        "--out", str(outdir)], capture_output=True, text=True, timeout=110, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "…" not in r.stdout, r.stdout
    assert max(len(ln) for ln in r.stdout.splitlines() if "│" in ln or "┃" in ln) <= 60, r.stdout
    assert "(1/2)" in r.stdout and "(2/2)" in r.stdout  # folded, not cut
    assert re.search(r"×\d+\.\d\d", r.stdout), r.stdout  # ratios whole
