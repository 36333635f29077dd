"""cffi build script for goalloc_ffi._goalloc (out-of-line API mode).

Run by setuptools through setup.py's ``cffi_modules``; cffi executes this
file (it is not imported), from the project root or an unpacked sdist.
Builds every csrc/*.c except override.c (the Python process must keep libc's
malloc) with the testing entry points (GA_TESTING) and asserts on.
GA_DEBUG comes from the environment: ``GOALLOC_DEBUG`` (0..3, default 2).

Development loop: ``make build`` (``pip install --no-build-isolation -e .``).
"""

import importlib.util
from pathlib import Path

from cffi import FFI

_HERE = Path(__file__).resolve().parent  # goalloc_ffi/


def _load_flags():
    # By path: importing the goalloc_ffi package would need the extension.
    spec = importlib.util.spec_from_file_location("_goalloc_flags", _HERE / "_flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_flags = _load_flags()

ffibuilder = FFI()
ffibuilder.cdef(_flags.cdef_from_headers(_HERE.parent))
ffibuilder.set_source(
    "goalloc_ffi._goalloc",
    '#include "goalloc.h"\n#include "testing.h"\n#include "benchloops.h"\n',
    # Relative to the project root (setuptools rejects absolute sources).
    sources=_flags.ext_sources(_HERE.parent),
    include_dirs=[_flags.CSRC],
    define_macros=[("GA_TESTING", "1"), ("GA_DEBUG", _flags.ext_debug_level())],
    undef_macros=["NDEBUG"],
    extra_compile_args=_flags.EXT_COMPILE_ARGS,
    extra_link_args=_flags.EXT_LINK_ARGS,
)
