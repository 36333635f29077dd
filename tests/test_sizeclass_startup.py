"""Size-class tables chosen at start-up: GOALLOC=sizeclasses=go1.12 (the
default) | go1.16 | FILE, with align=8 for tables whose classes are only
8-byte aligned (csrc/msize.c lists the rules, csrc/sizeclass_file.c reads
files).

* The C loader (ga_sizeclass_table_read, which start-up uses too) accepts
  the built-in tables, Go's reference TSV files, the generator's TSV output
  and hand-made tables, and refuses each kind of bad table with its reason
  (and line).
* Under LD_PRELOAD a refused table is reported on stderr, naming the option
  and the reason, and the default table is in use afterwards.
* Real programs (CPython, sqlite3) give glibc's output with non-default
  tables on the debug library, whose heap validators then pass; every
  allocation entry point keeps its alignment with each table.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import pytest

import goalloc_ffi as ga
from goalloc_ffi import lib

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GOALLOC_SHARED_DATA", ROOT.parent / "shared" / "data"))
C_DIR = Path(__file__).resolve().parent / "c"
PROGRAMS = Path(__file__).resolve().parent / "programs"
DEMO_WORKLOAD = ROOT / "goalloc_ffi" / "workloads" / "alloc_heavy.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mksizeclasses_for_tables", ROOT / "tools" / "mksizeclasses.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mk = _generator()
HEADER = "class\tbytes_per_obj\tnpages"


def table_text(rows: List[tuple], header: str = HEADER, dummy: bool = False) -> str:
    lines = ["# a hand-made table", header] + (["\t".join(["0"] * len(header.split("\t")))] if dummy else [])
    lines += ["\t".join(str(v) for v in (i, *row)) for i, row in enumerate(rows, start=1)]
    return "\n".join(lines) + "\n"


def pairs(sizes: List[int]) -> List[tuple]:
    """(size, Go's span length) rows."""
    return [(s, mk.span_pages(s)) for s in sizes]


#: A small valid table: every class a multiple of 16 up to 32768.
SMALL_SIZES = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096, 8192, 16384, 32768]


def write(tmp_path: Path, text: "str | bytes", name: str = "table.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def read(spec: "str | Path", align: int = 16) -> List[ga.SizeClass]:
    return ga.read_sizeclass_table(str(spec), align)


# --------------------------------------------------------------------------
# Valid tables


@pytest.mark.parametrize("name", ["go1.12", "go1.16"])
def test_builtin_tables_read_as_generated(name: str) -> None:
    (variant,) = [v for v in mk.VARIANTS if v.name == name]
    want = mk.build_table(variant).classes[1:]
    got = read(name, 8)
    assert [(c.size, c.npages, c.objects) for c in got] == [(c.size, c.npages, c.objects) for c in want]


def test_default_table_is_in_use_with_16_byte_alignment() -> None:
    assert ga.sizeclass_table_name() == "go1.12"
    assert ga.malloc_alignment() == 16
    assert [c.size for c in ga.sizeclasses()] == [c.size for c in read("go1.12")]


def test_go116_needs_align8() -> None:
    with pytest.raises(ga.SizeClassTableError, match=r"go1.16: class 3 \(24 B\): only 8-byte aligned.*align=8"):
        read("go1.16", 16)
    assert read("go1.16", 8)[2].size == 24


@pytest.mark.parametrize("name", ["go1.12", "go1.16"])
def test_gos_reference_files_load_like_the_builtin_tables(name: str) -> None:
    path = SHARED_DATA / f"sizeclasses-{name}.tsv"
    if not path.is_file():
        pytest.skip(f"no {path}")
    assert read(path, 8) == read(name, 8)


@pytest.mark.parametrize("name", ["go1.12", "go1.16"])
def test_generator_tsv_round_trips_through_the_loader(name: str, tmp_path: Path) -> None:
    (variant,) = [v for v in mk.VARIANTS if v.name == name]
    table = mk.build_table(variant)
    path = write(tmp_path, mk.render_tsv(table))
    assert [(c.size, c.npages) for c in read(path, 8)] == [(c.size, c.npages) for c in table.classes[1:]]


@pytest.mark.parametrize("name", ["go1.12", "go1.16"])
def test_generator_tsv_rows_equal_gos_reference(name: str) -> None:
    path = SHARED_DATA / f"sizeclasses-{name}.tsv"
    if not path.is_file():
        pytest.skip(f"no {path}")
    (variant,) = [v for v in mk.VARIANTS if v.name == name]
    ours = [ln for ln in mk.render_tsv(mk.build_table(variant)).splitlines() if not ln.startswith("#")]
    theirs = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    assert ours == theirs


def test_generator_cli_writes_tsv(tmp_path: Path) -> None:
    out = tmp_path / "t.tsv"
    subprocess.run([sys.executable, str(ROOT / "tools" / "mksizeclasses.py"), "--tsv", "go1.12", "--out", str(out)],
                   check=True, timeout=60)
    assert read(out) == read("go1.12")


def test_hand_made_table_with_three_columns(tmp_path: Path) -> None:
    got = read(write(tmp_path, table_text(pairs(SMALL_SIZES))))
    assert [c.size for c in got] == SMALL_SIZES
    page = int(lib.ga_page_size())
    assert all(c.objects == c.npages * page // c.size for c in got)


@pytest.mark.parametrize("variant", ["dummy row", "no final newline", "CRLF", "blank lines", "reordered columns"])
def test_hand_made_table_variants_are_accepted(variant: str, tmp_path: Path) -> None:
    text = table_text(pairs(SMALL_SIZES), dummy=variant == "dummy row")
    if variant == "no final newline":
        text = text.rstrip("\n")
    elif variant == "CRLF":
        text = text.replace("\n", "\r\n")
    elif variant == "blank lines":
        text = text.replace("\n", "\n\n")
    elif variant == "reordered columns":
        rows = [f"{n}\t{i}\t{s}" for i, (s, n) in enumerate(pairs(SMALL_SIZES), start=1)]
        text = "npages\tclass\tbytes_per_obj\n" + "\n".join(rows) + "\n"
    assert [c.size for c in read(write(tmp_path, text))] == SMALL_SIZES


def test_a_fitted_table_with_many_classes(tmp_path: Path) -> None:
    """127 classes (the compiled maximum with class 0) from the generator's
    building blocks, as the fitting tool makes them."""
    sizes = list(range(16, 1025, 16)) + list(range(1152, 9000, 128))
    sizes = sizes[: int(lib.ga_sizeclass_max()) - 2] + [32768]
    table = mk.make_table("fitted", "test", mk.classes_for_sizes(sizes, widen_classes=False))
    got = read(write(tmp_path, mk.render_tsv(table)))
    assert len(got) == int(lib.ga_sizeclass_max()) - 1
    assert [c.size for c in got] == sizes


# --------------------------------------------------------------------------
# Invalid tables: each refused with its reason


def _bad_cases() -> Dict[str, tuple]:
    """name -> (file bytes, align, reason pattern)."""
    ok = pairs(SMALL_SIZES)
    swapped = list(ok)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    many = [(16 * i, 1) for i in range(1, 130)]
    junk = bytes(range(256)) * 4
    full = "class\tbytes_per_obj\tnpages\tbytes_per_span\tobjects\ttail_waste\tmax_waste_pct\tmagic32"
    go112 = mk.render_tsv(mk.build_table(mk.VARIANTS[0]))
    return {
        "unsorted rows": (table_text(swapped), 16, r"line 7 \(class 5, 64 B\): sizes must strictly increase: this one follows 96"),
        "duplicate sizes": (table_text(ok[:5] + [ok[4]] + ok[5:]), 16, r"line 8 \(class 6, 96 B\): sizes must strictly increase"),
        "size not a multiple of 8": (table_text([(20, 1)] + ok[1:]), 16, r"line 3 \(class 1, 20 B\): size is not a multiple of 8"),
        "size not a multiple of 16": (table_text(ok[:1] + [(40, 1)] + ok[2:]), 16, r"class 2, 40 B\): only 8-byte aligned"),
        "size off the 128 grid": (table_text(ok[:12] + [(1088, 1)] + ok[12:]), 16, r"sizes above 1024 must be multiples of 128"),
        "last class not 32768": (table_text(ok[:-1]), 16, r"the last class must be 32768"),
        "last class above 32768": (table_text(ok + [(65536, 8)]), 16, r"size larger than the largest small size 32768"),
        "too many classes": (table_text(many), 8, r"line 130: too many classes: the maximum is \(class 0 included\) 128"),
        "huge number": (table_text(ok[:2] + [("99999999999999999999", 1)] + ok[3:]), 16, r"line 5: number too large in column bytes_per_obj"),
        "number above 32 bits": (table_text(ok[:2] + [(4294967296, 1)] + ok[3:]), 16, r"line 5: number too large"),
        "huge page count": (table_text(ok[:2] + [(48, 4294967295)] + ok[3:]), 16, r"class 3, 48 B\): npages must be 1 to 32"),
        "zero pages": (table_text(ok[:2] + [(48, 0)] + ok[3:]), 16, r"npages must be 1 to 32"),
        "huge object count": (full + "\n" + "\n".join(
            ln if not ln.startswith("5\t") else "5\t64\t1\t8192\t999999\t0\t23.44\t67108864"
            for ln in go112.splitlines() if not ln.startswith(("#", "class"))) + "\n", 16,
            r"line 7: disagrees with the sizes and page counts: column objects"),
        "wrong magic": (go112.replace("\t67108864\n", "\t67108865\n"), 16, r"column magic32"),
        "wrong waste": (go112.replace("\t23.44\t", "\t23.50\t"), 16, r"column max_waste_pct"),
        "no object in the span": (table_text(ok[:-1] + [(32768, 2)]), 16, r"class 17, 32768 B\): the span holds no object"),
        "too many objects": (table_text([(8, 2)] + ok), 8, r"class 1, 8 B\): more objects per span than the bitmaps hold"),
        "tail waste": (table_text(ok[:-4] + [(5120, 1)] + ok[-3:]), 16, r"tail waste above 1/8 of the span"),
        "inexact magic": (table_text(ok[:-1] + [(30720, 30), (32768, 4)]), 16, r"span too long for an exact 32-bit divide magic"),
        "junk bytes": (junk, 16, r"line 1: unexpected byte"),
        "NUL in a row": (table_text(ok).replace("\t1\n", "\t1\x00\n", 1), 16, r"line 3: unexpected byte \(not a text table\?\): 0"),
        "empty file": ("", 16, r"empty file"),
        "comments only": ("# nothing\n# here\n", 16, r"no header line"),
        "header only": (HEADER + "\n", 16, r"no size classes"),
        "unknown column": ("class\tbytes_per_obj\tnpages\tcolour\n1\t32768\t4\t1\n", 16, r"line 1: header: unknown column"),
        "missing column": ("class\tbytes_per_obj\n1\t32768\n", 16, r"the columns class, bytes_per_obj and npages are required"),
        "short row": (table_text(ok).replace("\t1\n", "\n", 1), 16, r"line 3: fewer fields than the header's columns: 3"),
        "long row": (table_text(ok).replace("\t1\n", "\t1\t7\n", 1), 16, r"line 3: more fields than the header's columns"),
        "class gap": (table_text(ok).replace("\n3\t", "\n4\t", 1), 16, r"line 5: classes must be numbered .* expected class 3"),
        "dummy not zero": (HEADER + "\n0\t8\t1\n" + "\n".join(table_text(ok).splitlines()[2:]) + "\n", 16, r"class 0 is the dummy class"),
        "negative number": (table_text(ok).replace("\t1\n", "\t-1\n", 1), 16, r"not a number in column npages"),
        "very long line": (table_text(ok[:2] + [("4" * 20000, 1)] + ok[3:]), 16, r"line 5: number too large"),
        "file too large": ("#" + "x" * 70000 + "\n" + table_text(ok), 16, r"file too large"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_table_is_refused_with_its_reason(case: str, tmp_path: Path) -> None:
    text, align, reason = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(ga.SizeClassTableError, match=reason):
        read(path, align)


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ga.SizeClassTableError, match="cannot open the file: no such file or directory"):
        read(tmp_path / "nope.tsv")
    # Neither a directory nor a FIFO (which would block) nor a link is opened.
    with pytest.raises(ga.SizeClassTableError, match=r"cannot open the file: not a regular file \(refused\)"):
        read(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ga.SizeClassTableError, match=r"cannot open the file: not a regular file \(refused\)"):
        read(tmp_path / "fifo")
    (tmp_path / "link.tsv").symlink_to(tmp_path / "nope.tsv")
    with pytest.raises(ga.SizeClassTableError, match=r"cannot open the file: a symbolic link \(refused\)"):
        read(tmp_path / "link.tsv")


def test_bad_alignment_argument() -> None:
    with pytest.raises(ga.SizeClassTableError, match="align must be 8 or 16"):
        read("go1.12", 32)


def test_the_option_is_parsed_and_bounded() -> None:
    """sizeclasses= keeps its value (read at start-up only), align is 16 or 8."""
    before = lib.ga_test_option(b"sizeclasses")
    try:
        lib.ga_test_parse_options(b"sizeclasses=go1.16,align=8")
        assert lib.ga_test_option(b"sizeclasses") == len("go1.16")
        assert lib.ga_test_option(b"align") == 1
        assert ga.sizeclass_table_name() == "go1.12"  # chosen at start-up
    finally:
        lib.ga_test_parse_options(b"align=16")
        lib.ga_test_parse_options(b"sizeclasses=go1.12")
    assert lib.ga_test_option(b"align") == 0
    assert before in (0, len("go1.12"))


# --------------------------------------------------------------------------
# Under LD_PRELOAD


PROBE = r"""
import ctypes
l = ctypes.CDLL(None)
l.ga_sizeclass_table_name.restype = ctypes.c_char_p
sizes = [l.ga_sizeclass_size(c) for c in range(1, l.ga_sizeclass_count())]
print(l.ga_sizeclass_table_name().decode(), l.ga_malloc_alignment(), ",".join(map(str, sizes)))
"""


def preload(lib_path: str, options: str, argv: List[str], env: Optional[Dict[str, str]] = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    full.update(env or {})
    full.update(LD_PRELOAD=lib_path, GOALLOC=options)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full)


@pytest.fixture(scope="module")
def release_lib() -> str:
    return ga.lib_path(False)


@pytest.fixture(scope="module")
def debug_lib() -> str:
    return ga.lib_path(True)


def probe(lib_path: str, options: str) -> tuple:
    r = preload(lib_path, options, [sys.executable, "-c", PROBE])
    assert r.returncode == 0, r.stderr
    name, align, sizes = r.stdout.split()
    return name, int(align), [int(s) for s in sizes.split(",")], r.stderr


@pytest.mark.preload
def test_preloaded_tables_are_in_use(release_lib: str, tmp_path: Path) -> None:
    go112 = [c.size for c in read("go1.12")]
    go116 = [c.size for c in read("go1.16", 8)]
    assert probe(release_lib, "") == ("go1.12", 16, go112, "")
    assert probe(release_lib, "sizeclasses=go1.16,align=8") == ("go1.16", 8, go116, "")
    path = write(tmp_path, table_text(pairs(SMALL_SIZES)))
    assert probe(release_lib, f"sizeclasses={path}") == (str(path), 16, SMALL_SIZES, "")
    # align=8 with a table that is 16-byte aligned anyway: malloc still gives 16
    assert probe(release_lib, "sizeclasses=go1.12,align=8")[:2] == ("go1.12", 16)


@pytest.mark.preload
@pytest.mark.parametrize("case", sorted(BAD) + ["go1.16 without align=8", "missing file", "unknown name"])
def test_preloaded_bad_table_reports_and_uses_the_default(case: str, release_lib: str, tmp_path: Path) -> None:
    if case == "go1.16 without align=8":
        spec, reason = "go1.16", r"class 3 \(24 B\): only 8-byte aligned"
        options = "sizeclasses=go1.16"
    elif case in ("missing file", "unknown name"):
        spec = str(tmp_path / "nope.tsv") if case == "missing file" else "go1.99"
        reason, options = "cannot open the file", f"sizeclasses={spec}"
    else:
        text, align, reason = BAD[case]
        spec = str(write(tmp_path, text))
        options = f"sizeclasses={spec}" + (",align=8" if align == 8 else "")
    name, align, sizes, err = probe(release_lib, options)
    assert (name, align, sizes) == ("go1.12", 16, [c.size for c in read("go1.12")])
    lines = err.splitlines()
    assert len(lines) == 1, err
    import re

    assert re.match(rf"goalloc: GOALLOC: sizeclasses={re.escape(spec)}: .*{reason}.* \(using go1.12\)$", lines[0]), err


@pytest.mark.preload
def test_bad_option_values_are_named(release_lib: str) -> None:
    r = preload(release_lib, "align=4,refill=0,refill=99", [sys.executable, "-c", "pass"])
    assert r.returncode == 0
    assert "bad value in 'align=4' (ignored; expected 16 or 8)" in r.stderr
    assert "bad value in 'refill=0' (ignored; expected spans per refill, 1..16)" in r.stderr
    assert "'refill=99'" in r.stderr


def _compile(tmp_path: Path, name: str) -> Path:
    exe = tmp_path / name
    subprocess.run(["cc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(C_DIR / f"{name}.c")],
                   check=True, timeout=120)
    return exe


def _file_table(tmp_path: Path, align8: bool) -> Path:
    """A table unlike Go's: few classes, with 8-aligned ones when align8."""
    sizes = [8, 24, 40, 56, 72, 104, 136, 200, 264, 392, 520, 776, 1024, 1536, 3072, 6144, 12288, 24576, 32768] \
        if align8 else SMALL_SIZES
    return write(tmp_path, mk.render_tsv(mk.make_table("t", "test", mk.classes_for_sizes(sizes, widen_classes=False))),
                 "align8.tsv" if align8 else "align16.tsv")


@pytest.mark.preload
@pytest.mark.parametrize("table", ["go1.12", "go1.16", "file16", "file8"])
@pytest.mark.parametrize("tiny", [0, 1])
def test_alignment_of_every_entry_point(table: str, tiny: int, debug_lib: str, tmp_path: Path) -> None:
    exe = _compile(tmp_path, "align_check")
    spec = {"go1.12": "go1.12", "go1.16": "go1.16", "file16": str(_file_table(tmp_path, False)),
            "file8": str(_file_table(tmp_path, True))}[table]
    options = f"sizeclasses={spec},tiny={tiny}" + (",align=8" if table in ("go1.16", "file8") else "")
    want = 8 if table in ("go1.16", "file8") else 16
    r = preload(debug_lib, options, [str(exe), str(want)])
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    assert " 0 bad" in r.stdout
    if want == 8:  # and the check is not vacuous: some 17..24-byte object is only 8-aligned
        r16 = preload(debug_lib, options, [str(exe), "16"])
        assert r16.returncode == 1 and "malloc(" in r16.stderr


CHECK_HEAP = r"""
import ctypes, runpy, sys
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
l = ctypes.CDLL(None)
l.ga_sizeclass_table_name.restype = ctypes.c_char_p
msg = ctypes.create_string_buffer(512)
assert l.ga_check_heap(msg, 512) == 0, msg.value
sys.stderr.write("table %s, heap checked\n" % l.ga_sizeclass_table_name().decode())
"""


@pytest.mark.preload
@pytest.mark.parametrize("table", ["go1.16", "file8"])
def test_cpython_and_sqlite_on_other_tables(table: str, debug_lib: str, tmp_path: Path) -> None:
    spec = "go1.16" if table == "go1.16" else str(_file_table(tmp_path, True))
    options = f"sizeclasses={spec},align=8"
    env = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "LC_ALL": "C"}
    argv = [sys.executable, "-c", CHECK_HEAP, str(DEMO_WORKLOAD)]
    base = subprocess.run(argv[:2] + [CHECK_HEAP.replace("l = ctypes.CDLL", "raise SystemExit(0)\nl = ctypes.CDLL"),
                                      str(DEMO_WORKLOAD)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, **env))
    assert base.returncode == 0, base.stderr
    ours = preload(debug_lib, options, argv, env=env, timeout=300)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == base.stdout
    assert ours.stderr == f"table {spec}, heap checked\n"
    sqlite = "/usr/bin/sqlite3"
    if not os.path.exists(sqlite):
        pytest.skip("no sqlite3")
    sql = (PROGRAMS / "workload.sql").read_text()
    base = subprocess.run([sqlite, "-bail", "-batch", ":memory:"], input=sql, capture_output=True, text=True,
                          timeout=300)
    full = dict(os.environ, LD_PRELOAD=debug_lib, GOALLOC=options)
    ours2 = subprocess.run([sqlite, "-bail", "-batch", ":memory:"], input=sql, capture_output=True, text=True,
                           timeout=300, env=full)
    assert ours2.returncode == base.returncode == 0, ours2.stderr
    assert (ours2.stdout, ours2.stderr) == (base.stdout, base.stderr)


# --------------------------------------------------------------------------
# goalloc sizeclasses


def sizeclasses_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GOALLOC")}
    full.update(env or {}, COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "goalloc_ffi.cli", "sizeclasses", *args], capture_output=True,
                          text=True, timeout=60, env=full)


def cli_rows(out: str) -> List[List[str]]:
    return [[c.strip() for c in ln.split("│")[1:7]] for ln in out.splitlines() if ln.count("│") >= 6]


def test_cli_prints_a_named_or_filed_table(tmp_path: Path) -> None:
    r = sizeclasses_cli("--set", "sizeclasses=go1.16", "--set", "align=8")
    assert r.returncode == 0, r.stderr
    rows = cli_rows(r.stdout)
    assert len(rows) == len(read("go1.16", 8)) and rows[2][:2] == ["3", "24"]
    path = write(tmp_path, table_text(pairs(SMALL_SIZES)))
    r = sizeclasses_cli("--set", f"sizeclasses={path}")
    assert r.returncode == 0 and [int(row[1]) for row in cli_rows(r.stdout)] == SMALL_SIZES


def test_cli_shows_the_table_goalloc_chooses() -> None:
    r = sizeclasses_cli(env={"GOALLOC": "sizeclasses=go1.16,align=8"})
    assert r.returncode == 0 and "go1.16 (in use; malloc alignment 8)" in r.stdout
    assert len(cli_rows(r.stdout)) == len(read("go1.16", 8))


def test_cli_refuses_bad_tables_and_keys(tmp_path: Path) -> None:
    r = sizeclasses_cli("--set", "sizeclasses=go1.16")
    assert r.returncode == 1 and "class 3 (24 B): only 8-byte aligned" in r.stderr
    text, _, _ = BAD["unsorted rows"]
    r = sizeclasses_cli("--set", f"sizeclasses={write(tmp_path, text)}")
    assert r.returncode == 1 and "line 7 (class 5, 64 B): sizes must strictly increase" in r.stderr
    r = sizeclasses_cli("--set", "tiny=0")
    assert r.returncode == 2 and "only sizeclasses and align" in r.stderr
