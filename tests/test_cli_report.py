"""`goalloc run --report` and `goalloc stats` as people use them: through a
pipe (80 columns, so a cut digit shows), the report apart from the
program's output, every process named, provenance in the files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from goalloc_ffi import stats as st

pytestmark = pytest.mark.preload
GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]
BUSY = "d = {i: str(i) * 3 for i in range(70000)}; print('done', len(d))"


def goalloc(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "GOALLOC", "LINES")}
    return subprocess.run([*GOALLOC, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**e, "PYTHONMALLOC": "malloc", **env})


def numbers(text: str) -> set[str]:
    """Every figure of the table cells (digits, with a decimal point)."""
    return {m for ln in text.splitlines() if "│" in ln for m in re.findall(r"\d+(?:\.\d+)?", ln)}


def test_report_goes_to_stderr_and_never_cuts_a_digit(tmp_path: Path) -> None:
    """Item 1 and 2: stdout is the program's alone; through a pipe every
    count of the statistics file appears whole in the report, and no cell
    ends in an ellipsis."""
    out = tmp_path / "s.json"
    r = goalloc("run", "--stats", str(out), "--report", "--", sys.executable, "-c", BUSY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done 70000\n"
    s = st.load(out)
    shown = numbers(r.stderr)
    for name in ("small_mallocs", "small_frees", "mcache_refills", "mcentral_grows"):
        assert str(getattr(s.totals, name)) in shown, (name, r.stderr)
    for c in st.busiest(s, 15):
        assert {str(c.mallocs), str(c.peak_span_bytes), str(c.frag_cumulative_bytes)} <= shown, c
    assert "…" not in "".join(ln for ln in r.stderr.splitlines() if "│" in ln)
    assert max(len(ln) for ln in r.stderr.splitlines()) <= 80


@pytest.mark.parametrize("columns", ["40", "200"])
def test_stats_command_folds_the_tables_to_any_width(tmp_path: Path, columns: str) -> None:
    out = tmp_path / "s.json"
    assert goalloc("run", "--stats", str(out), "--", sys.executable, "-c", BUSY).returncode == 0
    r = goalloc("stats", str(out), COLUMNS=columns)
    assert r.returncode == 0, r.stderr
    assert str(st.load(out).totals.small_mallocs) in numbers(r.stdout)
    assert max(len(ln) for ln in r.stdout.splitlines()) <= int(columns)
    assert "…" not in r.stdout


def test_report_file_and_report_pid(tmp_path: Path) -> None:
    """--report-file takes the report out of both streams; --report-pid
    summarises a chosen process of the command; processes are named."""
    inner = f"{sys.executable} -c \"import os; print(os.getpid()); x = [str(i) for i in range(5000)]\""
    cmd = ["sh", "-c", f"{inner}; {sys.executable} -c 'print(1)'"]
    r = goalloc("run", "--report-file", "rep.txt", "--", *cmd, cwd=tmp_path)
    assert r.returncode == 0 and "goalloc" not in r.stderr, r.stderr
    child = int(r.stdout.split()[0])
    text = (tmp_path / "rep.txt").read_text()
    assert "other processes of the command" in text and str(child) in text
    r = goalloc("run", "--report", "--report-pid", str(child), "--", *cmd[:2],
                f"exec {sys.executable} -c 'import os; print(os.getpid())'")
    assert r.returncode == 0
    r = goalloc("run", "--report", "--report-pid", "1", "--", *cmd)
    assert "--report-pid 1: no statistics of that process" in r.stderr
    head = next(ln for ln in text.splitlines() if ln.startswith("goalloc statistics of pid"))
    assert "python" in head and "-c" in head  # the process's name and command line


def test_statistics_say_how_they_were_made(tmp_path: Path) -> None:
    """Item 6: version, comm, argv and every option in effect."""
    out = tmp_path / "s.json"
    r = goalloc("run", "--stats", str(out), "--set", "tiny=0", "--set", "refill=4", "--", sys.executable, "-c",
                "print(2)")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["version"] == st.VERSION >= 3
    from goalloc_ffi import ffi, lib

    assert doc["goalloc_version"] == ffi.string(lib.ga_version()).decode()
    assert doc["argv"] == [sys.executable, "-c", "print(2)"] and doc["argv_truncated"] is False
    assert doc["comm"] == Path(sys.executable).name[:15]
    assert doc["options"]["tiny"] == "0" and doc["options"]["refill"] == "4"
    n = int(lib.ga_option_count()) if hasattr(lib, "ga_option_count") else len(doc["options"])
    assert len(doc["options"]) == n
    s = st.load(out)
    assert s.argv == tuple(doc["argv"]) and s.options == doc["options"]


def test_per_class_peaks_name_the_class_of_the_peak(tmp_path: Path) -> None:
    """Item 7: a class that held 40 MB at the peak and nothing at exit
    tops the busiest classes, with its peak."""
    code = ("import ctypes; libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p\n"
            "ps = [libc.malloc(1000) for _ in range(40000)]\n"
            "for p in ps: libc.free(ctypes.c_void_p(p))\n")
    out = tmp_path / "s.json"
    r = goalloc("run", "--stats", str(out), "--report", "--", sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
    s = st.load(out)
    top = st.busiest(s, 1)[0]
    assert top.size == 1024 and top.peak_span_bytes >= 40000 * 1024 and top.objects_in_use < 100
    assert top.peak_class_span_bytes >= top.peak_span_bytes
    assert sum(c.peak_span_bytes for c in s.classes) <= s.totals.peak_heap_bytes
    lines = r.stderr.splitlines()
    at = next(i for i, ln in enumerate(lines) if "busiest size classes" in ln)
    first = next(ln for ln in lines[at:] if ln.startswith("│"))
    assert first.split("│")[1].strip() == str(top.cls)
