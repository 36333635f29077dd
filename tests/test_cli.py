"""The goalloc command line: lib, run and demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.preload
GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]


def goalloc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOALLOC, *args], capture_output=True, text=True, timeout=120,
                          env=env or dict(os.environ))


@pytest.mark.parametrize("debug", [False, True])
def test_lib_prints_an_existing_absolute_path(debug: bool) -> None:
    r = goalloc("lib", *(["--debug"] if debug else []))
    path = Path(r.stdout.strip())
    assert r.returncode == 0 and path.is_absolute() and path.is_file()
    assert path.name == ("libgoalloc-debug.so" if debug else "libgoalloc.so")


def test_run_preloads_the_library_and_passes_options() -> None:
    probe = ("import ctypes, os; libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_size_t;"
             "libc.malloc_usable_size.restype = ctypes.c_size_t;"
             "p = libc.malloc(3); print(libc.malloc_usable_size(ctypes.c_void_p(p)), os.environ.get('GOALLOC', '-'))")
    off = goalloc("run", "--", sys.executable, "-c", probe)
    on = goalloc("run", "--set", "tiny=1", "--", sys.executable, "-c", probe)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert off.stdout.split()[0] == "8"  # the default: the 8-byte class
    assert on.stdout.split() == ["3", "tiny=1"]  # a tiny sub-object sized exactly


def test_run_passes_the_exit_status_through() -> None:
    assert goalloc("run", "--", sys.executable, "-c", "raise SystemExit(7)").returncode == 7


def test_demo_runs_both_allocators() -> None:
    r = goalloc("demo", "-n", "1")
    assert r.returncode == 0, r.stderr
    assert "glibc" in r.stdout and "goalloc" in r.stdout
    assert "same output" in r.stdout and "goalloc: heap:" in r.stdout


def test_run_makes_a_relative_table_file_absolute(tmp_path: Path) -> None:
    """--set sizeclasses=FILE relative to here reaches processes of CMD that
    run elsewhere; a built-in table's name stays a name."""
    table = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" / "mksizeclasses.py"),
                            "--tsv", "go1.16"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "t.tsv").write_text(table)
    show = f"cd / && exec {sys.executable} -c 'import os; print(os.environ[\"GOALLOC\"])'"
    r = subprocess.run([*GOALLOC, "run", "--set", "sizeclasses=t.tsv", "--set", "align=8", "--", "sh", "-c", show],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"sizeclasses={tmp_path / 't.tsv'},align=8"]
    assert "GOALLOC" not in r.stderr  # the library accepted the table
