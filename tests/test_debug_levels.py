"""GA_DEBUG's levels (csrc/internal.h): 1 cheap asserts, 2 internal asserts
at every transition of spans and caches, 3 the debug library's validators
and lock ownership. Each case of tests/c_internal/debug_levels.c breaks one rule;
the level that checks it stops the program with one line naming it."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
CORE = sorted(p for p in CSRC.glob("*.c") if p.name != "override.c")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = {}
    for level in (1, 2, 3):
        exe = tmp_path_factory.mktemp(f"debug{level}") / "debug_levels"
        subprocess.run(["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
                        f"-I{CSRC}", f"-DGA_DEBUG={level}", "-o", str(exe),
                        str(ROOT / "tests" / "c_internal" / "debug_levels.c"), *map(str, CORE), "-lgcc_s"],
                       check=True, timeout=300)
        out[level] = exe
    return out


def _run(exe: Path, case: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), case], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "case, level, line",
    [
        ("unheld", 3, "goalloc: fatal error: lock not held in ga_mheap_retained_locked()"),
        ("foreign_unlock", 3, "goalloc: fatal error: a lock let go by a thread that does not hold it"),
        ("bad_list", 2, "goalloc: fatal error: assertion failed: l->n != 0"),
        ("corrupt_fold", 3, "goalloc: fatal error: fold: alloc_count disagrees with alloc_bits"),
    ],
)
def test_the_level_that_checks_a_rule_stops_at_it(programs: dict[int, Path], case: str, level: int,
                                                   line: str) -> None:
    for lv, exe in programs.items():
        r = _run(exe, case)
        if lv >= level:
            assert r.returncode < 0, (lv, r.stdout, r.stderr)  # abort()
            assert r.stderr.startswith(line), (lv, r.stderr)
            assert r.stderr.count("\n") == 1, r.stderr
        elif case != "foreign_unlock":  # unlocking another's mutex is undefined below level 3
            assert r.returncode == 0 and r.stdout == f"survived {case}\n", (lv, r.stderr)


def test_every_locked_function_checks_its_lock() -> None:
    """Go's assertLockHeld: a function named *_locked opens with
    ga_assert_held (the debug library checks it, test above)."""
    import re

    missing = []
    for path in CSRC.glob("*.c"):
        text = path.read_text()
        for m in re.finditer(r"^[a-z][^;{}\n]*?\b(\w+_locked)\([^;{}]*\)\s*\{\n\s*(\S+)", text, re.M):
            if not m.group(2).startswith("ga_assert_held("):
                missing.append(f"{path.name}: {m.group(1)}")
    assert missing == [], missing
