"""The live statistics reader (goalloc_ffi/live.py) against hostile files.

/dev/shm is shared with every local user, so the file at a process's live
path may be anything: a symbolic link, a FIFO, another user's file, or a
file with counts and offsets that lie. Each test plants such a file at the
live path of a real process (`sleep`) and checks that the reader refuses it
with one line (BadLiveFile, or NoLiveFile while it looks half-created) and
that `goalloc top` says so in one line with a non-zero exit: no hang, no
traceback, no SIGBUS, no MemoryError, no rich markup taken from the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from goalloc_ffi import ffi, lib, live, timeline

GOALLOC = [sys.executable, "-m", "goalloc_ffi.cli"]
HEADER = ffi.sizeof("ga_live_header_t")
UNAVAILABLE = 2**64 - 1
NROWS = 3
OTHER_UID = 65534  # nobody


def env() -> Dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("GOALLOC", "GOALLOC_STATS", "LD_PRELOAD")}
    e["COLUMNS"] = "300"  # the header line unwrapped
    return e


def total_names() -> List[bytes]:
    return [ffi.string(lib.ga_stats_total_name(i)) for i in range(lib.ga_stats_ntotals())]


def class_names() -> List[bytes]:
    return [ffi.string(lib.ga_stats_class_field_name(i)) for i in range(lib.ga_stats_nclass_fields())]


def live_file(pid: int, /, names: Optional[List[bytes]] = None, size_classes: bytes = b"go1.16",
              **fields: int) -> bytes:
    """A well-formed live file of pid as mlive.c writes it (total i holds
    i + 1, except bytes_released, unavailable; row r has size 16 (r + 1) and
    100 (r + 1) mallocs), with the header fields given overridden."""
    tn, cn = total_names(), class_names()
    blob = b"".join(n + b"\0" for n in (tn + cn if names is None else names))
    totals_off = (HEADER + len(blob) + 7) & ~7
    classes_off = totals_off + 8 * len(tn)
    size = classes_off + 8 * len(cn) * NROWS
    h = ffi.new("ga_live_header_t *")
    h.magic, h.layout, h.stats_version, h.pid = lib.GA_LIVE_MAGIC, lib.GA_LIVE_LAYOUT, lib.ga_stats_version(), pid
    h.seq, h.updated_ns, h.updates, h.unavailable = 2, time.monotonic_ns(), 1, UNAVAILABLE
    h.size, h.interval_ms, h.ntotals, h.nclass_fields, h.nrows = size, 100, len(tn), len(cn), NROWS
    h.names_off, h.names_len, h.totals_off, h.classes_off = HEADER, len(blob), totals_off, classes_off
    h.size_classes = size_classes
    for k, v in fields.items():
        setattr(h, k, v)
    totals = array("Q", (UNAVAILABLE if n == b"bytes_released" else i + 1 for i, n in enumerate(tn)))
    rows = array("Q", (16 * (r + 1) if n == b"size" else 100 * (r + 1) if n == b"mallocs" else 1
                       for r in range(NROWS) for n in cn))
    data = bytes(ffi.buffer(h)) + blob
    return data + bytes(totals_off - len(data)) + totals.tobytes() + rows.tobytes()


@dataclass
class Target:
    pid: int
    path: Path


@pytest.fixture
def target() -> Iterator[Target]:
    """A live process (sleep, of this uid) and its live path, which is
    removed afterwards whatever was planted there."""
    p = subprocess.Popen(["sleep", "60"])
    path = Path(live.live_path(p.pid))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    try:
        yield Target(p.pid, path)
    finally:
        p.kill()
        p.wait()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def top(pid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOALLOC, "top", str(pid), "--once"], capture_output=True, text=True, timeout=60,
                          env=env())


def read_in_child(pid: int) -> Dict[str, str]:
    """live.read(pid) in a subprocess (a hang is a timeout, a crash a
    negative return code): the exception's class and message, or "ok"."""
    code = textwrap.dedent(f"""
        import json
        from goalloc_ffi import live
        try:
            live.read({pid})
            print(json.dumps({{"error": "ok", "message": ""}}))
        except Exception as e:
            print(json.dumps({{"error": type(e).__name__, "message": str(e)}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10, env=env())
    assert r.returncode == 0, (r.returncode, r.stderr)
    return json.loads(r.stdout)


def assert_one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode != 0, r.stdout
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


# ---- crafted files ------------------------------------------------------------------


def test_huge_row_count_is_refused_quickly(target: Target) -> None:
    target.path.write_bytes(live_file(target.pid, nrows=2**31))
    t0 = time.monotonic()
    r = read_in_child(target.pid)
    assert r["error"] == "BadLiveFile" and "nrows 2147483648" in r["message"]
    assert str(target.path) in r["message"]
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("field", ["names_off", "totals_off", "classes_off"])
def test_offsets_past_the_end_of_the_file_are_refused(target: Target, field: str) -> None:
    data = live_file(target.pid)
    target.path.write_bytes(live_file(target.pid, **{field: len(data) - 4}))
    with pytest.raises(live.BadLiveFile, match=f"{field[:-4]}.* outside the file"):
        live.read(target.pid)


def test_fewer_names_than_figures_are_refused(target: Target) -> None:
    target.path.write_bytes(live_file(target.pid, names=total_names()[:3]))
    with pytest.raises(live.BadLiveFile, match="3 names for"):
        live.read(target.pid)


def test_markup_in_the_file_is_shown_literally(target: Target) -> None:
    names = [b"[/x]" if n == b"misuse_errors" else n for n in total_names()] + class_names()
    target.path.write_bytes(live_file(target.pid, names=names, size_classes=b"[/x][bold]t[/bold]"))
    snap = live.read(target.pid)
    assert snap.size_classes == "[/x][bold]t[/bold]" and snap.totals["[/x]"] is not None
    r = top(target.pid)
    assert r.returncode == 0, r.stderr
    assert "size classes [/x][bold]t[/bold]" in r.stdout


def test_control_characters_in_the_file_do_not_reach_the_terminal(target: Target) -> None:
    target.path.write_bytes(live_file(target.pid, size_classes=b"go\x1b[2J\x1b]0;owned\x07"))
    r = top(target.pid)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "size classes go\ufffd[2J\ufffd]0;owned\ufffd" in r.stdout


def test_invalid_utf8_is_decoded_with_replacement(target: Target) -> None:
    names = [b"\xffbytes\xff" if n == b"misuse_errors" else n for n in total_names()] + class_names()
    target.path.write_bytes(live_file(target.pid, names=names, size_classes=b"go\xff"))
    snap = live.read(target.pid)
    assert snap.size_classes == "go\ufffd"
    assert "\ufffdbytes\ufffd" in snap.totals
    assert snap.totals["bytes_in_use"] == total_names().index(b"bytes_in_use") + 1
    assert snap.totals["bytes_released"] is None
    assert [(c["class"], c["size"], c["mallocs"]) for c in snap.classes] == [(1, 16, 100), (2, 32, 200),
                                                                           (3, 48, 300)]
    assert top(target.pid).returncode == 0


def test_a_fifo_is_refused_without_blocking(target: Target) -> None:
    os.mkfifo(target.path)
    r = read_in_child(target.pid)
    assert r["error"] == "BadLiveFile" and "not a regular file" in r["message"]
    assert_one_line_error(top(target.pid), "not a regular file")


def test_a_symbolic_link_is_refused(target: Target, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(live_file(target.pid))
    target.path.symlink_to(real)
    with pytest.raises(live.BadLiveFile, match="is a symbolic link, refused"):
        live.read(target.pid)
    assert_one_line_error(top(target.pid), "symbolic link")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_file_of_another_uid_is_refused(target: Target) -> None:
    target.path.write_bytes(live_file(target.pid))
    os.chown(target.path, OTHER_UID, -1)
    msg = f"owned by uid {OTHER_UID}, but process {target.pid} runs as uid {os.geteuid()}: refused"
    with pytest.raises(live.BadLiveFile, match=msg):
        live.read(target.pid)
    assert_one_line_error(top(target.pid), msg)


def test_a_file_over_the_size_bound_is_refused(target: Target) -> None:
    target.path.write_bytes(live_file(target.pid))
    os.truncate(target.path, 17 << 20)  # sparse: a valid file followed by zeros
    with pytest.raises(live.BadLiveFile, match="over the sanity bound"):
        live.read(target.pid)


def test_a_file_cut_short_is_refused_not_mapped(target: Target) -> None:
    data = live_file(target.pid)
    target.path.write_bytes(data[:HEADER // 2])  # as while it is created: retried, then named
    with pytest.raises(live.NoLiveFile, match="being created"):
        live.read(target.pid)
    assert_one_line_error(top(target.pid), f"no complete live statistics file for pid {target.pid}")
    target.path.write_bytes(data[:len(data) // 2])  # the header's parts run past the end
    with pytest.raises(live.BadLiveFile, match="outside the file"):
        live.read(target.pid)
    assert_one_line_error(top(target.pid), "outside the file")


def test_a_file_truncated_while_read_is_an_error_not_sigbus(target: Target) -> None:
    """The file shrinks to its header right after the reader's first look
    at its contents (a pread, or a mapping): a short read, not a crash.
    A long extra name puts the values pages past the header's (a mapping
    of the file faults there)."""
    target.path.write_bytes(live_file(target.pid, names=total_names() + class_names() + [b"x" * 3 * 4096]))
    code = textwrap.dedent(f"""
        import mmap, os
        from goalloc_ffi import live
        real_pread, real_mmap = os.pread, mmap.mmap
        def shrink():
            os.truncate({str(target.path)!r}, {HEADER})
        def pread(fd, n, off):
            b = real_pread(fd, n, off)
            if n > {HEADER}:
                shrink()
            return b
        def mapping(*args, **kw):
            m = real_mmap(*args, **kw)
            shrink()
            return m
        os.pread, mmap.mmap = pread, mapping
        try:
            live.read({target.pid})
            print("read")
        except live.BadLiveFile as e:
            print(e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env())
    assert r.returncode == 0, (r.returncode, r.stderr)  # -7: SIGBUS
    assert r.stdout.strip() == f"{target.path}: truncated while reading"


MALFORMED: Dict[str, Callable[[int], bytes]] = {
    "huge nrows": lambda pid: live_file(pid, nrows=2**31),
    "huge ntotals": lambda pid: live_file(pid, ntotals=2**32 - 1),
    "names past the end": lambda pid: live_file(pid, names_off=2**32 - 8),
    "classes past the end": lambda pid: live_file(pid, classes_off=2**31),
    "too few names": lambda pid: live_file(pid, names=total_names()[:3]),
    "another layout": lambda pid: live_file(pid, layout=lib.GA_LIVE_LAYOUT + 1),
    "another pid": lambda pid: live_file(pid, pid=pid + 1),
    "never consistent": lambda pid: live_file(pid, seq=3),
    "cut in half": lambda pid: live_file(pid)[:HEADER + 40],
}


@pytest.mark.parametrize("case", MALFORMED)
def test_top_names_a_malformed_file_in_one_line(target: Target, case: str) -> None:
    target.path.write_bytes(MALFORMED[case](target.pid))
    assert_one_line_error(top(target.pid), str(target.pid))


@pytest.mark.parametrize("case", ["never consistent", "huge ntotals", "too few names"])
def test_timeline_skips_a_malformed_file(target: Target, case: str) -> None:
    target.path.write_bytes(MALFORMED[case](target.pid))
    row = timeline.sample(target.pid, time.monotonic())
    assert row["processes"] == 0


@pytest.mark.parametrize("plant", ["fifo", "other uid"])
def test_remove_stale_leaves_what_is_not_this_users_file(plant: str) -> None:
    if plant == "other uid" and os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    p = subprocess.Popen(["sleep", "0"])
    p.wait()  # gone: its pid has no process
    path = Path(live.live_path(p.pid))
    try:
        if plant == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(live_file(p.pid))
            os.chown(path, OTHER_UID, -1)
        assert not live.remove_stale(p.pid)
        assert os.path.lexists(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
