"""Build hygiene: the sources compile warning-free in both configurations,
and each artefact exports only what it should."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "goalloc_ffi"))
import _flags  # noqa: E402  (the build's own flag lists, loaded by path)

LIBC_NAMES = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree", "__libc_malloc",
    "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
    "__libc_pvalloc", "__posix_memalign", "malloc_trim", "mallopt", "malloc_stats", "mallinfo",
    "mallinfo2", "free_sized", "free_aligned_sized", "malloc_info",
}
#: C++'s replaceable operator new and delete (Itanium ABI names).
CXX_NAMES = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZdlPv", "_ZdaPv",
    "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
}


def defined_dynamic_symbols(lib: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True)
    return {line.split()[-1].split("@")[0] for line in out.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize("lib", sorted(_flags.PRELOAD_LIBS))
def test_preload_libraries_build_without_warnings(lib: str, tmp_path: Path) -> None:
    cmd = _flags.preload_command(["cc", "-Werror"], lib, str(tmp_path / lib))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_extension_sources_compile_without_warnings(tmp_path: Path) -> None:
    for src in _flags.ext_sources(ROOT):
        cmd = ["cc", "-O2", "-fPIC", "-Werror", *_flags.EXT_COMPILE_ARGS, *_flags.WARN,
               "-DGA_TESTING=1", "-DGA_DEBUG=2", "-I", _flags.CSRC, "-c", src,
               "-o", str(tmp_path / (Path(src).stem + ".o"))]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{src}:\n{r.stderr}"


def test_override_refuses_the_wrong_build(tmp_path: Path) -> None:
    r = subprocess.run(["cc", "-c", str(ROOT / "csrc" / "override.c"), "-o", str(tmp_path / "o.o")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "preload library only" in r.stderr


def test_preload_library_exports_libc_names_and_ga_functions_only() -> None:
    import goalloc_ffi

    for debug in (False, True):
        names = defined_dynamic_symbols(goalloc_ffi.lib_path(debug))
        assert LIBC_NAMES | CXX_NAMES <= names
        assert {n for n in names if not n.startswith("ga_")} <= LIBC_NAMES | CXX_NAMES | {"_init", "_fini"}


def test_extension_exports_only_its_init_function() -> None:
    from goalloc_ffi import _goalloc

    names = defined_dynamic_symbols(_goalloc.__file__)
    assert names == {"PyInit__goalloc"}


def test_flags_keep_preload_and_extension_apart() -> None:
    assert "override.c" not in {Path(s).name for s in _flags.ext_sources(ROOT)}


def test_hot_libc_names_are_the_inline_paths_themselves() -> None:
    """malloc/free and their aliases resolve to ga_malloc/ga_free, with no
    forwarding jump in between (the preload library's hot path). Looked up
    in a child process so that this one does not load the library."""
    import subprocess
    import sys

    from goalloc_ffi._paths import lib_path

    code = ("import ctypes, sys\n"
            "so = ctypes.CDLL(sys.argv[1])\n"
            "a = lambda n: ctypes.cast(getattr(so, n), ctypes.c_void_p).value\n"
            "print(*(a(n) for n in sys.argv[2:]))\n")
    names = ["ga_malloc", "malloc", "__libc_malloc", "ga_free", "free", "cfree", "__libc_free"]
    r = subprocess.run([sys.executable, "-c", code, lib_path(False), *names],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    addr = dict(zip(names, map(int, r.stdout.split())))
    assert addr["ga_malloc"] != addr["ga_free"]
    for name in ("malloc", "__libc_malloc"):
        assert addr[name] == addr["ga_malloc"], name
    for name in ("free", "cfree", "__libc_free"):
        assert addr[name] == addr["ga_free"], name


@pytest.mark.parametrize("name", ["libgoalloc.so", "libgoalloc-debug.so", "libgoalloc-nostats.so", "extension"])
def test_popcount_never_takes_libgccs_fallback(name: str) -> None:
    """Every population count is ga_popcount64 (SWAR, or the instruction
    when the build targets it) except fold's copy for CPUs with POPCNT,
    chosen at start-up: no __popcountdi2 from libgcc anywhere, and the
    instruction is in the library."""
    if platform.machine() != "x86_64":
        pytest.skip("POPCNT is x86-64's")
    import goalloc_ffi._goalloc as ext

    path = ext.__file__ if name == "extension" else str(Path(ext.__file__).parent / name)
    symbols = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    assert "__popcountdi2" not in symbols
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"\bpopcnt\b", code), "no POPCNT copy of fold"
