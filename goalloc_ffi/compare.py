"""``goalloc compare``: one command under several allocators and configurations.

A configuration is ``default`` (goalloc preloaded with its default options),
``glibc`` (nothing preloaded), a peer found as ``goalloc bench`` finds it
(``jemalloc``, ``tcmalloc``, ``mimalloc``), ``lib=PATH`` (any preload
library), or comma-separated ``KEY=VALUE`` options for ``$GOALLOC`` with
goalloc preloaded (``tiny=0``, ``sizeclasses=fitted.tsv``, ...). After
``--warmup`` rounds that are not measured, every configuration runs the
command in turn, repetition after repetition (A B C A B C ...), through the
launcher (launch.launch: wall time and peak RSS from wait4 on that child
alone). Each goalloc run also writes its statistics at exit
(``GOALLOC_STATS``), from which come the heap figures: peak heap bytes,
spans taken from the page heap, pages released and internal fragmentation
(exact over every small malloc, in bytes and as a share of the bytes handed
out; and the library's estimate for the objects live at exit). Every run
must exit with status 0 and print what the first run printed; a
configuration that cannot run (options the library rejects, a peer that is
not installed) stops everything before the first measurement.

The output (compare_report): a table of medians with spread and ratio to
the first configuration, a verdict on the wall time with a confidence
interval, optionally JSON of every run, a Markdown table and a PNG chart.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.text import Text

from . import stats
from ._paths import lib_path
from .allocators import PEERS, find_peer, machine_info
from .launch import (OPTION_WARNING, LaunchError, bindir, build_programs, clean_env, first_lines, here, launch, now,
                     option_warnings, preload_env, status_error)

SCHEMA = "goalloc-compare/2"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CompareError(Exception):
    """A problem that stops the comparison before or between runs."""


# ---------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class Config:
    label: str  # as given on the command line
    preload: bool  # something preloaded (False: glibc)
    options: Tuple[Tuple[str, str], ...] = ()  # for $GOALLOC, in order
    allocator: str = ""  # a peer (jemalloc, ...) or "lib"; "": goalloc (or glibc)
    library: Optional[str] = None  # lib=PATH; a peer's once found (resolve)

    @property
    def goalloc_env(self) -> str:
        """$GOALLOC for the runs: the options, a value naming a file here
        made absolute (see launch.here)."""
        return ",".join(f"{k}={here(v)}" for k, v in self.options)

    @property
    def is_goalloc(self) -> bool:
        """goalloc's own library (or lib=PATH, possibly another goalloc
        build): its runs are given GOALLOC_STATS."""
        return self.preload and self.allocator in ("", "lib")


def parse_config(text: str) -> Config:
    """``default``, ``glibc``, a peer's name, ``lib=PATH`` or
    ``KEY=VALUE[,KEY=VALUE...]``; raises ValueError saying what is wrong."""
    label = text.strip()
    if label in ("default", "glibc"):
        return Config(label, label == "default")
    if label in PEERS:
        return Config(label, True, allocator=label)
    if label.startswith("lib="):
        path = label[4:]
        if not Path(path).is_file():
            raise ValueError(f"{text!r}: {path or '(empty)'}: no such file")
        return Config(label, True, allocator="lib", library=str(Path(path).resolve()))
    if not label:
        raise ValueError(f"empty configuration (expected {_KINDS})")
    options: List[Tuple[str, str]] = []
    for item in label.split(","):
        key, sep, value = item.partition("=")
        if not item:
            raise ValueError(f"{text!r}: empty item between commas")
        if not sep:
            raise ValueError(f"{text!r}: {item!r} is not KEY=VALUE (or {_KINDS})")
        if not _KEY.match(key):
            raise ValueError(f"{text!r}: {key!r} is not an option name")
        if not value:
            raise ValueError(f"{text!r}: {key} has no value")
        if any(k == key for k, _ in options):
            raise ValueError(f"{text!r}: {key} given twice")
        options.append((key, value))
    return Config(label, True, tuple(options))


_KINDS = f"default, glibc, {', '.join(PEERS)}, lib=PATH or KEY=VALUE[,KEY=VALUE...]"


def resolve(config: Config, goalloc_library: str) -> Config:
    """config with the library it preloads: goalloc's, lib=PATH's, or the
    installed peer's; CompareError for a peer that is not installed."""
    if not config.preload or config.library:
        return config
    if config.allocator in PEERS:
        peer = find_peer(config.allocator)
        if peer is None:
            raise CompareError(f"{config.label}: not installed (Debian package {PEERS[config.allocator][0]}; "
                               "as root, 'make bench-deps' installs the peers)")
        return Config(config.label, True, (), config.allocator, peer.preload)
    return Config(config.label, True, config.options, config.allocator, goalloc_library)


def run_env(config: Config, stats_path: Optional[str]) -> Dict[str, str]:
    """The environment of one run: measurement's (no LD_PRELOAD, C locale,
    UTC) without inherited goalloc settings, plus this configuration's. The
    launcher preloads the library into the command alone."""
    return preload_env(clean_env(measure=True), None, config.goalloc_env,
                       stats_path if config.is_goalloc else None)


def check_configs(configs: Sequence[Config]) -> None:
    """A trial run of a trivial program under each goalloc configuration
    with options: any warning of the library about $GOALLOC rejects it."""
    bad = []
    for c in configs:
        if not c.options or c.library is None:
            continue
        try:
            warnings = option_warnings(c.library, c.goalloc_env)
        except LaunchError as e:
            raise CompareError(f"{c.label!r}: {e}") from None
        if warnings:
            bad.append(f"{c.label!r}: " + "; ".join(warnings))
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


def run_once(config: Config, index: int, rep: int, argv: Sequence[str], launcher: Path,
             workdir: Path, timeout: float, stdin: Optional[Path]) -> Run:
    """One run of *argv* under the resolved *config* (the *index*-th) in
    this directory."""
    stats_pattern = str(workdir / f"stats-{rep}-{index}-%p.json")
    env = run_env(config, stats_pattern)
    res, stdout, stderr = launch(launcher, list(argv), config.library, env, timeout, workdir, stdin,
                                 cwd=Path.cwd())
    run = Run(config.label, rep, pid=int(res["pid"]), exit=int(res["exit"]), signal=int(res["signal"]), wall=res["wall"],
              user=res["user"], sys=res["sys"], maxrss_kib=int(res["maxrss_kib"]),
              stdout_sha256=hashlib.sha256(stdout.encode()).hexdigest(),
              stdout_head=first_lines(stdout, 1), stderr_head=first_lines(stderr, 2))
    if config.is_goalloc:
        run.stats = _load_stats(stats_pattern, run.pid)
    status = status_error(res, timeout)
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
    warmup: int = 0  # rounds run first and not kept

    def summary(self, config: str, metric: Metric) -> Summary:
        vals = [metric.get(r) for r in self.runs if r.config == config and r.ok]
        return Summary([v for v in vals if v is not None])

    def ratio(self, config: str, metric: Metric) -> Optional[float]:
        base = self.summary(self.configs[0].label, metric).median
        mine = self.summary(config, metric).median
        return mine / base if base and mine is not None else None

    def paired_ratio(self, config: str, metric: Metric) -> Optional["Interval"]:
        """metric of config over the baseline's, repetition by repetition
        (interleaved runs pair up): the geometric mean of the ratios and its
        95 % confidence interval (Student's t over the log ratios); None
        without a pair, no interval from a single pair."""
        base = self.configs[0].label
        by_rep: Dict[int, Dict[str, float]] = {}
        for r in self.runs:
            v = metric.get(r) if r.ok else None
            if v is not None and v > 0 and r.config in (base, config):
                by_rep.setdefault(r.rep, {})[r.config] = v
        logs = [math.log(p[config] / p[base]) for p in by_rep.values() if len(p) == 2 or base == config]
        if not logs:
            return None
        mean = statistics.fmean(logs)
        if len(logs) < 2:
            return Interval(math.exp(mean), None, None, 1)
        half = _t975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
        return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs))

    @property
    def failed(self) -> List[Run]:
        return [r for r in self.runs if not r.ok]


@dataclass(frozen=True)
class Interval:
    """A ratio and its 95 % confidence interval over n paired runs (lo and
    hi None for one pair)."""

    ratio: float
    lo: Optional[float]
    hi: Optional[float]
    n: int


#: Student's t, two-sided 95 % (0.975 quantile), for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def _t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.960


def run_comparison(argv: Sequence[str], configs: Sequence[Config], reps: int, timeout: float = 600.0,
                   stdin: Optional[Path] = None, ignore_output: bool = False, debug: bool = False,
                   console: Optional[Console] = None, warmup: int = 0) -> Comparison:
    """Checks everything that can be checked first (the command, the
    libraries, the options), then *warmup* rounds that are not kept, then
    *reps* interleaved rounds."""
    console = console or Console(stderr=True)
    try:
        library = lib_path(debug)
    except FileNotFoundError as e:
        raise CompareError(str(e)) from None
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        raise CompareError(f"{argv[0]}: command not found")
    resolved = [resolve(c, library) for c in configs]
    check_configs(resolved)
    try:
        launcher = build_programs(bindir(), ["launcher"])["launcher"]
    except LaunchError as e:
        raise CompareError(str(e)) from None
    cmp = Comparison(list(argv), resolved, reps, started=now(), machine=machine_info(), warmup=warmup)
    with tempfile.TemporaryDirectory(prefix="goalloc-compare-") as tmp:
        for rep in range(-warmup, reps):
            t0 = time.monotonic()
            for i, c in enumerate(resolved):
                run = _run_guarded(c, i, rep, argv, launcher, Path(tmp), timeout, stdin)
                if rep < 0:
                    continue  # a warm-up round: not kept
                cmp.runs.append(run)
                check_same(cmp.runs, ignore_output)
                if not run.ok:
                    console.print(Text.assemble(("FAIL", "bold red"), f" {c.label} (rep {rep + 1}): {run.error}"))
            what = f"warm-up {rep + warmup + 1}/{warmup}" if rep < 0 else f"repetition {rep + 1}/{reps}"
            console.print(f"{what}: {len(resolved)} configurations, {time.monotonic() - t0:.1f} s", style="dim")
    cmp.finished = now()
    return cmp


def _run_guarded(c: Config, index: int, rep: int, argv: Sequence[str], launcher: Path, workdir: Path,
                 timeout: float, stdin: Optional[Path]) -> Run:
    try:
        return run_once(c, index, rep, argv, launcher, workdir, timeout, stdin)
    except (LaunchError, OSError, subprocess.SubprocessError) as e:
        return Run(c.label, rep, error=f"runner: {e}")
