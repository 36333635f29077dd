"""Where the LD_PRELOAD libraries are: next to this file.

setup.py's build_ext puts libgoalloc.so, libgoalloc-debug.so and
libgoalloc-nostats.so (statistics compiled out) into the package directory
(the installed one, or the source tree for an editable install). Standard
library only; importing it needs no compiled code.
"""

from __future__ import annotations

from pathlib import Path

RELEASE_LIB = "libgoalloc.so"
DEBUG_LIB = "libgoalloc-debug.so"
NOSTATS_LIB = "libgoalloc-nostats.so"


def lib_path(debug: bool = False, nostats: bool = False) -> str:
    """Absolute path of the preload library: the debug build if *debug*,
    the build without statistics (GA_STATS=0) if *nostats*.

    Raises FileNotFoundError if the library has not been built.
    """
    if debug and nostats:
        raise ValueError("there is no debug build without statistics")
    pkg_dir = Path(__file__).resolve().parent
    path = pkg_dir / (DEBUG_LIB if debug else NOSTATS_LIB if nostats else RELEASE_LIB)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} not found in {pkg_dir}: it is built together with the "
            "goalloc_ffi extension; run 'make build' in the goalloc checkout "
            "(pip install --no-build-isolation -e .) or reinstall goalloc"
        )
    return str(path)
