"""`goalloc compare`: configurations, runs under each, table, JSON and chart.

End to end on real programs (CPython with PYTHONMALLOC=malloc, sqlite3),
with tiny repetition counts; then the error paths: a malformed
configuration, one the library rejects, a failing command, output that
differs between configurations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from goalloc_ffi import compare, stats
from goalloc_ffi.benchwork import python_exe

pytestmark = pytest.mark.preload
GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]
PY_LOOP = ("d = {}\n"
           "for i in range(60000):\n"
           "    d[i] = ('x' * (i % 90), [i] * (i % 7))\n"
           "    if i % 3 == 0: del d[i // 2]\n"
           "print(len(d), sum(len(v[0]) for v in d.values()))\n")


def goalloc(*args: str, env: Dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, COLUMNS="200", PYTHONMALLOC="malloc", PYTHONHASHSEED="0", **(env or {}))
    return subprocess.run([*GOALLOC, *args], capture_output=True, text=True, timeout=300, env=e, cwd=cwd)


def r_stdout_lines(run: Dict[str, Any]) -> list[str]:
    return str(run["r"].stdout).splitlines()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------


def test_parse_config() -> None:
    assert compare.parse_config("default") == compare.Config("default", True)
    assert compare.parse_config("glibc") == compare.Config("glibc", False)
    c = compare.parse_config("tiny=0,sizeclasses=fitted.tsv")
    assert c.preload and c.options == (("tiny", "0"), ("sizeclasses", "fitted.tsv"))
    assert c.goalloc_env == "tiny=0,sizeclasses=fitted.tsv"
    for bad, message in [("", "empty"), ("tiny", "not KEY=VALUE"), ("tiny=", "no value"),
                         ("=1", "not an option name"), ("tiny=0,,reclaim=1", "empty item"),
                         ("tiny=0,tiny=1", "given twice"), ("ti ny=0", "not an option name")]:
        with pytest.raises(ValueError, match=message):
            compare.parse_config(bad)


def test_peers_and_other_libraries_are_configurations(tmp_path: Path) -> None:
    from goalloc_ffi import lib_path
    from goalloc_ffi.allocators import PEERS

    for name in PEERS:
        assert compare.parse_config(name) == compare.Config(name, True, allocator=name)
    c = compare.parse_config(f"lib={lib_path(nostats=True)}")
    assert c.allocator == "lib" and c.library == lib_path(nostats=True) and c.is_goalloc
    with pytest.raises(ValueError, match="no such file"):
        compare.parse_config(f"lib={tmp_path / 'none.so'}")


def test_paired_ratio_and_its_interval() -> None:
    cfgs = [compare.Config("a", True), compare.Config("b", False)]
    cmp = compare.Comparison(["x"], cfgs, 4)
    for rep, (ta, tb) in enumerate([(1.0, 2.0), (1.1, 2.0), (0.9, 2.1), (1.0, 1.9)]):
        cmp.runs += [compare.Run("a", rep, ok=True, wall=ta), compare.Run("b", rep, ok=True, wall=tb)]
    wall = next(m for m in compare.METRICS if m.name == "wall")
    iv = cmp.paired_ratio("b", wall)
    assert iv is not None and iv.n == 4 and iv.lo is not None and iv.hi is not None
    assert iv.lo < iv.ratio < iv.hi and 1.5 < iv.lo and iv.hi < 2.6
    from goalloc_ffi.compare_report import verdict

    assert verdict(cmp, cfgs[1]).startswith(f"b ran {iv.ratio:.2f} times slower than a (95% confidence interval")


def test_run_environment_replaces_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOALLOC", "tiny=0")
    monkeypatch.setenv("GOALLOC_STATS", "/elsewhere")
    env = compare.run_env(compare.parse_config("default"), "/tmp/s-%p.json")
    assert "GOALLOC" not in env and env["GOALLOC_STATS"] == "/tmp/s-%p.json" and "LD_PRELOAD" not in env
    env = compare.run_env(compare.parse_config("glibc"), "/tmp/s-%p.json")
    assert "GOALLOC" not in env and "GOALLOC_STATS" not in env
    assert compare.run_env(compare.parse_config("reclaim=0"), None)["GOALLOC"] == "reclaim=0"


def test_metrics_read_statistics_the_library_writes() -> None:
    assert all(name in stats.TOTAL_NAMES for m in compare.METRICS for name in m.totals)
    assert compare.FRAG_LIVE in stats.TOTAL_NAMES and "ESTIMATE" in stats.TOTAL_DOCS[compare.FRAG_LIVE]


def test_fragmentation_metrics_read_the_totals_the_library_wrote() -> None:
    """From a real statistics document (the private heap's, with a known
    waste added): the exact total, its share and the live estimate; n/a
    (None) for a glibc run and for a document of another schema version."""
    from goalloc_ffi import ffi, lib

    ptrs = [lib.ga_malloc(40) for _ in range(500)]  # 48-byte class: 8 bytes of waste each
    try:
        doc = stats.stats().to_json()
    finally:
        for p in ptrs:
            lib.ga_free(p)
    assert ffi.NULL not in ptrs
    t = doc["totals"]
    assert t[compare.FRAG_EXACT] >= 500 * 8
    run = compare.Run("default", 0, ok=True, stats=doc)
    got = {m.name: m.get(run) for m in compare.METRICS}
    assert got["fragmentation"] == t[compare.FRAG_EXACT]
    assert got["fragmentation_live"] == t[compare.FRAG_LIVE]
    assert got["fragmentation_pct"] == pytest.approx(
        100 * t[compare.FRAG_EXACT] / (t[compare.FRAG_EXACT] + t[compare.REQUESTED]))
    assert got["peak_heap"] == t["peak_heap_bytes"] and got["spans"] == t["mcentral_grows"]
    glibc = compare.Run("glibc", 0, ok=True, stats=None)
    other = compare.Run("default", 0, ok=True, stats=dict(doc, version=doc["version"] + 1))
    for m in compare.METRICS:
        if m.totals:
            assert m.get(glibc) is None and m.get(other) is None, m.name


# --------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    d = tmp_path_factory.mktemp("compare")
    r = goalloc("compare", "-n", "2", "-c", "default", "-c", "tiny=0", "-c", "glibc", "--json", str(d / "out.json"),
                "--chart", str(d / "out.png"), "--", python_exe(), "-c", PY_LOOP)
    return {"r": r, "dir": d}


def test_compare_runs_every_configuration_interleaved(python_run: Dict[str, Any]) -> None:
    r = python_run["r"]
    assert r.returncode == 0, r.stdout + r.stderr
    header = next(ln for ln in r.stdout.splitlines() if "metric" in ln)
    assert header.index("default") < header.index("tiny=0") < header.index("glibc")
    for title in ("wall time", "peak RSS", "peak heap in use", "internal fragmentation", "spans", "pages released"):
        assert title in r.stdout
    runs_row = next(ln for ln in r.stdout.splitlines() if ln.strip("│ ").startswith("runs"))
    assert runs_row.count("2 ok") == 3
    doc = json.loads((python_run["dir"] / "out.json").read_text())
    assert doc["schema"] == compare.SCHEMA and doc["reps"] == 2
    assert [c["label"] for c in doc["configs"]] == ["default", "tiny=0", "glibc"]
    order = [(run["rep"], run["config"]) for run in doc["runs"]]
    assert order == [(rep, c) for rep in range(2) for c in ("default", "tiny=0", "glibc")]
    assert len({run["stdout_sha256"] for run in doc["runs"]}) == 1 and doc["failed"] == 0


def test_compare_reads_each_runs_statistics(python_run: Dict[str, Any]) -> None:
    doc = json.loads((python_run["dir"] / "out.json").read_text())
    for run in doc["runs"]:
        assert run["ok"] and run["wall"] > 0 and run["maxrss_kib"] > 0
        if run["config"] == "glibc":
            assert run["stats"] is None
        else:
            s = stats.from_json(run["stats"])  # the library's own document, as written
            assert s.pid == run["pid"]
            assert s.totals.small_mallocs > 1000 and s.totals.peak_heap_bytes > 0
    m = doc["metrics"]
    assert m["peak_heap"]["glibc"]["median"] is None and m["peak_heap"]["tiny=0"]["median"] > 0
    # internal fragmentation: the library's exact total, a number for goalloc, n/a for glibc
    for label in ("default", "tiny=0"):
        frag = sorted(run["stats"]["totals"][compare.FRAG_EXACT] for run in doc["runs"] if run["config"] == label)
        assert m["fragmentation"][label]["median"] == sum(frag) / 2 > 0
        assert 0 < m["fragmentation_pct"][label]["median"] < 100
        assert m["fragmentation_live"][label]["median"] is not None
    for name in ("fragmentation", "fragmentation_pct", "fragmentation_live"):
        assert m[name]["glibc"]["median"] is None
    cells = next(ln for ln in r_stdout_lines(python_run) if "internal fragmentation (exact)" in ln).split("│")
    assert [c.strip() for c in cells[2:5]][2] == "n/a"
    assert all(c.strip().split()[1] in ("KiB", "MiB") for c in cells[2:4]), cells
    assert m["wall"]["default"]["ratio"] == 1.0 and m["peak_rss"]["glibc"]["ratio"] > 0
    for name in ("wall", "peak_rss"):
        for label in ("default", "tiny=0", "glibc"):
            v = m[name][label]
            assert v["n"] == 2 and v["min"] <= v["median"] <= v["max"]
    # tiny=0 reached the library: no tiny blocks, and every request under 16 B took a slot of its own
    tiny0 = [run["stats"]["totals"] for run in doc["runs"] if run["config"] == "tiny=0"]
    default = [run["stats"]["totals"] for run in doc["runs"] if run["config"] == "default"]
    assert all(t["tiny_blocks"] == 0 == t["tiny_objects"] for t in tiny0)
    assert max(t["small_mallocs"] for t in default) < min(t["small_mallocs"] for t in tiny0)


def test_compare_draws_a_png(python_run: Dict[str, Any]) -> None:
    from matplotlib import image

    path = python_run["dir"] / "out.png"
    width, height = png_size(path)
    assert width >= 600 and height >= 400
    assert image.imread(str(path)).shape[:2] == (height, width)


STDLIB_AST = Path(compare.__file__).resolve().parent / "workloads" / "stdlib_ast.py"


def test_profile_fit_compare_chain_on_cpython(tmp_path: Path) -> None:
    """The README's worked example, small: record CPython's size profile,
    fit a table to it (align 8, weight count: the exact fragmentation
    total is what it minimises, up to span tails), then compare that table
    with the default one and glibc on the same program."""
    from goalloc_ffi import profile as size_profile
    from goalloc_ffi import sizeclass_fit as sf

    cmd = [python_exe(), str(STDLIB_AST), "12"]
    r = goalloc("run", "--profile-sizes", str(tmp_path / "prof.json"), "--", *cmd)
    assert r.returncode == 0, r.stderr
    prof = size_profile.load(tmp_path / "prof.json")
    assert prof.total_requests > 10000 and prof.peak_live_bytes > 0
    r = goalloc("sizeclasses", "--fit", "prof.json", "--align", "8", "--weight", "count", "-o", "fit8.tsv",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    fitted = sf.read_tsv(tmp_path / "fit8.tsv")
    assert fitted == list(sf.fit(prof, weight="count", align=8).classes)
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "sizeclasses=fit8.tsv,align=8", "-c", "glibc",
                "--json", "cmp.json", "--", *cmd, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "cmp.json").read_text())
    by_config = {run["config"]: run for run in doc["runs"]}
    ours = by_config["sizeclasses=fit8.tsv,align=8"]["stats"]
    assert [row["size"] for row in ours["classes"]] == [c.size for c in fitted[1:]]  # the run used the fitted table
    m = doc["metrics"]
    for name in ("fragmentation", "fragmentation_pct", "fragmentation_live", "spans"):
        assert m[name]["glibc"]["median"] is None
        assert all(m[name][label]["median"] is not None for label in ("default", "sizeclasses=fit8.tsv,align=8"))
    frag = {label: m["fragmentation"][label]["median"] for label in ("default", "sizeclasses=fit8.tsv,align=8")}
    assert frag["default"] == by_config["default"]["stats"]["totals"][compare.FRAG_EXACT]
    # CPython's 56-, 72- and 120-byte objects round up in Go 1.12's table, not in the fitted one
    assert sf.evaluate(fitted, prof).cumulative_rounding < sf.evaluate(sf.go_classes("go1.12"), prof).cumulative_rounding
    assert frag["sizeclasses=fit8.tsv,align=8"] < frag["default"]


def test_a_table_file_is_found_by_processes_that_change_directory(tmp_path: Path) -> None:
    """sizeclasses=FILE relative to where compare runs reaches a process of
    the command that runs elsewhere (as pyenv's shims do)."""
    from goalloc_ffi import sizeclass_fit as sf
    from goalloc_ffi import sizeclass_table as sct

    sct_text = sct.tsv_text(sf.go_classes("go1.16"), "a copy of go1.16", sf.geometry())
    (tmp_path / "t.tsv").write_text(sct_text)
    (tmp_path / "go1.16").write_text("not a table")  # a built-in name stays a name
    assert compare.parse_config("sizeclasses=go1.16").goalloc_env == "sizeclasses=go1.16"
    elsewhere = f"cd / && exec {python_exe()} -c 'print(sum(range(99)))'"
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "sizeclasses=t.tsv,align=8", "--json", "c.json",
                "--", "sh", "-c", elsewhere, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = json.loads((tmp_path / "c.json").read_text())["runs"]
    assert runs[1]["config"] == "sizeclasses=t.tsv,align=8"  # the label stays as given
    assert runs[1]["stats"]["size_classes"] == str(tmp_path / "t.tsv")
    assert [row["size"] for row in runs[1]["stats"]["classes"]] == [c.size for c in sf.go_classes("go1.16")[1:]]


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 not installed")
def test_compare_sqlite_with_stdin(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text("CREATE TABLE t(a, b);\n"
                   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "
                   "INSERT INTO t SELECT x, printf('%0*d', x % 200 + 1, 0) FROM c;\n"
                   "SELECT count(*), sum(length(b)) FROM t;\n")
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "glibc", "--stdin", str(sql), "--json",
                str(tmp_path / "s.json"), "--", "sqlite3", ":memory:")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    want = f"5000|{sum(x % 200 + 1 for x in range(1, 5001))}"
    assert [run["stdout_head"] for run in doc["runs"]] == [want] * 2
    assert doc["runs"][0]["stats"]["totals"]["small_mallocs"] > 5000


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_compare_with_a_library_warmup_markdown_and_verdict(tmp_path: Path) -> None:
    from goalloc_ffi import lib_path
    from goalloc_ffi.allocators import PEERS, find_peer

    other = f"lib={lib_path(nostats=True)}"
    peers = [p for p in PEERS if find_peer(p)][:1]
    r = goalloc("compare", "-n", "2", "--warmup", "1", "-c", "default", "-c", other, *sum((["-c", p] for p in peers), []),
                "--markdown", "c.md", "--json", "c.json", "--", python_exe(), "-c", "print(sum(range(9999)))",
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warm-up 1/1" in r.stderr and "after 1 warm-up round(s)" in r.stdout
    assert re.search(rf"{re.escape(other)} ran \d+\.\d\d times (faster|slower) than default \(95% confidence", r.stdout)
    doc = json.loads((tmp_path / "c.json").read_text())
    assert len(doc["runs"]) == 2 * (2 + len(peers)) and doc["warmup"] == 1  # warm-up runs not kept
    assert doc["metrics"]["wall"][other]["paired_ratio"]["n"] == 2
    md = (tmp_path / "c.md").read_text()
    assert f"| metric | default | {other} |" in md and "| runs | 2 ok | 2 ok |" in md and "ran" in md


def test_a_peer_that_is_not_installed_stops_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from goalloc_ffi.allocators import PEERS, find_peer

    missing = [p for p in PEERS if find_peer(p) is None]
    if not missing:
        pytest.skip("every peer is installed")
    r = goalloc("compare", "-c", "default", "-c", missing[0], "--", python_exe(), "-c", "pass")
    assert r.returncode == 2 and f"{missing[0]}: not installed" in r.stderr


def test_bad_configuration_strings() -> None:
    for bad in ("tiny", "tiny=0,,reclaim=1", "=0"):
        r = goalloc("compare", "-c", "default", "-c", bad, "--", "true")
        assert r.returncode == 2 and repr(bad) in r.stderr, r.stderr
    r = goalloc("compare", "-c", "tiny=0", "-c", "tiny=0", "--", "true")
    assert r.returncode == 2 and "given twice" in r.stderr


def test_options_the_library_rejects_stop_everything(tmp_path: Path) -> None:
    r = goalloc("compare", "-c", "default", "-c", "no_such_option=1", "-c", "tiny=7", "--json",
                str(tmp_path / "x.json"), "--", python_exe(), "-c", "pass")
    assert r.returncode == 2
    assert "no_such_option" in r.stderr and "tiny=7" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_a_failing_command_fails_the_comparison(tmp_path: Path) -> None:
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "glibc", "--json", str(tmp_path / "f.json"),
                "--", python_exe(), "-c", "raise SystemExit(3)")
    assert r.returncode == 1
    assert "FAIL 1/1" in r.stdout and "exit status 3" in r.stdout
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["failed"] == 2 and all(run["exit"] == 3 for run in doc["runs"])
    r = goalloc("compare", "-c", "default", "--", str(tmp_path / "missing"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_output_that_differs_between_configurations() -> None:
    probe = "import os; print(os.environ.get('GOALLOC'))"
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "reclaim=0", "--", python_exe(), "-c", probe)
    assert r.returncode == 1 and "output differs from default's" in r.stdout
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "reclaim=0", "--ignore-output", "--",
                python_exe(), "-c", probe)
    assert r.returncode == 0, r.stdout
    exit_probe = "import os, sys; sys.exit(1 if os.environ.get('GOALLOC') else 0)"
    r = goalloc("compare", "-n", "1", "-c", "default", "-c", "reclaim=0", "--ignore-output", "--",
                python_exe(), "-c", exit_probe)
    assert r.returncode == 1 and "exit status 1 where default had 0" in r.stdout
