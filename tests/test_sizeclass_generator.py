"""Size-class generator (tools/mksizeclasses.py) and its output csrc/sizeclasses.c.

No FFI: the generator is imported from tools/ and the C file is read as text.

* The committed C file is exactly what the generator writes.
* The generated tables equal the Go reference data in shared/data/, column by
  column, and so do the lookup tables.
* Properties recomputed here from sizes and page counts alone: ordering,
  alignment, tail waste, exact divide magic, smallest-fit lookups.
* The C file's comment tables agree with its arrays (guards against hand edits).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "tools" / "mksizeclasses.py"
GENERATED_C = ROOT / "csrc" / "sizeclasses.c"
HEADER = ROOT / "csrc" / "sizeclasses.h"

PAGE_SIZE = 8192
MAX_SMALL_SIZE = 32768

# Expected facts about Go's tables, stated independently of the generator.
NCLASSES = {"go1.12": 67, "go1.16": 68}  # class 0 included
ALIGN16_FROM = {"go1.12": 16, "go1.16": 32}  # classes >= this are 16-byte aligned
VARIANT_NAMES = sorted(NCLASSES)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mksizeclasses", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


mk = _load_generator()


@cache
def generated(name: str) -> Any:
    """The generator's ``Table`` for a variant name."""
    (variant,) = [v for v in mk.VARIANTS if v.name == name]
    return mk.build_table(variant)


def test_variants_are_the_expected_ones() -> None:
    assert sorted(v.name for v in mk.VARIANTS) == VARIANT_NAMES


# --------------------------------------------------------------------------
# (a) the committed file is the generator's output
# --------------------------------------------------------------------------


def test_committed_file_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    status = mk.main(["--check", "--out", str(GENERATED_C)])
    assert status == 0, "csrc/sizeclasses.c is stale or hand-edited:\n" + capsys.readouterr().err


def test_check_reports_a_hand_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "sizeclasses.c"
    edited.write_text(GENERATED_C.read_text().replace(" 27264,", " 27136,", 1))
    assert mk.main(["--check", "--out", str(edited)]) == 1
    err = capsys.readouterr().err
    assert "-" in err and "27136" in err and "27264" in err


def test_out_writes_the_committed_text(tmp_path: Path) -> None:
    out = tmp_path / "out.c"
    assert mk.main(["--out", str(out)]) == 0
    assert out.read_text() == GENERATED_C.read_text()


def test_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------
# (b) equal to the Go reference data
# --------------------------------------------------------------------------


def _shared_data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    env = os.environ.get("GOALLOC_SHARED_DATA")
    return Path(env) if env and not default.is_dir() else default


@pytest.fixture(scope="module")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"Go reference data not found at {path}; set GOALLOC_SHARED_DATA")
    return path


def _read_tsv(path: Path) -> dict[str, list[str]]:
    """Columns of a reference .tsv: '#' lines are comments, then a header row."""
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and line[0] != "#"]
    header, body = rows[0], rows[1:]
    return {name: [row[i] for row in body] for i, name in enumerate(header)}


def _read_lookup(path: Path) -> dict[str, list[int]]:
    """``size_to_class8`` / ``size_to_class128`` from a reference .txt."""
    tables: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        if line and line[0] != "#":
            name, *values = line.split()
            tables[name] = [int(v) for v in values]
    return tables


def _columns(table: Any) -> dict[str, list[str]]:
    """The generated table in the reference file's columns and formatting."""
    classes = table.classes
    return {
        "class": [str(i) for i in range(len(classes))],
        "bytes_per_obj": [str(c.size) for c in classes],
        "npages": [str(c.npages) for c in classes],
        "bytes_per_span": [str(c.span_bytes) for c in classes],
        "objects": [str(c.objects) for c in classes],
        "tail_waste": [str(c.tail_waste) for c in classes],
        "max_waste_pct": [f"{c.max_waste_pct:.2f}" for c in classes],
        "magic32": [str(c.magic) for c in classes],
    }


REFERENCE_COLUMNS = [
    "class",
    "bytes_per_obj",
    "npages",
    "bytes_per_span",
    "objects",
    "tail_waste",
    "max_waste_pct",
    "magic32",
]


@pytest.mark.parametrize("column", REFERENCE_COLUMNS)
@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_matches_reference_tsv(shared_data: Path, name: str, column: str) -> None:
    reference = _read_tsv(shared_data / f"sizeclasses-{name}.tsv")
    assert set(reference) == set(REFERENCE_COLUMNS)
    assert _columns(generated(name))[column] == reference[column]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_lookup_tables_match_reference(shared_data: Path, name: str) -> None:
    reference = _read_lookup(shared_data / f"size_to_class-{name}.txt")
    table = generated(name)
    assert list(table.size_to_class8) == reference["size_to_class8"]
    assert list(table.size_to_class128) == reference["size_to_class128"]


# --------------------------------------------------------------------------
# (c) properties, recomputed from size and npages only
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_class_count_and_dummy(name: str) -> None:
    classes = generated(name).classes
    assert len(classes) == NCLASSES[name]
    assert (classes[0].size, classes[0].npages, classes[0].magic) == (0, 0, 0)
    assert classes[-1].size == MAX_SMALL_SIZE


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_sizes_strictly_increase(name: str) -> None:
    sizes = [c.size for c in generated(name).classes]
    assert all(a < b for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_alignment(name: str) -> None:
    """Every class is 8-aligned, and 16-aligned from Go's threshold on.

    For go1.12 that is every class >= 16 B, the alignment goalloc's malloc
    relies on; go1.16 has the 8-aligned 24-byte class.
    """
    sizes = [c.size for c in generated(name).classes[1:]]
    assert all(s % 8 == 0 for s in sizes)
    assert [s for s in sizes if s >= ALIGN16_FROM[name] and s % 16] == []
    if name == "go1.16":
        assert 24 in sizes


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_tail_waste_at_most_one_eighth(name: str) -> None:
    for c in generated(name).classes[1:]:
        span = c.npages * PAGE_SIZE
        assert c.objects == span // c.size >= 1
        assert c.tail_waste == span % c.size
        assert 8 * c.tail_waste <= span, c


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_magic_is_exact_for_every_offset(name: str) -> None:
    for c in generated(name).classes[1:]:
        span = c.npages * PAGE_SIZE
        wrong = [o for o in range(span + 1) if (o * c.magic) >> 32 != o // c.size]
        assert wrong == [], f"class size {c.size}: magic {c.magic} wrong at offsets {wrong[:5]}"


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_lookup_gives_smallest_fitting_class(name: str) -> None:
    """The C lookup (see sizeclasses.h) maps every small size to the best class."""
    table = generated(name)
    sizes = [c.size for c in table.classes]
    class8, class128 = table.size_to_class8, table.size_to_class128
    assert (len(class8), len(class128)) == (129, 249)
    # Go switches tables after 1016, goalloc after 1024: both must agree.
    assert class8[128] == class128[0]
    for size in range(1, MAX_SMALL_SIZE + 1):
        if size <= 1024:
            cls = class8[(size + 7) // 8]
        else:
            cls = class128[(size - 1024 + 127) // 128]
        assert sizes[cls - 1] < size <= sizes[cls], (size, cls)


def test_custom_sizes_and_rejections() -> None:
    """``classes_for_sizes`` (for fitted tables) accepts valid sizes only."""
    classes = mk.classes_for_sizes([16, 48, 1024, 4096, MAX_SMALL_SIZE])
    assert [c.size for c in classes][:3] == [0, 16, 48]
    class8, class128 = mk.lookup_tables(classes)
    assert class8[1] == 1 and class8[3] == 2 and class128[-1] == len(classes) - 1
    with pytest.raises(ValueError, match="grid"):
        mk.classes_for_sizes([1100, MAX_SMALL_SIZE], widen_classes=False)
    with pytest.raises(ValueError, match="increase"):
        mk.classes_for_sizes([64, 32, MAX_SMALL_SIZE])
    with pytest.raises(ValueError, match="last class"):
        mk.classes_for_sizes([64, 1024])
    with pytest.raises(ValueError, match="threshold"):
        mk.generate(24)


# --------------------------------------------------------------------------
# (d) the C file's comment tables agree with its arrays
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedTable:
    """One definition in sizeclasses.c, read back from the text."""

    comment_rows: list[tuple[int, ...]]  # class, bytes/obj, bytes/span, objects, tail
    nclasses: int
    arrays: dict[str, list[int]]


_DEFINITION = re.compile(
    r"((?:^//[^\n]*\n)+)^const ga_sizeclass_table_t (\w+) = \{\n(.*?)^\};", re.M | re.S
)
_COMMENT_ROW = re.compile(r"^//\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\.\d\d%$")


def _parse_c(text: str) -> dict[str, ParsedTable]:
    tables: dict[str, ParsedTable] = {}
    for comment, symbol, body in _DEFINITION.findall(text):
        rows = [
            tuple(int(g) for g in m.groups())
            for m in map(_COMMENT_ROW.match, comment.splitlines())
            if m
        ]
        nclasses = re.search(r"\.nclasses = (\d+),", body)
        assert nclasses is not None, symbol
        arrays = {
            field: [int(v) for v in re.findall(r"\d+", values)]
            for field, values in re.findall(r"\.(\w+) = \{(.*?)\}", body, re.S)
        }
        tables[symbol] = ParsedTable(rows, int(nclasses.group(1)), arrays)
    return tables


@pytest.fixture(scope="module")
def parsed_c() -> dict[str, ParsedTable]:
    return _parse_c(GENERATED_C.read_text())


def test_c_file_defines_the_declared_tables(parsed_c: dict[str, ParsedTable]) -> None:
    text = GENERATED_C.read_text()
    assert text.startswith("// Code generated by tools/mksizeclasses.py; DO NOT EDIT.\n")
    assert '#include "sizeclasses.h"' in text
    declared = re.findall(r"^extern const ga_sizeclass_table_t (\w+);", HEADER.read_text(), re.M)
    assert sorted(parsed_c) == sorted(declared) == ["ga_sizeclasses_go1_12", "ga_sizeclasses_go1_16"]


def test_c_arrays_match_comment_tables(parsed_c: dict[str, ParsedTable]) -> None:
    for symbol, table in parsed_c.items():
        rows = table.comment_rows
        assert [r[0] for r in rows] == list(range(1, table.nclasses)), symbol
        assert table.arrays["size"] == [0] + [r[1] for r in rows], symbol
        assert table.arrays["npages"] == [0] + [r[2] // PAGE_SIZE for r in rows], symbol
        assert len(table.arrays["magic"]) == table.nclasses, symbol
        for _, size, span, objects, tail in rows:
            assert (objects, tail) == divmod(span, size), (symbol, size)
