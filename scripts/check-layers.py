#!/usr/bin/env python3
"""Checks the structure docs/architecture.md describes, from the sources:

- no module imports one that imports it back (a child using its parent's items counts:
  shared types live in a lower sibling, and a parent only declares and re-exports);
- no module imports from a higher layer (LAYERS, bottom first);
- each crate stays in its room: sqlx's COPY (PgCopyIn, copy_in_raw) only under src/sink/,
  DataFusion only under src/transform/ (and the Delta sink's writer, src/sink/delta/), the lease SQL (sql/jobs/) only under src/jobs/.

Usage: scripts/check-layers.py [ROOT]   (exit status 1 with a list of violations)
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
SRC = os.path.join(ROOT, "src")

# Bottom first: a module may use its own layer or lower ones.
LAYERS = [
    {"text", "limit", "metrics", "cancel", "events", "health", "endpoint"},
    {"source", "transform", "sink", "jobs"},
    {"pipeline", "retention"},
    {"runner", "progress"},
    {"cli", "config"},
    {"app"},
]

ROOMS = [
    (re.compile(r"\bPgCopyIn\b|\bcopy_in_raw\b"), "src/sink/", "sqlx COPY"),
    # The Delta sink hands delta-rs a DataFusion plan (its writer's input) and predicate.
    (re.compile(r"\bdatafusion(_functions_json)?::"), ("src/transform/", "src/sink/delta/"), "DataFusion"),
    (re.compile(r"sql/jobs/"), "src/jobs/", "lease SQL"),
]


def module_files():
    """Module path (tuple) -> file."""
    out = {}
    for dirpath, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                continue
            if rel[-1] == "mod":
                rel = rel[:-1]
            out[tuple(rel)] = path
    return out


def strip_tests(text):
    """The file without its `#[cfg(test)] mod tests { ... }` (test code may reach anywhere)."""
    match = re.search(r"#\[cfg\(test\)\]\s*(pub(\(\w+\))?\s+)?mod \w+ \{", text)
    return text[: match.start()] if match else text


def strip_comments(text):
    return "\n".join(re.sub(r"//.*", "", line) for line in text.splitlines())


def reexports(text):
    """Names a module re-exports from its children: name -> child module name."""
    out = {}
    for m in re.finditer(r"pub use (\w+)::(\{[^}]*\}|[\w:]+)\s*;", text):
        child, names = m.group(1), m.group(2)
        for name in re.split(r"[,{}\s]+", names):
            name = name.split("::")[-1]
            if name and name != "self":
                out[name] = child
    return out


def test_only(files):
    """Modules declared under `#[cfg(test)]` (test code may reach anywhere)."""
    out = set()
    for module, path in files.items():
        text = open(path).read()
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([\w:]+\))?\s+)?mod (\w+);", text):
            out.add(module + (m.group(1),))
    return out


def main():
    files = module_files()
    for module in test_only(files):
        files.pop(module, None)
    texts = {m: strip_comments(strip_tests(open(p).read())) for m, p in files.items()}
    exports = {m: reexports(t) for m, t in texts.items()}

    def resolve(path):
        """The module a path (tuple of segments) lands in, following re-exports."""
        best = None
        for i in range(len(path), 0, -1):
            if path[:i] in files:
                best = path[:i]
                rest = path[i:]
                break
        if best is None:
            return None
        if rest and rest[0] in exports.get(best, {}):
            child = best + (exports[best][rest[0]],)
            if child in files:
                return resolve(child + rest)
        return best

    edges = {m: set() for m in files}
    for module, text in texts.items():
        is_mod_rs = files[module].endswith("mod.rs")
        for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
            segs = tuple(m.group(2).strip(":").split("::"))
            if m.group(1) == "crate":
                target = resolve(segs)
            else:
                base = module[:-1]
                # `super::{a, b}` in a use list: handled by the segment after super.
                target = resolve(base + segs)
            if target and target != module:
                edges[module].add(target)
        # `use super::{A, B}` lists.
        for m in re.finditer(r"\bsuper::\{([^}]*)\}", text):
            for name in re.split(r"[,\s]+", m.group(1)):
                name = name.split("::")[0]
                if name and name != "self":
                    target = resolve(module[:-1] + (name,))
                    if target and target != module:
                        edges[module].add(target)
        for m in re.finditer(r"\bcrate::(\w+)::\{([^}]*)\}", text):
            for name in re.split(r"[,\s]+", m.group(2)):
                name = name.split("::")[0]
                if name and name != "self":
                    target = resolve((m.group(1), name))
                    if target and target != module:
                        edges[module].add(target)
        # A parent declares its children.
        if is_mod_rs or len(module) == 1:
            for m in re.finditer(r"^\s*(?:pub(?:\([\w:]+\))?\s+)?mod (\w+);", text, re.M):
                child = module + (m.group(1),)
                if child in files:
                    edges[module].add(child)

    problems = []
    # Cycles: strongly connected components (Tarjan).
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    for comp in comps:
        names = sorted("::".join(m) for m in comp)
        pairs = sorted(
            f"{'::'.join(a)} -> {'::'.join(b)}" for a in comp for b in edges[a] if b in comp
        )
        problems.append("cycle: " + ", ".join(names) + "\n    " + "\n    ".join(pairs))

    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = layer_of.get(module[0]), layer_of.get(target[0])
            if a is not None and b is not None and b > a:
                problems.append(
                    f"layer: {'::'.join(module)} (layer {a}) uses {'::'.join(target)} (layer {b})"
                )

    for module, path in sorted(files.items()):
        text = texts[module]
        rel = os.path.relpath(path, ROOT) if False else "src/" + os.path.relpath(path, SRC)
        for pattern, room, what in ROOMS:
            rooms = room if isinstance(room, tuple) else (room,)
            if pattern.search(text) and not rel.startswith(rooms):
                problems.append(f"room: {rel} uses {what}, which belongs under {' or '.join(rooms)}")

    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} structure problem(s); see docs/architecture.md")
        return 1
    print(f"structure ok: {len(files)} modules, no cycles, layers and rooms kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
