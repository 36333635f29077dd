"""Recorded size profiles: the JSON that GOALLOC_PROFILE=PATH (or
``goalloc run --profile-sizes FILE``) makes the library write at exit.

The document (schema version ``VERSION``, from C)::

    {"goalloc_profile": 1, "pid": 123, "sizeclasses": "go1.12",
     "peak_live_bytes": <requested bytes live at the peak>,
     "requests": [{"size": 24, "count": 1000, "live_at_peak": 700}, ...],
     "large": {"count": N, "bytes": B, "live_at_peak": n, "live_bytes_at_peak": b}}

``requests`` holds the small sizes 0..32768 that were requested at least
once, sorted by size; ``large`` sums every larger request. The peak is the
moment the requested bytes live were highest (exact: see csrc/mprof.c).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from ._goalloc import lib

#: Schema version of the document this module reads (csrc GA_PROFILE_VERSION).
VERSION = int(lib.ga_profile_version())


@dataclass(frozen=True)
class SizeRequests:
    """Requests of one small size."""

    size: int  # bytes requested
    count: int  # requests made
    live_at_peak: int  # of them live at the peak


@dataclass(frozen=True)
class LargeRequests:
    """Every request above the largest small size, together."""

    count: int
    bytes: int
    live_at_peak: int
    live_bytes_at_peak: int


@dataclass(frozen=True)
class SizeProfile:
    """One process's recorded size profile."""

    pid: int
    sizeclasses: str  # the table in use when it was recorded
    peak_live_bytes: int  # requested bytes live at the peak
    requests: Tuple[SizeRequests, ...]  # sorted by size, counts > 0
    large: LargeRequests

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
        return {
            "goalloc_profile": VERSION,
            "pid": self.pid,
            "sizeclasses": self.sizeclasses,
            "peak_live_bytes": self.peak_live_bytes,
            "requests": [{"size": r.size, "count": r.count, "live_at_peak": r.live_at_peak}
                         for r in self.requests],
            "large": {"count": self.large.count, "bytes": self.large.bytes,
                      "live_at_peak": self.large.live_at_peak,
                      "live_bytes_at_peak": self.large.live_bytes_at_peak},
        }


def from_json(doc: Dict[str, Any]) -> SizeProfile:
    """A SizeProfile from the parsed document; ValueError if it is not one."""
    if doc.get("goalloc_profile") != VERSION:
        raise ValueError(f"not a goalloc size profile of version {VERSION}: "
                         f"goalloc_profile = {doc.get('goalloc_profile')!r}")
    requests = tuple(SizeRequests(int(r["size"]), int(r["count"]), int(r["live_at_peak"]))
                     for r in doc["requests"])
    if [r.size for r in requests] != sorted({r.size for r in requests}):
        raise ValueError("requests are not sorted by size without repeats")
    large = doc["large"]
    return SizeProfile(
        pid=int(doc["pid"]),
        sizeclasses=str(doc["sizeclasses"]),
        peak_live_bytes=int(doc["peak_live_bytes"]),
        requests=requests,
        large=LargeRequests(int(large["count"]), int(large["bytes"]), int(large["live_at_peak"]),
                            int(large["live_bytes_at_peak"])),
    )


def load(path: Union[str, Path]) -> SizeProfile:
    """Reads a profile file written by goalloc."""
    return from_json(json.loads(Path(path).read_text()))


def private_heap_profile() -> SizeProfile:
    """The profile of the cffi module's private heap, if profiling is on
    there (lib.ga_test_profile(1)); RuntimeError otherwise."""
    import tempfile

    with tempfile.TemporaryFile() as f:
        if lib.ga_profile_write_json(f.fileno()) != 0:
            raise RuntimeError("the private heap is not being profiled")
        f.seek(0)
        return from_json(json.loads(f.read().decode()))
