"""`goalloc run --timeline FILE.png`: memory of a command over time.

While the command runs (with GOALLOC=live=1), the live statistics files of
its process tree (the command and every descendant alive at the sample, so
that `sh -c 'prog < in'` and build drivers show their workers) are read
every SAMPLE_S seconds; each sample keeps the time since the start, the
sums over the tree of the figures of plots.TIMELINE_FIGURES as each process
last published them, except rss_bytes, which is read from /proc/PID/statm
at the sample (so it stays current while a process does not allocate; pages
shared between processes count in each), and the number of processes. The
samples are saved as FILE.json beside the PNG and can be plotted again with
plots.plot_timeline(plots.load_samples(...)[1], ...).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import click

from . import live
from .plots import TIMELINE_FIGURES, plot_timeline, save_samples

SAMPLE_S = 0.05


def process_tree(root: int) -> List[int]:
    """root and its descendants alive now (from the parent pids in /proc)."""
    children: Dict[int, List[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone since the listing
        # Fields after the command name, which may hold spaces and ')'.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def sample(pid: int, start: float) -> Dict[str, Any]:
    """One sample of the process tree of pid now (figures None until one
    of its processes has a live file)."""
    row: Dict[str, Any] = {"t": round(time.monotonic() - start, 4)}
    sums: Dict[str, Optional[int]] = {name: None for name in TIMELINE_FIGURES}
    updates: Optional[int] = None
    rss_total, nproc = 0, 0
    for p in process_tree(pid):
        try:
            snap = live.read(p)
        except (live.NoLiveFile, live.BadLiveFile):  # none yet, gone, or refused: skipped
            snap = None
        if snap is not None:
            nproc += 1
            updates = (updates or 0) + snap.updates
            for name in TIMELINE_FIGURES:
                v = snap.totals.get(name)
                if v is not None:
                    sums[name] = (sums[name] or 0) + v
        rss_total += live.rss_bytes(p) or 0  # 0 once a process is a zombie
    row.update(sums)
    row["updates"] = updates
    row["processes"] = nproc
    if rss_total:
        row["rss_bytes"] = rss_total
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
