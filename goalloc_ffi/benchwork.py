"""The workloads of ``goalloc bench`` (bench/README.md) and one run of each.

C stress patterns written here (bench_workloads/c, compiled on first use
by launch.build_programs) and real programs (python3, sqlite3, lua5.4, and
redis-server with redis-benchmark). Every run goes through the launcher
(launch.launch); its exit status, stderr and output are checked, so a
failing run is a failed Run, never the end of the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .allocators import Allocator
from .launch import LaunchError, clean_env, first_lines, launch, parse_result, status_error

PROGRAMS_DIR = Path(__file__).resolve().parent / "bench_workloads" / "programs"




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
        Workload("larson_succ", "pattern", "Larson as in the paper: each thread hands its blocks to a successor and exits",
                 _c("larson_succ", lambda c: [t(c), 300, 20000], lambda c: [t(c), 5, 5000])),
        Workload("invsq", "pattern", "bench-malloc-thread sizes: 4 B-32 KiB with density 1/size^2, private sets",
                 _c("workingset", lambda c: ["invsq", t(c), 12000000], lambda c: ["invsq", t(c), 100000])),
        Workload("logsize", "pattern", "1 thread, random positions, log-uniform sizes 8 B-64 KiB",
                 _c("workingset", lambda c: ["log", 1, 6000000], lambda c: ["log", 1, 50000])),
        Workload("logsize_mt", "pattern", "the same on N threads, each on its own blocks",
                 _c("workingset", lambda c: ["log", t(c), 3000000], lambda c: ["log", t(c), 50000])),
        Workload("prodcons", "pattern", "producer -> consumer: every free is remote",
                 _c("prodcons", lambda c: [max(1, t(c) // 2), 16000000], lambda c: [max(1, t(c) // 2), 200000])),
        Workload("threadchurn", "pattern", "threads start and exit; objects outlive their thread",
                 _c("threadchurn", lambda c: [2 * t(c), 1500], lambda c: [2 * t(c), 50])),
        Workload("threadlife", "pattern", "threads started one at a time, 8 blocks each: a thread's life",
                 _c("threadlife", lambda c: [40000], lambda c: [500])),
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



def _set_usage(run: Run, res: Dict[str, float]) -> None:
    run.user, run.sys, run.cpu = res["user"], res["sys"], res["user"] + res["sys"]
    run.maxrss_kib, run.minflt, run.majflt = int(res["maxrss_kib"]), int(res["minflt"]), int(res["majflt"])
    run.nvcsw = int(res["nvcsw"])


def run_command(w: Workload, alloc: Allocator, ctx: Context, rep: int, timeout: float) -> Run:
    env = clean_env(measure=True, keep_goalloc=True)
    env.update(w.env)
    stdin = w.stdin(ctx) if w.stdin else None
    res, stdout, stderr = launch(ctx.bins["launcher"], w.argv(ctx), alloc.preload, env, timeout,
                                 ctx.workdir, stdin)
    run = Run(w.name, alloc.name, rep, ok=False, wall=res["wall"], stdout=stdout)
    _set_usage(run, res)
    error = status_error(res, timeout)
    if error:
        detail = first_lines(stderr)
        run.error = f"{error}: {detail}" if detail else error
    elif stderr.strip():
        run.error = f"unexpected stderr: {first_lines(stderr)}"
    elif w.expect and not re.search(w.expect, stdout, re.M):
        run.error = f"output does not match /{w.expect}/: {first_lines(stdout) or '(empty)'}"
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
    env = clean_env(measure=True, keep_goalloc=True)
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
                    error = f"redis-benchmark exit status {b.returncode}: {first_lines(b.stderr)}"
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
        res = parse_result(result)
    except LaunchError:
        run.error = error or f"launcher failed: {first_lines(lerr.decode(errors='replace'))}"
        return run
    _set_usage(run, res)
    rps = {m.group(1): float(m.group(2))
           for m in re.finditer(r"^([A-Z_0-9]+)(?: \([^)]*\))?: ([\d.]+) requests per second", bench_out, re.M)}
    run.extra = {"requests_per_second": rps, "requests": requests, "malloc_served_by": served}
    wanted = {t.upper() for t in REDIS_TESTS.split(",")}
    status = status_error(res, timeout + 30)
    log = (rdir / "redis.log").read_text(errors="replace") if (rdir / "redis.log").exists() else ""
    if error:
        run.error = error
    elif status:
        run.error = f"redis-server {status}: {first_lines(log[-2000:])}"
    elif not wanted <= set(rps):
        run.error = f"redis-benchmark reported only {sorted(rps)}"
    elif "REDIS BUG REPORT" in log or "crashed by signal" in log:
        run.error = "redis-server logged a crash"
    else:
        run.ok = True
        run.stdout = " ".join(sorted(rps))
    return run
