"""Sampled heap profiles (GOALLOC_HEAP_PROFILE, csrc/pprof.c): symbolized
call sites, the top table of `goalloc profile` and its flame graph.

Symbols come from the ELF files the profile's mappings name: pyelftools
turns a runtime address into the file's virtual address (its PT_LOAD
segments), binutils' addr2line gives the function and file:line (DWARF
where the file has it, else the symbol tables). Results are cached per
build id in memory and under $XDG_CACHE_HOME/goalloc/symbols."""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from . import pprof

UNKNOWN = "??"


@dataclass(frozen=True)
class Frame:
    function: str
    file: str  # "file:line", or the object's name with its offset where no line is known
    obj: str


@dataclass
class Site:
    """One call site (the innermost frame of samples), its scaled values."""
    frame: Frame
    values: Dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class HeapProfile:
    sample_types: List[str]
    period: int
    stacks: List[Tuple[List[Frame], Dict[str, int]]]  # innermost frame first

    def total(self, kind: str) -> int:
        return sum(v[kind] for _, v in self.stacks)

    def sites(self, depth: int = 0) -> List[Site]:
        """Values summed per frame at *depth* (0: the allocating function)."""
        by: Dict[Frame, Site] = {}
        for frames, values in self.stacks:
            f = frames[depth] if len(frames) > depth else Frame("<no stack>", "", "")
            site = by.setdefault(f, Site(f))
            for k, v in values.items():
                site.values[k] += v
        return list(by.values())


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "goalloc" / "symbols"


class Symbolizer:
    """Address -> Frame for the objects of one or more profiles."""

    def __init__(self, cache: Optional[Path] = None) -> None:
        self.cache = cache if cache is not None else _cache_dir()
        self._mem: Dict[str, Dict[str, List[str]]] = {}

    def _load_cache(self, key: str) -> Dict[str, List[str]]:
        if key not in self._mem:
            try:
                self._mem[key] = json.loads((self.cache / f"{key}.json").read_text())
            except (OSError, ValueError):
                self._mem[key] = {}
        return self._mem[key]

    def _save_cache(self, key: str) -> None:
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            tmp = self.cache / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(self._mem[key]))
            tmp.replace(self.cache / f"{key}.json")
        except OSError:
            pass  # a cache that cannot be written only costs time

    @staticmethod
    def _vaddrs(path: str, offsets: Sequence[int]) -> List[Optional[int]]:
        """File offsets -> the ELF file's virtual addresses."""
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            segs = [(s["p_offset"], s["p_filesz"], s["p_vaddr"])
                    for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
        out: List[Optional[int]] = []
        for off in offsets:
            out.append(next((off - o + v for o, n, v in segs if o <= off < o + n), None))
        return out

    def symbolize(self, path: str, build_id: str, offsets: Sequence[int]) -> Dict[int, Frame]:
        """Frames of the given file offsets of object *path*."""
        name = os.path.basename(path)
        key = build_id or f"{name}-{abs(hash(path)):x}"
        cache = self._load_cache(key)
        todo = [o for o in offsets if str(o) not in cache]
        if todo and os.path.isfile(path):
            try:
                vaddrs = self._vaddrs(path, todo)
            except Exception:  # not an ELF file pyelftools reads: offsets stay unnamed
                vaddrs = [None] * len(todo)
            asked = [(o, v) for o, v in zip(todo, vaddrs) if v is not None]
            tool = shutil.which("addr2line")
            if asked and tool:
                r = subprocess.run([tool, "-f", "-C", "-e", path] + [f"{v:x}" for _, v in asked],
                                   capture_output=True, text=True, check=False)
                lines = r.stdout.splitlines()
                for i, (o, _) in enumerate(asked):
                    fn, loc = (lines[2 * i:2 * i + 2] + [UNKNOWN, UNKNOWN])[:2]
                    cache[str(o)] = [fn, loc]
            for o in todo:
                cache.setdefault(str(o), [UNKNOWN, UNKNOWN])
            self._save_cache(key)
        out = {}
        for o in offsets:
            fn, loc = cache.get(str(o), [UNKNOWN, UNKNOWN])
            if loc.startswith(UNKNOWN):
                loc = f"{name}+0x{o:x}"
            else:
                loc = loc.split(" (discriminator")[0]
            out[o] = Frame(fn if fn != UNKNOWN else f"{name}+0x{o:x}", loc, name)
        return out


def read(path: str, symbolizer: Optional[Symbolizer] = None) -> HeapProfile:
    """The profile in *path* with every location symbolized."""
    prof = pprof.load(path)
    st = prof.string_table
    sym = symbolizer or Symbolizer()
    maps = {m.id: m for m in prof.mapping}
    per_map: Dict[int, List[int]] = defaultdict(list)
    for loc in prof.location:
        m = maps.get(loc.mapping_id)
        if m is not None:
            per_map[m.id].append(loc.address - m.memory_start + m.file_offset)
    names: Dict[Tuple[int, int], Frame] = {}
    for mid, offs in per_map.items():
        m = maps[mid]
        for o, fr in sym.symbolize(st[m.filename], st[m.build_id], offs).items():
            names[(mid, o)] = fr
    frames: Dict[int, Frame] = {}
    for loc in prof.location:
        m = maps.get(loc.mapping_id)
        if m is None:
            frames[loc.id] = Frame(f"0x{loc.address:x}", "", "")
        else:
            frames[loc.id] = names[(m.id, loc.address - m.memory_start + m.file_offset)]
    types = [st[t.type] for t in prof.sample_type]
    stacks = [([frames[i] for i in s.location_id], dict(zip(types, s.value))) for s in prof.sample]
    return HeapProfile(types, prof.period, stacks)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def headline(hp: HeapProfile, path: str) -> str:
    """The line above a profile's table: rate, live, allocated, waste."""
    return (f"heap profile {path}: sampled every {hp.period} bytes on average; "
            f"live {_mib(hp.total('inuse_space'))}, allocated {_mib(hp.total('alloc_space'))}, "
            f"wasted by rounding (live) {_mib(hp.total('inuse_waste'))}")


def short_path(loc: str, keep: int = 2) -> str:
    """file:line with only the last *keep* components of the file's path."""
    parts = loc.split("/")
    return "/".join(parts[-keep:]) if len(parts) > keep else loc


def top_rows(hp: HeapProfile, limit: int, sort: str = "inuse_space") -> Tuple[List[str], List[List[str]]]:
    """Heading and rows of the top call sites (most *sort* first)."""
    live, alloc = hp.total("inuse_space"), hp.total("alloc_space")
    key = {"live": "inuse_space", "alloc": "alloc_space", "waste": "inuse_waste"}.get(sort, sort)
    sites = sorted(hp.sites(), key=lambda s: (-s.values[key], -s.values["alloc_space"], s.frame.function))
    head = ["function", "live", "live %", "allocated", "alloc %", "wasted (live)", "waste %",
            "objects live", "file:line"]
    rows = []
    for s in sites[:limit]:
        v = s.values
        rows.append([s.frame.function, _mib(v["inuse_space"]),
                     f"{100 * v['inuse_space'] / live:.1f}" if live else "-", _mib(v["alloc_space"]),
                     f"{100 * v['alloc_space'] / alloc:.1f}" if alloc else "-", _mib(v["inuse_waste"]),
                     f"{100 * v['inuse_waste'] / v['inuse_space']:.1f}" if v["inuse_space"] else "-",
                     str(v["inuse_objects"]), short_path(s.frame.file)])
    return head, rows


def folded(hp: HeapProfile, kind: str = "inuse_space") -> Dict[Tuple[str, ...], int]:
    """Stacks outermost first (function names) -> value, for flame graphs."""
    out: Dict[Tuple[str, ...], int] = defaultdict(int)
    for frames, values in hp.stacks:
        if values.get(kind, 0) > 0:
            out[tuple(f.function for f in reversed(frames)) or ("<no stack>",)] += values[kind]
    return dict(out)


def flame_graph(hp: HeapProfile, out: str, kind: str = "inuse_space", title: str = "") -> None:
    """A flame graph (outermost frame at the bottom, widths ~ bytes) drawn
    with matplotlib into *out* (SVG or PNG by its suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = folded(hp, kind)
    total = sum(stacks.values())
    depth = max((len(s) for s in stacks), default=1)
    fig, ax = plt.subplots(figsize=(14, max(3.0, 0.32 * depth + 1.2)))
    ax.set_xlim(0, max(total, 1))
    ax.set_ylim(0, depth)
    ax.axis("off")

    def draw(prefix: Tuple[str, ...], items: List[Tuple[Tuple[str, ...], int]], x0: float) -> None:
        level = len(prefix)
        children: Dict[str, List[Tuple[Tuple[str, ...], int]]] = defaultdict(list)
        for st, v in items:
            if len(st) > level:
                children[st[level]].append((st, v))
        x = x0
        for name in sorted(children):
            group = children[name]
            w = sum(v for _, v in group)
            h = (hash(name) & 0xFFFF) / 0xFFFF
            ax.add_patch(plt.Rectangle((x, level), w, 0.95, color=(0.95, 0.35 + 0.45 * h, 0.1 + 0.2 * h),
                                       ec="white", lw=0.3))
            if w / max(total, 1) > 0.03:
                label = f"{name} ({_mib(w)})"
                chars = int(180 * w / max(total, 1))
                ax.text(x + w / 200, level + 0.45, label if len(label) <= chars else label[:max(chars - 1, 1)] + "…",
                        va="center", fontsize=7, clip_on=True)
            draw(prefix + (name,), group, x)
            x += w

    draw((), list(stacks.items()), 0)
    ax.set_title(title or f"{kind}: {_mib(total)}", fontsize=9)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def stacks_of(hp: HeapProfile) -> Iterable[Tuple[List[Frame], Dict[str, int]]]:
    return iter(hp.stacks)


def describe(prof_path: str) -> Dict[str, Any]:
    """Totals of a profile (for scripts and tests)."""
    hp = read(prof_path)
    return {k: hp.total(k) for k in hp.sample_types} | {"period": hp.period}


#: A frame of a misuse report (csrc/pprof.c ga_print_stack).
FRAME_LINE = re.compile(r"^(?P<head>.*#\d+ 0x[0-9a-f]+ )(?P<obj>/\S+)\+0x(?P<off>[0-9a-f]+)\s*$")


def symbolize_report(lines: Iterable[str], symbolizer: Optional[Symbolizer] = None) -> List[str]:
    """The lines of a goalloc report with each stack frame named: function
    and file:line after the object and offset (other lines unchanged)."""
    sym = symbolizer or Symbolizer()
    lines = [line.rstrip("\n") for line in lines]
    wanted: Dict[str, List[int]] = defaultdict(list)
    for line in lines:
        m = FRAME_LINE.match(line)
        if m:
            wanted[m["obj"]].append(int(m["off"], 16))
    names = {obj: sym.symbolize(obj, "", offs) for obj, offs in wanted.items()}
    out = []
    for line in lines:
        m = FRAME_LINE.match(line)
        if m:
            f = names[m["obj"]][int(m["off"], 16)]
            line = f"{line}  {f.function} {f.file}"
        out.append(line)
    return out


class RequestError(RuntimeError):
    """A profile could not be had from a running process."""


def request_profile(pid: int, timeout: float = 10.0) -> str:
    """Asks running process *pid* (started with GOALLOC_HEAP_PROFILE) for
    its heap profile now: creates the file's path + ".request", which the
    process notices on an allocation slow path (csrc/mprof.c,
    ga_heap_profile_tick) and removes once the profile is written.
    Returns the profile's path."""
    import time

    from .launch import HEAP_PROFILE_ENV

    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError as e:
        raise RequestError(f"process {pid}: {e.strerror}") from None
    prefix = HEAP_PROFILE_ENV.encode() + b"="
    value = next((e[len(prefix):].decode(errors="replace") for e in environ if e.startswith(prefix)), "")
    if not value:
        raise RequestError(f"process {pid} was not started with {HEAP_PROFILE_ENV} "
                           "(goalloc run --heap-profile)")
    path = os.path.join(cwd, value.replace("%p", str(pid)))
    request = path + ".request"
    try:
        fd = os.open(request, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # asked already: wait for that one
    except OSError as e:
        raise RequestError(f"{request}: {e.strerror}") from None
    deadline = time.monotonic() + timeout
    while os.path.lexists(request):
        if time.monotonic() > deadline:
            os.unlink(request)
            raise RequestError(f"process {pid} wrote no profile within {timeout:g} s "
                               "(it looks only while it allocates)")
        time.sleep(0.05)
    return path
