"""setuptools entry: the cffi extension plus the LD_PRELOAD libraries.

Metadata is in pyproject.toml; ``cffi_modules`` cannot go there, nor the
version, which is GA_VERSION of csrc/goalloc.h. build_ext
first builds goalloc_ffi._goalloc (cffi), then compiles libgoalloc.so, libgoalloc-debug.so and
libgoalloc-nostats.so from all of csrc/*.c with $CC (default ``cc``) into the
package directory of the build: build_lib/goalloc_ffi/ for a normal build,
the source goalloc_ffi/ for --inplace and editable installs. Flags live in
goalloc_ffi/_flags.py. Run from the project root (pip does).
"""

import importlib.util
import os
import re
import shlex
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

ROOT = Path(__file__).resolve().parent
PACKAGE = "goalloc_ffi"


def _load_flags():
    # By path: importing the goalloc_ffi package would need the extension.
    spec = importlib.util.spec_from_file_location("_goalloc_flags", ROOT / PACKAGE / "_flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


flags = _load_flags()


class build_ext_with_preload(build_ext):
    """build_ext that also builds the preload libraries."""

    def _preload_dir(self) -> Path:
        if self.inplace or getattr(self, "editable_mode", False):
            build_py = self.get_finalized_command("build_py")
            return ROOT / build_py.get_package_dir(PACKAGE)
        return Path(self.build_lib).resolve() / PACKAGE

    def _preload_outputs(self):
        return [self._preload_dir() / lib for lib in flags.PRELOAD_LIBS]

    def run(self):
        super().run()
        outdir = self._preload_dir()
        outdir.mkdir(parents=True, exist_ok=True)
        cc = shlex.split(os.environ.get("CC") or "cc")
        inputs = flags.preload_inputs(ROOT) + [Path(__file__).resolve()]
        newest = max(p.stat().st_mtime for p in inputs)
        for lib in flags.PRELOAD_LIBS:
            out = outdir / lib
            if not self.force and out.exists() and out.stat().st_mtime >= newest:
                print(f"{out} is up to date")
                continue
            # Link to a temporary name, then rename: a process that has the
            # old library mapped keeps a consistent file.
            tmp = out.with_name(out.stem + ".tmp.so")  # still gitignored
            cmd = flags.preload_command(cc, lib, str(tmp), ROOT)
            print(shlex.join(cmd), flush=True)
            try:
                subprocess.run(cmd, cwd=ROOT, check=True)
            except (OSError, subprocess.CalledProcessError) as e:
                tmp.unlink(missing_ok=True)
                raise CompileError(f"building {lib} failed: {e}") from e
            os.replace(tmp, out)

    def get_outputs(self):
        return super().get_outputs() + [str(p) for p in self._preload_outputs()]


def c_version() -> str:
    """GA_VERSION of csrc/goalloc.h: the version is defined once, in C."""
    text = (Path(__file__).resolve().parent / "csrc" / "goalloc.h").read_text()
    return re.search(r'^#define GA_VERSION "([^"]+)"', text, re.M).group(1)


setup(
    version=c_version(),
    cffi_modules=["goalloc_ffi/_build.py:ffibuilder"],
    cmdclass={"build_ext": build_ext_with_preload},
)
