"""``goalloc demo``: a real program on goalloc and on glibc, side by side.

Runs CPython with PYTHONMALLOC=malloc (every object through malloc/free) on
an allocation-heavy script, alternating glibc and goalloc runs, checks that
both print the same thing, and shows wall time, peak RSS and goalloc's own
census of its heap at exit (GOALLOC=summary=1).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from rich.console import Console
from rich.table import Table

from ._paths import lib_path
from .launch import clean_env, preload_env

WORKLOAD = Path(__file__).resolve().parent / "workloads" / "alloc_heavy.py"


@dataclass
class Run:
    seconds: float
    max_rss_kib: int
    stdout: str
    stderr: str


def run_once(env: Dict[str, str]) -> Run:
    """One child run; rusage comes from wait4 on that child alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(WORKLOAD)], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(elapsed, usage.ru_maxrss, out.read(), err.read())
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed ({proc.returncode}):\n{result.stderr}")
    return result


def demo(repetitions: int = 3, console: Optional[Console] = None) -> int:
    console = console or Console()
    base = dict(clean_env(measure=False), PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
    configs = {
        "glibc": base,
        "goalloc": preload_env(base, lib_path(), options="summary=1"),
    }
    console.print(f"[bold]goalloc demo[/]: {WORKLOAD.name} under CPython (PYTHONMALLOC=malloc), "
                  f"{repetitions} interleaved runs per allocator")
    runs: Dict[str, List[Run]] = {name: [] for name in configs}
    for _ in range(repetitions):
        for name, env in configs.items():
            runs[name].append(run_once(env))
    outputs = {r.stdout for rs in runs.values() for r in rs}
    if len(outputs) != 1:
        console.print("[red]outputs differ between glibc and goalloc[/]")
        return 1
    table = Table(title="median of the runs")
    table.add_column("allocator")
    table.add_column("wall time (s)", justify="right")
    table.add_column("peak RSS (MiB)", justify="right")
    table.add_column("time / glibc", justify="right")
    glibc_t = statistics.median(r.seconds for r in runs["glibc"])
    for name, rs in runs.items():
        t = statistics.median(r.seconds for r in rs)
        rss = statistics.median(r.max_rss_kib for r in rs) / 1024
        table.add_row(name, f"{t:.2f}", f"{rss:.1f}", f"{t / glibc_t:.2f}")
    console.print(table)
    console.print("Both allocators printed the same output:")
    console.print(outputs.pop().rstrip(), markup=False)
    census = [ln for ln in runs["goalloc"][-1].stderr.splitlines() if ln.startswith("goalloc:")]
    console.print("\n[bold]What goalloc's heap held when CPython exited[/] (GOALLOC=summary=1):")
    console.print("\n".join(census), markup=False)
    return 0
