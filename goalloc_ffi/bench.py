"""``goalloc bench``: goalloc against glibc malloc and the installed peers.

Runs every workload of bench/README.md under each allocator: glibc (no
preload), goalloc, and jemalloc, tcmalloc and mimalloc when their Debian
packages are installed (``make bench-deps``), interleaved A B C A B C ...
for N repetitions. Each run is forked by a small C launcher
(bench_workloads/c/launcher.c) that reports wall, user and system time and
peak RSS from wait4 on that child alone, and its exit status and output are
checked: a failing run is a FAIL cell, never the end of the run. The result
is a table of medians, spread and ratios to glibc with geometric means, a
JSON file and a PNG chart of the ratios.

``--instructions`` counts instructions per malloc+free pair under
callgrind instead (``make bench-instructions``).

The workload sources live in goalloc_ffi/bench_workloads/ (package data; a
checkout also shows them as bench/c and bench/programs) and are compiled
with ``cc`` into OUT/bin on first use, so an installed goalloc can run the
suite given a C compiler. Standard library plus rich; matplotlib only to
draw the chart.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ._paths import lib_path

PKG_DIR = Path(__file__).resolve().parent
WORKLOAD_DIR = PKG_DIR / "bench_workloads"
C_DIR = WORKLOAD_DIR / "c"
PROGRAMS_DIR = WORKLOAD_DIR / "programs"
CHECKOUT = PKG_DIR.parent
SCHEMA = "goalloc-bench/1"
DEFAULT_REPS = 5

#: C programs built from bench_workloads/c/NAME.c (workloads and tools).
C_PROGRAMS = ["simple", "thread", "churn", "sweep", "large", "larson", "prodcons", "threadchurn",
              "falseshare", "hotloop", "launcher"]
SHIM = "libga-glibc-shim.so"
CFLAGS = ["-O2", "-g", "-pthread", "-Wall", "-Wextra"]


class BenchError(Exception):
    """A problem that stops the whole run (not one workload's failure)."""


# ---------------------------------------------------------------------------
# Allocators


@dataclass
class Allocator:
    name: str
    preload: Optional[str]  # library to LD_PRELOAD; None: the system malloc
    package: str  # where it comes from (Debian package or "this checkout")
    version: str = ""


#: Debian packages and library file names of the peers.
PEERS = {
    "jemalloc": ("libjemalloc2", ["libjemalloc.so.2"]),
    "tcmalloc": ("libtcmalloc-minimal4", ["libtcmalloc_minimal.so.4"]),
    "mimalloc": ("libmimalloc2.0", ["libmimalloc.so.2", "libmimalloc.so.2.0"]),
}
ALL_ALLOCATORS = ["glibc", "goalloc", *PEERS]


def _lib_dirs() -> List[Path]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    return [Path(d) for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/usr/lib",
                              "/usr/local/lib")]


def find_library(names: Sequence[str]) -> Optional[str]:
    for d in _lib_dirs():
        for n in names:
            if (d / n).is_file():
                return str(d / n)
    return None


def deb_version(package: str) -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""


def discover_allocators(names: Sequence[str], console: Optional[Console] = None,
                        libs: Optional[Dict[str, str]] = None) -> List[Allocator]:
    """The allocators among *names* that are available here, in that order,
    then the *libs* not named there (name -> preload library: another build
    of goalloc, or any malloc replacement; "goalloc" there replaces the
    path of goalloc's column).

    A peer that is not installed is left out with a note; goalloc must exist.
    """
    libs = dict(libs or {})
    for name, path in libs.items():
        if not Path(path).is_file():
            raise BenchError(f"--lib {name}={path}: no such file")
        libs[name] = str(Path(path).resolve())
    out: List[Allocator] = []
    for name in names:
        if name in libs:
            out.append(Allocator(name, libs.pop(name), "--lib",
                                 _goalloc_version() if name == "goalloc" else ""))
        elif name == "glibc":
            out.append(Allocator("glibc", None, "libc6", glibc_version().replace("glibc ", "")))
        elif name == "goalloc":
            try:
                path = lib_path()
            except FileNotFoundError as e:
                raise BenchError(str(e)) from None
            out.append(Allocator("goalloc", path, "this package", _goalloc_version()))
        elif name in PEERS:
            package, files = PEERS[name]
            found = find_library(files)
            if found is None:
                if console is not None:
                    console.print(f"[yellow]{name}: not installed ({package}); skipped. "
                                  "As root, 'make bench-deps' installs the peers.[/]")
                continue
            out.append(Allocator(name, found, package, deb_version(package)))
        else:
            raise BenchError(f"unknown allocator {name!r}; known: {', '.join(ALL_ALLOCATORS)} "
                             "(or add one with --lib NAME=PATH)")
    out += [Allocator(name, path, "--lib") for name, path in libs.items()]
    return out


def _goalloc_version() -> str:
    try:
        from importlib.metadata import version

        v = version("goalloc-ffi")
    except Exception:  # metadata is a nicety
        v = "?"
    commit = _git(["rev-parse", "--short", "HEAD"])
    if commit:
        dirty = _git(["status", "--porcelain", "--untracked-files=no", "--", "csrc"])
        v += f" ({commit}{', csrc modified' if dirty else ''})"
    return v


def _git(args: List[str]) -> str:
    if not (CHECKOUT / ".git").exists():
        return ""
    try:
        r = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


# ---------------------------------------------------------------------------
# Machine


def machine_info() -> Dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "glibc": glibc_version(),
        "kernel": platform.release(),
        "memory_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "cc": _first_line([os.environ.get("CC") or "cc", "--version"]),
    }


def _first_line(cmd: List[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (r.stdout.splitlines() or [""])[0].strip()


# ---------------------------------------------------------------------------
# Building the workloads


def build_programs(bindir: Path, names: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Compiles the C programs (*names*, default all, plus the glibc shim)
    into *bindir* when stale."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc.split()[0]) is None:
        raise BenchError(f"goalloc bench compiles its workloads and needs a C compiler: {cc!r} "
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
            raise BenchError(f"building {exe.name} failed:\n$ {' '.join(cmd)}\n{r.stderr}")
    return out


# ---------------------------------------------------------------------------
# Workloads


@dataclass
class Context:
    """What a workload needs to build its command line."""

    bins: Dict[str, Path]
    workdir: Path
    quick: bool
    threads: int


@dataclass
class Workload:
    name: str
    kind: str  # "pattern" (C program written here) or "program" (a Debian program)
    stresses: str  # one line for the table and the README
    argv: Callable[[Context], List[str]]
    expect: str = r"\bok\b"  # regex stdout must match
    needs: Tuple[str, ...] = ()  # executables that must be on PATH
    env: Dict[str, str] = field(default_factory=dict)
    stdin: Optional[Callable[[Context], Path]] = None
    deterministic: bool = True  # same stdout from every allocator and run
    server: bool = False  # redis: a server plus a client, see run_redis


def _q(ctx: Context, full: Sequence[object], quick: Sequence[object]) -> List[str]:
    return [str(a) for a in (quick if ctx.quick else full)]


def _c(name: str, full: Callable[[Context], Sequence[object]], quick: Callable[[Context], Sequence[object]]):
    return lambda ctx: [str(ctx.bins[name]), *_q(ctx, full(ctx), quick(ctx))]


def python_exe() -> str:
    """Debian's python3 when there is one (a real program), else this one."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable


def sqlite_script(rows: int) -> str:
    """In-memory churn: bulk inserts, updates that grow rows, deletes, an
    index, aggregates, a group_concat table and VACUUM; deterministic."""
    out = ["PRAGMA cache_size = -65536;",
           "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT, n INTEGER);",
           "CREATE INDEX t_k ON t(k);"]
    for r in range(4):
        out += [
            "BEGIN;",
            (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
             f"INSERT INTO t(k, v, n) SELECT printf('key-%08d-{r}', (x * 7919) % {rows}), "
             f"printf('%.*c', 20 + (x * 13) % 200, 'v'), x FROM c;"),
            f"UPDATE t SET v = v || printf('%.*c', n % 50, 'u'), n = n + 1 WHERE n % 3 = {r % 3};",
            f"DELETE FROM t WHERE (n + {r}) % 4 = 0;",
            "COMMIT;",
            "SELECT count(*), sum(length(v)), sum(n) FROM t;",
            f"SELECT k, length(v) FROM t WHERE k LIKE 'key-0000%-{r}' ORDER BY k LIMIT 3;",
            "SELECT n % 10, count(*), max(length(v)) FROM t GROUP BY n % 10 ORDER BY 1;",
        ]
    out += ["CREATE TABLE u AS SELECT k, group_concat(v, '') AS g FROM t GROUP BY substr(k, 1, 9);",
            "SELECT count(*), sum(length(g)) FROM u;", "DROP TABLE u;", "VACUUM;",
            "SELECT 'sqlite ok', count(*) FROM t;"]
    return "\n".join(out) + "\n"


def _sqlite_stdin(ctx: Context) -> Path:
    rows = 2000 if ctx.quick else 40000
    path = ctx.workdir / f"sqlite-{rows}.sql"
    if not path.exists():
        path.write_text(sqlite_script(rows))
    return path


REDIS_TESTS = "set,get,lpush,lpop,sadd,hset,lrange_100"


def workloads() -> List[Workload]:
    t = lambda ctx: ctx.threads  # noqa: E731
    return [
        Workload("simple", "pattern", "glibc bench-malloc-simple: 1 thread, batches of 16 B-4 KiB blocks",
                 _c("simple", lambda c: [60], lambda c: [2])),
        Workload("thread", "pattern", "glibc bench-malloc-thread: N threads, random sizes, private working sets",
                 _c("thread", lambda c: [t(c), 12000000], lambda c: [t(c), 200000])),
        Workload("churn", "pattern", "1 thread, small objects in a sliding window of survivors",
                 _c("churn", lambda c: [30000000, 20000], lambda c: [500000, 20000])),
        Workload("sweep", "pattern", "every size 8 B-32 KiB: class switches, span starts, fit",
                 _c("sweep", lambda c: [200], lambda c: [5])),
        Workload("large", "pattern", "64 KiB-32 MiB blocks and realloc growth: page heap, OS",
                 _c("large", lambda c: [1000, 8], lambda c: [40, 1])),
        Workload("larson", "pattern", "Larson server: threads free what other threads allocated",
                 _c("larson", lambda c: [t(c), 150, 50000], lambda c: [t(c), 5, 20000])),
        Workload("prodcons", "pattern", "producer -> consumer: every free is remote",
                 _c("prodcons", lambda c: [max(1, t(c) // 2), 16000000], lambda c: [max(1, t(c) // 2), 200000])),
        Workload("threadchurn", "pattern", "threads start and exit; objects outlive their thread",
                 _c("threadchurn", lambda c: [2 * t(c), 1500], lambda c: [2 * t(c), 50])),
        Workload("falseshare", "pattern", "false sharing: objects handed between threads, written",
                 _c("falseshare", lambda c: [t(c), 80000, 1000], lambda c: [t(c), 2000, 1000])),
        Workload("python", "program", "CPython, PYTHONMALLOC=malloc: dicts, strings, JSON, trees",
                 lambda c: [python_exe(), str(PROGRAMS_DIR / "py_alloc.py"), "1" if c.quick else "6"],
                 expect=r"^cycles \w+$", env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0",
                                              "PYTHONDONTWRITEBYTECODE": "1"}),
        Workload("sqlite", "program", "sqlite3 :memory: insert/update/delete churn, index, VACUUM",
                 lambda c: ["sqlite3", "-batch", ":memory:"], expect=r"sqlite ok", needs=("sqlite3",),
                 stdin=_sqlite_stdin),
        Workload("redis", "program", "redis-server + redis-benchmark on 127.0.0.1 (-P 16)",
                 lambda c: [], expect="", needs=("redis-server", "redis-benchmark"), deterministic=False,
                 server=True),
        Workload("lua", "program", "lua5.4: tables, strings and the incremental GC (realloc)",
                 lambda c: ["lua5.4", str(PROGRAMS_DIR / "tables.lua"), "1" if c.quick else "4"],
                 expect=r"trees\s+\d+", needs=("lua5.4",)),
    ]


def missing_needs(w: Workload) -> List[str]:
    return [n for n in w.needs if shutil.which(n) is None]


# ---------------------------------------------------------------------------
# One run


@dataclass
class Run:
    workload: str
    allocator: str
    rep: int
    ok: bool
    error: str = ""
    wall: Optional[float] = None
    user: Optional[float] = None
    sys: Optional[float] = None
    cpu: Optional[float] = None  # user + sys
    maxrss_kib: Optional[int] = None
    minflt: Optional[int] = None
    majflt: Optional[int] = None
    nvcsw: Optional[int] = None  # voluntary context switches: sleeping on locks, waiting
    extra: Dict[str, object] = field(default_factory=dict)
    stdout: str = ""  # kept for the output check, not written to JSON


def base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(LC_ALL="C", TZ="UTC")
    return env


def _parse_result(path: Path) -> Dict[str, float]:
    text = path.read_text().strip() if path.exists() else ""
    if not text:
        raise BenchError("launcher wrote no result")
    return {k: float(v) for k, v in (item.split("=", 1) for item in text.split())}


def _status_error(res: Dict[str, float], timeout: float) -> str:
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


def _first_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:n])[:300]


def launch(launcher: Path, argv: List[str], preload: Optional[str], env: Dict[str, str], timeout: float,
           workdir: Path, stdin: Optional[Path] = None, pidfile: Optional[Path] = None,
           cwd: Optional[Path] = None) -> Tuple[Dict[str, float], str, str]:
    """Runs *argv* through the launcher (in *cwd*, default *workdir*);
    returns (measurements, stdout, stderr)."""
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
        raise BenchError(f"launcher failed ({proc.returncode}): {_first_lines(stderr)}")
    return _parse_result(result), stdout, stderr


def _set_usage(run: Run, res: Dict[str, float]) -> None:
    run.user, run.sys, run.cpu = res["user"], res["sys"], res["user"] + res["sys"]
    run.maxrss_kib, run.minflt, run.majflt = int(res["maxrss_kib"]), int(res["minflt"]), int(res["majflt"])
    run.nvcsw = int(res["nvcsw"])


def run_command(w: Workload, alloc: Allocator, ctx: Context, rep: int, timeout: float) -> Run:
    env = base_env()
    env.update(w.env)
    stdin = w.stdin(ctx) if w.stdin else None
    res, stdout, stderr = launch(ctx.bins["launcher"], w.argv(ctx), alloc.preload, env, timeout,
                                 ctx.workdir, stdin)
    run = Run(w.name, alloc.name, rep, ok=False, wall=res["wall"], stdout=stdout)
    _set_usage(run, res)
    error = _status_error(res, timeout)
    if error:
        detail = _first_lines(stderr)
        run.error = f"{error}: {detail}" if detail else error
    elif stderr.strip():
        run.error = f"unexpected stderr: {_first_lines(stderr)}"
    elif w.expect and not re.search(w.expect, stdout, re.M):
        run.error = f"output does not match /{w.expect}/: {_first_lines(stdout) or '(empty)'}"
    else:
        run.ok = True
    return run


# --- redis ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_ping(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def malloc_binding(program: str, preload: Optional[str], env: Dict[str, str]) -> str:
    """The library that serves `malloc` to *program* under *preload*, from
    ld.so's own report (LD_DEBUG=bindings, every symbol bound at start)."""
    env = dict(env, LD_DEBUG="bindings", LD_BIND_NOW="1")
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    try:
        r = subprocess.run([program, "--version"], env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    exe = Path(shutil.which(program) or program).name
    pat = re.compile(r"binding file (\S+) \[0\] to (\S+) \[0\]: normal symbol `malloc'")
    for m in pat.finditer(r.stderr):
        if Path(m.group(1)).name in (exe, program, Path(os.path.realpath(shutil.which(program) or program)).name):
            return m.group(2)
    return "?"


def redis_preload(alloc: Allocator, ctx: Context) -> str:
    """Debian's redis-server links jemalloc: its glibc column preloads the
    shim that forwards the malloc family to glibc."""
    return str(ctx.bins["shim"]) if alloc.preload is None else alloc.preload


def run_redis(w: Workload, alloc: Allocator, ctx: Context, rep: int, timeout: float,
              bindings: Dict[str, str]) -> Run:
    env = base_env()
    preload = redis_preload(alloc, ctx)
    if alloc.name not in bindings:
        bindings[alloc.name] = malloc_binding("redis-server", preload, env)
    served = bindings[alloc.name]
    if os.path.realpath(served) != os.path.realpath(preload):
        return Run(w.name, alloc.name, rep, ok=False,
                   error=f"malloc in redis-server is served by {served}, not {preload}")
    port = free_port()
    rdir = ctx.workdir / "redis"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir()
    pidfile = rdir / "pid"
    server = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(rdir),
              "--logfile", str(rdir / "redis.log"), "--io-threads", "1"]
    result = rdir / "result.txt"
    cmd = [str(ctx.bins["launcher"]), "-o", str(result), "-p", str(pidfile),
           "-t", str(int(timeout) + 30), "-e", f"LD_PRELOAD={preload}", "--", *server]
    requests = 5000 if ctx.quick else 100000
    client = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests), "-r", "100000",
              "-c", "20", "-P", "16", "-q", "-t", REDIS_TESTS]
    launcher = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, cwd=rdir)
    run = Run(w.name, alloc.name, rep, ok=False)
    bench_out, error = "", ""
    try:
        if not _redis_ping(port, time.monotonic() + 15):
            error = "redis-server did not answer PING within 15 s"
        else:
            t0 = time.perf_counter()
            try:
                b = subprocess.run(client, capture_output=True, text=True, timeout=timeout, env=env)
                run.wall = time.perf_counter() - t0
                bench_out = b.stdout.replace("\r", "\n")
                if b.returncode != 0:
                    error = f"redis-benchmark exit status {b.returncode}: {_first_lines(b.stderr)}"
            except subprocess.TimeoutExpired:
                error = f"redis-benchmark timed out after {timeout:.0f} s"
    finally:
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)  # stopped by its pid
        except (OSError, ValueError):
            launcher.kill()
        try:
            _, lerr = launcher.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            _, lerr = launcher.communicate()
    try:
        res = _parse_result(result)
    except BenchError:
        run.error = error or f"launcher failed: {_first_lines(lerr.decode(errors='replace'))}"
        return run
    _set_usage(run, res)
    rps = {m.group(1): float(m.group(2))
           for m in re.finditer(r"^([A-Z_0-9]+)(?: \([^)]*\))?: ([\d.]+) requests per second", bench_out, re.M)}
    run.extra = {"requests_per_second": rps, "requests": requests, "malloc_served_by": served}
    wanted = {t.upper() for t in REDIS_TESTS.split(",")}
    status = _status_error(res, timeout + 30)
    log = (rdir / "redis.log").read_text(errors="replace") if (rdir / "redis.log").exists() else ""
    if error:
        run.error = error
    elif status:
        run.error = f"redis-server {status}: {_first_lines(log[-2000:])}"
    elif not wanted <= set(rps):
        run.error = f"redis-benchmark reported only {sorted(rps)}"
    elif "REDIS BUG REPORT" in log or "crashed by signal" in log:
        run.error = "redis-server logged a crash"
    else:
        run.ok = True
        run.stdout = " ".join(sorted(rps))
    return run


# ---------------------------------------------------------------------------
# The suite


@dataclass
class Cell:
    """Every run of one workload under one allocator, summarised."""

    runs: List[Run]

    @property
    def ok_runs(self) -> List[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def failed(self) -> List[Run]:
        return [r for r in self.runs if not r.ok]

    def median(self, metric: str) -> Optional[float]:
        vals = [getattr(r, metric) for r in self.ok_runs if getattr(r, metric) is not None]
        return statistics.median(vals) if vals else None

    def spread(self, metric: str) -> Optional[float]:
        """(max - min) / median of the successful runs, as a fraction."""
        vals = [getattr(r, metric) for r in self.ok_runs if getattr(r, metric) is not None]
        if len(vals) < 2 or not statistics.median(vals):
            return None
        return (max(vals) - min(vals)) / statistics.median(vals)


@dataclass
class Suite:
    allocators: List[Allocator]
    workloads: List[Workload]
    skipped: Dict[str, str]  # workload -> why
    reps: int
    quick: bool
    threads: int
    machine: Dict[str, object]
    started: str
    finished: str = ""
    runs: List[Run] = field(default_factory=list)
    bindings: Dict[str, str] = field(default_factory=dict)  # redis: allocator -> malloc's library

    def cell(self, workload: str, allocator: str) -> Cell:
        return Cell([r for r in self.runs if r.workload == workload and r.allocator == allocator])

    def ratio(self, workload: str, allocator: str, metric: str) -> Optional[float]:
        """Median of *allocator* over median of glibc; None unless both are
        clean (a cell with any failed run has no ratio)."""
        base, cell = self.cell(workload, "glibc"), self.cell(workload, allocator)
        if base.failed or cell.failed:
            return None
        b, c = base.median(metric), cell.median(metric)
        return c / b if b and c is not None else None

    def geomean(self, allocator: str, metric: str) -> Tuple[Optional[float], int]:
        ratios = [r for r in (self.ratio(w.name, allocator, metric) for w in self.workloads) if r]
        if not ratios:
            return None, 0
        return math.exp(sum(math.log(r) for r in ratios) / len(ratios)), len(ratios)

    @property
    def any_failed(self) -> bool:
        return any(not r.ok for r in self.runs)


def check_outputs(suite: Suite, run: Run, reference: Dict[str, Tuple[str, str]]) -> None:
    """Every run must print what the first clean run of its workload printed
    (glibc's, as glibc runs first in each round)."""
    w = next(w for w in suite.workloads if w.name == run.workload)
    if not run.ok or not w.deterministic:
        return
    ref = reference.setdefault(run.workload, (run.allocator, run.stdout))
    if run.stdout != ref[1]:
        run.ok = False
        run.error = (f"output differs from {ref[0]}'s: {_first_lines(run.stdout, 1)!r} "
                     f"vs {_first_lines(ref[1], 1)!r}")


def run_suite(allocators: List[Allocator], wls: List[Workload], reps: int, quick: bool, outdir: Path,
              threads: Optional[int] = None, timeout: Optional[float] = None,
              console: Optional[Console] = None) -> Suite:
    """Runs every workload under every allocator, interleaved, *reps* times."""
    console = console or Console(stderr=True)
    bins = build_programs(outdir / "bin")
    skipped: Dict[str, str] = {}
    active: List[Workload] = []
    for w in wls:
        missing = missing_needs(w)
        if missing:
            skipped[w.name] = f"{', '.join(missing)} not installed"
        else:
            active.append(w)
    nthreads = threads or max(2, len(os.sched_getaffinity(0)))
    timeout = timeout or (60.0 if quick else 300.0)
    suite = Suite(allocators, active, skipped, reps, quick, nthreads, machine_info(), _now())
    reference: Dict[str, Tuple[str, str]] = {}
    total = reps * len(active) * len(allocators)
    with tempfile.TemporaryDirectory(prefix="goalloc-bench-") as tmp:
        ctx = Context(bins, Path(tmp), quick, nthreads)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("bench", total=total)
            t_start = time.monotonic()
            for rep in range(reps):
                for w in active:
                    for a in allocators:  # A B C A B C ...
                        progress.update(task, description=f"rep {rep + 1}/{reps} {w.name:<11} {a.name:<8}")
                        try:
                            if w.server:
                                run = run_redis(w, a, ctx, rep, timeout, suite.bindings)
                            else:
                                run = run_command(w, a, ctx, rep, timeout)
                        except (BenchError, OSError, subprocess.SubprocessError) as e:
                            run = Run(w.name, a.name, rep, ok=False, error=f"runner: {e}")
                        check_outputs(suite, run, reference)
                        suite.runs.append(run)
                        if not run.ok:
                            progress.console.print(Text.assemble(("FAIL", "bold red"), f" {w.name} under "
                                                                 f"{a.name} (rep {rep + 1}): {run.error}"))
                        progress.advance(task)
                if not console.is_terminal:  # no live bar in a log: one line per repetition
                    done = sum(1 for r in suite.runs if r.rep == rep and r.ok)
                    console.print(f"repetition {rep + 1}/{reps}: {done}/{len(active) * len(allocators)} "
                                  f"runs clean, {time.monotonic() - t_start:.0f} s so far")
    suite.finished = _now()
    return suite


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
# Reporting


def _fmt_time(s: float) -> str:
    return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def _fmt_rss(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _ratio_text(r: Optional[float]) -> Text:
    if r is None:
        return Text("")
    style = "green" if r < 0.9 else "red" if r > 1.1 else ""
    return Text(f"×{r:.2f}", style=style)


#: Shown in the tables and the chart; every one has a ratio to glibc.
METRICS = {"wall": ("wall time", _fmt_time), "cpu": ("CPU time (user+sys)", _fmt_time),
           "maxrss_kib": ("peak RSS", _fmt_rss)}


def metric_table(suite: Suite, metric: str) -> Table:
    title, fmt = METRICS[metric]
    table = Table(title=f"{title}: median, ±spread, ×ratio to glibc", title_justify="left")
    table.add_column("workload", no_wrap=True)
    for a in suite.allocators:
        table.add_column(a.name, justify="right", no_wrap=True)
    for w in suite.workloads:
        row: List[Text] = [Text(w.name)]
        for a in suite.allocators:
            cell = suite.cell(w.name, a.name)
            if cell.failed:
                row.append(Text(f"FAIL {len(cell.failed)}/{len(cell.runs)}", style="bold red"))
                continue
            med = cell.median(metric)
            if med is None:
                row.append(Text("-"))
                continue
            t = Text(fmt(med))
            sp = cell.spread(metric)
            if sp is not None:
                t.append(f" ±{sp * 100:.0f}%", style="dim")
            if a.name != "glibc":
                t.append(" ")
                t.append_text(_ratio_text(suite.ratio(w.name, a.name, metric)))
            row.append(t)
        table.add_row(*row)
    for name, why in suite.skipped.items():
        table.add_row(Text(name, style="dim"), Text(f"skipped: {why}", style="dim"),
                      *[Text("")] * (len(suite.allocators) - 1))
    geo: List[Text] = [Text("geometric mean", style="bold")]
    for a in suite.allocators:
        if a.name == "glibc":
            geo.append(Text("×1.00"))
            continue
        g, n = suite.geomean(a.name, metric)
        t = _ratio_text(g) if g else Text("-")
        if g and n < len(suite.workloads):
            t.append(f" ({n}/{len(suite.workloads)})", style="dim")
        geo.append(t)
    table.add_section()
    table.add_row(*geo)
    return table


def print_report(suite: Suite, console: Console) -> None:
    m = suite.machine
    console.print(f"[bold]goalloc bench[/] {'--quick ' if suite.quick else ''}{suite.reps} interleaved "
                  f"repetition{'s' if suite.reps > 1 else ''}, {suite.threads} threads in threaded workloads; "
                  f"{m['nproc']} CPUs ({m['cpu_model']}), {m['glibc']}, Linux {m['kernel']}")
    console.print("allocators: " + ", ".join(f"{a.name} {a.version}".strip() for a in suite.allocators))
    for metric in METRICS:
        console.print(metric_table(suite, metric))
    if suite.skipped:
        console.print("skipped: " + "; ".join(f"{k} ({v})" for k, v in suite.skipped.items()))
    if "redis" in {w.name for w in suite.workloads}:
        console.print("redis: wall time is redis-benchmark's; CPU time and peak RSS are the server's. "
                      "malloc served by: " + ", ".join(f"{k} -> {v}" for k, v in suite.bindings.items()),
                      markup=False)
    fails = [r for r in suite.runs if not r.ok]
    if fails:
        console.print(f"[bold red]{len(fails)} failed run(s):[/]")
        for r in fails:
            console.print(f"  {r.workload} / {r.allocator} / rep {r.rep + 1}: {r.error}", markup=False)
    console.print("median of the clean runs; ±spread = (max - min) / median; ×ratio = median / glibc's median "
                  "(< 1: faster or smaller than glibc). Only ratios within one interleaved run are comparable: "
                  "this kind of machine drifts by 15-40 % between runs.", style="dim")


def to_json(suite: Suite) -> Dict[str, object]:
    summary: Dict[str, Dict[str, object]] = {}
    for w in suite.workloads:
        summary[w.name] = {}
        for a in suite.allocators:
            cell = suite.cell(w.name, a.name)
            entry: Dict[str, object] = {"ok": len(cell.ok_runs), "failed": len(cell.failed)}
            for metric in ("wall", "cpu", "user", "sys", "maxrss_kib", "minflt", "nvcsw"):
                entry[f"{metric}_median"] = cell.median(metric)
                entry[f"{metric}_spread"] = cell.spread(metric)
                if metric in METRICS:
                    entry[f"{metric}_ratio"] = suite.ratio(w.name, a.name, metric)
            if cell.failed:
                entry["errors"] = sorted({r.error for r in cell.failed})
            summary[w.name][a.name] = entry
    geomean: Dict[str, Dict[str, object]] = {}
    for a in suite.allocators:
        geomean[a.name] = {}
        for metric in METRICS:
            g, n = suite.geomean(a.name, metric)
            geomean[a.name][f"{metric}_ratio"] = g
            geomean[a.name][f"{metric}_workloads"] = n
    runs = []
    for r in suite.runs:
        d = asdict(r)
        d.pop("stdout")
        runs.append(d)
    return {
        "schema": SCHEMA,
        "started": suite.started,
        "finished": suite.finished,
        "machine": suite.machine,
        "config": {"reps": suite.reps, "quick": suite.quick, "threads": suite.threads,
                   "order": "rep-major; within a rep every workload runs under each allocator in turn"},
        "allocators": [asdict(a) for a in suite.allocators],
        "workloads": [{"name": w.name, "kind": w.kind, "stresses": w.stresses} for w in suite.workloads],
        "skipped": suite.skipped,
        "redis_malloc_served_by": suite.bindings,
        "summary": summary,
        "geomean": geomean,
        "runs": runs,
    }


def plot(suite: Suite, path: Path) -> None:
    """Bar chart of the ratios to glibc, one panel per metric: one group per
    workload plus the geometric mean, bars up (worse) or down (better) from 1
    on a log scale, FAIL where a cell failed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    others = [a.name for a in suite.allocators if a.name != "glibc"]
    names = [w.name for w in suite.workloads] + ["geomean"]
    fig, axes = plt.subplots(len(METRICS), 1,
                             figsize=(min(18.0, max(9.0, len(names) * (0.6 + 0.25 * len(others)))), 11),
                             sharex=True)
    width = 0.8 / max(1, len(others))
    colors = plt.get_cmap("tab10")
    for ax, metric in zip(axes, METRICS):
        lo, hi = 0.5, 2.0
        for i, a in enumerate(others):
            label: Optional[str] = a
            for j, w in enumerate(names):
                x = j - 0.4 + width * (i + 0.5)
                r = suite.geomean(a, metric)[0] if w == "geomean" else suite.ratio(w, a, metric)
                if r:
                    ax.bar(x, r - 1.0, width, bottom=1.0, color=colors(i + 1), label=label,
                           edgecolor="black" if w == "geomean" else None, linewidth=0.6)
                    label = None
                    ax.text(x, r * (1.04 if r >= 1 else 0.96), f"{r:.2f}", rotation=90, ha="center",
                            va="bottom" if r >= 1 else "top", fontsize=6)
                    lo, hi = min(lo, r / 1.5), max(hi, r * 1.5)
                elif w != "geomean" and suite.cell(w, a).failed:
                    ax.text(x, 1.0, "FAIL", rotation=90, ha="center", va="center", fontsize=7, color="red",
                            fontweight="bold")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log", base=2)
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylabel(f"{METRICS[metric][0]} / glibc")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.axvspan(len(names) - 1.5, len(names) - 0.5, color="grey", alpha=0.12)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(ncol=max(1, len(others)), fontsize=8, loc="upper left")
    m = suite.machine
    axes[0].set_title(f"goalloc bench{' --quick' if suite.quick else ''}: ratio to glibc, median of "
                      f"{suite.reps} interleaved run(s); below 1 is better\n"
                      f"{m['nproc']} CPUs, {m['cpu_model']}, {m['glibc']}, {suite.started[:10]}", fontsize=9)
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Instruction counts (callgrind)


def callgrind_ir(valgrind: str, exe: Path, pairs: int, size: int, preload: Optional[str], workdir: Path
                 ) -> int:
    out = workdir / f"cg.{pairs}.out"
    out.unlink(missing_ok=True)
    env = base_env()
    if preload:
        env["LD_PRELOAD"] = preload
    cmd = [valgrind, "--tool=callgrind", "--toggle-collect=hot_loop", f"--callgrind-out-file={out}",
           str(exe), str(pairs), str(size)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or "hotloop ok" not in r.stdout:
        raise BenchError(f"callgrind failed ({r.returncode}): {_first_lines(r.stderr, 3)}")
    m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if m is None:
        raise BenchError("no instruction total in the callgrind output")
    return int(m.group(1))


def instructions(allocators: List[Allocator], sizes: Sequence[int], outdir: Path,
                 console: Console, pairs: Tuple[int, int] = (20000, 120000)) -> Dict[str, object]:
    """Instructions per malloc(size)+free pair, as the difference quotient of
    two callgrind runs of hot_loop with different pair counts."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("valgrind is not installed (apt-get install valgrind)")
    bins = build_programs(outdir / "bin")
    results: Dict[str, Dict[str, Optional[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="goalloc-cg-") as tmp:
        for a in allocators:
            results[a.name] = {}
            for size in sizes:
                with console.status(f"callgrind: {a.name}, malloc({size})+free"):
                    try:
                        lo = callgrind_ir(valgrind, bins["hotloop"], pairs[0], size, a.preload, Path(tmp))
                        hi = callgrind_ir(valgrind, bins["hotloop"], pairs[1], size, a.preload, Path(tmp))
                        results[a.name][str(size)] = (hi - lo) / (pairs[1] - pairs[0])
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        results[a.name][str(size)] = None
                        console.print(f"[red]FAIL[/] {a.name} malloc({size}): {e}")
    table = Table(title="instructions per malloc+free pair (callgrind, hot loop; "
                        "lower is better)", title_justify="left")
    table.add_column("allocator")
    for size in sizes:
        table.add_column(f"malloc({size})", justify="right")
    for a in allocators:
        cells = []
        for size in sizes:
            v = results[a.name][str(size)]
            base = results.get("glibc", {}).get(str(size))
            if v is None:
                cells.append(Text("FAIL", style="bold red"))
            else:
                t = Text(f"{v:.1f}")
                if base and a.name != "glibc":
                    t.append(" ")
                    t.append_text(_ratio_text(v / base))
                cells.append(t)
        table.add_row(a.name, *cells)
    console.print(table)
    console.print(f"Each figure is (Ir({pairs[1]} pairs) - Ir({pairs[0]} pairs)) / {pairs[1] - pairs[0]} "
                  "inside hot_loop (malloc, one store, free), so start-up and first-span costs drop out.",
                  style="dim")
    return {"schema": SCHEMA + "/instructions", "machine": machine_info(), "pairs": list(pairs),
            "allocators": [asdict(a) for a in allocators], "instructions_per_pair": results}


# ---------------------------------------------------------------------------
# Entry point (goalloc bench)


def default_outdir() -> Path:
    """bench/results in a checkout, else ./goalloc-bench."""
    if (CHECKOUT / "bench" / "README.md").is_file():
        return CHECKOUT / "bench" / "results"
    return Path.cwd() / "goalloc-bench"


def select_workloads(names: Optional[Iterable[str]]) -> List[Workload]:
    wls = workloads()
    if not names:
        return wls
    by_name = {w.name: w for w in wls}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BenchError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def main(quick: bool = False, reps: Optional[int] = None, allocators: Optional[Sequence[str]] = None,
         libs: Optional[Dict[str, str]] = None,
         workload_names: Optional[Sequence[str]] = None, outdir: Optional[Path] = None,
         threads: Optional[int] = None, timeout: Optional[float] = None, plot_png: bool = True,
         list_only: bool = False, count_instructions: bool = False, sizes: Sequence[int] = (32,),
         console: Optional[Console] = None) -> int:
    """``goalloc bench``; returns the exit status (1 if any run failed)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 140))  # logs: keep a table row on one line
    try:
        if list_only:
            table = Table("workload", "kind", "stresses", title="workloads", title_justify="left")
            for w in workloads():
                missing = missing_needs(w)
                table.add_row(w.name, w.kind, w.stresses + (f" [dim](needs {', '.join(missing)})[/]"
                                                            if missing else ""))
            console.print(table)
            return 0
        allocs = discover_allocators(allocators or ALL_ALLOCATORS, console, libs)
        outdir = (outdir or default_outdir()).resolve()
        outdir.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if count_instructions:
            data = instructions(allocs, sizes, outdir, console)
            path = outdir / f"instructions-{stamp}.json"
            path.write_text(json.dumps(data, indent=2) + "\n")
            console.print(f"JSON: {path}")
            per_pair: Dict[str, Dict[str, Optional[float]]] = data["instructions_per_pair"]  # type: ignore[assignment]
            return 1 if any(v is None for r in per_pair.values() for v in r.values()) else 0
        wls = select_workloads(workload_names)
        reps = reps or (1 if quick else DEFAULT_REPS)
        console.print(f"building the workloads in {outdir / 'bin'} ...")
        suite = run_suite(allocs, wls, reps, quick, outdir, threads, timeout, console)
    except BenchError as e:
        console.print(f"[bold red]goalloc bench:[/] {e}")
        return 2
    print_report(suite, console)
    prefix = f"bench-{'quick-' if quick else ''}{stamp}"
    jpath = outdir / f"{prefix}.json"
    jpath.write_text(json.dumps(to_json(suite), indent=2) + "\n")
    console.print(f"JSON: {jpath}")
    if plot_png:
        ppath = outdir / f"{prefix}.png"
        try:
            plot(suite, ppath)
            console.print(f"PNG:  {ppath}")
        except ImportError:
            console.print("[yellow]matplotlib is not installed: no chart (pip install matplotlib)[/]")
    return 1 if suite.any_failed else 0
