#!/usr/bin/env python3
"""The include map of the tree: shared/ is five layers (shared/CMakeLists.txt), and every quoted
#include of a C file resolves to one file of the layer itself or of a layer below it; services,
tools, tests and benches sit on top and shared/ includes none of them; no header cycle.

The build already refuses an upward include (each layer's include directory is visible only to
the layers linking it); this test names the offending line and also catches a header that the
compiler would find through a directory added some other way. Prints the layer map.
Run with --map to print every edge."""
import collections
import os
import re
import sys

SRC = os.environ.get("STINT_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
LAYERS = ["base", "runtime", "domain", "model", "service"]
# What each layer may include besides itself (model and service both sit on domain).
BELOW = {
    "base": set(),
    "runtime": {"base"},
    "domain": {"base", "runtime"},
    "model": {"base", "runtime", "domain"},
    "service": {"base", "runtime", "domain"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

FAILS = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILS.append(what)


def c_files(root):
    for d, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.join(d, n)


def main():
    shared = os.path.join(SRC, "shared")
    layer_of = {}  # header name -> layer
    files = {}  # path -> layer
    dup = []
    stray = [n for n in os.listdir(shared) if n.endswith((".c", ".h"))]
    check(not stray, f"no C file directly in shared/ (outside a layer): {stray}")
    for layer in LAYERS:
        for p in c_files(os.path.join(shared, layer)):
            files[p] = layer
            if p.endswith(".h"):
                name = os.path.basename(p)
                if name in layer_of:
                    dup.append(name)
                layer_of[name] = layer
    check(not dup, f"each header name is in one layer only: {dup}")
    dirs = {d for d in os.listdir(shared) if os.path.isdir(os.path.join(shared, d))}
    check(dirs == set(LAYERS), f"shared/ holds the layers {LAYERS} and nothing else: {sorted(dirs)}")

    upward, unknown, edges = [], [], collections.Counter()
    graph = collections.defaultdict(set)
    for p, layer in files.items():
        with open(p, encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            name = os.path.basename(inc)
            if inc != name:
                unknown.append(f"{os.path.relpath(p, SRC)}: \"{inc}\" (a path, not a layer header)")
                continue
            target = layer_of.get(name)
            if target is None:
                unknown.append(f"{os.path.relpath(p, SRC)}: \"{inc}\" (no header of shared/)")
                continue
            edges[(layer, target)] += 1
            if p.endswith(".h"):
                graph[os.path.basename(p)].add(name)
            if target != layer and target not in BELOW[layer]:
                upward.append(f"{os.path.relpath(p, SRC)} ({layer}) includes {name} ({target})")
    check(not unknown, f"shared/ includes only headers of its layers: {unknown[:5]}")
    check(not upward, f"no include goes up or sideways: {upward[:5]}")

    # Header cycles (a header including itself through others).
    seen, on_stack, cycles = set(), set(), []

    def visit(h, path):
        if h in on_stack:
            cycles.append(path[path.index(h):] + [h])
            return
        if h in seen:
            return
        seen.add(h)
        on_stack.add(h)
        for n in sorted(graph.get(h, ())):
            visit(n, path + [h])
        on_stack.discard(h)

    for h in sorted(layer_of):
        visit(h, [])
    check(not cycles, f"no include cycle among the headers: {cycles[:3]}")

    # Nothing of shared/ includes a header that lives above it (services, tools, tests, bench).
    above = set()
    for top in ["services", "tools", "tests", "bench"]:
        for p in c_files(os.path.join(SRC, top)):
            if p.endswith(".h"):
                above.add(os.path.basename(p))
    clash = sorted(above & set(layer_of))
    check(not clash, f"no header name above shared/ shadows a layer's: {clash}")

    print("layer map (includes between layers, counted per line):")
    for a in LAYERS:
        row = ", ".join(f"{b} {edges[(a, b)]}" for b in LAYERS if edges[(a, b)])
        print(f"  {a:8s} -> {row}")
    if "--map" in sys.argv:
        for h in sorted(graph):
            print(f"  {h}: {' '.join(sorted(graph[h]))}")
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
