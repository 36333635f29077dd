"""The live statistics of another process (GOALLOC=live=1, csrc/mlive.c).

A process running goalloc with live=1 publishes its counters in a shared
memory file (ga_live_path(pid), /dev/shm/goalloc-<pid>). Its layout is
ga_live_header_t of csrc/goalloc.h, known here through the cffi
declarations, followed by the names (written by C) and the values; this
module maps the file read-only, copies the values under the header's
seqlock and returns them by name. Values follow the JSON definitions, with
the differences goalloc.h lists (objects counted when their span is
folded, tiny objects by block); figures the live view cannot give are None.
"""

from __future__ import annotations

import mmap
import os
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ._goalloc import ffi, lib

#: Attempts at a consistent copy before giving up (each waits 1 ms).
_RETRIES = 200


class NoLiveFile(LookupError):
    """The process has no live statistics file (not run with live=1, or
    it has exited)."""


class StaleLiveFile(NoLiveFile):
    """The file is there but its process is gone (killed, or ended by
    _exit or exec)."""


@dataclass(frozen=True)
class LiveSnapshot:
    pid: int
    size_classes: str
    stats_version: int
    updated_ns: int  # CLOCK_MONOTONIC of the update (time.monotonic_ns's clock)
    updates: int  # updates the process has made so far
    interval_ms: int  # least time between its updates
    totals: Dict[str, Optional[int]]  # None: not available in the live view
    classes: List[Dict[str, Optional[int]]]  # row i is size class i + 1 (key "class")

    @property
    def age_s(self) -> float:
        """Seconds since the process last updated its file."""
        return max(0.0, (time.monotonic_ns() - self.updated_ns) / 1e9)


def live_path(pid: int) -> str:
    """The live statistics file of process pid."""
    buf = ffi.new("char[]", 256)
    lib.ga_live_path(pid, buf, len(buf))
    return ffi.string(buf).decode()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _values(raw: bytes, unavailable: int) -> List[Optional[int]]:
    a = array("Q")
    a.frombytes(raw)
    return [None if v == unavailable else int(v) for v in a]


def _copy(path: str, pid: int, mm: mmap.mmap, h: "ffi.CData") -> LiveSnapshot:
    """The snapshot in mapping mm (header h), copied under the seqlock."""
    if h.magic != lib.GA_LIVE_MAGIC:
        raise NoLiveFile(f"{path}: being created (retry)")
    if h.layout != lib.GA_LIVE_LAYOUT:
        raise ValueError(f"{path}: live file layout {h.layout}, this goalloc reads {lib.GA_LIVE_LAYOUT}")
    if int(h.pid) != pid:
        raise ValueError(f"{path}: written by pid {h.pid}")
    nt, nf, nr = int(h.ntotals), int(h.nclass_fields), int(h.nrows)
    names = bytes(mm[h.names_off:h.names_off + h.names_len]).split(b"\0")
    total_names = [n.decode() for n in names[:nt]]
    class_names = [n.decode() for n in names[nt:nt + nf]]
    for _ in range(_RETRIES):
        seq = int(h.seq)
        if seq & 1 or seq == 0:
            time.sleep(0.001)
            continue
        totals = bytes(mm[h.totals_off:h.totals_off + 8 * nt])
        rows = bytes(mm[h.classes_off:h.classes_off + 8 * nf * nr])
        updated, updates = int(h.updated_ns), int(h.updates)
        if int(h.seq) == seq:
            break
    else:
        raise RuntimeError(f"{path}: no consistent copy after {_RETRIES} attempts")
    unavailable = int(h.unavailable)
    tv, cv = _values(totals, unavailable), _values(rows, unavailable)
    return LiveSnapshot(
        pid=pid,
        size_classes=ffi.string(h.size_classes).decode(),
        stats_version=int(h.stats_version),
        updated_ns=updated,
        updates=updates,
        interval_ms=int(h.interval_ms),
        totals=dict(zip(total_names, tv)),
        classes=[{"class": r + 1, **dict(zip(class_names, cv[r * nf:(r + 1) * nf]))} for r in range(nr)],
    )


def read(pid: int) -> LiveSnapshot:
    """One consistent snapshot of pid's live statistics.

    Raises NoLiveFile (StaleLiveFile if the process is gone), ValueError
    for a file of another layout.
    """
    path = live_path(pid)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        why = "not running" if not _alive(pid) else "not run with GOALLOC=live=1 (goalloc run --live)"
        raise NoLiveFile(f"no live statistics for pid {pid}: {path} does not exist (process {why})") from None
    try:
        size = os.fstat(fd).st_size
        if size < ffi.sizeof("ga_live_header_t"):
            raise NoLiveFile(f"{path}: being created (retry)")
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    buf = ffi.from_buffer(mm)
    try:
        snap = _copy(path, pid, mm, ffi.cast("ga_live_header_t *", buf))
    finally:
        ffi.release(buf)
        mm.close()
    if not _alive(pid):
        raise StaleLiveFile(f"process {pid} is gone; {path} is left over (removed by goalloc top)")
    return snap


def remove_stale(pid: int) -> bool:
    """Removes pid's live file if pid is gone; returns whether it did."""
    if _alive(pid):
        return False
    try:
        os.unlink(live_path(pid))
    except FileNotFoundError:
        return False
    return True


def rss_bytes(pid: int) -> Optional[int]:
    """Resident set size of pid now (/proc/PID/statm), None if it is gone."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")
