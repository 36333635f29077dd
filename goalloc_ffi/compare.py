"""``goalloc compare``: one command under several allocator configurations.

A configuration is ``default`` (goalloc preloaded with its default options),
``glibc`` (nothing preloaded) or comma-separated ``KEY=VALUE`` options for
``$GOALLOC`` with goalloc preloaded (``tiny=0``, ``sizeclasses=fitted.tsv``,
...). Every configuration runs the command in turn, repetition after
repetition (A B C A B C ...), through the launcher of ``goalloc bench``
(bench_workloads/c/launcher.c: wall time and peak RSS from wait4 on that
child alone). Each goalloc run also writes its statistics at exit
(``GOALLOC_STATS``), from which come the heap figures: peak heap bytes,
spans taken from the page heap, pages released and internal fragmentation
(exact over every small malloc, in bytes and as a share of the bytes handed
out; and the library's estimate for the objects live at exit). Every run must exit with
status 0 and print what the first run printed; a configuration the library
rejects (its ``GOALLOC:`` warning on a trial run) stops everything before
the first measurement.

The result: a table of medians with spread and ratio to the first
configuration, optionally a JSON file of every run and a PNG chart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import bench, stats
from ._paths import lib_path
from .sizeclass_table import VARIANTS

SCHEMA = "goalloc-compare/1"
OPTIONS_ENV = "GOALLOC"
STATS_ENV = "GOALLOC_STATS"
#: A warning of the library about $GOALLOC (init.c, option_message).
OPTION_WARNING = re.compile(r"\bGOALLOC: [^\n]*")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CompareError(Exception):
    """A problem that stops the comparison before or between runs."""


# ---------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class Config:
    label: str  # as given on the command line
    preload: bool  # goalloc preloaded (False: glibc)
    options: Tuple[Tuple[str, str], ...] = ()  # for $GOALLOC, in order

    @property
    def goalloc_env(self) -> str:
        """$GOALLOC for the runs: the options, a value naming a file here
        made absolute (see ``here``)."""
        return ",".join(f"{k}={here(v)}" for k, v in self.options)


def here(value: str) -> str:
    """A relative path to a file in the current directory, made absolute:
    every process of the command reads $GOALLOC from its own working
    directory, and some change it first (pyenv's python3 shim does). A
    built-in table's name stays a name."""
    if os.path.isabs(value) or value in {v.name for v in VARIANTS} or not os.path.isfile(value):
        return value
    return os.path.abspath(value)


def parse_config(text: str) -> Config:
    """``default``, ``glibc`` or ``KEY=VALUE[,KEY=VALUE...]``; raises
    ValueError saying what is wrong."""
    label = text.strip()
    if label in ("default", "glibc"):
        return Config(label, label == "default")
    if not label:
        raise ValueError("empty configuration (expected default, glibc or KEY=VALUE[,KEY=VALUE...])")
    options: List[Tuple[str, str]] = []
    for item in label.split(","):
        key, sep, value = item.partition("=")
        if not item:
            raise ValueError(f"{text!r}: empty item between commas")
        if not sep:
            raise ValueError(f"{text!r}: {item!r} is not KEY=VALUE (or default / glibc)")
        if not _KEY.match(key):
            raise ValueError(f"{text!r}: {key!r} is not an option name")
        if not value:
            raise ValueError(f"{text!r}: {key} has no value")
        if any(k == key for k, _ in options):
            raise ValueError(f"{text!r}: {key} given twice")
        options.append((key, value))
    return Config(label, True, tuple(options))


def run_env(config: Config, stats_path: Optional[str]) -> Dict[str, str]:
    """The environment of one run: bench's (no LD_PRELOAD, C locale, UTC)
    without inherited goalloc settings, plus this configuration's."""
    env = bench.base_env()
    for name in (OPTIONS_ENV, STATS_ENV):
        env.pop(name, None)
    if config.options:
        env[OPTIONS_ENV] = config.goalloc_env
    if config.preload and stats_path:
        env[STATS_ENV] = stats_path
    return env


def check_configs(configs: Sequence[Config], library: str, console: Console) -> None:
    """A trial run of a trivial program under each goalloc configuration:
    any warning of the library about $GOALLOC rejects the configuration."""
    probe = shutil.which("true") or sys.executable
    argv = [probe] if probe != sys.executable else [probe, "-c", "pass"]
    bad = []
    for c in configs:
        if not c.options:
            continue
        env = run_env(c, None)
        env["LD_PRELOAD"] = library
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise CompareError(f"trial run of {c.label!r} failed: {e}") from None
        warnings = OPTION_WARNING.findall(r.stderr)
        if warnings or r.returncode != 0:
            bad.append(f"{c.label!r}: " + ("; ".join(warnings) or f"exit status {r.returncode}: "
                                           f"{bench._first_lines(r.stderr)}"))
    if bad:
        raise CompareError("the library rejects configuration(s):\n  " + "\n  ".join(bad))


# ---------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    config: str
    rep: int
    ok: bool = False
    error: str = ""
    pid: int = 0
    exit: Optional[int] = None
    signal: int = 0
    wall: Optional[float] = None
    user: Optional[float] = None
    sys: Optional[float] = None
    maxrss_kib: Optional[int] = None
    stdout_sha256: str = ""
    stdout_head: str = ""
    stats: Optional[Dict[str, Any]] = None  # the library's JSON at exit, as written
    stderr_head: str = ""


def _load_stats(pattern: str, pid: int) -> Optional[Dict[str, Any]]:
    path = Path(pattern.replace("%p", str(pid)))
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def run_once(config: Config, index: int, rep: int, argv: Sequence[str], launcher: Path, library: str,
             workdir: Path, timeout: float, stdin: Optional[Path]) -> Run:
    """One run of *argv* under *config* (the *index*-th) in this directory."""
    stats_pattern = str(workdir / f"stats-{rep}-{index}-%p.json")
    env = run_env(config, stats_pattern)
    res, stdout, stderr = bench.launch(launcher, list(argv), library if config.preload else None, env, timeout,
                                       workdir, stdin, cwd=Path.cwd())
    run = Run(config.label, rep, pid=int(res["pid"]), exit=int(res["exit"]), signal=int(res["signal"]), wall=res["wall"],
              user=res["user"], sys=res["sys"], maxrss_kib=int(res["maxrss_kib"]),
              stdout_sha256=hashlib.sha256(stdout.encode()).hexdigest(),
              stdout_head=bench._first_lines(stdout, 1), stderr_head=bench._first_lines(stderr, 2))
    if config.preload:
        run.stats = _load_stats(stats_pattern, run.pid)
    status = bench._status_error(res, timeout)
    warnings = OPTION_WARNING.findall(stderr)
    if status:
        run.error = f"{status}: {run.stderr_head}" if run.stderr_head else status
    elif warnings:
        run.error = "; ".join(warnings)
    else:
        run.ok = True
    return run


def check_same(runs: Sequence[Run], ignore_output: bool) -> None:
    """Every run must exit as the first run did and print the same; marks
    the others failed."""
    ref = runs[0]
    for r in runs[1:]:
        if r.exit != ref.exit or r.signal != ref.signal:
            r.ok = False
            how = f"signal {r.signal}" if r.signal else f"exit status {r.exit}"
            was = f"signal {ref.signal}" if ref.signal else f"{ref.exit}"
            r.error = f"{how} where {ref.config} had {was}" + (f": {r.stderr_head}" if r.stderr_head else "")
        elif not ignore_output and r.stdout_sha256 != ref.stdout_sha256:
            r.ok = False
            r.error = (f"output differs from {ref.config}'s (rep {ref.rep + 1}): {r.stdout_head!r} vs "
                       f"{ref.stdout_head!r}; --ignore-output if that is expected")


# ---------------------------------------------------------------------------
# Metrics


def _totals(r: Run) -> Optional[Any]:
    """The run's totals at exit as goalloc_ffi.stats reads them (the names
    the library wrote), None for a glibc run or statistics it cannot read."""
    if not r.stats:
        return None
    try:
        return stats.from_json(r.stats).totals
    except (ValueError, KeyError, TypeError, stats.StatsUnavailable):
        return None


def _total(name: str) -> Callable[[Run], Optional[float]]:
    def get(r: Run) -> Optional[float]:
        v = getattr(_totals(r), name, None)
        return float(v) if isinstance(v, int) else None

    return get


def _share(part: str, rest: str) -> Callable[[Run], Optional[float]]:
    """part / (part + rest) of the totals, in percent."""
    def get(r: Run) -> Optional[float]:
        t = _totals(r)
        a, b = getattr(t, part, None), getattr(t, rest, None)
        return 100.0 * a / (a + b) if isinstance(a, int) and isinstance(b, int) and a + b else None

    return get


def _bytes(v: float) -> str:
    return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB" if v >= 1024 else f"{v:.0f} B"


@dataclass(frozen=True)
class Metric:
    name: str  # JSON key
    title: str
    get: Callable[[Run], Optional[float]]
    fmt: Callable[[float], str]
    unit: str = ""  # of the chart's axis, after dividing by scale
    scale: float = 1.0
    totals: Tuple[str, ...] = ()  # the statistics totals it reads (names of csrc/mstats.h)


MIB = float(2**20)


def _stat(name: str, title: str, total: str, fmt: Callable[[float], str]) -> Metric:
    unit, scale = ("MiB", MIB) if fmt is _bytes else ("", 1.0)
    return Metric(name, title, _total(total), fmt, unit, scale, (total,))


def _count(v: float) -> str:
    return f"{v:,.0f}"


#: Totals of csrc/mstats.h the metrics read (checked against goalloc_ffi.stats.TOTAL_NAMES by the tests).
FRAG_EXACT, FRAG_LIVE, REQUESTED = "frag_cumulative_bytes", "frag_live_estimate_bytes", "requested_bytes"

METRICS: Tuple[Metric, ...] = (
    Metric("wall", "wall time", lambda r: r.wall, lambda v: f"{v:.3f} s", "s"),
    Metric("peak_rss", "peak RSS (wait4)", lambda r: r.maxrss_kib * 1024.0 if r.maxrss_kib is not None else None,
           _bytes, "MiB", MIB),
    _stat("peak_heap", "peak heap in use", "peak_heap_bytes", _bytes),
    _stat("fragmentation", "internal fragmentation (exact)", FRAG_EXACT, _bytes),
    Metric("fragmentation_pct", "internal fragmentation, % of handed out",
           _share(FRAG_EXACT, REQUESTED), lambda v: f"{v:.2f}%", "%", 1.0, (FRAG_EXACT, REQUESTED)),
    _stat("fragmentation_live", "fragmentation live at exit (estimate)", FRAG_LIVE, _bytes),
    _stat("spans", "spans from the page heap", "mcentral_grows", _count),
    _stat("pages_released", "pages released", "scavenged_pages", _count),
)


@dataclass
class Summary:
    """One metric of one configuration over its clean runs."""

    values: List[float]

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.values) if self.values else None

    @property
    def spread(self) -> Optional[float]:
        m = self.median
        if len(self.values) < 2 or not m:
            return None
        return (max(self.values) - min(self.values)) / m


@dataclass
class Comparison:
    command: List[str]
    configs: List[Config]
    reps: int
    runs: List[Run] = field(default_factory=list)
    started: str = ""
    finished: str = ""
    machine: Dict[str, object] = field(default_factory=dict)

    def summary(self, config: str, metric: Metric) -> Summary:
        vals = [metric.get(r) for r in self.runs if r.config == config and r.ok]
        return Summary([v for v in vals if v is not None])

    def ratio(self, config: str, metric: Metric) -> Optional[float]:
        base = self.summary(self.configs[0].label, metric).median
        mine = self.summary(config, metric).median
        return mine / base if base and mine is not None else None

    @property
    def failed(self) -> List[Run]:
        return [r for r in self.runs if not r.ok]


def run_comparison(argv: Sequence[str], configs: Sequence[Config], reps: int, timeout: float = 600.0,
                   stdin: Optional[Path] = None, ignore_output: bool = False, debug: bool = False,
                   console: Optional[Console] = None) -> Comparison:
    console = console or Console(stderr=True)
    try:
        library = lib_path(debug)
    except FileNotFoundError as e:
        raise CompareError(str(e)) from None
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        raise CompareError(f"{argv[0]}: command not found")
    check_configs(configs, library, console)
    try:
        launcher = bench.build_programs(_bindir(), ["launcher"])["launcher"]
    except bench.BenchError as e:
        raise CompareError(str(e)) from None
    cmp = Comparison(list(argv), list(configs), reps, started=bench._now(), machine=bench.machine_info())
    with tempfile.TemporaryDirectory(prefix="goalloc-compare-") as tmp:
        for rep in range(reps):
            t0 = time.monotonic()
            for i, c in enumerate(configs):
                try:
                    run = run_once(c, i, rep, argv, launcher, library, Path(tmp), timeout, stdin)
                except (bench.BenchError, OSError, subprocess.SubprocessError) as e:
                    run = Run(c.label, rep, error=f"runner: {e}")
                cmp.runs.append(run)
                check_same(cmp.runs, ignore_output)
                if not run.ok:
                    console.print(Text.assemble(("FAIL", "bold red"), f" {c.label} (rep {rep + 1}): {run.error}"))
            console.print(f"repetition {rep + 1}/{reps}: {len(configs)} configurations, "
                          f"{time.monotonic() - t0:.1f} s", style="dim")
    cmp.finished = bench._now()
    return cmp


def _bindir() -> Path:
    """Where the launcher is compiled: the user's cache, else a temporary directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goalloc" / "bin"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="goalloc-bin-"))


# ---------------------------------------------------------------------------
# Output


def table(cmp: Comparison) -> Table:
    base = cmp.configs[0].label
    t = Table(title=f"goalloc compare: median of {cmp.reps} interleaved run(s), ±spread, ×ratio to {base}",
              title_justify="left")
    t.add_column("metric", no_wrap=True)
    for c in cmp.configs:
        t.add_column(c.label, justify="right", no_wrap=True)
    for m in METRICS:
        row: List[Text] = [Text(m.title)]
        for c in cmp.configs:
            s = cmp.summary(c.label, m)
            if s.median is None:
                row.append(Text("n/a", style="dim"))
                continue
            cell = Text(m.fmt(s.median))
            if s.spread is not None:
                cell.append(f" ±{s.spread * 100:.0f}%", style="dim")
            if c.label != base:
                cell.append(" ")
                cell.append_text(bench._ratio_text(cmp.ratio(c.label, m)))
            row.append(cell)
        t.add_row(*row)
    t.add_section()
    runs = []
    for c in cmp.configs:
        mine = [r for r in cmp.runs if r.config == c.label]
        bad = sum(not r.ok for r in mine)
        runs.append(Text(f"FAIL {bad}/{len(mine)}", style="bold red") if bad else Text(f"{len(mine)} ok"))
    t.add_row(Text("runs"), *runs)
    return t


def print_report(cmp: Comparison, console: Console) -> None:
    console.print(f"command: {shlex.join(cmp.command)}", markup=False, highlight=False)
    console.print(table(cmp))
    if cmp.failed:
        console.print(f"[bold red]{len(cmp.failed)} failed run(s):[/]")
        for r in cmp.failed:
            console.print(f"  {r.config} / rep {r.rep + 1}: {r.error}", markup=False)
    console.print("glibc runs have no goalloc statistics (n/a). Heap figures are the library's at exit "
                  "(GOALLOC_STATS), from these totals:", style="dim")
    docs = stats.TOTAL_DOCS
    for name in (FRAG_EXACT, FRAG_LIVE):
        console.print(f"  {name}: {docs[name]}", style="dim", markup=False, highlight=False)


def to_json(cmp: Comparison) -> Dict[str, Any]:
    metrics: Dict[str, Dict[str, Any]] = {}
    for m in METRICS:
        metrics[m.name] = {}
        for c in cmp.configs:
            s = cmp.summary(c.label, m)
            metrics[m.name][c.label] = {"median": s.median, "min": min(s.values) if s.values else None,
                                        "max": max(s.values) if s.values else None, "spread": s.spread,
                                        "ratio": cmp.ratio(c.label, m), "n": len(s.values)}
    return {
        "schema": SCHEMA,
        "command": cmp.command,
        "reps": cmp.reps,
        "order": "rep-major: within a repetition every configuration runs in turn",
        "started": cmp.started,
        "finished": cmp.finished,
        "machine": cmp.machine,
        "configs": [{"label": c.label, "preload": c.preload, "options": dict(c.options)} for c in cmp.configs],
        "metrics": metrics,
        "runs": [asdict(r) for r in cmp.runs],
        "failed": len(cmp.failed),
    }


def plot(cmp: Comparison, path: Path) -> None:
    """One panel per metric, a bar per configuration at its median, error
    bars from the smallest to the largest clean run; n/a where there is no
    figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
         ignore_output: bool = False, debug: bool = False, console: Optional[Console] = None) -> int:
    """``goalloc compare``; returns the exit status (1 if a run failed, 2 if
    nothing could run)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 140))
    try:
        cmp = run_comparison(argv, configs, reps, timeout, stdin, ignore_output, debug,
                             Console(stderr=True, width=console.width))
    except CompareError as e:
        console.print(f"[bold red]goalloc compare:[/] {e}")
        return 2
    print_report(cmp, console)
    if json_path:
        json_path.write_text(json.dumps(to_json(cmp), indent=2) + "\n")
        console.print(f"JSON: {json_path}")
    if chart:
        plot(cmp, chart)
        console.print(f"PNG:  {chart}")
    return 1 if cmp.failed else 0
