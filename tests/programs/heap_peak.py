"""A CPython workload for the heap-profile worked example (README, "Heap
profiles"): an index of words -> postings, JSON records and a few big
buffers, built up, written as a heap profile at its peak through
goalloc's exported ga_heap_profile_dump (ctypes), then torn down.
Run with PYTHONMALLOC=malloc so that every object is a malloc call."""
import ctypes
import json
import os
import random
import sys


def build(n: int):
    rnd = random.Random(1)
    words = ["".join(rnd.choice("abcdefghij") for _ in range(rnd.randint(3, 12))) for _ in range(5000)]
    index = {}
    for doc in range(n):
        for w in rnd.sample(words, 8):
            index.setdefault(w, []).append(doc)
    records = [json.dumps({"id": i, "tags": rnd.sample(words, 3), "score": rnd.random()}) for i in range(n)]
    buffers = [bytearray(100_000) for _ in range(20)]
    return index, records, buffers


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
    data = build(n)
    path = os.environ.get("HEAP_PEAK_PROFILE")
    if path:
        rc = ctypes.CDLL(None).ga_heap_profile_dump(path.encode())
        print("profile at peak:", "written" if rc == 0 else f"not written ({rc})", file=sys.stderr)
    print(len(data[0]), sum(len(v) for v in data[0].values()), len(data[1]))


main()
