"""Recorded size profiles: the JSON that GOALLOC_PROFILE=PATH (or
``goalloc run --profile-sizes FILE``) makes the library write at exit, and
the one reader of it (``goalloc sizeclasses --fit`` and the tests use it).

The document (schema version ``VERSION``, from C)::

    {"goalloc_profile": 1, "pid": 123, "sizeclasses": "go1.12",
     "peak_live_bytes": <requested bytes live at the peak>,
     "requests": [{"size": 24, "count": 1000, "live_at_peak": 700}, ...],
     "large": {"count": N, "bytes": B, "live_at_peak": n, "live_bytes_at_peak": b}}

``requests`` holds the small sizes 0..MAX_SMALL_SIZE that were requested at
least once, sorted by size; ``large`` sums every larger request. The peak
is the moment the requested bytes live were highest (exact: see
csrc/mprof.c), so ``peak_live_bytes`` is the sum of size x live_at_peak
over ``requests`` plus ``large.live_bytes_at_peak``.

Reading is strict: every malformed field is a ProfileError (a ValueError)
naming the file and the field. A profile written by hand may leave out
``pid`` (0), ``sizeclasses`` (""), ``large`` (nothing) and
``peak_live_bytes`` (computed); requests of count 0 are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._goalloc import lib

#: Schema version of the document this module reads (csrc GA_PROFILE_VERSION).
VERSION = int(lib.ga_profile_version())
#: Largest small size (csrc ga_max_small_size): larger requests are in ``large``.
MAX_SMALL_SIZE = int(lib.ga_max_small_size())
KEY = "goalloc_profile"  # its value is VERSION


class ProfileError(ValueError):
    """A size profile that cannot be read; the message says where."""


@dataclass(frozen=True)
class SizeRequests:
    """Requests of one small size."""

    size: int  # bytes requested, 0..MAX_SMALL_SIZE
    count: int  # requests made, > 0
    live_at_peak: int  # of them live at the peak, <= count


@dataclass(frozen=True)
class LargeRequests:
    """Every request above MAX_SMALL_SIZE, together (each is > MAX_SMALL_SIZE
    bytes, so bytes > MAX_SMALL_SIZE x count and likewise at the peak)."""

    count: int
    bytes: int
    live_at_peak: int  # <= count
    live_bytes_at_peak: int  # <= bytes


NO_LARGE = LargeRequests(0, 0, 0, 0)


@dataclass(frozen=True)
class SizeProfile:
    """One process's recorded size profile."""

    pid: int
    sizeclasses: str  # the table in use when it was recorded
    peak_live_bytes: int  # requested bytes live at the peak (small and large)
    requests: Tuple[SizeRequests, ...]  # sorted by size, sizes distinct, counts > 0
    large: LargeRequests

    @classmethod
    def of(cls, requests: Iterable[SizeRequests], large: LargeRequests = NO_LARGE, pid: int = 0,
           sizeclasses: str = "") -> "SizeProfile":
        """A profile of these requests (sorted, distinct sizes), its peak computed."""
        reqs = tuple(requests)
        return cls(pid, sizeclasses, _peak(reqs, large), reqs, large)

    @property
    def total_requests(self) -> int:
        return sum(r.count for r in self.requests) + self.large.count

    def histogram(self) -> Dict[int, int]:
        """size -> count of the small requests."""
        return {r.size: r.count for r in self.requests}

    def live_at_peak(self) -> Dict[int, int]:
        """size -> objects live at the peak (sizes with none left out)."""
        return {r.size: r.live_at_peak for r in self.requests if r.live_at_peak}

    def to_json(self) -> Dict[str, Any]:
        """The document (what ``from_json`` reads back to an equal profile)."""
        return {
            KEY: VERSION,
            "pid": self.pid,
            "sizeclasses": self.sizeclasses,
            "peak_live_bytes": self.peak_live_bytes,
            "requests": [{"size": r.size, "count": r.count, "live_at_peak": r.live_at_peak}
                         for r in self.requests],
            "large": {"count": self.large.count, "bytes": self.large.bytes,
                      "live_at_peak": self.large.live_at_peak,
                      "live_bytes_at_peak": self.large.live_bytes_at_peak},
        }


def _peak(requests: Tuple[SizeRequests, ...], large: LargeRequests) -> int:
    return sum(r.size * r.live_at_peak for r in requests) + large.live_bytes_at_peak


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _fields(obj: Any, names: Tuple[str, ...], where: str) -> List[int]:
    """The integer fields ``names`` (all >= 0) of the object ``obj``."""
    if not isinstance(obj, dict) or any(n not in obj for n in names):
        raise ProfileError(f"{where} needs {', '.join(names[:-1])} and {names[-1]}")
    bad = [n for n in names if not _count(obj[n])]
    if bad:
        raise ProfileError(f"{where}: {', '.join(bad)} must be {'integers' if bad[1:] else 'an integer'} >= 0")
    return [obj[n] for n in names]


def _request(obj: Any, where: str) -> SizeRequests:
    size, count, live = _fields(obj, ("size", "count", "live_at_peak"), where)
    if size > MAX_SMALL_SIZE:
        raise ProfileError(f"{where}: size {size} > {MAX_SMALL_SIZE} is not a small size (it belongs in \"large\")")
    if live > count:
        raise ProfileError(f"{where}: live_at_peak {live} > count {count}")
    return SizeRequests(size, count, live)


def _large(obj: Any, where: str) -> LargeRequests:
    count, nbytes, live, live_bytes = _fields(obj, ("count", "bytes", "live_at_peak", "live_bytes_at_peak"), where)
    if live > count:
        raise ProfileError(f"{where}: live_at_peak {live} > count {count}")
    for n, b, what in ((count, nbytes, "bytes"), (live, live_bytes, "live_bytes_at_peak")):
        if b < n * (MAX_SMALL_SIZE + 1) or (n == 0 and b != 0):
            raise ProfileError(f"{where}: {what} {b} for {n} object(s), each of more than {MAX_SMALL_SIZE} bytes")
    if live_bytes > nbytes:
        raise ProfileError(f"{where}: live_bytes_at_peak {live_bytes} > bytes {nbytes}")
    return LargeRequests(count, nbytes, live, live_bytes)


def from_json(doc: Any, source: str = "profile") -> SizeProfile:
    """A SizeProfile from the parsed document; ProfileError (a ValueError)
    naming ``source`` and the field if it is not a valid one."""
    if not isinstance(doc, dict) or doc.get(KEY) != VERSION:
        got = doc.get(KEY) if isinstance(doc, dict) else type(doc).__name__
        raise ProfileError(f"{source}: not a goalloc size profile of version {VERSION} "
                           f"(expected \"{KEY}\": {VERSION}, got {got!r})")
    raw = doc.get("requests")
    if not isinstance(raw, list):
        raise ProfileError(f"{source}: \"requests\" must be a list")
    requests: List[SizeRequests] = []
    last: Optional[int] = None
    for i, obj in enumerate(raw):
        r = _request(obj, f"{source}: requests[{i}]")
        if last is not None and r.size <= last:
            raise ProfileError(f"{source}: requests[{i}]: sizes must be sorted and distinct ({r.size} after {last})")
        last = r.size
        if r.count:
            requests.append(r)
    large = _large(doc["large"], f"{source}: large") if "large" in doc else NO_LARGE
    pid = doc.get("pid", 0)
    if not _count(pid):
        raise ProfileError(f"{source}: pid must be an integer >= 0, got {pid!r}")
    table = doc.get("sizeclasses", "")
    if not isinstance(table, str):
        raise ProfileError(f"{source}: sizeclasses must be a string, got {table!r}")
    reqs = tuple(requests)
    peak = _peak(reqs, large)
    given = doc.get("peak_live_bytes", peak)
    if not _count(given):
        raise ProfileError(f"{source}: peak_live_bytes must be an integer >= 0, got {given!r}")
    if given != peak:
        raise ProfileError(f"{source}: peak_live_bytes {given} is not what was live at the peak: {peak} "
                           "(size x live_at_peak of the requests + large.live_bytes_at_peak)")
    return SizeProfile(pid, table, peak, reqs, large)


def load(path: Union[str, Path]) -> SizeProfile:
    """Reads a profile file written by goalloc (or by hand); ProfileError if
    it is not JSON or not a valid profile, OSError if it cannot be read."""
    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: not JSON ({e})") from None
    return from_json(doc, str(path))


def private_heap_profile() -> SizeProfile:
    """The profile of the cffi module's private heap, if profiling is on
    there (lib.ga_test_profile(1)); RuntimeError otherwise."""
    import tempfile

    with tempfile.TemporaryFile() as f:
        if lib.ga_profile_write_json(f.fileno()) != 0:
            raise RuntimeError("the private heap is not being profiled")
        f.seek(0)
        return from_json(json.loads(f.read().decode()), "private heap profile")
