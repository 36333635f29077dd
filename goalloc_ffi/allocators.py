"""The allocators goalloc is measured against, and the machine it runs on.

``glibc`` (nothing preloaded), ``goalloc`` (this package's library), and the
peers jemalloc, tcmalloc and mimalloc found by their Debian packages'
library files (``make bench-deps`` installs them), or any preload library
given as NAME=PATH. ``goalloc bench`` and ``goalloc compare`` both find
them here. Standard library plus rich (the note about a missing peer).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from rich.console import Console

from ._paths import lib_path
from .launch import LaunchError

CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass
class Allocator:
    name: str
    preload: Optional[str]  # library to LD_PRELOAD; None: the system malloc
    package: str  # where it comes from (Debian package or "this checkout")
    version: str = ""


#: Debian packages and library file names of the peers.
PEERS = {
    "jemalloc": ("libjemalloc2", ["libjemalloc.so.2"]),
    "tcmalloc": ("libtcmalloc-minimal4", ["libtcmalloc_minimal.so.4"]),
    "mimalloc": ("libmimalloc2.0", ["libmimalloc.so.2", "libmimalloc.so.2.0"]),
}
ALL_ALLOCATORS = ["glibc", "goalloc", *PEERS]


def _lib_dirs() -> List[Path]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    return [Path(d) for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/usr/lib",
                              "/usr/local/lib")]


def find_library(names: Sequence[str]) -> Optional[str]:
    for d in _lib_dirs():
        for n in names:
            if (d / n).is_file():
                return str(d / n)
    return None


def deb_version(package: str) -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""


def find_peer(name: str) -> Optional[Allocator]:
    """The peer *name* (a key of PEERS) if its library is installed here."""
    package, files = PEERS[name]
    found = find_library(files)
    return Allocator(name, found, package, deb_version(package)) if found else None


def discover_allocators(names: Sequence[str], console: Optional[Console] = None,
                        libs: Optional[Dict[str, str]] = None) -> List[Allocator]:
    """The allocators among *names* that are available here, in that order,
    then the *libs* not named there (name -> preload library: another build
    of goalloc, or any malloc replacement; "goalloc" there replaces the
    path of goalloc's column).

    A peer that is not installed is left out with a note; goalloc must exist.
    """
    libs = dict(libs or {})
    for name, path in libs.items():
        if not Path(path).is_file():
            raise LaunchError(f"--lib {name}={path}: no such file")
        libs[name] = str(Path(path).resolve())
    out: List[Allocator] = []
    for name in names:
        if name in libs:
            out.append(Allocator(name, libs.pop(name), "--lib",
                                 goalloc_version() if name == "goalloc" else ""))
        elif name == "glibc":
            out.append(Allocator("glibc", None, "libc6", glibc_version().replace("glibc ", "")))
        elif name == "goalloc":
            try:
                path = lib_path()
            except FileNotFoundError as e:
                raise LaunchError(str(e)) from None
            out.append(Allocator("goalloc", path, "this package", goalloc_version()))
        elif name in PEERS:
            peer = find_peer(name)
            if peer is None:
                if console is not None:
                    console.print(f"[yellow]{name}: not installed ({PEERS[name][0]}); skipped. "
                                  "As root, 'make bench-deps' installs the peers.[/]")
                continue
            out.append(peer)
        else:
            raise LaunchError(f"unknown allocator {name!r}; known: {', '.join(ALL_ALLOCATORS)} "
                             "(or add one with --lib NAME=PATH)")
    out += [Allocator(name, path, "--lib") for name, path in libs.items()]
    return out


def goalloc_version() -> str:
    """The package's version, and in a checkout the commit (and whether
    csrc/ differs from it)."""
    try:
        from importlib.metadata import version

        v = version("goalloc")
    except Exception:  # metadata is a nicety
        v = "?"
    commit = _git(["rev-parse", "--short", "HEAD"])
    if commit:
        dirty = _git(["status", "--porcelain", "--untracked-files=no", "--", "csrc"])
        v += f" ({commit}{', csrc modified' if dirty else ''})"
    return v


def _git(args: List[str]) -> str:
    if not (CHECKOUT / ".git").exists():
        return ""
    try:
        r = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


# ---------------------------------------------------------------------------
# Machine


def machine_info() -> Dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "glibc": glibc_version(),
        "kernel": platform.release(),
        "memory_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "cc": _first_line([os.environ.get("CC") or "cc", "--version"]),
    }


def _first_line(cmd: List[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (r.stdout.splitlines() or [""])[0].strip()


