"""Allocation-heavy CPython workload for the goalloc benchmark suite.

Usage: python3 py_alloc.py SCALE   (run with PYTHONMALLOC=malloc, so that
every object, not only the large ones, comes from malloc; PYTHONHASHSEED=0)

Builds and drops object graphs the way a data-processing script does:
dicts of small records, string formatting and splitting, list sorting,
tuples as keys, JSON encode/decode, a binary tree, and a cyclic structure
that only the cycle collector frees. Prints one digest per phase: nothing
printed depends on addresses, timing or hash order.
"""

import gc
import hashlib
import json
import sys


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:12]


def lcg(seed):
    state = seed
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        yield state >> 33


def records(scale, rnd):
    table = {}
    for _ in range(6000 * scale):
        key = f"user-{next(rnd) % (3000 * scale):07d}"
        rec = table.setdefault(key, {"count": 0, "tags": [], "total": 0.0})
        rec["count"] += 1
        rec["total"] += (next(rnd) % 10000) / 100
        if len(rec["tags"]) < 6:
            rec["tags"].append(f"t{next(rnd) % 97}")
    top = sorted(table.items(), key=lambda kv: (-kv[1]["count"], kv[0]))[:20]
    return digest([(k, v["count"], round(v["total"], 2), v["tags"]) for k, v in top])


def strings(scale, rnd):
    lines = [" ".join(f"w{next(rnd) % 5000}" for _ in range(12)) for _ in range(2500 * scale)]
    words = {}
    for line in lines:
        for w in line.split():
            words[w] = words.get(w, 0) + 1
    joined = "\n".join(line.upper().replace("W", "word-") for line in lines[:: max(1, scale)])
    return digest((len(words), sorted(words.items())[:50], len(joined)))


def sorting(scale, rnd):
    out = []
    for _ in range(4 * scale):
        data = [(next(rnd) % 1000, str(next(rnd) % 100000)) for _ in range(20000)]
        data.sort()
        out.append(data[::2000])
    return digest(out)


def json_round_trip(scale, rnd):
    docs = []
    for i in range(300 * scale):
        doc = {"id": i, "items": [{"sku": next(rnd) % 9999, "qty": next(rnd) % 9} for _ in range(20)],
               "meta": {"k" + str(j): "v" * (next(rnd) % 40) for j in range(8)}}
        docs.append(json.loads(json.dumps(doc)))
    return digest(sum(item["qty"] for d in docs for item in d["items"]))


class Node:
    __slots__ = ("left", "right", "value")

    def __init__(self, left, right, value):
        self.left, self.right, self.value = left, right, value


def tree(depth):
    if depth == 0:
        return Node(None, None, 1)
    return Node(tree(depth - 1), tree(depth - 1), depth)


def count(node):
    return 0 if node is None else node.value + count(node.left) + count(node.right)


def trees(scale, rnd):
    total = 0
    for _ in range(3 * scale):
        total += count(tree(14))
    return digest(total)


def cycles(scale, rnd):
    gc.collect()
    for _ in range(10 * scale):
        ring = [{"peer": None, "payload": [next(rnd)] * 8} for _ in range(2000)]
        for a, b in zip(ring, ring[1:] + ring[:1]):
            a["peer"] = b
        del ring
    return digest(gc.collect() >= 0)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    rnd = lcg(2024)
    for phase in (records, strings, sorting, json_round_trip, trees, cycles):
        print(phase.__name__, phase(scale, rnd))


if __name__ == "__main__":
    main()
