#!/usr/bin/env python3
"""The allocation ladder of csrc/, checked from the sources.

Every file of the allocator's core has a rung; a function may call functions
of its own rung or lower ones, never a higher one:

    malloc.c, override.c                     the API
    mgcsweep.c                               recovery, periodic and background work
    mcache.c                                 per-thread caches
    mcentral.c, mpagecache.c                 per-class span lists, per-thread page caches
    mspan.c, mheap.c, mgcscavenge.c          spans, the page heap, its scavenger
    mfixalloc.c                              metadata memory
    mem_linux.c                              the OS

Start-up (init.c, sizeclass_file.c), statistics and diagnostics (mstats.c,
mprof.c, pprof.c, mlive.c, print.c) and the test hooks (testing.c,
benchloops.c) reach across the ladder and have no rung; a call from a rung
into them must not lead, through them, back up to a higher rung than the
caller's (start-up excepted: it is called only to make sure it ran). The
leaves (msize.c, sizeclasses.c) share the OS layer's rung.

The graph is GCC's own (-fcallgraph-info, at -O0 so that no call is inlined
away); a static inline function of a header is charged to each file that
compiles it, since its code is that file's code.

    tools/callgraph.py [--csrc DIR] [--cc gcc]    exit 1 and a list on an upward call
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

RUNGS: dict[str, int] = {
    "malloc.c": 0, "override.c": 0,
    "mgcsweep.c": 1,
    "mcache.c": 2,
    "mcentral.c": 3, "mpagecache.c": 3,
    "mspan.c": 4, "mheap.c": 4, "mgcscavenge.c": 4,
    "mfixalloc.c": 5,
    "mem_linux.c": 6,
}
ACROSS = {"init.c", "sizeclass_file.c", "mstats.c", "mprof.c", "pprof.c", "mlive.c", "print.c",
          "testing.c", "benchloops.c"}
STARTUP = "init.c"  # reaches everything, and is called only to make sure start-up ran
LEAF_RUNG = 6  # msize.c, sizeclasses.c: at the OS layer's rung
LADDER_TEXT = ("malloc.c/override.c -> mgcsweep.c -> mcache.c -> mcentral.c/mpagecache.c -> mspan.c/mheap.c/mgcscavenge.c"
               " -> mfixalloc.c -> mem_linux.c")

_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"\\]+)\\n([^":]+):(\d+)')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)" label: "([^":]+):(\d+)')


def rung(file: str) -> int | None:
    """The file's rung; None for the files that reach across."""
    if file in ACROSS:
        return None
    return RUNGS.get(file, LEAF_RUNG)


def _graph(csrc: Path, cc: str, out: Path) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """(defining file of every global function, edges (caller file, caller, callee, line))."""
    defined: dict[str, str] = {}
    edges: list[tuple[str, str, str, str]] = []
    for src in sorted(csrc.glob("*.c")):
        subprocess.run([cc, "-std=gnu11", "-O0", "-fcallgraph-info", f"-I{csrc}", "-DGA_OVERRIDE",
                        "-DGA_SHARED_LIB_EXPORT", "-DGA_TESTING", "-DGA_DEBUG=3", "-c", str(src),
                        "-o", str(out / (src.stem + ".o"))],
                       check=True, cwd=out)
        text = (out / (src.stem + ".ci")).read_text()
        local: dict[str, str] = {}
        for title, name, path, _ in _NODE.findall(text):
            local[title] = name
            if title == name and Path(path).suffix == ".c":  # a global definition
                defined[name] = Path(path).name
        for source, target, _path, line in _EDGE.findall(text):
            edges.append((src.name, local.get(source, source), local.get(target, target),
                          f"{src.name}:{line}"))
            if target != local.get(target, target):  # a static callee: keep it in its file
                defined.setdefault(f"{src.name}:{local[target]}", src.name)
    return defined, edges


def upward_calls(csrc: Path, cc: str = "gcc") -> list[str]:
    """One line per call that climbs the ladder, empty when the ladder holds."""
    with tempfile.TemporaryDirectory() as tmp:
        defined, edges = _graph(csrc, cc, Path(tmp))
    calls: dict[str, set[str]] = defaultdict(set)  # global callee names by caller (file-qualified)
    for file, caller, callee, _ in edges:
        calls[f"{file}:{caller}"].add(callee)

    def file_of(file: str, name: str) -> str | None:
        return defined.get(name) or (file if f"{file}:{name}" in defined else None)

    def climbs_through(file: str, name: str, limit: int, seen: set[str]) -> str | None:
        """A function of a rung above `limit` that `name` (of an across file) reaches."""
        for callee in calls.get(f"{file}:{name}", ()):
            cfile = file_of(file, callee)
            if cfile is None or f"{cfile}:{callee}" in seen:
                continue
            seen.add(f"{cfile}:{callee}")
            r = rung(cfile)
            if r is not None and r < limit:
                return f"{callee} ({cfile})"
            if r is None and cfile != STARTUP:
                hit = climbs_through(cfile, callee, limit, seen)
                if hit:
                    return f"{callee} ({cfile}) -> {hit}"
        return None

    found = []
    for file, caller, callee, where in edges:
        mine = rung(file)
        target = file_of(file, callee)
        if mine is None or target is None or target == file:
            continue
        theirs = rung(target)
        if theirs is not None and theirs < mine:
            found.append(f"{where}: {caller} calls {callee} ({target}), a higher rung")
        elif theirs is None and target != STARTUP:
            hit = climbs_through(target, callee, mine, set())
            if hit:
                found.append(f"{where}: {caller} calls {callee} ({target}) -> {hit}, a higher rung")
    return sorted(set(found))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csrc", type=Path, default=Path(__file__).resolve().parent.parent / "csrc")
    ap.add_argument("--cc", default="gcc")
    args = ap.parse_args()
    found = upward_calls(args.csrc, args.cc)
    for line in found:
        print(line)
    print(f"{len(found)} upward call(s); the ladder: {LADDER_TEXT}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
