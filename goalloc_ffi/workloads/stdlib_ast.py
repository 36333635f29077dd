"""A linter-like CPython workload: parse part of the standard library.

Usage: python3 stdlib_ast.py [NFILES]   (run with PYTHONMALLOC=malloc, so
that every object comes from malloc; default 150 files)

Reads the first NFILES modules of the standard library (sorted by path,
tests and site-packages left out), parses each with ast and keeps every
tree (the peak of live objects is all the trees at once), then walks them:
node types, identifiers, string constants, a regular-expression pass over
each source for tokens and comments, and an index of every module's
definitions that goes through JSON and back. Prints one line of digests
that depends only on the sources read, not on addresses, timing or hash
order (the README's worked example uses it).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Dict, List

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\"[^\"\n]*\"|'[^'\n]*'|#[^\n]*")
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def stdlib_files(n: int) -> List[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not {"test", "tests", "idle_test", "site-packages", "dist-packages"} & set(p.parts))
    return files[:n]


def digest(obj: object) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:12]


def main(n: int) -> None:
    files = stdlib_files(n)
    root = Path(sysconfig.get_paths()["stdlib"])
    sources: Dict[str, str] = {}
    trees: Dict[str, ast.AST] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text, str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        name = str(path.relative_to(root))
        sources[name], trees[name] = text, tree
    kinds: Counter = Counter()
    idents: Counter = Counter()
    strings = 0
    index: Dict[str, Dict[str, List[str]]] = {}
    for name, tree in trees.items():
        defs: Dict[str, List[str]] = {"functions": [], "classes": [], "imports": []}
        for node in ast.walk(tree):
            kinds[type(node).__name__] += 1
            if isinstance(node, ast.Name):
                idents[node.id] += 1
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings += len(node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defs["functions"].append(node.name)
            elif isinstance(node, ast.ClassDef):
                defs["classes"].append("_".join(CAMEL.split(node.name)).lower())
            elif isinstance(node, ast.ImportFrom) and node.module:
                defs["imports"].append(node.module)
        index[name] = {k: sorted(v) for k, v in defs.items()}
    tokens: Counter = Counter()
    for text in sources.values():
        for tok in TOKEN.findall(text):
            tokens["comment" if tok[0] == "#" else "string" if tok[0] in "'\"" else
                   "number" if tok[0].isdigit() else "word"] += 1
    back = json.loads(json.dumps(index, sort_keys=True))
    dumped = sum(len(ast.dump(t)) for t in list(trees.values())[:: max(1, len(trees) // 20)])
    print(len(trees), sum(kinds.values()), digest(sorted(kinds.items())),
          digest(sorted(idents.most_common(200))), strings, digest(sorted(tokens.items())),
          digest(back), dumped)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
