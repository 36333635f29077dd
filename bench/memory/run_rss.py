"""Memory given back, side by side: runs one of the programs of this
directory under glibc, goalloc and the peers that are installed (one run
each; RSS figures do not drift like timings) and prints RSS at each step
with the ratio to glibc.

    .venv/bin/python bench/memory/run_rss.py [--program rss_return] [--total-mib 1024]
        [--pause-ms 2000] [--threads 1000] [--lib NAME=PATH] [--json FILE]

rss_return.c   1 GiB (16..1024 B plus a few large blocks), 90 % freed, a
               pause with a little allocation, malloc_trim(0)
burst_idle.c   issue 19: 1 GiB, 97 % of the objects 8..488 B and 3 % of
               40..440 KB, 90 % freed, a pause with no allocation, 1000
               fast-path pairs, malloc_trim(0)
thread_idle.c  issue 19: THREADS threads of 2 MiB each (16..512 B), 90 %
               freed, all idle for the pause; then they exit, the rest is
               freed, another pause, malloc_trim(0)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from rich.console import Console
from rich.table import Table

import goalloc_ffi

HERE = Path(__file__).resolve().parent
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
PEERS = {
    "jemalloc": LIBDIR / "libjemalloc.so.2",
    "tcmalloc": LIBDIR / "libtcmalloc_minimal.so.4",
    "mimalloc": LIBDIR / "libmimalloc.so.2",
}
STEPS = {
    "rss_return": ("peak", "after_free", "after_pause", "after_trim"),
    "burst_idle": ("peak", "after_free", "after_pause", "after_trim"),
    "thread_idle": ("idle", "freed", "freed_idle", "after_trim"),
}


def build(out_dir: Path, program: str) -> Path:
    exe = out_dir / program
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(HERE / f"{program}.c")], check=True)
    return exe


def run(exe: Path, preload: Optional[str], args: List[str]) -> Dict[str, Dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    if preload:
        env["LD_PRELOAD"] = preload
    out = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                         check=True, timeout=600).stdout
    steps: Dict[str, Dict[str, int]] = {}
    for line in out.splitlines():
        step, *fields = line.split()
        steps[step] = {k: int(v) for k, v in (f.split("=") for f in fields)}
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", choices=sorted(STEPS), default="rss_return")
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--pause-ms", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1000, help="thread_idle: threads of 2 MiB")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="also run under this preload library (e.g. an older goalloc build)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    allocators: Dict[str, Optional[str]] = {"glibc": None, "goalloc": goalloc_ffi.lib_path()}
    for item in args.lib:
        name, _, path = item.partition("=")
        allocators[name] = path
    allocators.update({name: str(path) for name, path in PEERS.items() if path.exists()})
    if args.program == "thread_idle":
        argv = [str(args.threads), "2048", str(args.pause_ms)]
        what = f"{args.threads} threads of 2 MiB, 90 % freed, {args.pause_ms} ms idle"
    else:
        argv = [str(args.total_mib), str(args.pause_ms)]
        what = f"{args.total_mib} MiB allocated, 90 % freed, {args.pause_ms} ms pause"
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp), args.program)
        results = {name: run(exe, lib, argv) for name, lib in allocators.items()}
    table = Table(title=f"RSS (MiB), {args.program}: {what}, malloc_trim(0)")
    table.add_column("step")
    for name in results:
        table.add_column(name, justify="right")
    for step in STEPS[args.program]:
        glibc = results["glibc"][step]["rss_kib"]
        cells = [f"{r[step]['rss_kib'] / 1024:.0f} ({r[step]['rss_kib'] / glibc:.2f})" for r in results.values()]
        table.add_row(step, *cells)
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print("(ratio to glibc's RSS at the same step in parentheses)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
