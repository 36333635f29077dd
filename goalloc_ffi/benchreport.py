"""The report of ``goalloc bench``: tables of medians, spreads and ratios
to glibc with geometric means, the JSON document and the PNG chart.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .benchsuite import Suite
from .plots import pyplot
from .tables import Column, fit_tables

SCHEMA = "goalloc-bench/1"



def _fmt_time(s: float) -> str:
    return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def _fmt_rss(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def ratio_text(r: Optional[float]) -> Text:
    """×r, green below 0.9, red above 1.1 (empty for None)."""
    if r is None:
        return Text("")
    style = "green" if r < 0.9 else "red" if r > 1.1 else ""
    return Text(f"×{r:.2f}", style=style)


#: Shown in the tables and the chart; every one has a ratio to glibc.
METRICS = {"wall": ("wall time", _fmt_time), "cpu": ("CPU time (user+sys)", _fmt_time),
           "maxrss_kib": ("peak RSS", _fmt_rss)}


def metric_tables(suite: Suite, metric: str, width: int) -> List[Table]:
    """The metric's table, folded to *width* (tables.fit_tables: no figure
    is ever cut); skipped workloads are listed under the tables instead."""
    title, fmt = METRICS[metric]
    rows: List[List[Text]] = []
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
                t.append_text(ratio_text(suite.ratio(w.name, a.name, metric)))
            row.append(t)
        rows.append(row)
    geo: List[Text] = [Text("geometric mean", style="bold")]
    for a in suite.allocators:
        if a.name == "glibc":
            geo.append(Text("×1.00"))
            continue
        g, n = suite.geomean(a.name, metric)
        t = ratio_text(g) if g else Text("-")
        if g and n < len(suite.workloads):
            t.append(f" ({n}/{len(suite.workloads)})", style="dim")
        geo.append(t)
    rows.append(geo)
    columns = [Column("workload", "left"), *(Column(a.name) for a in suite.allocators)]
    return fit_tables(f"{title}: median, ±spread, ×ratio to glibc", columns, rows, width)


def print_report(suite: Suite, console: Console) -> None:
    m = suite.machine
    console.print(f"[bold]goalloc bench[/] {'--quick ' if suite.quick else ''}{suite.reps} interleaved "
                  f"repetition{'s' if suite.reps > 1 else ''}, {suite.threads} threads in threaded workloads; "
                  f"{m['nproc']} CPUs ({m['cpu_model']}), {m['glibc']}, Linux {m['kernel']}")
    console.print("allocators: " + ", ".join(f"{a.name} {a.version}".strip() for a in suite.allocators))
    for metric in METRICS:
        for table in metric_tables(suite, metric, console.width):
            console.print(table)
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
    plt = pyplot()
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
