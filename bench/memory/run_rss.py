"""Memory given back, side by side: runs rss_return.c under glibc, goalloc
and the peers that are installed (one interleaved run each; RSS figures do
not drift like timings) and prints RSS at each step with the ratio to glibc.

    .venv/bin/python bench/memory/run_rss.py [--total-mib 1024] [--pause-ms 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional

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
STEPS = ("peak", "after_free", "after_pause", "after_trim")


def build(out_dir: Path) -> Path:
    exe = out_dir / "rss_return"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "rss_return.c")], check=True)
    return exe


def run(exe: Path, preload: Optional[str], total: int, pause: int) -> Dict[str, Dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GOALLOC")}
    if preload:
        env["LD_PRELOAD"] = preload
    out = subprocess.run([str(exe), str(total), str(pause)], env=env, capture_output=True, text=True,
                         check=True, timeout=600).stdout
    steps: Dict[str, Dict[str, int]] = {}
    for line in out.splitlines():
        step, *fields = line.split()
        steps[step] = {k: int(v) for k, v in (f.split("=") for f in fields)}
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--pause-ms", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    allocators: Dict[str, Optional[str]] = {"glibc": None, "goalloc": goalloc_ffi.lib_path()}
    allocators.update({name: str(path) for name, path in PEERS.items() if path.exists()})
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        results = {name: run(exe, lib, args.total_mib, args.pause_ms) for name, lib in allocators.items()}
    table = Table(title=f"RSS (MiB): {args.total_mib} MiB allocated, 90 % freed, "
                        f"{args.pause_ms} ms pause, malloc_trim(0)")
    table.add_column("step")
    for name in results:
        table.add_column(name, justify="right")
    for step in STEPS:
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
