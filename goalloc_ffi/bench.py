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
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .allocators import ALL_ALLOCATORS, Allocator, discover_allocators, machine_info
from .benchreport import SCHEMA, plot, print_report, ratio_text, to_json
from .benchsuite import run_suite
from .benchwork import Workload, missing_needs, workloads
from .launch import LaunchError, build_programs, clean_env, first_lines
from .tables import Column, fit_tables

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_REPS = 5


# ---------------------------------------------------------------------------
# Instruction counts (callgrind)


def callgrind_ir(valgrind: str, exe: Path, pairs: int, size: int, preload: Optional[str], workdir: Path
                 ) -> int:
    out = workdir / f"cg.{pairs}.out"
    out.unlink(missing_ok=True)
    env = clean_env(measure=True, keep_goalloc=True)
    if preload:
        env["LD_PRELOAD"] = preload
    cmd = [valgrind, "--tool=callgrind", "--toggle-collect=hot_loop", f"--callgrind-out-file={out}",
           str(exe), str(pairs), str(size)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or "hotloop ok" not in r.stdout:
        raise LaunchError(f"callgrind failed ({r.returncode}): {first_lines(r.stderr, 3)}")
    m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if m is None:
        raise LaunchError("no instruction total in the callgrind output")
    return int(m.group(1))


def instructions(allocators: List[Allocator], sizes: Sequence[int], outdir: Path,
                 console: Console, pairs: Tuple[int, int] = (20000, 120000)) -> Dict[str, object]:
    """Instructions per malloc(size)+free pair, as the difference quotient of
    two callgrind runs of hot_loop with different pair counts."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise LaunchError("valgrind is not installed (apt-get install valgrind)")
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
                    except (LaunchError, subprocess.TimeoutExpired) as e:
                        results[a.name][str(size)] = None
                        console.print(f"[red]FAIL[/] {a.name} malloc({size}): {e}")
    columns = [Column("allocator", "left"), *(Column(f"malloc({size})") for size in sizes)]
    rows = []
    for a in allocators:
        cells: List[Text] = [Text(a.name)]
        for size in sizes:
            v = results[a.name][str(size)]
            base = results.get("glibc", {}).get(str(size))
            if v is None:
                cells.append(Text("FAIL", style="bold red"))
            else:
                t = Text(f"{v:.1f}")
                if base and a.name != "glibc":
                    t.append(" ")
                    t.append_text(ratio_text(v / base))
                cells.append(t)
        rows.append(cells)
    for table in fit_tables("instructions per malloc+free pair (callgrind, hot loop; lower is better)",
                            columns, rows, console.width):
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
        raise LaunchError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def main(quick: bool = False, reps: Optional[int] = None, allocators: Optional[Sequence[str]] = None,
         libs: Optional[Dict[str, str]] = None,
         workload_names: Optional[Sequence[str]] = None, outdir: Optional[Path] = None,
         threads: Optional[int] = None, timeout: Optional[float] = None, plot_png: bool = True,
         list_only: bool = False, count_instructions: bool = False, sizes: Sequence[int] = (32,),
         console: Optional[Console] = None) -> int:
    """``goalloc bench``; returns the exit status (1 if any run failed)."""
    if console is None:
        console = Console()  # a pipe: $COLUMNS or 80; the tables fold to it
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
    except LaunchError as e:
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
