"""The ``goalloc`` commands that look at a process or a profile: ``profile``
(a heap profile's top call sites and flame graph), ``symbolize`` (a misuse
report's frames) and ``top`` (a process's live statistics); cli.py adds them
to the ``goalloc`` group. Also the output-path check every command's file
options share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Tuple

import click

if TYPE_CHECKING:
    from . import heapprof


def writable(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An output file's path, absolute, in a directory that exists and can
    be written (checked before anything runs)."""
    from .runner import RunError, output_path

    if value is None:
        return None
    try:
        path = output_path(str(value), param.opts[-1])
    except RunError as e:
        raise click.BadParameter(str(e).split(": ", 1)[1], ctx, param) from None
    return Path(path) if isinstance(value, Path) else path



def _load_profile(file: Optional[str], pid: Optional[int]) -> Tuple[str, "heapprof.HeapProfile"]:
    """The profile FILE, or the one process PID writes now: (path, profile)."""
    from . import heapprof

    if (file is None) == (pid is None):
        raise click.UsageError("give a profile FILE or --pid PID")
    if pid is not None:
        try:
            file = heapprof.request_profile(pid)
        except heapprof.RequestError as e:
            raise click.ClickException(str(e)) from None
    assert file is not None
    try:
        return file, heapprof.read(file)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{file}: {e}") from None
    except Exception as e:  # protobuf's DecodeError
        raise click.ClickException(f"{file}: not a pprof profile ({e})") from None


@click.command("profile")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--pid", type=click.IntRange(1), help="Ask running process PID (started with --heap-profile) for "
              "its profile now, and show that.")
@click.option("--top", "-n", "limit", type=click.IntRange(1), default=20, show_default=True,
              help="call sites shown")
@click.option("--sort", type=click.Choice(["live", "alloc", "waste"]), default="live", show_default=True,
              help="live bytes, bytes allocated over the run, or live bytes lost to size-class rounding")
@click.option("--flame", metavar="FILE.svg", callback=writable,
              help="Also draw a flame graph of the live bytes (SVG, or PNG by the suffix).")
def profile_cmd(file: Optional[str], pid: Optional[int], limit: int, sort: str, flame: Optional[str]) -> None:
    """The top call sites of a heap profile (GOALLOC_HEAP_PROFILE, run --heap-profile).

    Sites are the functions that called the allocator, symbolized from the
    profile's ELF files (file:line where they carry debug information);
    values are Go's scaled estimates of the sampled profile. With --pid,
    the running process writes its profile first (no signal: a request
    file it looks for while it allocates, once a second at most).
    """
    from rich.console import Console

    from . import heapprof
    from .tables import Column, fit_tables

    file, hp = _load_profile(file, pid)
    head, rows = heapprof.top_rows(hp, limit, sort)
    console = Console()
    console.print(heapprof.headline(hp, file))
    cols = [Column(h, "left" if i in (0, len(head) - 1) else "right") for i, h in enumerate(head)]
    for t in fit_tables("top call sites", cols, rows, console.width, keep=1):
        console.print(t)
    if flame:
        heapprof.flame_graph(hp, flame, title=f"live bytes by stack: {file}")
        click.echo(f"wrote {flame}")


@click.command()
@click.argument("report", type=click.File("r"), default="-")
def symbolize(report: Any) -> None:
    """Name the stack frames of a misuse report (goalloc's stderr lines
    "#i 0xADDR OBJECT+0xOFFSET"): function and file:line from the objects'
    ELF files. REPORT is a file, or standard input by default.

    Example: LD_PRELOAD=$(goalloc lib) ./prog 2>&1 | goalloc symbolize
    """
    from . import heapprof

    for line in heapprof.symbolize_report(report):
        click.echo(line)


@click.command()
@click.argument("pid", type=int)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (for scripts).")
@click.option("--interval", "-i", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("--classes", "-c", default=12, show_default=True, help="size classes shown (most bytes first)")
def top(pid: int, once: bool, interval: float, classes: int) -> None:
    """Show the live statistics of process PID, refreshed until it exits.

    PID must run goalloc with GOALLOC=live=1 (goalloc run --live). Figures
    are as the process last published them (on allocation slow paths).
    """
    import time

    from rich.console import Console
    from rich.live import Live

    from . import live as lv
    from .report import live_view

    def read() -> "lv.LiveSnapshot":
        try:
            return lv.read_when_complete(pid)
        except (lv.NoLiveFile, lv.BadLiveFile) as e:  # one line, no traceback
            raise click.ClickException(str(e)) from None

    snap = read()
    console = Console()
    if once:
        console.print(live_view(snap, classes, console.width))
        return
    try:
        with Live(live_view(snap, classes, console.width), console=console, refresh_per_second=4) as screen:
            while True:
                time.sleep(interval)
                try:
                    snap = read()
                except click.ClickException as e:
                    console.print(f"goalloc top: {e.message}", markup=False, highlight=False)
                    return
                screen.update(live_view(snap, classes, console.width))
    except KeyboardInterrupt:
        pass
