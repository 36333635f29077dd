"""PNG charts of goalloc's statistics (matplotlib, Agg backend).

plot_timeline: bytes in use, mapped, released and RSS over the run of a
command (the samples `goalloc run --timeline` takes from the live file).
plot_stats: per size class, bytes in use and internal fragmentation (the
live estimate in MiB, the exact cumulative waste as a percentage of the
bytes handed out), and where the resident memory goes, from a statistics file (`goalloc stats FILE --plot`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from . import stats as st

#: The figures a timeline sample holds besides its time "t" (seconds).
TIMELINE_FIGURES = ("bytes_in_use", "bytes_mapped", "bytes_released", "rss_bytes")


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mib(v: float) -> float:
    return v / 2**20


def save_samples(samples: Sequence[Dict[str, Any]], path: "str | Path", meta: Dict[str, Any]) -> None:
    """The timeline samples as JSON ({"meta": ..., "samples": [...]})."""
    Path(path).write_text(json.dumps({"meta": meta, "samples": list(samples)}, indent=1) + "\n")


def load_samples(path: "str | Path") -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    doc = json.loads(Path(path).read_text())
    return doc["meta"], doc["samples"]


def plot_timeline(samples: Sequence[Dict[str, Any]], png: "str | Path", title: str) -> None:
    """Lines of TIMELINE_FIGURES (MiB) against time (s)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    t = [s["t"] for s in samples]
    for name in TIMELINE_FIGURES:
        pts = [(x, _mib(s[name])) for x, s in zip(t, samples) if s.get(name) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name.replace("_", " "),
                    marker="." if len(pts) < 40 else None)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def rss_parts(s: st.Stats) -> List[Tuple[str, int]]:
    """Where the resident memory goes: (label, bytes), summing to the RSS
    (the part goalloc does not know of is "other": program, libraries,
    stacks, memory not from malloc). Metadata counts as mapped."""
    t = s.totals
    parts = [
        ("in use (live objects)", t.bytes_in_use),
        ("free in spans", t.bytes_free_in_spans),
        ("free pages, resident", t.bytes_free_resident),
        ("allocator metadata", t.bytes_metadata),
    ]
    known = sum(v for _, v in parts)
    parts.append(("other (not goalloc's heap)", max(0, t.rss_bytes - known)))
    return parts


def plot_stats(s: st.Stats, png: "str | Path", title: str, classes: int = 30) -> None:
    """Per class bytes in use and internal fragmentation (the classes with
    the most bytes in use, in size order), and where the RSS goes."""
    plt = pyplot()
    rows = sorted(st.busiest(s, classes), key=lambda c: c.size)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [3, 1]})
    x = list(range(len(rows)))
    w = 0.4
    ax.bar([i - w / 2 for i in x], [_mib(c.bytes_in_use) for c in rows], w, label="bytes in use")
    ax.bar([i + w / 2 for i in x], [_mib(c.frag_live_estimate_bytes) for c in rows], w,
           label="internal fragmentation in live objects (estimate)")
    pct = ax.twinx()
    pct.plot(x, [100 * c.frag_cumulative_bytes / (c.mallocs * c.size) for c in rows], "k.",
             label="waste over all mallocs, % of bytes handed out (exact)")
    pct.set_ylabel("% of bytes handed out")
    pct.set_ylim(bottom=0)
    ax.set_xticks(x)
    ax.set_xticklabels([str(c.size) for c in rows], rotation=60, fontsize=7)
    ax.set_xlabel("size class (bytes per object)")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = pct.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, fontsize=8, loc="upper left")
    left = 0.0
    for label, v in rss_parts(s):
        ax2.barh([0], [_mib(v)], left=[left], label=f"{label}: {_mib(v):.1f}")
        left += _mib(v)
    ax2.set_yticks([])
    ax2.set_xlabel(f"MiB of RSS ({_mib(s.totals.rss_bytes):.1f} MiB in all)")
    ax2.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
