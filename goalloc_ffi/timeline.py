"""`goalloc run --timeline FILE.png`: memory of a command over time.

While the command runs (with GOALLOC=live=1), the live statistics files of
its process tree (the command and every descendant alive at the sample, so
that `sh -c 'prog < in'` and build drivers show their workers) are read
every SAMPLE_S seconds; each sample keeps the time since the start, the
sums over the tree of the figures of plots.TIMELINE_FIGURES as each process
last published them, except rss_bytes, which is read from /proc/PID/statm
at the sample (so it stays current while a process does not allocate; pages
shared between processes count in each), and the number of processes.
Each live file is held open once seen: when the command has ended, a final
sample ("final": true) sums the figures its processes published at exit
(rss_bytes as each read it then). A command that ends before the first
sample is said so, and no plot is written. The samples are saved as FILE.json beside the PNG and can be plotted again with
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


def sample(pid: int, start: float, held: Optional[Dict[int, int]] = None) -> Dict[str, Any]:
    """One sample of the process tree of pid now (figures None until one
    of its processes has a live file); the live files of processes seen for
    the first time are opened into held (pid -> descriptor)."""
    row: Dict[str, Any] = {"t": round(time.monotonic() - start, 4)}
    sums: Dict[str, Optional[int]] = {name: None for name in TIMELINE_FIGURES}
    updates: Optional[int] = None
    rss_total, nproc = 0, 0
    tree = process_tree(pid)
    if held is not None:
        for gone in [p for p in held if p not in tree]:  # ended before now: not part of the end
            os.close(held.pop(gone))
    for p in tree:
        try:
            snap = live.read(p)
        except (live.NoLiveFile, live.BadLiveFile):  # none yet, gone, or refused: skipped
            snap = None
        if snap is not None:
            if held is not None and p not in held:
                fd = live.hold(p)
                if fd is not None:
                    held[p] = fd
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


def final_sample(held: Dict[int, int], start: float) -> Optional[Dict[str, Any]]:
    """The figures the processes of held published last (at exit), summed;
    closes the descriptors. None if none can be read."""
    row: Dict[str, Any] = {"t": round(time.monotonic() - start, 4)}
    sums: Dict[str, Optional[int]] = {name: None for name in TIMELINE_FIGURES}
    updates, nproc = 0, 0
    for p, fd in held.items():
        try:
            snap = live.read_held(p, fd)
        except (live.NoLiveFile, live.BadLiveFile):
            continue
        finally:
            os.close(fd)
        nproc += 1
        updates += snap.updates
        for name in TIMELINE_FIGURES:
            v = snap.totals.get(name)
            if v is not None:
                sums[name] = (sums[name] or 0) + v
    held.clear()
    if nproc == 0:
        return None
    row.update(sums)
    row.update(updates=updates, processes=nproc, final=True)
    return row


def record(child: "subprocess.Popen[Any]", cmd: Sequence[str], png: str) -> List[Dict[str, Any]]:
    """Samples child until it exits, then writes png and its .json."""
    start = time.monotonic()
    samples: List[Dict[str, Any]] = []
    held: Dict[int, int] = {}
    try:
        while child.poll() is None:
            samples.append(sample(child.pid, start, held))
            time.sleep(max(0.0, start + len(samples) * SAMPLE_S - time.monotonic()))
    except KeyboardInterrupt:
        child.wait()
    live.remove_stale(child.pid)  # left behind if the command was killed
    samples = [s for s in samples if any(s[n] is not None for n in TIMELINE_FIGURES)]
    last = final_sample(held, start)
    if last is not None:
        samples.append(last)
    if not samples:
        click.echo(f"goalloc run: the command ended after {time.monotonic() - start:.3f} s, before the first "
                   f"sample (one every {SAMPLE_S * 1000:.0f} ms): no timeline written", err=True)
        return samples
    data = Path(png).with_suffix(".json")
    meta = {"command": list(cmd), "pid": child.pid, "sample_s": SAMPLE_S, "exit_status": child.returncode,
            "start_monotonic": start}  # CLOCK_MONOTONIC seconds at t = 0
    save_samples(samples, data, meta)
    title = f"goalloc run --timeline: {shlex.join(cmd)}"
    plot_timeline(samples, png, title if len(title) < 100 else title[:97] + "...")
    click.echo(f"goalloc run: {len(samples)} samples in {data}, plot in {png}", err=True)
    return samples
