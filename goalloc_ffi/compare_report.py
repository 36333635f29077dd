"""The output of ``goalloc compare``: the table (medians, spread, ratio to
the first configuration), the verdict on the wall time with its confidence
interval, the JSON document, the Markdown table and the PNG chart; and
``main``, which runs a comparison and writes them.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rich.console import Console
from rich.text import Text

from . import stats
from .benchreport import ratio_text
from .compare import FRAG_EXACT, FRAG_LIVE, METRICS, SCHEMA, CompareError, Comparison, Config, Metric, run_comparison
from .plots import pyplot
from .tables import Column, fit_tables, markdown

WALL = next(m for m in METRICS if m.name == "wall")


def _cell(cmp: Comparison, c: Config, m: Metric) -> Text:
    s = cmp.summary(c.label, m)
    if s.median is None:
        return Text("n/a", style="dim")
    cell = Text(m.fmt(s.median))
    if s.spread is not None:
        cell.append(f" ±{s.spread * 100:.0f}%", style="dim")
    if c.label != cmp.configs[0].label:
        cell.append(" ")
        cell.append_text(ratio_text(cmp.ratio(c.label, m)))
    return cell


def rows(cmp: Comparison) -> List[List[Text]]:
    """One row per metric and the runs row: the cells of the table."""
    out = [[Text(m.title), *(_cell(cmp, c, m) for c in cmp.configs)] for m in METRICS]
    runs = [Text("runs")]
    for c in cmp.configs:
        mine = [r for r in cmp.runs if r.config == c.label]
        bad = sum(not r.ok for r in mine)
        runs.append(Text(f"FAIL {bad}/{len(mine)}", style="bold red") if bad else Text(f"{len(mine)} ok"))
    return out + [runs]


def columns(cmp: Comparison) -> List[Column]:
    return [Column("metric", "left"), *(Column(c.label) for c in cmp.configs)]


def title(cmp: Comparison) -> str:
    warm = f" after {cmp.warmup} warm-up round(s)" if cmp.warmup else ""
    return (f"goalloc compare: median of {cmp.reps} interleaved run(s){warm}, ±spread, "
            f"×ratio to {cmp.configs[0].label}")


def verdict(cmp: Comparison, c: Config, m: Metric = WALL) -> str:
    """One line, as hyperfine says it: how many times faster (or slower)
    than the baseline c runs, with the 95 % confidence interval of the
    ratio over the paired repetitions."""
    base = cmp.configs[0].label
    iv = cmp.paired_ratio(c.label, m)
    if iv is None:
        return f"{c.label} vs {base}: no pair of clean runs to compare"
    speed = 1.0 / iv.ratio  # baseline time / this one's time
    word = "faster" if speed >= 1 else "slower"
    times = speed if speed >= 1 else 1.0 / speed
    if iv.lo is None or iv.hi is None:
        return f"{c.label} ran {times:.2f} times {word} than {base} (one pair of runs: no confidence interval)"
    lo, hi = sorted(((1.0 / iv.hi) if speed >= 1 else iv.lo, (1.0 / iv.lo) if speed >= 1 else iv.hi))
    clear = "" if lo > 1.0 else "; the interval includes 1: no clear difference"
    return (f"{c.label} ran {times:.2f} times {word} than {base} "
            f"(95% confidence interval {lo:.2f}-{hi:.2f}, {iv.n} interleaved pairs){clear}")


def print_report(cmp: Comparison, console: Console) -> None:
    console.print(f"command: {shlex.join(cmp.command)}", markup=False, highlight=False)
    for t in fit_tables(title(cmp), columns(cmp), rows(cmp), console.width):
        t.title_justify = "left"
        console.print(t)
    for c in cmp.configs[1:]:
        console.print(verdict(cmp, c), markup=False, highlight=False)
    if cmp.failed:
        console.print(f"[bold red]{len(cmp.failed)} failed run(s):[/]")
        for r in cmp.failed:
            console.print(f"  {r.config} / rep {r.rep + 1}: {r.error}", markup=False)
    console.print("glibc and the peers have no goalloc statistics (n/a). Heap figures are the library's at "
                  "exit (GOALLOC_STATS), from these totals:", style="dim")
    docs = stats.TOTAL_DOCS
    for name in (FRAG_EXACT, FRAG_LIVE):
        console.print(f"  {name}: {docs[name]}", style="dim", markup=False, highlight=False)


def to_markdown(cmp: Comparison) -> str:
    """The table and the verdicts as Markdown."""
    head = f"`{shlex.join(cmp.command)}`: {title(cmp).removeprefix('goalloc compare: ')}\n\n"
    lines = "".join(f"- {verdict(cmp, c)}\n" for c in cmp.configs[1:])
    return head + markdown(columns(cmp), rows(cmp)) + ("\n" + lines if lines else "")


def to_json(cmp: Comparison) -> Dict[str, Any]:
    metrics: Dict[str, Dict[str, Any]] = {}
    for m in METRICS:
        metrics[m.name] = {}
        for c in cmp.configs:
            s = cmp.summary(c.label, m)
            iv = cmp.paired_ratio(c.label, m)
            metrics[m.name][c.label] = {"median": s.median, "min": min(s.values) if s.values else None,
                                        "max": max(s.values) if s.values else None, "spread": s.spread,
                                        "ratio": cmp.ratio(c.label, m), "n": len(s.values),
                                        "paired_ratio": asdict(iv) if iv else None}
    return {
        "schema": SCHEMA,
        "command": cmp.command,
        "reps": cmp.reps,
        "warmup": cmp.warmup,
        "order": "rep-major: within a repetition every configuration runs in turn",
        "started": cmp.started,
        "finished": cmp.finished,
        "machine": cmp.machine,
        "configs": [{"label": c.label, "preload": c.preload, "allocator": c.allocator or
                     ("goalloc" if c.preload else "glibc"), "library": c.library, "options": dict(c.options)}
                    for c in cmp.configs],
        "metrics": metrics,
        "verdicts": [verdict(cmp, c) for c in cmp.configs[1:]],
        "runs": [asdict(r) for r in cmp.runs],
        "failed": len(cmp.failed),
    }


def plot(cmp: Comparison, path: Path) -> None:
    """One panel per metric, a bar per configuration at its median, error
    bars from the smallest to the largest clean run; n/a where there is no
    figure."""
    plt = pyplot()
    ncols = 3
    nrows = (len(METRICS) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    labels = [c.label for c in cmp.configs]
    colors = plt.get_cmap("tab10")
    for ax, m in zip(axes.flat, METRICS):
        for i, c in enumerate(cmp.configs):
            s = cmp.summary(c.label, m)
            if s.median is None:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
                continue
            med = s.median / m.scale
            err = [[med - min(s.values) / m.scale], [max(s.values) / m.scale - med]]
            ax.bar(i, med, 0.7, color=colors(i % 10), yerr=err, capsize=4, ecolor="black")
        ax.set_title(m.title, fontsize=9)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        if m.unit:
            ax.set_ylabel(m.unit, fontsize=8)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(METRICS):]:
        ax.axis("off")
    command = " ".join(shlex.join(cmp.command).split())
    fig.suptitle(f"goalloc compare, {cmp.reps} interleaved run(s): {command[:90]}"
                 f"{'...' if len(command) > 90 else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str], configs: Sequence[Config], reps: int, chart: Optional[Path] = None,
         json_path: Optional[Path] = None, timeout: float = 600.0, stdin: Optional[Path] = None,
         ignore_output: bool = False, debug: bool = False, warmup: int = 0,
         markdown_path: Optional[Path] = None) -> int:
    """``goalloc compare``: the report on stdout, progress and errors on
    stderr; returns the exit status (1 if a run failed, 2 if nothing could
    run)."""
    console, err = Console(), Console(stderr=True)
    try:
        cmp = run_comparison(argv, configs, reps, timeout, stdin, ignore_output, debug, err, warmup)
    except CompareError as e:
        err.print(f"goalloc compare: {e}", markup=False, highlight=False)
        return 2
    print_report(cmp, console)
    for path, text, what in ((json_path, lambda: json.dumps(to_json(cmp), indent=2) + "\n", "JSON"),
                             (markdown_path, lambda: to_markdown(cmp), "Markdown")):
        if path:
            path.write_text(text())
            console.print(f"{what}: {path}", markup=False, highlight=False)
    if chart:
        plot(cmp, chart)
        console.print(f"PNG:  {chart}", markup=False, highlight=False)
    return 1 if cmp.failed else 0
