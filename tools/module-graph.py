#!/usr/bin/env python3
"""Prints the import graph between the top-level modules of the lago-hubspot library
(`host-harness/src`) and exits 1 if it has a cycle.

An edge A -> B means a file of module A names `crate::B` (in a `use` or a path). Test code
(`#[cfg(test)]` modules and `tests.rs` files) is left out: tests may reach anywhere.
Usage: tools/module-graph.py [--dot]
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "host-harness" / "src"


def top_module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts
    if parts[0] in ("lib", "main"):
        return parts[0]
    return parts[0]


def without_tests(text: str) -> str:
    # Drop `#[cfg(test)] mod tests { ... }` blocks (brace matching) and `mod tests;` files.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def graph():
    edges = {}
    for path in sorted(SRC.rglob("*.rs")):
        if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
            continue
        module = top_module(path)
        if module in ("main", "cli"):
            module = "cli"  # the binary's own modules sit above the library
        text = without_tests(path.read_text())
        # Doc links and comments name modules without depending on them.
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        names = set(re.findall(r"\bcrate::(\w+)", text))
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text, re.S):
            names |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
        names.discard(module)
        edges.setdefault(module, set()).update(n for n in names if (SRC / f"{n}.rs").exists() or (SRC / n).is_dir())
    return edges


def cycles(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph modules {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
    else:
        for a in sorted(edges):
            print(f"{a:14} -> {', '.join(sorted(edges[a])) or '(nothing)'}")
    found = cycles(edges)
    for comp in found:
        print(f"cycle among {len(comp)} modules: {', '.join(comp)}", file=sys.stderr)
    if not found:
        print("no cycle", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
