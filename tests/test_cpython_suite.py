"""CPython's own regression tests under the preload library.

Debian's /usr/bin/python3.11 with its test package (Debian package
libpython3.11-testsuite) runs MODULES twice with PYTHONMALLOC=malloc (so
every object goes through malloc): once on glibc, once with
LD_PRELOAD=goalloc.  Both are one `python3 -m test -j2` invocation whose
worker processes inherit the environment.  Per module the result must be
the same: regrtest's verdict (passed, failed, skipped, ...) and, from its
JUnit XML, the outcome of every test case (passed, skipped, failed,
error).

The module list and both results are printed at the end of the pytest run
("CPython regression tests under goalloc") and written to
build/cpython_suite.txt.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from conftest import report as report_section

pytestmark = pytest.mark.preload

PYTHON = "/usr/bin/python3.11"
TEST_PACKAGE = Path("/usr/lib/python3.11/test")
DEBIAN_PACKAGE = "libpython3.11-testsuite"
REPORT = Path(__file__).resolve().parent.parent / "build" / "cpython_suite.txt"

#: Memory-heavy modules (containers, strings, bytes, serialisation,
#: compression, threads, processes, mmap, gc and weak references), none of
#: them flaky.  About 70 s per run on 2 cores.
MODULES = [
    # containers
    "test_dict", "test_dictviews", "test_list", "test_tuple", "test_set", "test_weakset",
    "test_deque", "test_heapq", "test_bisect", "test_sort", "test_array", "test_collections",
    "test_ordered_dict", "test_defaultdict", "test_userdict", "test_userlist",
    "test_userstring", "test_range", "test_slice", "test_enumerate", "test_iter",
    "test_itertools", "test_functools", "test_operator", "test_copy", "test_richcmp",
    # strings and bytes
    "test_unicode", "test_string", "test_format", "test_fstring", "test_bytes",
    "test_memoryview", "test_buffer", "test_struct", "test_codecs", "test_unicodedata",
    "test_re", "test_textwrap", "test_difflib", "test_base64", "test_binascii",
    "test_memoryio", "test_io",
    # numbers
    "test_long", "test_float", "test_decimal", "test_fractions", "test_math",
    "test_statistics", "test_random",
    # serialisation and parsing
    "test_json", "test_pickle", "test_pickletools", "test_marshal", "test_csv",
    "test_xml_etree", "test_minidom", "test_pprint", "test_ast",
    # compression and archives
    "test_zlib", "test_bz2", "test_lzma", "test_gzip", "test_zipfile", "test_tarfile",
    "test_hashlib",
    # objects, memory management, the interpreter
    "test_gc", "test_weakref", "test_finalization", "test_tracemalloc", "test_bigmem",
    "test_class", "test_descr", "test_exceptions", "test_generators", "test_builtin",
    "test_sys",
    # threads, processes, mmap
    "test_threading", "test_queue", "test_subprocess", "test_mmap",
]

RUN_TIMEOUT = 1200.0  # the whole invocation
MODULE_TIMEOUT = 600  # regrtest --timeout, per module

#: regrtest's progress line: "0:00:03 load avg: 1.2 [ 7/81] test_x passed"
#: (or "[ 7/81/1] test_x failed (2 failures)").
_PROGRESS = re.compile(r"\[\s*\d+/\d+(?:/\d+)?\] (test_\w+) (.*)$")


@dataclass
class ModuleResult:
    verdict: str = "missing"  # regrtest's word: passed, failed, skipped, crashed, ...
    outcomes: Dict[str, str] = field(default_factory=dict)  # test case -> outcome

    def counts(self) -> str:
        c = {k: 0 for k in ("passed", "skipped", "failed", "error")}
        for outcome in self.outcomes.values():
            c[outcome] += 1
        return f"{c['passed']}/{c['skipped']}/{c['failed'] + c['error']}"

    def summary(self) -> str:
        return f"{self.verdict} {self.counts()}"


@dataclass
class SuiteRun:
    label: str
    returncode: int
    seconds: float
    log: str
    modules: Dict[str, ModuleResult]


def _verdict(rest: str) -> str:
    rest = re.sub(r"\s*\(\d[^)]*(?:sec|min|ms)\)$", "", rest.strip())  # duration
    return rest.split(" -- ")[0].split()[0] if rest else "?"


def _outcome(testcase: ET.Element) -> str:
    tags = {child.tag for child in testcase}
    if "error" in tags:
        return "error"
    if "failure" in tags:
        return "failed"
    if "skipped" in tags:
        return "skipped"
    return "passed"


def parse(log: str, junit: Path) -> Dict[str, ModuleResult]:
    results = {m: ModuleResult() for m in MODULES}
    for line in log.splitlines():
        m = _PROGRESS.search(line)
        if m and m.group(1) in results:
            results[m.group(1)].verdict = _verdict(m.group(2))
    if junit.is_file():
        for testcase in ET.parse(junit).getroot().iter("testcase"):
            name = testcase.get("name", "")
            parts = name.split(".")
            module = parts[1] if len(parts) > 1 and parts[0] == "test" else parts[0]
            if module in results:
                results[module].outcomes[name] = _outcome(testcase)
    return results


def clean_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "GOALLOC", "VIRTUAL_ENV")) and k != "LD_PRELOAD"}
    env["PYTHONMALLOC"] = "malloc"
    env["PYTHONHASHSEED"] = "0"
    return env


def run_suite(label: str, preload: Optional[str], workdir: Path) -> SuiteRun:
    workdir.mkdir()
    junit = workdir / "junit.xml"
    env = clean_env()
    if preload:
        env["LD_PRELOAD"] = preload
    argv = [PYTHON, "-m", "test", "-j2", f"--timeout={MODULE_TIMEOUT}",
            f"--junit-xml={junit}", *MODULES]
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        pytest.fail(f"[{label}] python3 -m test hung: no exit after {RUN_TIMEOUT:.0f} s\n"
                    f"{out[-5000:]}")
    log = proc.stdout + proc.stderr
    (workdir / "regrtest.log").write_text(log)
    return SuiteRun(label, proc.returncode, time.monotonic() - start, log, parse(log, junit))


#: Prints the libraries mapped and the lowest alignment of malloc(3) calls
#: interleaved with malloc(2): goalloc's 8-byte class gives 8 (its tiny
#: allocator, GOALLOC=tiny=1, would give 2), glibc 16.
#: (dlsym of "malloc" in Debian's python3.11 gives the executable's PLT
#: entry, so the owner of that address says nothing.)
PROBE = r"""
import ctypes, os
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
lowest = 1 << 20
for _ in range(200):
    libc.malloc(2)
    p = libc.malloc(3)
    lowest = min(lowest, p & -p)
print("lowest alignment", lowest)
with open("/proc/self/maps") as maps:
    for name in sorted({line.split()[5] for line in maps if len(line.split()) == 6}):
        print("mapped", os.path.basename(name))
"""


@pytest.fixture(scope="session")
def lib() -> str:
    import goalloc_ffi

    path = os.environ.get("GOALLOC_TEST_LIB") or goalloc_ffi.lib_path()
    if not path or not os.path.isfile(path):
        pytest.skip(f"no preload library at {path!r}: make build")
    return os.path.abspath(path)


def table(glibc: SuiteRun, goalloc: SuiteRun) -> List[str]:
    width = max(len(m) for m in MODULES)
    lines = [
        f"{len(MODULES)} modules of CPython {PYTHON}'s regression tests, PYTHONMALLOC=malloc; "
        f"per module: regrtest's verdict, test cases passed/skipped/failed",
        f"glibc: {glibc.seconds:.0f} s, exit {glibc.returncode}; "
        f"goalloc (LD_PRELOAD): {goalloc.seconds:.0f} s, exit {goalloc.returncode}",
        f"{'module':<{width}}  {'glibc':<22} {'goalloc':<22} same",
    ]
    for m in MODULES:
        a, b = glibc.modules[m], goalloc.modules[m]
        same = a.verdict == b.verdict and a.outcomes == b.outcomes
        lines.append(f"{m:<{width}}  {a.summary():<22} {b.summary():<22} "
                     f"{'yes' if same else 'NO'}")
    total = {run.label: sum(len(r.outcomes) for r in run.modules.values())
             for run in (glibc, goalloc)}
    lines.append(f"test cases: glibc {total['glibc']}, goalloc {total['goalloc']}")
    return lines


def test_cpython_regression_suite_same_under_goalloc(
    lib: str, tmp_path: Path,
) -> None:
    if not os.access(PYTHON, os.X_OK):
        pytest.skip(f"{PYTHON} not found: install the Debian package 'python3.11'")
    missing = [m for m in MODULES
               if not (TEST_PACKAGE / f"{m}.py").is_file() and not (TEST_PACKAGE / m).is_dir()]
    if not (TEST_PACKAGE / "libregrtest").is_dir() or len(missing) == len(MODULES):
        pytest.skip(f"CPython's test suite is not installed: install the Debian package "
                    f"'{DEBIAN_PACKAGE}'")
    assert not missing, f"modules missing from {TEST_PACKAGE}: {missing}"

    # The preload really replaces malloc in this interpreter.
    env = clean_env()
    env["LD_PRELOAD"] = lib
    probe = subprocess.run([PYTHON, "-c", PROBE], env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    lines = probe.stdout.splitlines()
    assert f"mapped {os.path.basename(lib)}" in lines and "lowest alignment 8" in lines, (
        f"malloc of {PYTHON} is not goalloc's under LD_PRELOAD={lib}:\n"
        f"{probe.stdout}{probe.stderr}")

    glibc = run_suite("glibc", None, tmp_path / "glibc")
    goalloc = run_suite("goalloc", lib, tmp_path / "goalloc")

    lines = table(glibc, goalloc)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    report_section("CPython regression tests under goalloc", lines)

    report = "\n".join(lines)
    # The reference run must be a real one: every module ran.
    assert all(r.verdict != "missing" for r in glibc.modules.values()), (
        f"glibc run incomplete\n{report}\n{glibc.log[-5000:]}")
    assert sum(len(r.outcomes) for r in glibc.modules.values()) > 5000, report

    differences = []
    for m in MODULES:
        a, b = glibc.modules[m], goalloc.modules[m]
        if a.verdict != b.verdict:
            differences.append(f"{m}: verdict {a.verdict} on glibc, {b.verdict} under goalloc")
        for case in sorted(set(a.outcomes) | set(b.outcomes)):
            x, y = a.outcomes.get(case, "absent"), b.outcomes.get(case, "absent")
            if x != y:
                differences.append(f"{m}: {case}: {x} on glibc, {y} under goalloc")
    assert not differences, (
        "results differ:\n" + "\n".join(differences[:60]) + f"\n\n{report}\n\n"
        f"--- goalloc regrtest log (tail) ---\n{goalloc.log[-6000:]}")
    assert goalloc.returncode == glibc.returncode, report
