"""C++ operator new and delete from the preload library: plain, array,
nothrow, aligned and sized forms (tests/c/cxx_new.cc under LD_PRELOAD),
std::bad_alloc and the new-handler loop, a wrong size given to a sized
delete reported as misuse, and the throwing new in a C program, where no
C++ runtime is there to throw."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import List

import pytest
from conftest import build_c_program

import goalloc_ffi

pytestmark = pytest.mark.preload
ADDR = r"0x[0-9a-f]+"


def run(argv: List[str], preload: bool = True, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    if preload:
        env["LD_PRELOAD"] = goalloc_ffi.lib_path(debug)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def cxx_new(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_program(tmp_path_factory, "cxx_new", cxx=True)


@pytest.mark.parametrize("debug", [False, True], ids=["release", "debug"])
def test_operators_are_goallocs_and_behave(cxx_new: Path, debug: bool) -> None:
    r = run([str(cxx_new)], debug=debug)
    assert r.returncode == 0 and r.stdout.splitlines()[-1:] == ["cxx_new: 0 failures"], \
        r.stdout + r.stderr
    assert r.stderr == ""


def test_without_goalloc_the_program_sees_libstdcxx(cxx_new: Path) -> None:
    """The reference point: the same checks fail on libstdc++'s operators."""
    r = run([str(cxx_new)], preload=False)
    assert r.returncode == 1 and "FAIL: _Znwm comes from" in r.stdout, r.stdout


@pytest.mark.parametrize(("mode", "line"), [
    ("wrongsize", rf"goalloc: operator delete\(\): size 100 does not match the object {ADDR} "
                  r"\(size class 4, 48 B\)"),
    ("wrongsize-array", rf"goalloc: operator delete\[\]\(\): size 200000 does not match the "
                        rf"object {ADDR} \(large object at {ADDR}, 106496 B\)"),
])
def test_wrong_sized_delete_aborts_with_one_line(cxx_new: Path, mode: str, line: str) -> None:
    r = run([str(cxx_new), mode])
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    assert "not caught" not in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("goalloc: ")]
    assert len(lines) == 1 and re.fullmatch(line, lines[0]), r.stderr


def test_throwing_new_without_a_cxx_runtime_aborts_with_one_line(tmp_path: Path) -> None:
    src = tmp_path / "cnew.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n"
        "extern void *_Znwm(size_t) __attribute__((weak));\n"
        "int main(void) {\n"
        "    if (!_Znwm) return 3;\n"
        "    void *small = _Znwm(48);\n"
        "    if (!small) return 4;\n"
        "    volatile size_t huge = (size_t)1 << 62;\n"
        "    void *p = _Znwm(huge);\n"
        "    printf(\"returned %p\\n\", p);\n"
        "    return 0;\n}\n")
    subprocess.run(["cc", "-O0", "-o", str(tmp_path / "cnew"), str(src)], check=True)
    r = run([str(tmp_path / "cnew")])
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    assert r.stderr == ("goalloc: operator new: out of memory, and no C++ runtime to throw "
                        "std::bad_alloc\n")
