"""Recorded size profiles (GOALLOC_PROFILE=PATH, csrc/mprof.c): the
histogram of requested sizes and how many of each were live at the peak of
live requested bytes, written as JSON at exit and read by
goalloc_ffi.profile.

* Exact, on the private heap: a known sequence of malloc / calloc / realloc
  / memalign / free gives exactly its counts, its peak and what was live
  then; objects from before the profile started are ignored; threads.
* Exact, under LD_PRELOAD: tests/c/size_profile.c's known sequence.
* Sane, from real programs (CPython, sqlite3); %p names one file per
  process; ``goalloc run --profile-sizes FILE`` keeps the top process's.
* Off costs nothing: the inline malloc and free paths stay open.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib
from goalloc_ffi import profile as prof

ROOT = Path(__file__).resolve().parents[1]
C_DIR = Path(__file__).resolve().parent / "c"
PROGRAMS = Path(__file__).resolve().parent / "programs"
DEMO_WORKLOAD = ROOT / "goalloc_ffi" / "workloads" / "alloc_heavy.py"
MAX_SMALL = int(lib.ga_max_small_size())


class Model:
    """What the profile must say about a sequence of requests."""

    def __init__(self) -> None:
        self.count: Counter = Counter()
        self.live: Counter = Counter()
        self.live_bytes = 0
        self.peak = 0
        self.at_peak: Counter = Counter()

    def new(self, n: int) -> None:
        self.count[n] += 1
        self.live[n] += 1
        self.live_bytes += n
        if self.live_bytes > self.peak:
            self.peak, self.at_peak = self.live_bytes, Counter(self.live)

    def gone(self, n: int) -> None:
        self.live[n] -= 1
        self.live_bytes -= n

    def check(self, p: prof.SizeProfile) -> None:
        small = {n: c for n, c in self.count.items() if n <= MAX_SMALL}
        assert p.histogram() == small
        assert {r.size: r.live_at_peak for r in p.requests} == {n: self.at_peak[n] for n in small}
        large = [n for n in self.count if n > MAX_SMALL]
        assert p.large == prof.LargeRequests(
            count=sum(self.count[n] for n in large), bytes=sum(n * self.count[n] for n in large),
            live_at_peak=sum(self.at_peak[n] for n in large),
            live_bytes_at_peak=sum(n * self.at_peak[n] for n in large))
        assert p.peak_live_bytes == self.peak


def consistent(p: prof.SizeProfile) -> None:
    """What every profile satisfies."""
    sizes = [r.size for r in p.requests]
    assert sizes == sorted(set(sizes)) and all(0 <= s <= MAX_SMALL for s in sizes)
    assert all(r.count > 0 and 0 <= r.live_at_peak <= r.count for r in p.requests)
    assert 0 <= p.large.live_at_peak <= p.large.count
    assert p.large.live_bytes_at_peak <= p.large.bytes
    assert p.large.live_bytes_at_peak > MAX_SMALL * p.large.live_at_peak or p.large.live_at_peak == 0
    # the peak is the sum of what was live then, and at least any one size's share
    assert p.peak_live_bytes == sum(r.size * r.live_at_peak for r in p.requests) + p.large.live_bytes_at_peak


@pytest.fixture
def profiling() -> Iterator[None]:
    assert lib.ga_test_profile(1) == 0
    try:
        yield
    finally:
        lib.ga_test_profile(0)


# --------------------------------------------------------------------------
# The private heap


def test_fast_paths_are_open_unless_profiling() -> None:
    lo, span, hardened = ffi.new("size_t *"), ffi.new("size_t *"), ffi.new("int *")
    lib.ga_test_fast_paths(lo, span, hardened)
    tiny_lo = lib.ga_tiny_size() if lib.ga_test_option(b"tiny") else 0  # below: the tiny path
    assert (lo[0], lo[0] + span[0], hardened[0]) == (tiny_lo, 1024, 0)
    assert lib.ga_test_fast_medium() == lib.ga_max_small_size() - 1024
    assert lib.ga_test_profile(1) == 0
    try:
        lib.ga_test_fast_paths(lo, span, hardened)
        assert (span[0], hardened[0], lib.ga_test_fast_medium()) == (0, 1, 0)
    finally:
        lib.ga_test_profile(0)
    lib.ga_test_fast_paths(lo, span, hardened)
    assert (lo[0] + span[0], hardened[0], lib.ga_test_fast_medium()) == (1024, 0, 31744)
    with pytest.raises(RuntimeError):
        prof.private_heap_profile()


def test_known_sequence_exactly(profiling: None) -> None:
    m = Model()
    sizes = [0, 1, 3, 8, 15, 16, 17, 24, 100, 1000, 1024, 1025, 5000, 32768, 32769, 100000, 1 << 20]
    live: List[Tuple[object, int]] = []
    for round_ in range(3):
        for n in sizes:
            p = lib.ga_malloc(n) if round_ != 1 else lib.ga_calloc(1, n)
            assert p != ffi.NULL
            m.new(n)
            live.append((p, n))
    for i in range(0, len(live), 3):  # free a third
        p, n = live[i]
        lib.ga_free(p)
        m.gone(n)
        live[i] = (None, 0)
    for i in range(1, len(live), 3):  # realloc a third: in place or moved, a request of the new size
        p, n = live[i]
        q = lib.ga_realloc(p, n + 7)
        assert q != ffi.NULL
        m.gone(n)
        m.new(n + 7)
        live[i] = (q, n + 7)
    for align, n in ((64, 40), (4096, 100), (16384, 70000)):
        p = lib.ga_memalign(align, n)
        m.new(n)
        live.append((p, n))
    got = prof.private_heap_profile()
    consistent(got)
    m.check(got)
    assert got.pid == os.getpid() and got.sizeclasses == ga.sizeclass_table_name()
    for p, n in live:
        if p is not None:
            lib.ga_free(p)
            m.gone(n)
    after = prof.private_heap_profile()
    m.check(after)  # the peak stays


def test_objects_from_before_the_profile_are_not_counted() -> None:
    old = [lib.ga_malloc(n) for n in (5, 48, 4000, 50000)]
    assert lib.ga_test_profile(1) == 0
    try:
        for p in old:
            lib.ga_free(p)
        p = lib.ga_malloc(48)
        got = prof.private_heap_profile()
        lib.ga_free(p)
    finally:
        lib.ga_test_profile(0)
    assert got.histogram() == {48: 1} and got.peak_live_bytes == 48 and got.large.count == 0


def test_threads_are_counted_once_each(profiling: None) -> None:
    nthreads, iters = 4, 20000
    assert lib.ga_test_threads(nthreads, iters, 99) == 0
    got = prof.private_heap_profile()
    consistent(got)
    assert got.total_requests == nthreads * iters
    ga.check_heap()


GOOD = {"goalloc_profile": prof.VERSION, "pid": 7, "sizeclasses": "go1.12", "peak_live_bytes": 96 + 40000,
        "requests": [{"size": 0, "count": 2, "live_at_peak": 0}, {"size": 24, "count": 10, "live_at_peak": 4},
                     {"size": 99, "count": 0, "live_at_peak": 0}],
        "large": {"count": 1, "bytes": 40000, "live_at_peak": 1, "live_bytes_at_peak": 40000}}


def test_loader_reads_a_document_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(GOOD))
    p = prof.load(path)
    assert (p.pid, p.sizeclasses, p.peak_live_bytes) == (7, "go1.12", 40096)
    assert p.requests == (prof.SizeRequests(0, 2, 0), prof.SizeRequests(24, 10, 4))  # count 0 dropped
    assert p.large == prof.LargeRequests(1, 40000, 1, 40000) and p.total_requests == 13
    assert prof.from_json(p.to_json()) == p
    # by hand: pid, sizeclasses, large and the peak may be left out
    minimal = prof.from_json({"goalloc_profile": prof.VERSION, "requests": GOOD["requests"][:2]})
    assert minimal == prof.SizeProfile.of(p.requests) and minimal.peak_live_bytes == 96
    assert minimal.large == prof.NO_LARGE and (minimal.pid, minimal.sizeclasses) == (0, "")


def _with(**changes: object) -> Dict[str, object]:
    return {**GOOD, **changes}


def _req(*rows: Tuple[object, ...]) -> List[Dict[str, object]]:
    return [dict(zip(("size", "count", "live_at_peak"), r)) for r in rows]


def _large(*values: object) -> Dict[str, object]:
    return dict(zip(("count", "bytes", "live_at_peak", "live_bytes_at_peak"), values))


@pytest.mark.parametrize("doc, message", [
    ([], "not a goalloc size profile of version"),
    ({"requests": []}, "not a goalloc size profile"),
    (_with(goalloc_profile=prof.VERSION + 1), f"got {prof.VERSION + 1}"),
    (_with(requests={}), "\"requests\" must be a list"),
    (_with(requests=[{"size": 8}]), "requests\\[0\\] needs size, count and live_at_peak"),
    (_with(requests=[7]), "requests\\[0\\] needs"),
    (_with(requests=_req((8, "1", 0))), "requests\\[0\\]: count must be an integer >= 0"),
    (_with(requests=_req((8, 1, True))), "live_at_peak must be"),
    (_with(requests=_req((-8, 1, 0))), "size must be an integer"),
    (_with(requests=_req((-8, -1, 0))), "size, count must be integers >= 0"),
    (_with(requests=_req((MAX_SMALL + 1, 1, 0))), f"size {MAX_SMALL + 1} > {MAX_SMALL} is not a small size"),
    (_with(requests=_req((8, 1, 2))), "live_at_peak 2 > count 1"),
    (_with(requests=_req((8, 1, 0), (8, 1, 0))), "requests\\[1\\]: sizes must be sorted and distinct"),
    (_with(requests=_req((16, 1, 0), (8, 1, 0))), "sorted"),
    (_with(large={"count": 0}), "large needs count, bytes, live_at_peak and live_bytes_at_peak"),
    (_with(large=_large(1, 40000.5, 1, 40000)), "large: bytes must be"),
    (_with(large=_large(1, 40000, 2, 40000)), "large: live_at_peak 2 > count 1"),
    (_with(large=_large(2, 40000, 1, 40000)), f"bytes 40000 for 2 object\\(s\\), each of more than {MAX_SMALL}"),
    (_with(large=_large(0, 5, 0, 0)), "bytes 5 for 0 object"),
    (_with(large=_large(2, 80000, 1, 100)), "live_bytes_at_peak 100 for 1 object"),
    (_with(large=_large(2, 70000, 2, 80000)), "live_bytes_at_peak 80000 > bytes 70000"),
    (_with(pid=-1), "pid must be"),
    (_with(sizeclasses=12), "sizeclasses must be a string"),
    (_with(peak_live_bytes="many"), "peak_live_bytes must be"),
    (_with(peak_live_bytes=40095), "peak_live_bytes 40095 is not what was live at the peak: 40096"),
])
def test_loader_names_every_malformed_field(doc: object, message: str) -> None:
    with pytest.raises(prof.ProfileError, match=message) as e:
        prof.from_json(doc, "p.json")
    assert isinstance(e.value, ValueError) and str(e.value).startswith("p.json: ")


def test_loader_says_not_json(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    for text in ("{", "\xff"):
        path.write_bytes(text.encode("latin-1"))
        with pytest.raises(prof.ProfileError, match=f"{path}: not JSON"):
            prof.load(path)


# --------------------------------------------------------------------------
# Under LD_PRELOAD


def preload(argv: List[str], env: Dict[str, str], timeout: float = 300, debug: bool = False,
            **kw: object) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    full.update(env, LD_PRELOAD=ga.lib_path(debug))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full, **kw)


def size_profile_model(n: int) -> Model:
    """tests/c/size_profile.c's requests (see its comment)."""
    m = Model()
    s = [1 + (i * 7919) % 40000 for i in range(n)]
    for k in (n + 1, n // 2 + 1, n // 4 + 1):
        m.new(8 * k)
    for i in range(n):
        m.new(s[i])
    for i in range(1, n, 2):
        m.gone(s[i])
    for i in range(0, n, 4):  # in place or moved: the peak is long past
        m.gone(s[i])
        m.new(s[i] + 1)
    for _ in range(n // 2):
        m.new(24)
    for _ in range(n // 4):
        m.new(100)
    return m


@pytest.mark.preload
@pytest.mark.parametrize("options", ["", "sizeclasses=go1.16,align=8", "tiny=0,refill=4"])
def test_c_program_known_sequence(options: str, tmp_path: Path) -> None:
    exe = tmp_path / "size_profile"
    subprocess.run(["cc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(C_DIR / "size_profile.c")],
                   check=True, timeout=120)
    out = tmp_path / "profile.json"
    r = preload([str(exe), "3000"], {"GOALLOC_PROFILE": str(out), "GOALLOC": options}, debug=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = prof.load(out)
    consistent(got)
    size_profile_model(3000).check(got)
    assert got.sizeclasses == ("go1.16" if "go1.16" in options else "go1.12")


@pytest.mark.preload
def test_cpython_profile_is_sane(tmp_path: Path) -> None:
    out = tmp_path / "py-%p.json"
    r = preload([sys.executable, str(DEMO_WORKLOAD)], {"GOALLOC_PROFILE": str(out), "PYTHONMALLOC": "malloc"})
    assert r.returncode == 0 and "overall:" in r.stdout, r.stderr
    (path,) = tmp_path.glob("py-*.json")
    got = prof.load(path)
    consistent(got)
    assert path.name == f"py-{got.pid}.json"
    assert got.total_requests > 100000
    hist = got.histogram()
    assert hist[56] > 1000 and got.peak_live_bytes > 1 << 20  # CPython's small objects dominate
    assert got.large.count > 0


@pytest.mark.preload
def test_sqlite_profile_is_sane(tmp_path: Path) -> None:
    sqlite = "/usr/bin/sqlite3"
    if not os.path.exists(sqlite):
        pytest.skip("no sqlite3")
    out = tmp_path / "sqlite.json"
    r = preload([sqlite, "-bail", "-batch", ":memory:"], {"GOALLOC_PROFILE": str(out)},
                input=(PROGRAMS / "workload.sql").read_text())
    assert r.returncode == 0, r.stderr
    got = prof.load(out)
    consistent(got)
    assert got.total_requests > 10000


FORKER = r"""
import os, sys
kids = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        junk = [bytes(100 + k) for _ in range(1000)]
        sys.exit(0)  # a normal exit: the library writes its profile
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
print(os.getpid(), *kids)
"""


@pytest.mark.preload
def test_percent_p_names_one_file_per_process(tmp_path: Path) -> None:
    r = preload([sys.executable, "-c", FORKER], {"GOALLOC_PROFILE": str(tmp_path / "p-%p.json"),
                                                  "PYTHONMALLOC": "malloc"})
    assert r.returncode == 0, r.stderr
    pids = [int(x) for x in r.stdout.split()]
    files = sorted(tmp_path.glob("p-*.json"))
    assert sorted(f.name for f in files) == sorted(f"p-{pid}.json" for pid in pids)
    for f in files:
        got = prof.load(f)
        consistent(got)
        assert f.name == f"p-{got.pid}.json"


@pytest.mark.preload
def test_goalloc_run_profile_sizes_keeps_the_top_process(tmp_path: Path) -> None:
    goalloc = [sys.executable, "-m", "goalloc_ffi.cli"]
    out = tmp_path / "top.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC") and k != "LD_PRELOAD"}
    r = subprocess.run([*goalloc, "run", "--profile-sizes", str(out), "--", sys.executable, "-c", FORKER],
                       capture_output=True, text=True, timeout=300, env=dict(env, PYTHONMALLOC="malloc"))
    assert r.returncode == 0, r.stderr
    top = int(r.stdout.split()[0])
    assert [p.name for p in tmp_path.iterdir()] == ["top.json"]
    got = prof.load(out)
    consistent(got)
    assert got.pid == top
    # with %p: every process, and the exit status passes through
    r = subprocess.run([*goalloc, "run", "--profile-sizes", str(tmp_path / "all-%p.json"), "--",
                        sys.executable, "-c", FORKER + "\nraise SystemExit(3)"],
                       capture_output=True, text=True, timeout=300, env=dict(env, PYTHONMALLOC="malloc"))
    assert r.returncode == 3
    assert len(list(tmp_path.glob("all-*.json"))) == 3
