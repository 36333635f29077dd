"""The ``goalloc`` command (entry point ``goalloc_ffi.cli:main``).

    goalloc lib [--debug | --nostats]           path of the preload library
    goalloc run [--debug] [--set K=V ...] -- CMD ARGS...
                                                run CMD under LD_PRELOAD
    goalloc demo [-n N]                         CPython on glibc and goalloc
    goalloc run --stats FILE --report -- CMD    statistics of CMD (the report on stderr)
    goalloc run --live -- CMD                   CMD publishes live statistics
    goalloc run --timeline FILE.png -- CMD      memory over time (+ FILE.json)
    goalloc run --profile-sizes FILE -- CMD     record the sizes CMD requests
    goalloc top PID [--once]                    live statistics of a process
    goalloc stats FILE [--plot FILE.png]        render a statistics file
    goalloc sizeclasses [--set sizeclasses=SPEC --set align=8]
                                                the size-class table in use, or SPEC
    goalloc sizeclasses --fit PROFILE [-o T.tsv] a table fitted to a size profile
    goalloc compare -n N --config C ... -- CMD  CMD under several configurations
    goalloc bench [--quick] [-n N] [-a LIST] ...
                                                the benchmark suite (bench/README.md)
    goalloc --version

Bad input is one line on stderr and a non-zero exit (2 for usage), checked
before any command runs where it can be.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import click

from ._paths import lib_path
from .cli_views import writable
from .launch import OPTIONS_ENV


def _library(debug: bool, nostats: bool = False) -> str:
    try:
        return lib_path(debug, nostats)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None


def _parse_set(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> List[Tuple[str, str]]:
    pairs = []
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", ctx, param)
        if "," in item:
            raise click.BadParameter(f"{item!r}: ',' separates options in ${OPTIONS_ENV}", ctx, param)
        pairs.append((key, value))
    return pairs


def _version() -> str:
    from .allocators import goalloc_version

    try:
        where = lib_path()
    except FileNotFoundError:
        where = "not built"
    return f"goalloc {goalloc_version()}, library {where}"


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Print goalloc's version and the library's path, and exit.")
def cli() -> None:
    """goalloc: a malloc replacement modelled on Go's runtime allocator."""


def _add_view_commands() -> None:
    from . import cli_views

    for command in (cli_views.profile_cmd, cli_views.symbolize, cli_views.top):
        cli.add_command(command)


_add_view_commands()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The entry point: click's, with every error on one line of stderr
    ("goalloc run: ...") instead of a usage block or a traceback."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="goalloc", standalone_mode=False)
    except click.ClickException as e:
        where = e.ctx.command_path if isinstance(e, click.UsageError) and e.ctx else "goalloc"
        click.echo(f"{where}: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(0)


@cli.command()
@click.option("--debug", is_flag=True, help="The debug build (GA_DEBUG=3, asserts on).")
@click.option("--nostats", is_flag=True, help="The build with statistics compiled out (GA_STATS=0).")
def lib(debug: bool, nostats: bool) -> None:
    """Print the absolute path of the LD_PRELOAD library.

    Use it as: LD_PRELOAD=$(goalloc lib) CMD
    """
    if debug and nostats:
        raise click.UsageError("--debug and --nostats are two different builds")
    click.echo(_library(debug, nostats))


def _png(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value is not None and not value.lower().endswith(".png"):
        raise click.BadParameter(f"{value!r}: expected a file name ending in .png", ctx, param)
    return value


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--debug", is_flag=True, help="Preload the debug build (GA_DEBUG=3, asserts on).")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", callback=_parse_set,
    help=f"Set an allocator option (repeatable); merged into ${OPTIONS_ENV}. Options the library "
         "refuses stop goalloc before CMD runs (exit 2).",
)
@click.option("--stats", "stats_path", metavar="FILE",
              help="Write goalloc's statistics as JSON when CMD exits (%p: the pid).")
@click.option("--report", is_flag=True, help="Print a summary of the statistics on stderr when CMD ends.")
@click.option("--report-file", metavar="FILE", help="Write the summary into FILE instead (implies --report).")
@click.option("--report-pid", type=click.IntRange(1), metavar="PID",
              help="Summarise process PID of the command (one of the others the report lists).")
@click.option("--live", is_flag=True,
              help="CMD publishes live statistics (GOALLOC=live=1) for `goalloc top PID`.")
@click.option("--timeline", metavar="FILE.png", callback=_png,
              help="Sample the live statistics of CMD and its descendants every 50 ms and plot "
                   "memory over time, summed over the processes (implies --live; the samples go "
                   "to FILE.json).")
@click.option("--profile-sizes", "profile_path", metavar="FILE",
              help="Record the sizes CMD requests and how many were live at the peak, as JSON "
                   "(%p: the pid, one file per process; without %p, CMD's own process's only).")
@click.option("--heap-profile", "heap_profile", metavar="FILE.pb.gz",
              help="Sample CMD's allocations with their stacks (Go's MemProfileRate) and write the heap "
                   "profile in pprof format at exit, for `goalloc profile` or `go tool pprof` (%p: the pid, "
                   "one file per process; without %p, CMD's own process's only).")
@click.option("--rate", metavar="BYTES",
              help="With --heap-profile: mean bytes between samples (GOALLOC=profile_rate; default 512k, "
                   "1 = every allocation).")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def run(debug: bool, settings: List[Tuple[str, str]], stats_path: Optional[str], report: bool,
        report_file: Optional[str], report_pid: Optional[int], live: bool, timeline: Optional[str],
        profile_path: Optional[str], heap_profile: Optional[str], rate: Optional[str],
        cmd: Tuple[str, ...]) -> None:
    """Run CMD with goalloc preloaded.

    Prepends the library to LD_PRELOAD and merges the --set options into
    $GOALLOC, after checking them with the library. Without --report or
    --timeline it execs CMD (exit status and signals are CMD's own);
    otherwise it waits for CMD, writes the summary of the statistics its
    main process left (or --report-pid's, or, if the main process never
    called malloc, its busiest descendant's) on stderr and lists the other
    processes by pid, name and command line, and/or writes the timeline,
    and exits with CMD's status.

    Example: goalloc run --set tiny=0 --report -- python3 -c 'print(1)'
    """
    from .runner import RunError, execute, make_plan

    if report_pid is not None and not (report or report_file):
        raise click.UsageError("--report-pid: only with --report or --report-file")
    try:
        plan = make_plan(_library(debug), settings, cmd, stats_path, report_file or ("-" if report else None),
                         report_pid, live, timeline, profile_path, heap_profile, rate)
    except RunError as e:
        raise click.UsageError(str(e)) from None
    sys.exit(execute(plan))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--classes", "-c", default=15, show_default=True,
              help="size classes shown (most bytes at the heap's peak first)")
@click.option("--plot", "plot_png", metavar="FILE.png", callback=lambda c, p, v: writable(c, p, _png(c, p, v)),
              help="Also draw per-class bytes at the heap's peak, in use and internal fragmentation, and "
                   "where the RSS goes.")
def stats(file: str, classes: int, plot_png: Optional[str]) -> None:
    """Render a statistics file written with GOALLOC_STATS or run --stats."""
    from rich.console import Console

    from . import stats as st
    from .report import print_report

    try:
        s = st.load(file)
    except st.StatsUnavailable as e:  # a valid file that says there is nothing
        click.echo(f"goalloc: {e}")
        return
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    print_report(s, classes, Console())
    if plot_png:
        from .plots import plot_stats

        plot_stats(s, plot_png, f"goalloc statistics of pid {s.pid} ({file})")
        click.echo(f"wrote {plot_png}")


@cli.command()
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", callback=_parse_set,
    help="sizeclasses=go1.12|go1.16|FILE and align=16|8, as in $GOALLOC: show that table instead.",
)
@click.option("--fit", "profile", type=click.Path(exists=True, dir_okay=False), metavar="PROFILE.json",
              help="Instead: fit a table to a size profile (GOALLOC_PROFILE) and compare it with Go's.")
@click.option("--max-classes", type=click.IntRange(1), metavar="N",
              help="With --fit: at most N classes, class 0 not counted [default: as Go's table: "
                   "66 with --align 16, 67 with --align 8].")
@click.option("--weight", type=click.Choice(["live", "count"]), default="live", show_default=True,
              help="With --fit: minimise the waste at the recorded peak (live) or over every request (count).")
@click.option("--align", type=click.Choice(["16", "8"]), default="16", show_default=True,
              help="With --fit: alignment of classes of 16 B or more (8: as Go >= 1.16, needs align=8).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), metavar="TABLE.tsv", callback=writable,
              help="With --fit: write the table in the generator's TSV format (GOALLOC=sizeclasses=FILE).")
@click.option("--no-table", is_flag=True, help="With --fit: print only the comparison, not the classes.")
def sizeclasses(settings: List[Tuple[str, str]], profile: Optional[str], max_classes: Optional[int],
                weight: str, align: str, output: Optional[str], no_table: bool) -> None:
    """Print a size-class table in Go's format: the one in use (as $GOALLOC
    chooses it), or the one the --set options name, read and checked by the
    library's own loader (exit status 1 with its reason if it refuses it);
    or, with --fit, fit one to a size profile (see
    `goalloc_ffi.sizeclass_fit`)."""
    if profile is None:
        ctx = click.get_current_context()
        given = [p.opts[-1] for p in ctx.command.params
                 if p.name not in ("profile", "settings")
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --fit")
        _show_sizeclasses(settings)
        return
    if settings:
        raise click.UsageError("--set: not with --fit (the fit writes a table; --set shows one)")
    from . import profile as size_profile
    from . import sizeclass_fit as sf

    try:
        prof = size_profile.load(profile)
        fitted = sf.fit(prof, max_classes, weight, int(align))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    sf.print_fit(fitted, prof, profile, show_table=not no_table)
    if output:
        sf.write_tsv(fitted, output, profile)
        click.echo(f"wrote {output}")


def _show_sizeclasses(settings: Sequence[Tuple[str, str]]) -> None:
    from . import SizeClassTableError, read_sizeclass_table, sizeclass_table_name
    from .report import print_sizeclasses

    if not settings:
        print_sizeclasses()
        return
    chosen = dict(settings)
    unknown = sorted(set(chosen) - {"sizeclasses", "align"})
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: only sizeclasses and align choose a table",
                                 param_hint="--set")
    spec = chosen.get("sizeclasses", sizeclass_table_name())
    align = chosen.get("align", "16")
    if align not in ("8", "16"):
        raise click.BadParameter(f"align={align}: expected 16 or 8", param_hint="--set")
    try:
        classes = read_sizeclass_table(spec, int(align))
    except SizeClassTableError as e:
        raise click.ClickException(str(e)) from None
    print_sizeclasses(name=f"{spec} (align={align})", classes=classes)


def _configs(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> List[Any]:
    from .compare import parse_config

    out = []
    for v in values:
        try:
            out.append(parse_config(v))
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param) from None
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise click.BadParameter(f"a configuration is given twice: {labels}", ctx, param)
    return out


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--reps", "-n", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved repetitions.")
@click.option("--warmup", "-w", type=click.IntRange(0), default=0, show_default=True,
              help="Interleaved rounds run first and not measured (caches, page cache, CPU frequency).")
@click.option("--config", "-c", "configs", multiple=True, required=True, callback=_configs, metavar="CONFIG",
              help="default, glibc, jemalloc, tcmalloc, mimalloc (found as goalloc bench finds them), "
                   "lib=PATH (any preload library) or KEY=VALUE[,KEY=VALUE...] for $GOALLOC (repeatable; "
                   "the first is the baseline of the ratios).")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.png", callback=writable,
              help="Draw one panel per metric, error bars from the repetitions.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT.json",
              callback=writable, help="Write every run and the summary as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT.md",
              callback=writable, help="Write the table and the verdicts as Markdown.")
@click.option("--stdin", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Feed this file to every run's standard input [default: /dev/null].")
@click.option("--timeout", type=click.FloatRange(1), default=600, show_default=True, help="Seconds per run.")
@click.option("--ignore-output", is_flag=True, help="Do not require the same standard output from every run.")
@click.option("--debug", is_flag=True, help="Preload the debug build (GA_DEBUG=3).")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def compare(reps: int, warmup: int, configs: List[Any], chart: Optional[Path], json_path: Optional[Path],
            markdown_path: Optional[Path], stdin: Optional[Path], timeout: float, ignore_output: bool, debug: bool,
            cmd: Tuple[str, ...]) -> None:
    """Run CMD under several allocators and configurations, side by side.

    Interleaved (A B C A B C ...) after --warmup rounds: wall time, peak
    RSS, and from goalloc's statistics at exit peak heap, internal
    fragmentation, spans and pages released; medians, spread and ratios to
    the first configuration, and a verdict on the wall time ("X ran 1.23
    times faster than Y") with its 95 % confidence interval over the
    paired repetitions. Every run must exit 0 with the same output. Exits
    1 if a run failed, 2 if nothing could run.

    Example: goalloc compare -n 5 --warmup 1 -c default -c jemalloc -c glibc -- python3 script.py
    """
    from .compare_report import main as compare_main

    sys.exit(compare_main(list(cmd), configs, reps, chart, json_path, timeout, stdin, ignore_output, debug,
                          warmup, markdown_path))


@cli.command()
@click.option("--repetitions", "-n", default=3, show_default=True, help="runs per allocator")
def demo(repetitions: int) -> None:
    """Run an allocation-heavy CPython script on glibc and on goalloc."""
    from .demo import demo as run_demo

    _library(False)
    sys.exit(run_demo(repetitions))


def _names(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[List[str]]:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


def _lib_pairs(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> List[Tuple[str, str]]:
    pairs = []
    for item in values:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path or "," in name:
            raise click.BadParameter(f"{item!r}: expected NAME=PATH", ctx, param)
        pairs.append((name.strip(), path))
    return pairs


@cli.command()
@click.option("--quick", is_flag=True, help="Everything once at small sizes (a smoke test).")
@click.option("--reps", "-n", type=click.IntRange(1), default=None,
              help="Interleaved repetitions [default: 5; 1 with --quick].")
@click.option("--allocators", "-a", callback=_names, metavar="LIST",
              help="Comma-separated subset of glibc,goalloc,jemalloc,tcmalloc,mimalloc "
                   "[default: all installed].")
@click.option("--lib", "libs", multiple=True, metavar="NAME=PATH", callback=_lib_pairs,
              help="Also run under the preload library PATH as allocator NAME (repeatable), e.g. "
                   "another goalloc build; NAME goalloc replaces the built library.")
@click.option("--workloads", "-w", callback=_names, metavar="LIST",
              help="Comma-separated workloads [default: all; see --list].")
@click.option("--out", "-o", "outdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where JSON, PNG and the compiled workloads go "
                   "[default: bench/results in a checkout, else ./goalloc-bench].")
@click.option("--threads", type=click.IntRange(1, 64),
              help="Threads of the threaded workloads [default: nproc, >= 2].")
@click.option("--timeout", type=click.FloatRange(1), help="Seconds per run [default: 300; 60 with --quick].")
@click.option("--no-plot", is_flag=True, help="Do not draw the PNG chart.")
@click.option("--list", "list_only", is_flag=True, help="List the workloads and exit.")
@click.option("--instructions", is_flag=True,
              help="Instead: instructions per malloc+free pair under callgrind (valgrind).")
@click.option("--size", "sizes", type=click.IntRange(0), multiple=True,
              help="malloc size for --instructions (repeatable) [default: 32].")
def bench(quick: bool, reps: Optional[int], allocators: Optional[List[str]], libs: List[Tuple[str, str]],
          workloads: Optional[List[str]], outdir: Optional[Path], threads: Optional[int],
          timeout: Optional[float], no_plot: bool, list_only: bool, instructions: bool,
          sizes: Tuple[int, ...]) -> None:
    """Benchmark goalloc against glibc malloc and the installed peers.

    Runs each workload (C stress patterns and real programs: python3,
    sqlite3, redis, lua5.4) under every allocator, interleaved, and prints
    medians, spread and ratios to glibc; writes JSON and a PNG chart.
    Exits 1 if any run failed (its cell shows FAIL), 2 on setup errors.
    Needs a C compiler: the workloads are compiled on first use.
    """
    from .bench import main as bench_main

    sys.exit(bench_main(quick=quick, reps=reps, allocators=allocators, libs=dict(libs),
                        workload_names=workloads, outdir=outdir, threads=threads, timeout=timeout,
                        plot_png=not no_plot, list_only=list_only, count_instructions=instructions,
                        sizes=sizes or (32,)))


if __name__ == "__main__":
    main()
