"""Compiler flags and source lists for the artefacts built from csrc/.

The one place the flag sets live. Read at build time by setup.py (preload
libraries) and goalloc_ffi/_build.py (cffi test extension); both load this
file by path, without importing the goalloc_ffi package (whose __init__ needs
the extension that is being built). Standard library only.

    artefact                override.c  GA_DEBUG  NDEBUG     GA_TESTING  GA_STATS
    _goalloc*.so (cffi)     no          env, 2    undefined  1           1
    libgoalloc.so           yes         0         defined    no          1
    libgoalloc-debug.so     yes         3         undefined  no          1
    libgoalloc-nostats.so   yes         0         defined    no          0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

#: Project root: the directory holding csrc/ and goalloc_ffi/.
ROOT = Path(__file__).resolve().parent.parent
CSRC = "csrc"
OVERRIDE = "override.c"

WARN = [
    "-Wall",
    "-Wextra",
    "-Wstrict-prototypes",
    "-Werror=implicit-function-declaration",
]

# --- cffi test extension (goalloc_ffi._goalloc) ---------------------------
# Python's own CFLAGS (-DNDEBUG -O3 ...) come first on the compile line;
# _build.py undefines NDEBUG so assert() stays on (the last -D/-U on the
# line wins, and Python's -DNDEBUG would silently turn the asserts off).
EXT_COMPILE_ARGS = [
    "-std=gnu11",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Werror=implicit-function-declaration",
]
EXT_LINK_ARGS = ["-pthread", "-lgcc_s"]  # libgcc's unwinder: heap-profile stacks (mem_linux.c)
EXT_DEBUG_ENV = "GOALLOC_DEBUG"  # GA_DEBUG of the test extension
EXT_DEBUG_DEFAULT = "2"

# --- LD_PRELOAD libraries (libgoalloc.so, -debug.so, -nostats.so) -----------
# -fvisibility=hidden + GA_SHARED_LIB_EXPORT: only the libc names and ga_*
# are exported (pitfall 7); -fno-builtin-*: calloc must not become a call to
# itself (pitfall 8); initial-exec TLS: no __tls_get_addr -> malloc (15).
_PRELOAD_OVERRIDE = ["-DGA_OVERRIDE", "-DGA_SHARED_LIB_EXPORT"]
_PRELOAD_HAZARDS = [
    "-ftls-model=initial-exec",
    # ga_* are exported but never meant to be interposed: calls inside the
    # library bind locally (no PLT hop from realloc to ga_malloc).
    "-fno-semantic-interposition",
    "-fno-builtin-malloc",
    "-fno-builtin-calloc",
    "-fno-builtin-realloc",
    "-fno-builtin-free",
    "-fno-tree-loop-distribute-patterns",
]
PRELOAD_LINK_ARGS = ["-shared", "-Wl,-z,defs", "-pthread", "-lgcc_s"]


def _preload_cflags(opt: str, defines: List[str]) -> List[str]:
    return (
        ["-std=gnu11", opt, "-g", "-fPIC", "-fvisibility=hidden", "-I" + CSRC]
        + _PRELOAD_OVERRIDE
        + defines
        + _PRELOAD_HAZARDS
        + WARN
    )


#: Library file name -> compile flags (link flags: PRELOAD_LINK_ARGS).
PRELOAD_LIBS: Dict[str, List[str]] = {
    "libgoalloc.so": _preload_cflags("-O2", ["-DNDEBUG", "-DGA_DEBUG=0"]),
    "libgoalloc-debug.so": _preload_cflags("-O1", ["-DGA_DEBUG=3"]),
    # Statistics compiled out (csrc/mstats.h): what the counters cost.
    "libgoalloc-nostats.so": _preload_cflags("-O2", ["-DNDEBUG", "-DGA_DEBUG=0", "-DGA_STATS=0"]),
}


def c_sources(root: Path = ROOT) -> List[str]:
    """Every csrc/*.c, sorted, as POSIX paths relative to *root*."""
    return sorted(f"{CSRC}/{p.name}" for p in (root / CSRC).glob("*.c"))


def ext_sources(root: Path = ROOT) -> List[str]:
    """Sources of the cffi extension: all of csrc/*.c but override.c."""
    return [s for s in c_sources(root) if s != f"{CSRC}/{OVERRIDE}"]


def preload_inputs(root: Path = ROOT) -> List[Path]:
    """Files whose change makes the preload libraries out of date."""
    files = sorted((root / CSRC).glob("*.[ch]"))
    return files + [Path(__file__).resolve()]


def preload_command(cc: List[str], lib: str, out: str, root: Path = ROOT) -> List[str]:
    """The compile+link command line of *lib*; run it with cwd=*root*."""
    return cc + PRELOAD_LIBS[lib] + c_sources(root) + ["-o", out] + PRELOAD_LINK_ARGS


def ext_debug_level() -> str:
    """GA_DEBUG for the test extension, from the environment."""
    level = os.environ.get(EXT_DEBUG_ENV, "").strip() or EXT_DEBUG_DEFAULT
    if level not in ("0", "1", "2", "3"):
        raise ValueError(f"{EXT_DEBUG_ENV}={level!r}: expected 0, 1, 2 or 3")
    return level


#: Headers whose declarations the cffi module exposes, in this order.
CDEF_HEADERS = ("goalloc.h", "testing.h", "benchloops.h")


def cdef_from_headers(root: Path = ROOT) -> str:
    """The cffi cdef: the declarations of CDEF_HEADERS without comments,
    preprocessor lines and the GA_API export macro (cdef cannot include,
    expand macros or take #if), so the Python side never restates C."""
    import re

    parts = []
    for name in CDEF_HEADERS:
        text = (root / CSRC / name).read_text(encoding="utf-8")
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        text = re.sub(r"\bGA_API\s+", "", "\n".join(lines))
        parts.append(re.sub(r"\n\s*\n+", "\n", text).strip())
    return "\n".join(parts) + "\n"

