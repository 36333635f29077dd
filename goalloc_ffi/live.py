"""The live statistics of another process (GOALLOC=live=1, csrc/mlive.c).

A process running goalloc with live=1 publishes its counters in a shared
memory file (ga_live_path(pid), /dev/shm/goalloc-<pid>). Its layout is
ga_live_header_t of csrc/goalloc.h, known here through the cffi
declarations, followed by the names (written by C) and the values; this
module copies the file with pread, the values under the header's seqlock,
and returns them by name. Values follow the JSON definitions, with the
differences goalloc.h lists (objects counted when their span is folded,
tiny objects by block); figures the live view cannot give are None.

The file is not trusted: /dev/shm is shared with every local user, and a
file is only read if it is a regular file (no symbolic link, FIFO or
device) owned by the uid the process creates files as. Every count and
offset is checked against the file's size and a sanity bound before use,
strings are decoded with replacement, and a file that fails a check raises
BadLiveFile with one line naming the path and the problem.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ._goalloc import ffi, lib

#: Attempts at a consistent copy before giving up (each waits 1 ms).
_RETRIES = 200
#: Sanity bounds, far above what goalloc writes (a file of a few KiB, a few
#: dozen figures, at most ga_sizeclass_max() rows), well below what would
#: cost a reader real memory or time.
_MAX_FILE_BYTES = 16 << 20
_MAX_COUNT = 1024  # of totals, of per-class fields, of rows

_HEADER = ffi.sizeof("ga_live_header_t")


class NoLiveFile(LookupError):
    """The process has no live statistics file (not run with live=1, or
    it has exited)."""


class StaleLiveFile(NoLiveFile):
    """The file is there but its process is gone (killed, or ended by
    _exit or exec)."""


class BadLiveFile(ValueError):
    """The file is not one to read: not a regular file, owned by another
    uid than its process's, malformed, or of another layout. The message is
    one line naming the path and the problem."""


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


def _file_uid(pid: int) -> Optional[int]:
    """The uid pid's files are created as (its filesystem uid, else its
    effective uid; /proc/PID/status), None if pid is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        ids = line.split()
        if ids[:1] == ["Uid:"] and len(ids) > 2:
            return int(ids[4] if len(ids) > 4 else ids[2])
    return None


def _pread(path: str, fd: int, n: int, off: int) -> bytes:
    """Exactly n bytes of fd at off (BadLiveFile if the file ends first)."""
    parts: List[bytes] = []
    while n > 0:
        b = os.pread(fd, n, off)
        if not b:
            raise BadLiveFile(f"{path}: truncated while reading")
        parts.append(b)
        n, off = n - len(b), off + len(b)
    return b"".join(parts)


def _values(raw: bytes, unavailable: int) -> List[Optional[int]]:
    a = array("Q")
    a.frombytes(raw)
    return [None if v == unavailable else int(v) for v in a]


def _header(raw: bytes) -> "ffi.CData":
    """A copy of the header at the start of raw (at least _HEADER bytes)."""
    h = ffi.new("ga_live_header_t *")
    ffi.memmove(h, raw[:_HEADER], _HEADER)
    return h


def _check(path: str, pid: int, h: "ffi.CData", size: int) -> None:
    """BadLiveFile unless every count and part of h fits in size bytes."""
    if h.layout != lib.GA_LIVE_LAYOUT:
        raise BadLiveFile(f"{path}: live file layout {h.layout}, this goalloc reads {lib.GA_LIVE_LAYOUT}")
    if int(h.pid) != pid:
        raise BadLiveFile(f"{path}: written by pid {h.pid}")
    for name in ("ntotals", "nclass_fields", "nrows"):
        if getattr(h, name) > _MAX_COUNT:
            raise BadLiveFile(f"{path}: {name} {getattr(h, name)} is over the sanity bound {_MAX_COUNT}")
    parts = (("names", h.names_off, h.names_len),
             ("totals", h.totals_off, 8 * h.ntotals),
             ("classes", h.classes_off, 8 * h.nrows * h.nclass_fields))
    for name, off, n in parts:
        if off < _HEADER or off + n > size:
            raise BadLiveFile(f"{path}: {name} at bytes {off}..{off + n} are outside the file's "
                              f"{_HEADER}..{size}")


def _parse(path: str, pid: int, fd: int, data: bytes) -> LiveSnapshot:
    """The snapshot of file fd whose bytes are data: the layout checked, the
    values copied again under the seqlock."""
    h = _header(data)
    if h.magic != lib.GA_LIVE_MAGIC:
        raise NoLiveFile(f"{path}: being created (retry)")
    _check(path, pid, h, len(data))
    nt, nf, nr = int(h.ntotals), int(h.nclass_fields), int(h.nrows)
    names = [n.decode(errors="replace")
             for n in data[h.names_off:h.names_off + h.names_len].split(b"\0")[:-1]]
    if len(names) < nt + nf:
        raise BadLiveFile(f"{path}: {len(names)} names for {nt} totals and {nf} per-class fields")
    total_names, class_names = names[:nt], names[nt:nt + nf]
    for _ in range(_RETRIES):
        now = _header(_pread(path, fd, _HEADER, 0))
        seq = int(now.seq)
        if seq & 1 or seq == 0:
            time.sleep(0.001)
            continue
        totals = _pread(path, fd, 8 * nt, h.totals_off)
        rows = _pread(path, fd, 8 * nf * nr, h.classes_off)
        if int(_header(_pread(path, fd, _HEADER, 0)).seq) == seq:
            break
    else:
        raise BadLiveFile(f"{path}: no consistent copy after {_RETRIES} attempts")
    unavailable = int(h.unavailable)
    tv, cv = _values(totals, unavailable), _values(rows, unavailable)
    return LiveSnapshot(
        pid=pid,
        size_classes=ffi.string(h.size_classes).decode(errors="replace"),
        stats_version=int(h.stats_version),
        updated_ns=int(now.updated_ns),
        updates=int(now.updates),
        interval_ms=int(h.interval_ms),
        totals=dict(zip(total_names, tv)),
        classes=[{**dict(zip(class_names, cv[r * nf:(r + 1) * nf])), "class": r + 1} for r in range(nr)],
    )


def read(pid: int) -> LiveSnapshot:
    """One consistent snapshot of pid's live statistics.

    Raises NoLiveFile (StaleLiveFile if the process is gone), BadLiveFile
    (a ValueError) for a file that is refused, malformed or of another
    layout.
    """
    path = live_path(pid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        why = "not running" if not _alive(pid) else "not run with GOALLOC=live=1 (goalloc run --live)"
        raise NoLiveFile(f"no live statistics for pid {pid}: {path} does not exist (process {why})") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadLiveFile(f"{path}: is a symbolic link, refused") from None
        raise BadLiveFile(f"{path}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadLiveFile(f"{path}: not a regular file, refused")
        uid = _file_uid(pid)
        if uid is None:
            raise StaleLiveFile(f"process {pid} is gone; {path} is left over (removed by goalloc top)")
        if st.st_uid != uid:
            raise BadLiveFile(f"{path}: owned by uid {st.st_uid}, but process {pid} runs as uid {uid}: "
                              "refused (planted by another user?)")
        if st.st_size > _MAX_FILE_BYTES:
            raise BadLiveFile(f"{path}: {st.st_size} bytes, over the sanity bound {_MAX_FILE_BYTES}")
        if st.st_size < _HEADER:
            raise NoLiveFile(f"{path}: being created (retry)")
        snap = _parse(path, pid, fd, _pread(path, fd, st.st_size, 0))
    except OSError as e:
        raise BadLiveFile(f"{path}: cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if not _alive(pid):
        raise StaleLiveFile(f"process {pid} is gone; {path} is left over (removed by goalloc top)")
    return snap


def read_when_complete(pid: int, attempts: int = 50) -> LiveSnapshot:
    """read(pid), waiting up to attempts x 10 ms for a file being created;
    a stale file (its process gone) is removed and reported."""
    import time

    for _ in range(attempts):
        try:
            return read(pid)
        except StaleLiveFile:
            remove_stale(pid)
            raise
        except NoLiveFile as e:
            if "being created" not in str(e):
                raise
            time.sleep(0.01)
    raise NoLiveFile(f"no complete live statistics file for pid {pid}")


def hold(pid: int) -> Optional[int]:
    """A descriptor of pid's live file (checked as read() does, once), so
    that read_held() can read the figures the process published at exit
    after the file is removed; None if there is none or it is refused."""
    try:
        read(pid)
        fd = os.open(live_path(pid), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (NoLiveFile, BadLiveFile, OSError):
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or not _HEADER <= st.st_size <= _MAX_FILE_BYTES:
        os.close(fd)
        return None
    return fd


def read_held(pid: int, fd: int) -> LiveSnapshot:
    """The snapshot in a file hold() opened, whether or not pid still runs."""
    path = live_path(pid)
    try:
        return _parse(path, pid, fd, _pread(path, fd, os.fstat(fd).st_size, 0))
    except OSError as e:
        raise BadLiveFile(f"{path}: cannot read: {e.strerror}") from None


def remove_stale(pid: int) -> bool:
    """Removes pid's live file if pid is gone and the file is this user's
    (a regular file or a symbolic link, never followed); returns whether it
    did."""
    if _alive(pid):
        return False
    path = live_path(pid)
    try:
        st = os.lstat(path)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) or st.st_uid != os.geteuid():
            return False
        os.unlink(path)
    except OSError:
        return False
    return True


def rss_bytes(pid: int) -> Optional[int]:
    """Resident set size of pid now (/proc/PID/statm), None if it is gone."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")
