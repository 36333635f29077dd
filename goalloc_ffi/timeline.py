"""`goalloc run --timeline FILE.png`: memory of a command over time.

While the command runs (with GOALLOC=live=1), its live statistics file is
read every SAMPLE_S seconds; each sample keeps the time since the start,
the figures of plots.TIMELINE_FIGURES as the process last published them,
except rss_bytes, which is read from /proc/PID/statm at the sample (so it
stays current while the process does not allocate). The samples are saved
as FILE.json beside the PNG and can be plotted again with
plots.plot_timeline(plots.load_samples(...)[1], ...).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import click

from . import live
from .plots import TIMELINE_FIGURES, plot_timeline, save_samples

SAMPLE_S = 0.05


def sample(pid: int, start: float) -> Dict[str, Any]:
    """One sample of pid now (figures None until its file exists)."""
    row: Dict[str, Any] = {"t": round(time.monotonic() - start, 4)}
    try:
        snap = live.read(pid)
    except (live.NoLiveFile, ValueError):
        snap = None
    for name in TIMELINE_FIGURES:
        row[name] = snap.totals.get(name) if snap else None
    row["updates"] = snap.updates if snap else None
    rss = live.rss_bytes(pid)
    if rss:  # 0 once the process is a zombie
        row["rss_bytes"] = rss
    return row


def record(child: "subprocess.Popen[Any]", cmd: Sequence[str], png: str) -> List[Dict[str, Any]]:
    """Samples child until it exits, then writes png and its .json."""
    start = time.monotonic()
    samples: List[Dict[str, Any]] = []
    try:
        while child.poll() is None:
            samples.append(sample(child.pid, start))
            time.sleep(max(0.0, start + len(samples) * SAMPLE_S - time.monotonic()))
    except KeyboardInterrupt:
        child.wait()
    live.remove_stale(child.pid)  # left behind if the command was killed
    samples = [s for s in samples if any(s[n] is not None for n in TIMELINE_FIGURES)]
    data = Path(png).with_suffix(".json")
    meta = {"command": list(cmd), "pid": child.pid, "sample_s": SAMPLE_S, "exit_status": child.returncode}
    save_samples(samples, data, meta)
    title = f"goalloc run --timeline: {shlex.join(cmd)}"
    plot_timeline(samples, png, title if len(title) < 100 else title[:97] + "...")
    click.echo(f"goalloc run: {len(samples)} samples in {data}, plot in {png}", err=True)
    return samples
