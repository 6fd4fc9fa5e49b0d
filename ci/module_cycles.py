#!/usr/bin/env python3
"""Fails when the modules of one of sealtrail's crates import each other in a circle.

Crates cannot form a circle (cargo refuses a cyclic dependency), but modules inside a crate can.
This reads every `.rs` file under each `crates/<crate>/src`, takes each file's *area* — its
top-level module (`src/ledger/writer.rs` and `src/ledger/mod.rs` are both `ledger`; `src/lib.rs`
and `src/main.rs` are the crate root and not an area) — and records an edge A -> B for every
`crate::B` path that appears in code (comments and doc comments are skipped, and so are
`#[cfg(test)]` modules, whose imports are not the code's structure). `super::` paths stay inside
their area by construction. A strongly connected component of more than one area is a circle,
printed with the files and lines that make each of its edges; the exit status is then 1.

Usage: python3 ci/module_cycles.py [REPO_ROOT]
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups: every first segment inside the braces is an edge too.
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def area_of(src: Path, file: Path) -> str | None:
    rel = file.relative_to(src)
    if len(rel.parts) == 1:
        stem = rel.stem
        return None if stem in ("lib", "main") else stem
    return rel.parts[0]


def code_lines(text: str):
    """Yields (line number, code) for lines outside comments and outside #[cfg(test)] modules."""
    in_test = False
    depth = 0
    pending_test = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        code = line.split("//", 1)[0]
        if not in_test:
            if stripped.startswith("#[cfg(test)]"):
                pending_test = True
                continue
            if pending_test and re.match(r"(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", stripped):
                in_test = True
                depth = code.count("{") - code.count("}")
                pending_test = False
                continue
            pending_test = False
            yield number, code
        else:
            depth += code.count("{") - code.count("}")
            if depth <= 0:
                in_test = False


def edges_of(src: Path):
    edges = defaultdict(list)
    areas = set()
    for file in sorted(src.rglob("*.rs")):
        area = area_of(src, file)
        if area is None:
            continue
        areas.add(area)
        text = file.read_text(encoding="utf-8")
        for number, code in code_lines(text):
            targets = set(PATH.findall(code))
            for group in GROUP.findall(code):
                for item in group.split(","):
                    head = item.strip().split("::")[0].strip()
                    if re.fullmatch(r"[a-z_][a-z0-9_]*", head or ""):
                        targets.add(head)
            for target in targets:
                if target != area and target not in ("self", "super"):
                    edges[(area, target)].append(f"{file}:{number}")
    return areas, edges


def components(nodes, graph):
    """Tarjan's strongly connected components."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            result.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return result


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    failed = False
    for src in sorted(root.glob("crates/*/src")):
        areas, edges = edges_of(src)
        graph = defaultdict(set)
        for (a, b) in edges:
            if b in areas:
                graph[a].add(b)
        circles = [c for c in components(areas, graph) if len(c) > 1]
        crate = src.parent.name
        if not circles:
            print(f"{crate}: {len(areas)} areas, {sum(len(v) for v in graph.values())} edges, no circle")
            continue
        failed = True
        for circle in circles:
            print(f"{crate}: the modules {', '.join(circle)} import each other in a circle:")
            for a in circle:
                for b in sorted(graph[a]):
                    if b in circle:
                        where = edges[(a, b)]
                        print(f"  {a} -> {b}: {', '.join(where[:3])}{' …' if len(where) > 3 else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
