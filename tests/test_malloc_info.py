"""glibc's malloc_info with goalloc's figures: the document of
ga_malloc_info_xml (FFI heap) and the malloc_info the preload library
exports (tests/c/malloc_info.c), parsed with ElementTree against goalloc's
own figures (size classes, page heap, mallinfo2)."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from conftest import build_c_program, goalloc_options, heap_info

import goalloc_ffi as ga
from goalloc_ffi import ffi, lib

PAGE = int(lib.ga_page_size())
ARENA = 64 << 20


def parse(doc: str) -> ET.Element:
    root = ET.fromstring(doc)
    assert root.tag == "malloc" and root.get("version") == "1"
    heaps = root.findall("heap")
    assert [h.get("nr") for h in heaps] == ["0"]
    return root


def size_lines(root: ET.Element) -> List[Tuple[int, int, int, int]]:
    """(from, to, total, count) of the heap's <size> lines, in order."""
    return [tuple(int(s.get(a)) for a in ("from", "to", "total", "count"))  # type: ignore[misc]
            for s in root.find("heap").find("sizes").findall("size")]


def sizes(root: ET.Element) -> Dict[int, Tuple[int, int, int]]:
    """to -> (from, total, count) of the size classes' lines (without the
    tiny blocks' line, the first, from 1 to 16, when there are tiny spans)."""
    lines = size_lines(root)
    if lines and lines[0][:2] == (1, 16):
        lines = lines[1:]
    return {to: (frm, tot, count) for frm, to, tot, count in lines}


def total(parent: ET.Element, tag: str, kind: str) -> Dict[str, int]:
    (e,) = [e for e in parent.findall(tag) if e.get("type") == kind]
    return {k: int(v) for k, v in e.attrib.items() if k != "type"}


def ffi_document(len_: int = int(lib.GA_MALLOC_INFO_MAX)) -> Tuple[int, str]:
    buf = ffi.new("char[]", len_)
    n = int(lib.ga_malloc_info_xml(buf, len_))
    return n, ffi.string(buf).decode()


def test_document_follows_the_heap() -> None:
    cls = {c.size: c for c in ga.sizeclasses()}[3072]
    lib.ga_test_release_cache()
    with goalloc_options("tiny=1"):  # a tiny block, listed first
        tiny = ga.malloc(5)
    ps = [ga.malloc(3000) for _ in range(3 * cls.objects)]
    big = [ga.malloc(100000), ga.malloc(1 << 20)]
    for p in ps[::2]:
        ga.free(p)
    n, doc = ffi_document()
    h = heap_info()
    m = ffi.new("ga_mallinfo_t *")
    lib.ga_mallinfo2(m)
    try:
        assert n == len(doc.encode())
        root = parse(doc)
        lines = size_lines(root)
        assert lines[0][:2] == (1, 16) and lines[0][2] == lines[0][3] * 16  # tiny blocks first
        rows = sizes(root)
        live = len(ps) - len(ps[::2])
        frm, tot, count = rows[3072]
        assert frm == 2688 + 1  # the previous class's size + 1
        assert count >= len(ps[::2]) and (count + live) % cls.objects == 0
        assert tot == count * 3072
        heap = root.find("heap")
        fast = total(heap, "total", "fast")
        assert fast == {"count": sum(r[3] for r in lines), "size": sum(r[2] for r in lines)}
        assert total(heap, "total", "rest") == {"count": h.free_runs, "size": h.pages_free * PAGE}
        assert total(heap, "system", "current") == {"size": h.narenas * ARENA}
        assert total(root, "total", "mmap") == {"count": m.hblks, "size": m.hblkhd}
        assert total(root, "total", "mmap")["count"] >= 2
        for tag, kind in [("total", "fast"), ("total", "rest"), ("system", "current"),
                          ("system", "max"), ("aspace", "total"), ("aspace", "mprotect")]:
            assert total(root, tag, kind) == total(heap, tag, kind)
    finally:
        for p in ps[1::2] + big + [tiny]:
            ga.free(p)


def test_a_short_buffer_gets_the_length_and_an_empty_string() -> None:
    n, _ = ffi_document()
    short, doc = ffi_document(64)
    assert short >= n - 200 and short > 64 and doc == ""


@pytest.fixture(scope="module")
def malloc_info_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_program(tmp_path_factory, "malloc_info")


@pytest.mark.preload
def test_preload_malloc_info_reports_goallocs_heap(malloc_info_exe: Path) -> None:
    k = 50
    env = {k_: v for k_, v in os.environ.items() if k_ not in ("LD_PRELOAD", "GOALLOC")}
    env["LD_PRELOAD"] = ga.lib_path()
    r = subprocess.run([str(malloc_info_exe), str(k)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    head = dict(re.findall(r"(\w+)=(\d+)", r.stdout.split("<malloc", 1)[0]))
    doc = r.stdout[r.stdout.index("<malloc"):r.stdout.index("</malloc>") + len("</malloc>")]
    root = parse(doc)
    cls = {c.size: c for c in ga.sizeclasses()}[3072]  # the preload default table too
    assert int(head["usable3000"]) == 3072
    frm, tot, count = sizes(root)[3072]
    live = k // 2
    spans = -(-k // cls.objects)
    assert (frm, tot, count) == (2689, (spans * cls.objects - live) * 3072, spans * cls.objects - live)
    assert total(root, "total", "mmap") == {"count": int(head["hblks"]), "size": int(head["hblkhd"])}
    assert int(head["hblks"]) >= 4
    assert total(root, "system", "current") == {"size": int(head["arena"])}
    assert re.search(r"^einval rc=-1 errno=22$", r.stdout, re.M), r.stdout
