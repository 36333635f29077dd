"""The malloc API of the LD_PRELOAD library, through the libc names and
glibc's internal aliases: tests/c/api_conformance.c (the same list as
tests/test_api.py) run under LD_PRELOAD=goalloc_ffi.lib_path().

The program prints "ok <table>/<check>" or "FAIL <table>/<check>: detail"
per check and exits 1 on any failure.  First it prints the lowest alignment
it saw from malloc(3) (interleaved with malloc(2)) through each table: 2
with goalloc's tiny allocator, 8 with GOALLOC=tiny=0 and at least 16 on glibc.  That
shows that each entry point really reached goalloc, and GOALLOC too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

import goalloc_ffi

pytestmark = pytest.mark.preload

SOURCE = Path(__file__).resolve().parent / "c" / "api_conformance.c"
#: The malloc names whose alignment the program reports, one per table.
MALLOC_NAMES = ("malloc", "__libc_malloc")
#: glibc's chunks are always 16-aligned (the lowest seen can be 32 or 64:
#: every other chunk is a malloc(3) one, 32 bytes apart).
GLIBC_MIN_ALIGNMENT = 16
TIMEOUT = 120.0


@dataclass(frozen=True)
class Run:
    label: str
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (f"[{self.label}] exit status {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-3000:]}")

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]

    def malloc3_alignment(self, name: str) -> int:
        match = re.search(rf"^align {re.escape(name)}\(3\) = (\d+)$", self.stdout, re.M)
        assert match, f"no alignment line for {name}\n{self.describe()}"
        return int(match.group(1))


@pytest.fixture(scope="session")
def conformance_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler: install the Debian package 'gcc'")
    exe = tmp_path_factory.mktemp("api_conformance") / "api_conformance"
    build = subprocess.run(
        [cc, "-O0", "-g", "-fno-builtin", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(SOURCE)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert build.returncode == 0, f"cannot build {SOURCE.name}:\n{build.stderr}"
    return exe


def run(exe: Path, *args: str, preload: bool, goalloc: Optional[str] = None) -> Run:
    """Runs exe under goalloc if preload, with GOALLOC=goalloc if given."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    env["LC_ALL"] = "C"
    label = "glibc"
    if preload:
        env["LD_PRELOAD"] = label = goalloc_ffi.lib_path()
    if goalloc is not None:
        env["GOALLOC"] = goalloc
        label += f" GOALLOC={goalloc}"
    proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    return Run(label, proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("goalloc", "malloc3_alignment"),
    [pytest.param(None, 8, id="default"), pytest.param("tiny=1", 2, id="tiny=1")],
)
def test_api_conformance_under_goalloc(
    conformance_exe: Path, goalloc: Optional[str], malloc3_alignment: int,
) -> None:
    result = run(conformance_exe, preload=True, goalloc=goalloc)
    assert result.returncode == 0 and not result.lines("FAIL"), result.describe()
    assert result.stderr == "", result.describe()
    assert result.lines("api_conformance: ")[-1:] == [
        f"api_conformance: {len(result.lines('ok '))} checks, 0 failed"], result.describe()
    assert len(result.lines("ok ")) >= 2 * 20, result.describe()
    # Each table reached goalloc: glibc never gives these alignments.
    for name in MALLOC_NAMES:
        assert result.malloc3_alignment(name) == malloc3_alignment, result.describe()


def test_glibc_malloc3_alignment_differs(conformance_exe: Path) -> None:
    """The reference point of the alignment lines: without the preload
    library the program is on glibc, whose malloc(3) is at least 16-aligned."""
    result = run(conformance_exe, "--align-only", preload=False)
    assert result.returncode == 0, result.describe()
    for name in MALLOC_NAMES:
        assert result.malloc3_alignment(name) >= GLIBC_MIN_ALIGNMENT, result.describe()
