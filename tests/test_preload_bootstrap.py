"""Start-up under LD_PRELOAD: allocations that arrive before goalloc's
constructor ran (from another preloaded library's constructor)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import goalloc_ffi

pytestmark = pytest.mark.preload
C_DIR = Path(__file__).resolve().parent / "c" / "libs"  # shared objects, not programs


def test_allocations_before_goallocs_constructor(tmp_path: Path) -> None:
    early = tmp_path / "libearly.so"
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(early), str(C_DIR / "early_ctor.c")], check=True)
    # Libraries later in LD_PRELOAD are initialised first.
    env = dict(os.environ, LD_PRELOAD=f"{goalloc_ffi.lib_path()} {early}")
    r = subprocess.run(["env", "true"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("early ok") == 2  # env, then true: both processes
    assert r.stderr == ""
