"""Launching programs under an allocator: the one place the preload
environment is built (``goalloc run``, ``compare``, ``bench`` and ``demo``
all come here).

The names of the variables the library reads are defined here once and
checked against the ones the C library exports (``ga_env_name``) by the
tests; the library's own warnings about them start with ``GOALLOC:``.

Two ways to run: in-process (``preload_env`` + ``subprocess`` or
``os.execvpe``, for ``goalloc run``), and through the small C launcher of
bench_workloads/c/launcher.c, which forks the command with LD_PRELOAD set
in the child alone and measures it with wait4 (``launch``, for the
measurements of ``compare`` and ``bench``). Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

#: What the library reads from the environment (init.c; ga_env_name).
OPTIONS_ENV = "GOALLOC"  # comma-separated KEY=VALUE options
STATS_ENV = "GOALLOC_STATS"  # where the statistics JSON goes at exit (%p: the pid)
PROFILE_ENV = "GOALLOC_PROFILE"  # where the size profile goes at exit (%p: the pid)
HEAP_PROFILE_ENV = "GOALLOC_HEAP_PROFILE"  # where the sampled heap profile goes (pprof; %p: the pid)
GOALLOC_ENVS = (OPTIONS_ENV, STATS_ENV, PROFILE_ENV, HEAP_PROFILE_ENV)
#: A warning of the library about $GOALLOC (init.c: option_message, ga_option_refused).
OPTION_WARNING = re.compile(r"\bGOALLOC: [^\n]*")

PKG_DIR = Path(__file__).resolve().parent
C_DIR = PKG_DIR / "bench_workloads" / "c"
SHIM = "libga-glibc-shim.so"
C_PROGRAMS = ["simple", "thread", "churn", "sweep", "large", "larson", "prodcons", "threadchurn", "threadlife",
              "falseshare", "larson_succ", "workingset", "hotloop", "launcher"]
CFLAGS = ["-O2", "-g", "-pthread", "-Wall", "-Wextra"]


class LaunchError(Exception):
    """A problem that stops a measurement run (not one program's failure)."""


def now() -> str:
    """The local time, ISO 8601 to the second (the runs' timestamps)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def first_lines(text: str, n: int = 2) -> str:
    """The first n non-empty lines of text joined by " | ", at most 300 characters."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:n])[:300]


def clean_env(measure: bool = True, keep_goalloc: bool = False) -> Dict[str, str]:
    """This process's environment without LD_PRELOAD (and, unless
    keep_goalloc, without the goalloc variables); for measurements also the
    C locale and UTC, so that every allocator sees the same."""
    drop = {"LD_PRELOAD", *(() if keep_goalloc else GOALLOC_ENVS)}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if measure:
        env.update(LC_ALL="C", TZ="UTC")
    return env


def preload_env(base: Mapping[str, str], library: Optional[str], options: str = "",
                stats: Optional[str] = None, profile: Optional[str] = None,
                heap_profile: Optional[str] = None) -> Dict[str, str]:
    """base plus goalloc's variables: options for $GOALLOC (empty: unset),
    the statistics and profile paths, and *library* prepended to the
    LD_PRELOAD of base (None: nothing preloaded here; the launcher's -e
    then preloads it)."""
    env = dict(base)
    for name, value in ((OPTIONS_ENV, options), (STATS_ENV, stats), (PROFILE_ENV, profile),
                        (HEAP_PROFILE_ENV, heap_profile)):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    if library is not None:
        if any(c.isspace() or c == ":" for c in library):
            raise LaunchError(f"{library}: LD_PRELOAD cannot hold a path with ':' or whitespace")
        env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD", "").strip()) if p)
    return env


def merge_options(existing: Optional[str], pairs: Sequence[Tuple[str, str]]) -> str:
    """Merge KEY=VALUE *pairs* into the comma-separated *existing* options.

    Later values win; items of *existing* keep their order, new keys follow.
    """
    merged: Dict[str, str] = {}
    for item in (existing or "").split(","):
        item = item.strip()
        if item:
            key, _, _ = item.partition("=")
            merged[key.strip()] = item
    for key, value in pairs:
        merged[key] = f"{key}={value}"
    return ",".join(merged.values())


def here(value: str) -> str:
    """A relative path to a file in the current directory, made absolute:
    every process of the command reads $GOALLOC from its own working
    directory, and some change it first (pyenv's python3 shim does). A
    built-in table's name stays a name."""
    from .sizeclass_table import VARIANTS

    if os.path.isabs(value) or value in {v.name for v in VARIANTS} or not os.path.isfile(value):
        return value
    return os.path.abspath(value)


def option_warnings(library: str, options: str) -> List[str]:
    """What the library says about $GOALLOC=options: a trial run of a
    trivial program under it, its ``GOALLOC:`` lines (empty: accepted).
    Raises LaunchError when the trial itself cannot run."""
    probe = shutil.which("true")
    argv = [probe] if probe else [sys.executable, "-S", "-c", "pass"]
    env = preload_env(clean_env(measure=False), library, options)
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise LaunchError(f"trial run under {library} failed: {e}") from None
    found = OPTION_WARNING.findall(r.stderr)
    if not found and r.returncode != 0:
        found = [f"exit status {r.returncode}: {first_lines(r.stderr)}"]
    return found


def exec_command(cmd: Sequence[str], env: Dict[str, str]) -> None:
    """Replaces this process with cmd (its exit status and signals are then
    cmd's own); 127/126 with one line if it cannot be run."""
    try:
        os.execvpe(cmd[0], list(cmd), env)
    except OSError as e:
        sys.stderr.write(f"goalloc run: {cmd[0]}: {e.strerror}\n")
        sys.exit(127 if isinstance(e, FileNotFoundError) else 126)


def spawn(cmd: Sequence[str], env: Dict[str, str]) -> "subprocess.Popen[bytes]":
    """Starts cmd; 127/126 with one line if it cannot be run."""
    try:
        return subprocess.Popen(list(cmd), env=env)
    except OSError as e:
        sys.stderr.write(f"goalloc run: {cmd[0]}: {e.strerror}\n")
        sys.exit(127 if isinstance(e, FileNotFoundError) else 126)


def exit_status(status: int) -> int:
    """A Popen return code as a shell would report it (signal N: 128 + N)."""
    return status if status >= 0 else 128 - status


# ---------------------------------------------------------------------------
# The C launcher (wall time, rusage from wait4 on the command alone)


def build_programs(bindir: Path, names: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Compiles the C programs of bench_workloads/c (*names*, default all,
    plus the glibc shim) into *bindir* when stale."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc.split()[0]) is None:
        raise LaunchError(f"goalloc compiles its launcher and workloads and needs a C compiler: {cc!r} "
                          "not found (set CC or install gcc)")
    bindir.mkdir(parents=True, exist_ok=True)
    common = C_DIR / "common.h"
    out: Dict[str, Path] = {}
    jobs: List[Tuple[Path, List[str], List[Path]]] = []
    for name in names or C_PROGRAMS:
        src, exe = C_DIR / f"{name}.c", bindir / f"ga-{name}"
        jobs.append((exe, [*cc.split(), *CFLAGS, "-o", str(exe), str(src)], [src, common]))
        out[name] = exe
    if names is None:
        shim = bindir / SHIM
        jobs.append((shim, [*cc.split(), "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall",
                            "-o", str(shim), str(C_DIR / "glibc_shim.c"), "-ldl"], [C_DIR / "glibc_shim.c"]))
        out["shim"] = shim
    for exe, cmd, inputs in jobs:
        if exe.exists() and exe.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
            continue
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise LaunchError(f"building {exe.name} failed:\n$ {' '.join(cmd)}\n{r.stderr}")
    return out


def parse_result(path: Path) -> Dict[str, float]:
    """The launcher's one result line as {name: value}."""
    text = path.read_text().strip() if path.exists() else ""
    if not text:
        raise LaunchError("launcher wrote no result")
    return {k: float(v) for k, v in (item.split("=", 1) for item in text.split())}


def status_error(res: Dict[str, float], timeout: float) -> str:
    """Why a measured run failed ("" if it exited 0)."""
    if res.get("timeout"):
        return f"timed out after {timeout:.0f} s"
    if res["signal"]:
        try:
            name = signal.Signals(int(res["signal"])).name
        except ValueError:
            name = f"signal {int(res['signal'])}"
        return f"killed by {name}"
    if res["exit"] != 0:
        return f"exit status {int(res['exit'])}"
    return ""


def launch(launcher: Path, argv: List[str], preload: Optional[str], env: Dict[str, str], timeout: float,
           workdir: Path, stdin: Optional[Path] = None, pidfile: Optional[Path] = None,
           cwd: Optional[Path] = None) -> Tuple[Dict[str, float], str, str]:
    """Runs *argv* through the launcher (in *cwd*, default *workdir*), with
    *preload* in LD_PRELOAD of the command alone; returns (measurements,
    stdout, stderr)."""
    result = workdir / "result.txt"
    result.unlink(missing_ok=True)
    cmd = [str(launcher), "-o", str(result), "-t", str(max(1, math.ceil(timeout)))]
    if pidfile is not None:
        cmd += ["-p", str(pidfile)]
    if preload:
        cmd += ["-e", f"LD_PRELOAD={preload}"]
    cmd += ["--", *argv]
    with tempfile.TemporaryFile("w+b") as out, tempfile.TemporaryFile("w+b") as err, \
            open(stdin or os.devnull, "rb") as fin:
        proc = subprocess.run(cmd, stdin=fin, stdout=out, stderr=err, env=env, cwd=cwd or workdir,
                              timeout=timeout + 30)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise LaunchError(f"launcher failed ({proc.returncode}): {first_lines(stderr)}")
    return parse_result(result), stdout, stderr


def bindir() -> Path:
    """Where the launcher is compiled for compare: the user's cache, else a
    temporary directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goalloc" / "bin"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="goalloc-bin-"))
