"""The suite of ``goalloc bench``: every workload under every allocator,
interleaved (A B C A B C ...), with a progress bar; Cell and Suite
summarise the runs (medians, spreads, ratios to glibc, geometric means).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from .allocators import Allocator, machine_info
from .benchwork import Context, Run, Workload, missing_needs, run_command, run_redis
from .launch import LaunchError, build_programs, first_lines, now


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
        run.error = (f"output differs from {ref[0]}'s: {first_lines(run.stdout, 1)!r} "
                     f"vs {first_lines(ref[1], 1)!r}")


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
    suite = Suite(allocators, active, skipped, reps, quick, nthreads, machine_info(), now())
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
                        except (LaunchError, OSError, subprocess.SubprocessError) as e:
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
    suite.finished = now()
    return suite

