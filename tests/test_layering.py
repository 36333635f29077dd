"""The allocation ladder of csrc/ (tools/callgraph.py): no file calls a
function of a file above it, and the checker sees a call that does."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _callgraph():
    spec = importlib.util.spec_from_file_location("callgraph", ROOT / "tools" / "callgraph.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_core_file_has_a_rung_or_reaches_across():
    cg = _callgraph()
    core = {p.name for p in CSRC.glob("*.c")}
    placed = set(cg.RUNGS) | cg.ACROSS | {"msize.c", "sizeclasses.c"}
    assert core - placed == set(), "give the new file a rung in tools/callgraph.py"


def test_the_ladder_holds():
    found = _callgraph().upward_calls(CSRC)
    assert found == [], "calls up the ladder:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "file, body, names",
    [
        # the page heap recovering a thread's spans itself (what it did)
        ("mheap.c", "size_t ga_test_up(void) { return ga_mcache_reclaim_own(); }",
         "ga_test_up calls ga_mcache_reclaim_own (mcache.c)"),
        # a span moving itself between mcentral's lists
        ("mspan.c", "void ga_test_up(ga_span_t *s) { ga_mcentral_remote_transition(s); }",
         "ga_test_up calls ga_mcentral_remote_transition (mcentral.c)"),
        # the OS layer calling the heap
        ("mem_linux.c", "#include \"internal.h\"\nvoid ga_test_up(void) { ga_mheap_lock(); }",
         "ga_test_up calls ga_mheap_lock (mheap.c)"),
        # up through a statistics function: mheap -> mstats -> mcache
        ("mheap.c", "void ga_test_up(void) { ga_test_stats_up(); }",
         "ga_test_up calls ga_test_stats_up (mstats.c) -> ga_mcache_reclaim_own (mcache.c)"),
    ],
)
def test_an_upward_call_is_named(tmp_path: Path, file: str, body: str, names: str):
    src = tmp_path / "csrc"
    shutil.copytree(CSRC, src)
    (src / "mstats.c").write_text((src / "mstats.c").read_text() +
                                  "\nvoid ga_test_stats_up(void) { ga_mcache_reclaim_own(); }\n")
    decl = "void ga_test_stats_up(void);\n"
    (src / file).write_text((src / file).read_text() + "\n" + decl + body + "\n")
    found = _callgraph().upward_calls(src)
    assert any(names in line and "a higher rung" in line for line in found), found
