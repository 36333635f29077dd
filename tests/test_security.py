"""The library where it is installed for everyone (README, "Security"):
privileged processes ignore the environment, files are never followed
through symbolic links nor opened when they are not regular, the live file
cannot be planted by another user, option numbers cannot overflow, no
cancellation point is reached inside malloc, and the heap is randomized.

The program is tests/c/secure_probe.c. The set-user-ID cases create two
users, a set-user-ID root copy of the probe, and a set-user-ID copy of the
library in the system library directory (the only place ld.so preloads
from in an AT_SECURE process), and remove them all afterwards; they need
root (CI runs as root) and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from conftest import build_c_program

import goalloc_ffi
from goalloc_ffi import live

pytestmark = pytest.mark.preload

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
IGNORED = ("GOALLOC, GOALLOC_STATS, GOALLOC_PROFILE and GOALLOC_HEAP_PROFILE are ignored in a privileged "
           "(AT_SECURE) process")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_program(tmp_path_factory, "secure_probe")


def base_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    env.update(extra)
    return env


def run(cmd: List[str], env: Dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT, **kw)  # type: ignore[call-overload]


def preloaded(probe: Path, mode: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return run([str(probe), mode], base_env(LD_PRELOAD=goalloc_ffi.lib_path(), **extra))


def fields(out: str) -> Dict[str, str]:
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def goalloc_lines(err: str) -> List[str]:
    return [ln for ln in err.splitlines() if ln.startswith("goalloc: ")]


# ---- cancellation ------------------------------------------------------------


def test_a_thread_that_only_mallocs_is_not_cancelled_inside_malloc(probe: Path) -> None:
    # live=1: its slow paths publish, which reads /proc/self/statm.
    r = preloaded(probe, "cancel", GOALLOC="live=1")
    assert r.returncode == 0, r.stderr
    assert fields(r.stdout) == {"survived": "1", "seq_even": "1"}, r.stdout + r.stderr


def test_malloc_stats_prints_everything_with_a_cancel_pending(probe: Path) -> None:
    r = preloaded(probe, "stats_cancel")
    assert r.returncode == 0, r.stderr
    assert fields(r.stdout) == {"survived": "1"}
    assert "goalloc: heap: " in r.stderr and "goalloc: class   bytes" in r.stderr, r.stderr


def test_a_cancelled_json_writer_leaves_statistics_usable(probe: Path) -> None:
    r = preloaded(probe, "json_cancel")
    assert r.returncode == 0, f"exit {r.returncode} (-14: deadlocked)\n{r.stderr}"
    assert fields(r.stdout) == {"survived": "1", "stats_after": "1"}


# ---- heap randomization ----------------------------------------------------------


def addr(probe: Path, **extra: str) -> int:
    r = preloaded(probe, "addr", **extra)
    assert r.returncode == 0, r.stderr
    return int(fields(r.stdout)["addr"], 16)


def test_heap_addresses_differ_from_run_to_run(probe: Path) -> None:
    seen = [addr(probe) for _ in range(4)]
    arenas = {a >> 26 for a in seen}
    assert len(arenas) == len(seen), [hex(a) for a in seen]
    assert all((1 << 40) <= a < (128 << 40) for a in seen), [hex(a) for a in seen]


def test_gos_fixed_arena_hint_is_an_option(probe: Path) -> None:
    seen = {addr(probe, GOALLOC="arena_hint=go") >> 26 for _ in range(2)}
    assert seen == {0xC000000000 >> 26}


# ---- option numbers ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["17179869184g", "17179869185g", "18446744073709551616", "99999999999999999999k"])
def test_an_overflowing_number_is_refused_by_name(probe: Path, value: str) -> None:
    r = preloaded(probe, "probe", GOALLOC=f"limit={value}")
    assert r.returncode == 0
    assert goalloc_lines(r.stderr) == [
        f"goalloc: GOALLOC: bad value in 'limit={value}' (ignored; expected bytes, with an optional k, m or g)"]


def test_the_largest_number_that_fits_is_still_read(probe: Path) -> None:
    r = preloaded(probe, "probe", GOALLOC="limit=131072g")  # the maximum, 2^47
    assert r.returncode == 0 and goalloc_lines(r.stderr) == [], r.stderr


# ---- files the library opens ----------------------------------------------------------


def test_a_fifo_as_the_table_is_refused_at_once(probe: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "table"
    os.mkfifo(fifo)
    r = preloaded(probe, "probe", GOALLOC=f"sizeclasses={fifo}")
    assert r.returncode == 0
    assert goalloc_lines(r.stderr) == [
        f"goalloc: GOALLOC: sizeclasses={fifo}: cannot open the file: not a regular file (refused) (using go1.12)"]


@pytest.mark.parametrize("var", ["GOALLOC_STATS", "GOALLOC_PROFILE", "GOALLOC_HEAP_PROFILE"])
def test_a_fifo_as_the_output_does_not_hang_the_exit(probe: Path, tmp_path: Path, var: str) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    r = preloaded(probe, "probe", **{var: str(fifo)})  # no reader: opening for writing would block
    assert r.returncode == 0
    (line,) = goalloc_lines(r.stderr)
    assert line.startswith(f"goalloc: {var}: cannot open {fifo}: ")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # with a reader, fstat refuses it
    try:
        r = preloaded(probe, "probe", **{var: str(fifo)})
    finally:
        os.close(reader)
    assert goalloc_lines(r.stderr) == [f"goalloc: {var}: cannot open {fifo}: not a regular file (refused)"]


@pytest.mark.parametrize("var", ["GOALLOC_STATS", "GOALLOC_PROFILE", "GOALLOC_HEAP_PROFILE"])
def test_a_symbolic_link_is_not_followed(probe: Path, tmp_path: Path, var: str) -> None:
    target = tmp_path / "precious"
    target.write_text("precious\n")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    r = preloaded(probe, "probe", **{var: str(link)})
    assert r.returncode == 0
    assert goalloc_lines(r.stderr) == [f"goalloc: {var}: cannot open {link}: a symbolic link (refused)"]
    assert target.read_text() == "precious\n"


def test_a_path_too_long_is_refused_not_cut(probe: Path, tmp_path: Path) -> None:
    # Directories that exist, so that any cut of the path names a file
    # that could be created; the whole path is longer than PATH_MAX.
    parts: List[str] = []
    while len(str(tmp_path)) + 201 * len(parts) < 3900:
        parts.append("d" * 200)
    cur = os.open(tmp_path, os.O_RDONLY)
    try:  # one level at a time: the whole path is too long for mkdir
        for part in parts:
            os.mkdir(part, dir_fd=cur)
            nxt = os.open(part, os.O_RDONLY, dir_fd=cur)
            os.close(cur)
            cur = nxt
    finally:
        os.close(cur)
    d = tmp_path.joinpath(*parts)
    path = f"{d}/{'s' * 200}-%p.json"
    r = preloaded(probe, "probe", GOALLOC_STATS=path)
    assert r.returncode == 0
    assert goalloc_lines(r.stderr) == ["goalloc: GOALLOC_STATS: the path is longer than 4095 bytes (nothing written)"]
    files = [Path(dp) / f for dp, _, fs in os.walk(tmp_path) for f in fs]
    assert files == []


@pytest.mark.parametrize("var", ["GOALLOC_STATS", "GOALLOC_PROFILE", "GOALLOC_HEAP_PROFILE"])
def test_a_failed_write_is_reported_once(probe: Path, tmp_path: Path, var: str) -> None:
    out = tmp_path / "out.json"

    def small_files() -> None:  # the document is larger: write fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    r = run([str(probe), "probe"], base_env(LD_PRELOAD=goalloc_ffi.lib_path(), **{var: str(out)}),
            preexec_fn=small_files)
    assert r.returncode == 0
    assert goalloc_lines(r.stderr) == [f"goalloc: {var}: cannot write {out}: file too large"]


def hostile_table(tmp_path: Path) -> bytes:
    """A valid table file whose path holds a quote, a newline starting a
    line of another file's format, and a byte that is not UTF-8."""
    d = tmp_path / 'x"\nssh-ed25519 AAAAC3Nza planted@evil\n\xff'.encode("utf-8", "surrogateescape").decode(
        "utf-8", "surrogateescape")
    d.mkdir()
    table = d / "t.tsv"
    subprocess.run([sys.executable, str(ROOT / "tools" / "mksizeclasses.py"), "--tsv", "go1.12", "--out", str(table)],
                   check=True, timeout=TIMEOUT)
    return os.fsencode(table)


def test_every_string_in_the_json_is_escaped(probe: Path, tmp_path: Path) -> None:
    table = hostile_table(tmp_path)
    stats, prof = tmp_path / "stats.json", tmp_path / "prof.json"
    env = {os.fsencode(k): os.fsencode(v) for k, v in base_env(LD_PRELOAD=goalloc_ffi.lib_path()).items()}
    env.update({b"GOALLOC": b"sizeclasses=" + table, b"GOALLOC_STATS": os.fsencode(stats),
                b"GOALLOC_PROFILE": os.fsencode(prof)})
    r = subprocess.run([str(probe), "probe"], env=env, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0 and goalloc_lines(r.stderr.decode(errors="replace")) == [], r.stderr
    expected = table.decode("utf-8", "replace")
    assert json.loads(stats.read_bytes())["size_classes"] == expected
    assert json.loads(prof.read_bytes())["sizeclasses"] == expected
    for f in (stats, prof):
        assert not any(ln.startswith(b"ssh-ed25519") for ln in f.read_bytes().splitlines())


# ---- the live file -----------------------------------------------------------------------


def live_file(pid: int) -> Path:
    return Path(live.live_path(pid))


@dataclass
class Victim:
    """A root process under a pid known before it starts: the probe's
    spawn mode forks, says the pid and execs `probe live` on a byte."""

    proc: subprocess.Popen[bytes]
    pid: int

    @classmethod
    def start(cls, probe: Path) -> "Victim":
        env = base_env(LD_PRELOAD=goalloc_ffi.lib_path(), GOALLOC="live=1")
        proc = subprocess.Popen([str(probe), "spawn", "live"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        return cls(proc, int(fields(line)["pid"]))

    def go(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"g")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode()

    def finish(self) -> subprocess.CompletedProcess[str]:
        out, err = self.proc.communicate(b"\n", timeout=TIMEOUT)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out.decode(), err.decode())


@pytest.fixture
def victim(probe: Path) -> Iterator[Victim]:
    v = Victim.start(probe)
    try:
        yield v
    finally:
        if v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()
        live_file(v.pid).unlink(missing_ok=True)


def test_the_live_file_is_the_owners_alone(victim: Victim) -> None:
    assert "ready live=1" in victim.go()
    st = live_file(victim.pid).lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert victim.finish().returncode == 0
    assert not live_file(victim.pid).exists()


def test_a_stale_file_of_the_same_user_is_replaced(victim: Victim) -> None:
    live_file(victim.pid).write_bytes(b"\xff" * 4096)  # left by an earlier process with this pid
    assert "ready live=1" in victim.go()
    head = live_file(victim.pid).read_bytes()[:16]
    magic, pid = int.from_bytes(head[0:4], sys.byteorder), int.from_bytes(head[12:16], sys.byteorder)
    assert (magic, pid) == (goalloc_ffi.lib.GA_LIVE_MAGIC, victim.pid)
    r = victim.finish()
    assert r.returncode == 0 and goalloc_lines(r.stderr) == [], r.stderr


# ---- a second user, and set-user-ID root -------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def run(self, cmd: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, env=env or {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                              timeout=TIMEOUT, user=self.uid, group=self.gid, extra_groups=[], cwd="/")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root): creates users and set-user-ID files")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("no useradd/userdel (Debian package 'passwd')")


@pytest.fixture(scope="module")
def users() -> Iterator[List[User]]:
    _need_root()
    made: List[User] = []
    try:
        for who in ("a", "b"):
            name = f"gasec{os.getpid() % 100000}{who}"
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, timeout=TIMEOUT)
            pw = pwd.getpwnam(name)
            made.append(User(name, pw.pw_uid, pw.pw_gid))
        yield made
    finally:
        for u in made:
            subprocess.run(["userdel", u.name], timeout=TIMEOUT, check=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A root-owned directory every user can enter but not write."""
    d = Path(tempfile.mkdtemp(prefix="goalloc-sec-", dir="/tmp"))
    try:
        d.chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _system_lib_dir() -> Path:
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("/libc.so.6"):
            return Path(line.split()[-1]).resolve().parent
    pytest.skip("cannot find libc.so.6 in /proc/self/maps")
    raise AssertionError


@pytest.fixture
def setuid_setup(probe: Path, shared_dir: Path, users: List[User]) -> Iterator[Dict[str, str]]:
    """A set-user-ID root probe in shared_dir and a set-user-ID copy of the
    library in the system library directory; the environment that preloads
    it by name."""
    lib = _system_lib_dir() / f"libgoalloc-sectest-{os.getpid()}.so"
    exe = shared_dir / "probe"
    try:
        shutil.copy(goalloc_ffi.lib_path(), lib)
        lib.chmod(0o4755)
        shutil.copy(probe, exe)
        os.chown(exe, 0, 0)
        exe.chmod(0o4755)
        yield {"PATH": "/usr/bin:/bin", "LD_PRELOAD": lib.name}
    finally:
        lib.unlink(missing_ok=True)


def test_a_set_user_id_program_ignores_the_environment(setuid_setup: Dict[str, str], shared_dir: Path,
                                                      users: List[User]) -> None:
    precious, new, heap = shared_dir / "precious", shared_dir / "new.json", shared_dir / "heap.pb.gz"
    precious.write_text("precious\n")
    env = {**setuid_setup, "GOALLOC_STATS": str(precious), "GOALLOC_PROFILE": str(new),
           "GOALLOC_HEAP_PROFILE": str(heap), "GOALLOC": "live=1,on_error=report,summary=1,profile_rate=1"}
    r = users[0].run([str(shared_dir / "probe"), "probe"], env)
    assert r.returncode == 0, r.stderr
    # A real AT_SECURE process, root, with goalloc loaded: else this proves nothing.
    assert fields(r.stdout) == {"secure": "1", "euid": "0", "goalloc": "1", "live": "0"}, r.stdout + r.stderr
    assert goalloc_lines(r.stderr) == [f"goalloc: {IGNORED}"]
    assert precious.read_text() == "precious\n" and not new.exists() and not heap.exists()
    # on_error=report would weaken a check: misuse still aborts.
    r = users[0].run([str(shared_dir / "probe"), "doublefree"], env)
    assert r.returncode == -signal.SIGABRT and "after=1" not in r.stdout, r.stdout + r.stderr
    assert "double free" in r.stderr


def test_the_same_program_without_set_user_id_obeys_it(setuid_setup: Dict[str, str], shared_dir: Path,
                                                      users: List[User]) -> None:
    """The control: run by root itself, not AT_SECURE, the variables work."""
    new = shared_dir / "new.json"
    env = {**setuid_setup, "GOALLOC_STATS": str(new)}
    r = run([str(shared_dir / "probe"), "probe"], env)
    assert fields(r.stdout)["secure"] == "0" and json.loads(new.read_text())["version"] >= 1


def test_a_planted_symlink_is_not_followed(victim: Victim, users: List[User], shared_dir: Path) -> None:
    precious = shared_dir / "precious"
    precious.write_text("precious\n")
    path = live_file(victim.pid)
    r = users[1].run(["ln", "-s", str(precious), str(path)])
    assert r.returncode == 0, r.stderr
    victim.go()
    r = victim.finish()
    assert r.returncode == 0, r.stderr
    assert goalloc_lines(r.stderr) == [
        f"goalloc: GOALLOC: live=1: cannot create {path}: not a regular file (refused) (live statistics off)"]
    assert precious.read_text() == "precious\n" and path.is_symlink()


def test_a_planted_file_is_neither_used_nor_replaced(victim: Victim, users: List[User], shared_dir: Path) -> None:
    # A header that points the writer's counters far outside the file.
    hostile = bytearray(4096)
    hostile[0:4] = goalloc_ffi.lib.GA_LIVE_MAGIC.to_bytes(4, sys.byteorder)
    hostile[64:128] = b"\xff" * 64
    src = shared_dir / "hostile"
    src.write_bytes(bytes(hostile))
    src.chmod(0o644)
    path = live_file(victim.pid)
    r = users[1].run(["cp", str(src), str(path)])
    assert r.returncode == 0, r.stderr
    victim.go()
    r = victim.finish()
    assert r.returncode == 0, r.stderr
    assert goalloc_lines(r.stderr) == [
        f"goalloc: GOALLOC: live=1: cannot create {path}: it exists and belongs to uid {users[1].uid} "
        "(live statistics off)"]
    assert path.read_bytes() == bytes(hostile) and path.stat().st_uid == users[1].uid
