"""fork() against other threads' caches in the middle of a slow path.

The fork child hands back the caches of the threads it lost (init.c,
mcache.c).  Those threads were running when the parent forked; a cache
caught half-way through moving a span between its lists, or through a
fold, used to be copied torn into the child (`make stress`'s fork_alloc:
children crashing in fold() on a span freed twice, or aborting on "mcentral
handed out a span without a free slot").  fork_prepare now takes every
cache's lock, which the owner holds across those moves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from conftest import build_c_program, goalloc_options, join_fully

import goalloc_ffi as ga
from goalloc_ffi import lib

WAIT_MS = 300  # how long the stopped thread waits for the fork before going on


def _fork_and_check(first: Optional[Callable[[], str]] = None, hang_after: float = 60.0) -> str:
    """Forks; the child runs first() (its message, "" if all went well),
    then checks the private heap (after the fork handlers returned the lost
    threads' caches) and reports through a pipe. Returns the child's
    message ("ok" or the complaint); a child still running after
    hang_after seconds is killed and the test fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, just the verdict
        try:
            os.close(r)
            try:
                msg = (first() if first else "") or "ok"
                ga.check_heap()
            except ga.HeapCorruption as e:
                msg = f"check_heap: {e}"
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + hang_after
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the fork child hung (killed after {hang_after:.0f} s)")
        time.sleep(0.01)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    status = done[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status:#x}"
    return msg


def test_fork_waits_for_a_cache_moving_a_kept_span() -> None:
    """A thread stops half-way through moving a kept exhausted span to its
    avail list (its first free into it); the main thread forks meanwhile.
    The fork must wait for the move to finish (the stopped thread then
    goes on by its time-out, not by being resumed), and the child's heap,
    after it took back the lost thread's cache, must pass check_heap."""
    result: List[int] = []
    with goalloc_options("mcache_keep=512"):
        t = threading.Thread(target=lambda: result.append(lib.ga_test_cache_move_paused(1024, WAIT_MS)))
        t.start()
        try:
            assert lib.ga_test_cache_move_wait(60_000) == 0, "the thread never reached the move"
            child = _fork_and_check()
        finally:
            lib.ga_test_cache_move_resume()
            join_fully(t)
    assert child == "ok"
    assert result == [1], "fork went ahead while the cache was in the middle of a move"
    ga.check_heap()


def test_fork_child_counts_the_remote_frees_of_lost_threads() -> None:
    """A thread stops half-way through a remote free into the main
    thread's span (its bit set, its count not yet added) and the main
    thread forks. A span goes back to the page heap only once every remote
    free into it has counted itself; in the child the stopped thread is
    gone and its count would never land, so the fork child adds it. The
    child then gives the span back (a wait that must not hang) and its
    heap passes check_heap."""
    assert lib.ga_test_remote_free_hold(64, 60_000) == 0, "the free never stopped half-way"

    def give_back() -> str:  # in the child: a wait that must not hang
        released = lib.ga_test_remote_free_release()
        return "" if released >= 0 else f"release: {released}"

    try:
        child = _fork_and_check(give_back, hang_after=30.0)
    finally:
        lib.ga_test_remote_free_finish()
    assert child == "ok"
    ga.check_heap()


# ---- fork under LD_PRELOAD: signal handlers and stdio (tests/c/fork_hazards.c) ----

@pytest.fixture(scope="module")
def hazards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_program(tmp_path_factory, "fork_hazards")


@pytest.mark.preload
@pytest.mark.parametrize(("mode", "forks"), [("signal", 1000), ("stdio", 10000)])
def test_fork_never_hangs_where_glibc_does_not(hazards: Path, mode: str, forks: int) -> None:
    """signal: a SIGALRM handler forks while the only thread is inside the
    page heap (its lock held): prepare must not wait for that lock. stdio:
    a thread in getline's realloc holds a FILE lock that fflush(NULL),
    holding stdio's list lock, waits for: prepare must take the list lock
    before goalloc's, as glibc orders its own malloc locks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    env["LD_PRELOAD"] = ga.lib_path()
    try:
        r = subprocess.run([str(hazards), mode, str(forks)], env=env, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fork_hazards {mode}: hung (deadlock in fork)")
    assert r.returncode == 0 and r.stdout.split() == [f"forks={forks}"], r.stdout + r.stderr
