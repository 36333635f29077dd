"""Bad input to the goalloc command: one line on stderr, a non-zero exit,
and, where it can be known, before the command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.preload
GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]


def goalloc(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("GOALLOC", "COLUMNS")}
    return subprocess.run([*GOALLOC, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={**e, **env})


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("content", ["", '{"version": 3, "pid"', '{"goalloc_profile": 1, "requests": []}',
                                     "root:x:0:0:root:/root:/bin/bash\n", "[1, 2]"])
def test_stats_on_anything_but_a_statistics_file(tmp_path: Path, content: str) -> None:
    f = tmp_path / "f.json"
    f.write_text(content)
    line = one_line(goalloc("stats", str(f)))
    assert str(f) in line and "not a goalloc statistics file" in line


def test_output_paths_are_checked_before_the_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"touch {marker}"]
    for args in (["--stats", "/nonexistent/dir/out-%p.json"], ["--timeline", "/nonexistent/m.png"],
                 ["--profile-sizes", "/nonexistent/p.json"], ["--report-file", "/nonexistent/r.txt"],
                 ["--stats", str(tmp_path)]):
        r = goalloc("run", *args, *cmd)
        line = one_line(r)
        assert r.returncode == 2 and line.startswith("goalloc run: ") and args[0] in line, line
        assert not marker.exists()
    s = tmp_path / "s.json"
    s.write_text('{"version": 1}')
    assert "no such directory" in one_line(goalloc("stats", str(s), "--plot", "/nonexistent/x.png"))
    assert "no such directory" in one_line(goalloc("compare", "-c", "default", "--json", "/nonexistent/c.json",
                                                   "--", "true"))


def test_a_relative_stats_path_survives_a_change_of_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    r = goalloc("run", "--stats", "rel.json", "--report", "--", "sh", "-c",
                f"cd {tmp_path / 'sub'} && exec {sys.executable} -c 'print(1)'", cwd=tmp_path, PYTHONMALLOC="malloc")
    assert r.returncode == 0 and (tmp_path / "rel.json").is_file(), r.stderr
    assert "goalloc statistics of pid" in r.stderr


def test_unknown_options_stop_run_with_a_suggestion(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = goalloc("run", "--set", "scavange_delay=10", "--", "sh", "-c", f"touch {marker}")
    line = one_line(r)
    assert r.returncode == 2 and not marker.exists()
    assert "unknown option 'scavange_delay'" in line and "did you mean scavenge_delay?" in line
    r = goalloc("run", "--", "sh", "-c", f"touch {marker}", GOALLOC="tiny=7")
    assert r.returncode == 2 and "bad value in 'tiny=7'" in one_line(r) and not marker.exists()
    assert goalloc("run", "--set", "tiny=0", "--", "true").returncode == 0


def test_the_cli_itself_never_reads_goalloc() -> None:
    """`GOALLOC=foo=1 LD_PRELOAD=$(goalloc lib) CMD` warns once, from CMD."""
    r = goalloc("lib", GOALLOC="foo=1")
    assert r.returncode == 0 and r.stderr == ""
    lib = r.stdout.strip()
    probe = subprocess.run(["/bin/true"], env={**os.environ, "GOALLOC": "foo=1", "LD_PRELOAD": lib},
                           capture_output=True, text=True)
    assert probe.stderr.count("unknown option 'foo'") == 1


def test_version() -> None:
    from goalloc_ffi import ffi, lib

    r = goalloc("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"goalloc {ffi.string(lib.ga_version()).decode()}")
    from importlib.metadata import version

    assert version("goalloc") == ffi.string(lib.ga_version()).decode()  # defined once, in C


def test_usage_errors_are_one_line() -> None:
    r = goalloc("run", "--report-pid", "5", "--", "true")
    assert r.returncode == 2 and "--report-pid: only with --report" in one_line(r)
    assert one_line(goalloc("compare", "-c", "jemalloc,tiny=0", "--", "true")).startswith("goalloc compare: ")


def test_stats_and_verbose_options_print_from_c() -> None:
    """Item 9: GOALLOC=stats=1 prints the totals at exit, verbose=1 the
    options in effect at start, with no Python involved."""
    from goalloc_ffi import lib_path, stats as st

    env = {**os.environ, "LD_PRELOAD": lib_path(), "GOALLOC": "stats=1,verbose=1,refill=3"}
    r = subprocess.run(["sqlite3", ":memory:", "select 42"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "42\n"
    lines = r.stderr.splitlines()
    assert lines[0].startswith("goalloc ") and "options " in lines[0] and "refill=3" in lines[0]
    assert "statistics of pid" in lines[1] and "(sqlite3)" in lines[1]
    names = [ln.split()[1] for ln in lines[2:]]
    assert names == st.TOTAL_NAMES
    assert int(lines[2 + names.index("small_mallocs")].split()[2]) > 10


def test_the_variable_names_are_the_libraries() -> None:
    """launch.py defines the names once; the C library reads these."""
    from goalloc_ffi import ffi, launch, lib

    names = []
    while lib.ga_env_name(len(names)) != ffi.NULL:
        names.append(ffi.string(lib.ga_env_name(len(names))).decode())
    assert tuple(names) == launch.GOALLOC_ENVS == (launch.OPTIONS_ENV, launch.STATS_ENV, launch.PROFILE_ENV,
                                                  launch.HEAP_PROFILE_ENV)
