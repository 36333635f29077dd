"""Where the LD_PRELOAD libraries are: next to this file.

setup.py's build_ext puts libgoalloc.so and libgoalloc-debug.so into the
package directory (the installed one, or the source tree for an editable
install). Standard library only; importing it needs no compiled code.
"""

from __future__ import annotations

from pathlib import Path

RELEASE_LIB = "libgoalloc.so"
DEBUG_LIB = "libgoalloc-debug.so"


def lib_path(debug: bool = False) -> str:
    """Absolute path of the preload library (the debug build if *debug*).

    Raises FileNotFoundError if the library has not been built.
    """
    pkg_dir = Path(__file__).resolve().parent
    path = pkg_dir / (DEBUG_LIB if debug else RELEASE_LIB)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} not found in {pkg_dir}: it is built together with the "
            "goalloc_ffi extension; run 'make build' in the goalloc checkout "
            "(pip install --no-build-isolation -e .) or reinstall goalloc-ffi"
        )
    return str(path)
