"""Real programs under LD_PRELOAD=<allocator>, compared with the same run on glibc.

Every workload runs twice, once on glibc's malloc and once with the library
preloaded (so the interpreter, compiler, git and all their child processes
use it), and must exit 0 both times with identical stdout and stderr.  Any
allocator message on stderr or a "cannot be preloaded" warning from ld.so is
therefore a failure too.

The library is `GOALLOC_TEST_LIB` if set (any malloc replacement, e.g.
jemalloc, to check the tests themselves), else `goalloc_ffi.lib_path()`.
The programs below come from DEBIAN_PACKAGES; a missing one skips its test.
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.preload

#: Debian packages providing the programs these tests run.
DEBIAN_PACKAGES = ["gcc", "libc6-dev", "sqlite3", "lua5.4", "perl", "git", "bash", "coreutils"]

TESTS_DIR = Path(__file__).resolve().parent
C_DIR = TESTS_DIR / "c"
PROGRAMS_DIR = TESTS_DIR / "programs"
#: The Python workload ships in the package (goalloc demo runs it too).
DEMO_WORKLOAD = TESTS_DIR.parent / "goalloc_ffi" / "workloads" / "alloc_heavy.py"

#: Environment shared by both runs: no locale, timezone or hash-seed noise.
STABLE_ENV = {"LC_ALL": "C", "TZ": "UTC", "PYTHONHASHSEED": "0"}
DEFAULT_TIMEOUT = 60.0


# --------------------------------------------------------------------------
# Running a command with and without the preload library


def label_for(preload: str | None) -> str:
    return f"LD_PRELOAD={preload}" if preload else "glibc"


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    preload: str | None
    returncode: int
    stdout: str
    stderr: str

    @property
    def label(self) -> str:
        return label_for(self.preload)

    def describe(self) -> str:
        status = str(self.returncode)
        if self.returncode < 0:
            status = f"killed by {signal.Signals(-self.returncode).name}"
        return (
            f"[{self.label}] $ {' '.join(self.argv)}\n"
            f"status: {status}\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(STABLE_ENV)
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    preload: str | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Run argv (with `preload` in LD_PRELOAD if given) and capture its output."""
    args = tuple(os.fspath(a) for a in argv)
    full_env = base_env(env)
    if preload:
        full_env["LD_PRELOAD"] = preload
    try:
        proc = subprocess.run(
            args, env=full_env, cwd=cwd, input=stdin.read_bytes() if stdin else b"",
            capture_output=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"[{label_for(preload)}] timed out after {timeout:.0f} s: {' '.join(args)}")
    stdout, stderr = (b.decode(errors="replace") for b in (proc.stdout, proc.stderr))
    return Outcome(args, preload, proc.returncode, stdout, stderr)


def succeeded(outcome: Outcome) -> Outcome:
    if outcome.returncode != 0:
        pytest.fail(outcome.describe())
    return outcome


def same_output(glibc: Outcome, preloaded: Outcome) -> None:
    for stream in ("stdout", "stderr"):
        expected, actual = getattr(glibc, stream), getattr(preloaded, stream)
        if expected != actual:
            diff = "\n".join(list(difflib.unified_diff(
                expected.splitlines(), actual.splitlines(),
                glibc.label, preloaded.label, lineterm="",
            ))[:60])
            pytest.fail(f"{stream} differs for $ {' '.join(glibc.argv)}\n{diff}")


def run_both(
    argv: Sequence[str | os.PathLike[str]],
    lib: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Run argv on glibc and under LD_PRELOAD=lib; both must exit 0 with the
    same stdout and stderr.  Returns the preloaded run."""
    glibc, preloaded = (
        succeeded(run(argv, preload=preload, env=env, cwd=cwd, stdin=stdin, timeout=timeout))
        for preload in (None, lib)
    )
    same_output(glibc, preloaded)
    return preloaded


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} not found: install the Debian package '{package}'")
    return path


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def lib() -> str:
    """Absolute path of the library to preload."""
    path = os.environ.get("GOALLOC_TEST_LIB")
    if path:
        if not os.path.isfile(path):
            pytest.fail(f"GOALLOC_TEST_LIB={path} is not a file")
    else:
        try:
            import goalloc_ffi

            path = goalloc_ffi.lib_path()
        except Exception as exc:  # not built yet, or not importable
            pytest.skip(
                "no preload library: build libgoalloc.so (goalloc_ffi.lib_path() "
                f"failed: {exc!r}) or set GOALLOC_TEST_LIB=/path/to/lib.so"
            )
        if not path or not os.path.isfile(path):
            pytest.skip(f"goalloc_ffi.lib_path() gave {path!r}, which does not exist")
    path = os.path.abspath(path)
    assert not any(c in path for c in " :"), f"LD_PRELOAD cannot hold {path!r}"
    return path


@pytest.fixture(scope="session")
def c_programs(lib: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tests/c/*.c built normally (not linked to the allocator), by stem."""
    cc = require("cc", "gcc")
    out_dir = tmp_path_factory.mktemp("c_programs")
    built: dict[str, Path] = {}
    for source in sorted(C_DIR.glob("*.c")):
        exe = out_dir / source.stem
        succeeded(run([cc, "-O1", "-g", "-pthread", "-o", exe, source], preload=None,
                      timeout=120))
        built[source.stem] = exe
    return built


# --------------------------------------------------------------------------
# The library is really in use


MAPS_PROBE = r"""
import ctypes, os
malloc = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
owner, mapped = None, set()
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        name = os.path.basename(os.path.realpath(fields[5].strip()))
        mapped.add(name)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= malloc < end:
            owner = name
print("malloc:", owner)
for name in sorted(mapped):
    print("mapped:", name)
"""


def test_library_is_loaded(lib: str) -> None:
    name = os.path.basename(os.path.realpath(lib))
    glibc = succeeded(run([sys.executable, "-c", MAPS_PROBE], preload=None))
    preloaded = succeeded(run([sys.executable, "-c", MAPS_PROBE], preload=lib))
    assert f"mapped: {name}" not in glibc.stdout.splitlines()
    assert f"mapped: {name}" in preloaded.stdout.splitlines(), preloaded.describe()
    assert f"malloc: {name}" in preloaded.stdout.splitlines(), (
        "malloc does not resolve into the preloaded library\n" + preloaded.describe()
    )
    assert preloaded.stderr == "", preloaded.describe()


# --------------------------------------------------------------------------
# Interpreters running the scripts in tests/programs


@dataclass(frozen=True)
class Workload:
    name: str
    program: str  # name looked up on PATH, or an absolute path
    package: str  # Debian package that provides it
    args: tuple[str, ...]  # run in tests/programs
    expect: str  # must appear in stdout (guards against empty output)
    stdin: str | None = None  # file in tests/programs fed to stdin
    env: Mapping[str, str] = field(default_factory=dict)


WORKLOADS = [
    Workload("python", sys.executable, "python3", (str(DEMO_WORKLOAD),), "overall:",
             env={"PYTHONMALLOC": "malloc"}),
    Workload("sqlite3", "sqlite3", "sqlite3", ("-bail", "-batch", ":memory:"),
             "rebuilt|", stdin="workload.sql"),
    Workload("lua", "lua5.4", "lua5.4", ("tables.lua",), "overall:"),
    Workload("perl", "perl", "perl", ("hashes.pl",), "overall:"),
    Workload("bash", "bash", "bash", ("strings.sh",), "all:"),
]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_interpreter(lib: str, workload: Workload) -> None:
    program = require(workload.program, workload.package)
    stdin = PROGRAMS_DIR / workload.stdin if workload.stdin else None
    result = run_both([program, *workload.args], lib, cwd=PROGRAMS_DIR, stdin=stdin,
                      env=workload.env)
    assert workload.expect in result.stdout, result.describe()


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_interpreter_hardened(lib: str, workload: Workload) -> None:
    """GOALLOC=harden=1 (canaries, protected freed large objects and
    malloc(0), clobberfree, uafcheck=1) finds nothing in programs that are
    correct and changes none of their output."""
    program = require(workload.program, workload.package)
    stdin = PROGRAMS_DIR / workload.stdin if workload.stdin else None
    result = run_both([program, *workload.args], lib, cwd=PROGRAMS_DIR, stdin=stdin,
                      env={**workload.env, "GOALLOC": "harden=1"}, timeout=120.0)
    assert workload.expect in result.stdout, result.describe()


# --------------------------------------------------------------------------
# The C stress programs in tests/c, run under the allocator


@pytest.mark.parametrize(
    ("name", "args", "expect", "timeout"),
    [
        pytest.param("mt_alloc", (), " ok", DEFAULT_TIMEOUT, id="mt_alloc"),
        pytest.param("fork_alloc", ("200",), " failed=0 hung=0", 120.0, id="fork_alloc"),
    ],
)
@pytest.mark.parametrize("goalloc", ["", "harden=1"], ids=["default", "hardened"])
def test_c_program(
    lib: str, c_programs: dict[str, Path], name: str, args: tuple[str, ...],
    expect: str, timeout: float, goalloc: str,
) -> None:
    result = run_both([c_programs[name], *args], lib, timeout=timeout, env={"GOALLOC": goalloc})
    assert expect in result.stdout, result.describe()


@pytest.mark.parametrize(
    ("name", "args", "expect"),
    [
        pytest.param("mt_alloc", (), " ok", id="mt_alloc"),
        pytest.param("fork_alloc", ("50",), " failed=0 hung=0", id="fork_alloc"),
    ],
)
def test_c_program_on_the_debug_library(
    c_programs: dict[str, Path], name: str, args: tuple[str, ...], expect: str,
) -> None:
    """GA_DEBUG=3: every lock's owner checked, a check after every fold and
    treap merge; forks too (the child frees its lost threads' caches)."""
    import goalloc_ffi

    result = run_both([c_programs[name], *args], goalloc_ffi.lib_path(debug=True), timeout=120.0)
    assert expect in result.stdout, result.describe()


# --------------------------------------------------------------------------
# gcc (driver, cc1, as, collect2, ld) under the allocator


def test_gcc(lib: str, tmp_path: Path) -> None:
    gcc = require("gcc", "gcc")
    source = C_DIR / "mt_alloc.c"
    # Assembly on stdout: cc1 alone, compared textually.
    for c_file in sorted(C_DIR.glob("*.c")):
        run_both([gcc, "-O2", "-g", "-pthread", "-S", "-o", "-", c_file], lib, cwd=tmp_path)

    # Full build in the same directory both ways: gcc is reproducible, so the
    # executables must be byte-identical, and the one built under the
    # allocator must run.
    executables = []
    for preload in (None, lib):
        out_dir = tmp_path / ("preload" if preload else "glibc")
        out_dir.mkdir()
        exe = out_dir / "mt_alloc"
        succeeded(run([gcc, "-O2", "-g", "-pthread", "-o", exe, source],
                      preload=preload, cwd=tmp_path))
        executables.append(exe)
    glibc_exe, preload_exe = executables
    assert glibc_exe.read_bytes() == preload_exe.read_bytes(), (
        "gcc under the allocator produced a different executable"
    )
    result = succeeded(run([preload_exe, "4", "20000"], preload=None))
    assert result.stdout.startswith("mt_alloc: threads=4 ") and " ok" in result.stdout


# --------------------------------------------------------------------------
# git: init, add, commit, rm, repack, fsck of a few hundred generated files

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Preload Test",
    "GIT_AUTHOR_EMAIL": "preload@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Preload Test",
    "GIT_COMMITTER_EMAIL": "preload@example.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}
GIT_CONFIG = ("-c", "init.defaultBranch=main", "-c", "gc.auto=0", "-c", "pack.threads=2")
GIT_FILES = 400


def write_tree(root: Path, generation: int) -> None:
    """Deterministic files in 16 directories; generation 1 edits a third of
    them and adds a few."""
    for i in range(GIT_FILES + 20 * generation):
        if generation and i % 3 and i < GIT_FILES:
            continue
        path = root / f"dir{i % 16:02d}" / f"file{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{generation}:{i}:{j}:{(i * 7919 + j * 104729) % 1000003:07d}"
                 for j in range(20 + (i * 37) % 300)]
        path.write_text("\n".join(lines) + "\n")
    (root / "blob.bin").write_bytes(bytes((i * 31 + generation) % 256 for i in range(65536)))


def git_transcript(git: str, repo: Path, preload: str | None) -> list[tuple[str, str, str]]:
    """Runs the git session in `repo`; returns (command, stdout, stderr) per step."""
    transcript: list[tuple[str, str, str]] = []

    def git_cmd(*args: str) -> None:
        outcome = succeeded(run([git, *GIT_CONFIG, *args], preload=preload, cwd=repo,
                                env={**GIT_ENV, "HOME": str(repo.parent)}))
        transcript.append((" ".join(args), outcome.stdout, outcome.stderr))

    repo.mkdir(parents=True)
    write_tree(repo, 0)
    git_cmd("init", "-q")
    git_cmd("add", "-A")
    git_cmd("commit", "-q", "-m", "initial import")
    write_tree(repo, 1)
    git_cmd("rm", "-q", "-r", "-f", "--", "dir05")
    git_cmd("add", "-A")
    git_cmd("commit", "-q", "-m", "edit, add and remove files")
    git_cmd("repack", "-a", "-d", "-f", "-q", "--window=50")
    git_cmd("fsck", "--full", "--strict", "--no-progress")
    git_cmd("log", "--format=%H %T %s")
    git_cmd("diff", "--shortstat", "HEAD~1", "HEAD")
    return transcript


def test_git(lib: str, tmp_path: Path) -> None:
    git = require("git", "git")
    glibc = git_transcript(git, tmp_path / "glibc" / "repo", None)
    preloaded = git_transcript(git, tmp_path / "preload" / "repo", lib)
    log = next(stdout for command, stdout, _ in preloaded if command.startswith("log "))
    trees = [line.split()[1] for line in log.splitlines()]
    assert len(trees) == 2 and all(len(tree) == 40 for tree in trees), log
    assert preloaded == glibc
