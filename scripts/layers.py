#!/usr/bin/env python3
"""The folder-level dependency graph of src/ and the layering rule.

A folder depends on another when one of its files includes a header of the
other ("other/x.h") or calls a function defined there (a top-level
definition found by name). The rule (README "Architecture"): every folder
sits in a layer, and may depend only on folders of lower layers; a cycle is
an error by construction. Exit 1 on any violation, listing each with the
file and the include or call that makes it.

  scripts/layers.py [--src DIR] [--dot]
"""
import os
import re
import sys

LAYERS = [
    ["core"],
    ["config"],
    ["http", "upstream", "store", "obs", "local", "import"],
    ["provider"],
    ["route"],
    ["pipeline"],
    ["policy", "cache", "call"],
    ["api"],
    ["server"],
]
LAYER = {f: i for i, fs in enumerate(LAYERS) for f in fs}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)
# a top-level function definition: a line starting at column 0 with a type
# and NAME(, not ending in ';' (a declaration), and not static
DEF = re.compile(r'^(?!static\b)(?:[A-Za-z_][\w \t\*]*?[\s\*])([a-z_][a-z0-9_]*)\s*\([^;]*$', re.M)
CALL = re.compile(r'\b([a-z_][a-z0-9_]*)\s*\(')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"', re.S)


def files(src):
    for dp, _, ns in os.walk(src):
        for n in sorted(ns):
            if n.endswith((".c", ".h")):
                yield os.path.join(dp, n)


def folder(src, path):
    rel = os.path.relpath(path, src)
    return rel.split(os.sep)[0] if os.sep in rel else None


def main():
    src = "src"
    dot = False
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--src":
            src = args.pop(0)
        elif a == "--dot":
            dot = True
        else:
            print(__doc__, file=sys.stderr)
            return 2
    texts = {p: open(p, errors="replace").read() for p in files(src)}
    defined = {}  # function -> folder
    for p, t in texts.items():
        f = folder(src, p)
        if not f or not p.endswith(".c"):
            continue
        for m in DEF.finditer(COMMENT.sub(" ", t)):
            defined.setdefault(m.group(1), f)
    edges = {}  # (a, b) -> first reason
    unknown = set()
    for p, t in texts.items():
        a = folder(src, p)
        if not a:
            continue
        if a not in LAYER:
            unknown.add(a)
        for m in INCLUDE.finditer(t):
            b = m.group(1)
            if b != a:
                edges.setdefault((a, b), "%s includes %s/" % (p, b))
        for m in CALL.finditer(COMMENT.sub(" ", t)):
            b = defined.get(m.group(1))
            if b and b != a:
                edges.setdefault((a, b), "%s calls %s() (%s/)" % (p, m.group(1), b))
    if dot:
        print("digraph src {")
        for (a, b) in sorted(edges):
            print('  "%s" -> "%s";' % (a, b))
        print("}")
    bad = 0
    for f in sorted(unknown):
        print("layers: src/%s/ has no layer in scripts/layers.py" % f)
        bad += 1
    for (a, b), why in sorted(edges.items()):
        la, lb = LAYER.get(a), LAYER.get(b)
        ok = la is not None and lb is not None and lb < la
        if not dot:
            print("%-9s -> %-9s %s" % (a, b, "" if ok else "FORBIDDEN: " + why))
        if not ok:
            bad += 1
    layers = " < ".join("{" + ", ".join(fs) + "}" for fs in LAYERS)
    if bad:
        print("layers: %d dependency(ies) break the rule %s" % (bad, layers))
        return 1
    print("layers: %d folder dependencies, all downward: %s" % (len(edges), layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
