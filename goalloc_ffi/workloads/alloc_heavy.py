"""Allocation-heavy Python workload with deterministic output.

Run with PYTHONMALLOC=malloc so that every object goes through malloc/free
(not pymalloc arenas) and PYTHONHASHSEED=0.  Each phase prints a SHA-256 of
what it computed; nothing printed depends on addresses, timing or hash order.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
import threading
import zlib
from collections import OrderedDict, defaultdict, deque


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key: int, value: str) -> None:
        self.key = key
        self.value = value
        self.children: list[Node] = []


class Record:
    def __init__(self, ident: int, rng: random.Random) -> None:
        self.ident = ident
        self.name = f"record-{ident:06d}-{rng.randrange(1 << 30):08x}"
        self.tags = [f"t{rng.randrange(50)}" for _ in range(rng.randrange(1, 6))]
        self.attrs = {f"a{i}": rng.random() for i in range(rng.randrange(0, 8))}
        self.peer: Record | None = None


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
    return h.hexdigest()[:16]


def dict_churn(rng: random.Random) -> str:
    table: dict[str, list[int]] = {}
    for round_ in range(12):
        for i in range(12000):
            key = f"k{rng.randrange(30000)}"
            table.setdefault(key, []).append(i * round_)
        for key in [k for k in table if len(table[k]) > 3]:
            del table[key]
        table = {k: v[-2:] for k, v in table.items()}  # rebuild, drop old dict
    counts: defaultdict[int, int] = defaultdict(int)
    for values in table.values():
        counts[len(values)] += 1
    return digest(len(table), sorted(counts.items()), sum(map(sum, table.values())))


def string_work(rng: random.Random) -> str:
    words = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 12)))
             for _ in range(20000)]
    text = " ".join(words)
    for _ in range(5):
        text = text.replace("a", "AE").replace("AEe", "x").upper().lower()
        parts = text.split()
        text = " ".join(reversed(parts))
    lines = [f"{i:05d}|{w:>12}|{len(w):3d}|{w[::-1]}" for i, w in enumerate(words)]
    blob = "\n".join(lines).encode("utf-8")
    packed = zlib.compress(blob, 6)
    assert zlib.decompress(packed) == blob
    buf = bytearray()
    for word in words:  # many small appends: realloc growth
        buf += word.encode()
        buf += b"\x00"
    return digest(len(text), zlib.crc32(text.encode()), len(packed), zlib.crc32(buf))


def object_graph(rng: random.Random) -> str:
    total = 0
    for round_ in range(6):
        nodes = [Node(i, str(i) * (i % 7 + 1)) for i in range(25000)]
        for node in nodes[1:]:
            nodes[rng.randrange(node.key)].children.append(node)
        records = [Record(i, rng) for i in range(6000)]
        for rec in records:  # reference cycles: only the GC frees these
            rec.peer = records[rng.randrange(len(records))]
        total += sum(len(n.children) * n.key for n in nodes) % 1000003
        total += sum(len(r.tags) + len(r.attrs) for r in records)
        del nodes, records
        gc.collect()
        total += round_
    return digest(total)


def containers(rng: random.Random) -> str:
    queue: deque[tuple[int, str]] = deque()
    lru: OrderedDict[int, bytes] = OrderedDict()
    seen: set[int] = set()
    acc = 0
    for i in range(120000):
        queue.append((i, hex(i)))
        if len(queue) > 500:
            acc += queue.popleft()[0]
        key = rng.randrange(5000)
        lru[key] = bytes([i & 0xFF]) * (key % 300)
        lru.move_to_end(key)
        if len(lru) > 1000:
            acc += len(lru.popitem(last=False)[1])
        seen.add(key * 7919 % 100003)
    ordered = sorted(((len(v), k) for k, v in lru.items()), reverse=True)
    return digest(acc, len(seen), sum(seen), ordered[:50])


def json_round_trip(rng: random.Random) -> str:
    doc = {
        f"user{i}": {
            "id": i,
            "name": f"name{rng.randrange(10**6)}",
            "scores": [rng.randrange(1000) for _ in range(rng.randrange(20))],
            "nested": {"a": [None, True, 1.5, "x" * (i % 40)], "b": {"c": i}},
        }
        for i in range(8000)
    }
    for _ in range(3):
        text = json.dumps(doc, sort_keys=True)
        doc = json.loads(text)
    return digest(len(text), zlib.crc32(text.encode()))


def threaded(seed: int) -> str:
    """Several OS threads allocate and free concurrently (they interleave at
    GIL switches); each thread's result only depends on its own seed."""
    results: dict[int, str] = {}

    def work(index: int) -> None:
        rng = random.Random(seed + index)
        chunks = []
        for i in range(30000):
            chunks.append(str(rng.random()) * (i % 5))
            if len(chunks) > 200:
                chunks = chunks[100:]
        results[index] = digest(chunks, sorted({len(c) for c in chunks}))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return digest(sorted(results.items()))


def main() -> None:
    phases = [
        ("dict_churn", dict_churn),
        ("string_work", string_work),
        ("object_graph", object_graph),
        ("containers", containers),
        ("json_round_trip", json_round_trip),
    ]
    overall = hashlib.sha256()
    for name, phase in phases:
        result = phase(random.Random(name))
        overall.update(result.encode())
        print(f"{name}: {result}")
    result = threaded(1234)
    overall.update(result.encode())
    print(f"threaded: {result}")
    print(f"overall: {overall.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
