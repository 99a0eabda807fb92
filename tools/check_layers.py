#!/usr/bin/env python3
"""Checks the layering of the Rust crates: no import cycles between modules, and a sealed moe-core.

For every source file, each path it names (`crate::a::b`, `$crate::a`, `super::a`, `self::a`) is
resolved to the deepest module it reaches on disk. The reference is an edge between the two sibling
modules where the file's module path and the target's part (e.g. `attention -> kernels` at the crate
root, or `config::gqa -> config::spec` inside `config`). References to a module's own ancestors
(`super::*`, a parent's re-exports) and from a parent into its children are structure, not edges.
Code after the first `#[cfg(test)]` of a file (its test module), and modules declared under
`#[cfg(test)]`, are not part of the layering.

It fails when any group of siblings has a cycle, when moe-core's lib.rs declares more than three
public modules, or when docs/design.md's list of the public surface and the names moe-core's root
re-exports differ.

Usage: python3 tools/check_layers.py   (from anywhere; exits 1 with the findings on failure)
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["moe-core/src", "moe-ffi/src", "moe-py/src", "moe-cli/src"]
MAX_PUBLIC_MODULES = 3

PATH_RE = re.compile(r"(?<![\w:])(\$?crate|super|self)((?:::[A-Za-z_][A-Za-z_0-9]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(\$?crate|super|self)((?:::[A-Za-z_][A-Za-z_0-9]*)*)::\{([^;]*)\};", re.S)


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def known_modules(src):
    mods = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                mods.add(tuple(module_path(src, os.path.join(dirpath, f))))
    return mods


def strip(text):
    text = text.split("#[cfg(test)]", 1)[0]
    text = re.sub(r"//[^\n]*", "", text)
    return text


def references(text, own):
    """Absolute module paths (lists) named by `text`, a file of module `own`."""
    refs = []

    def resolve(head, tail):
        parts = [p for p in tail.split("::") if p]
        if head in ("crate", "$crate"):
            return parts
        base = list(own)
        if head == "super":
            base = base[:-1]
            while parts and parts[0] == "super":
                parts, base = parts[1:], base[:-1]
        return base + parts

    # `use x::{a, b::c}` groups: each member is a path of its own.
    for m in USE_GROUP_RE.finditer(text):
        prefix = resolve(m.group(1), m.group(2))
        for member in m.group(3).split(","):
            member = member.strip().split(" as ")[0].strip()
            if member and member not in ("self", "*") and not member.startswith("{"):
                refs.append(prefix + [p for p in member.split("::") if p])
            else:
                refs.append(prefix)
    for m in PATH_RE.finditer(text):
        refs.append(resolve(m.group(1), m.group(2)))
    return refs


def deepest_module(path, mods):
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            return path[:n]
    return []


def find_cycle(nodes, edges):
    color, stack = {}, []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if color.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in color:
                c = visit(m)
                if c:
                    return c
        color[n] = 2
        stack.pop()
        return None

    for n in sorted(nodes):
        if n not in color:
            c = visit(n)
            if c:
                return c
    return None


def test_only_modules(src):
    """Modules declared under `#[cfg(test)]` (e.g. `#[cfg(test)] mod tests;` in their own file)."""
    out = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            own = module_path(src, path)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
                out.add(tuple(own + [m.group(1)]))
    return out


def check_crate(rel_src):
    src = os.path.join(ROOT, rel_src)
    mods = known_modules(src)
    tests = test_only_modules(src)
    groups = defaultdict(lambda: defaultdict(set))  # parent -> child -> {sibling}
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            own = module_path(src, path)
            if any(tuple(own[: len(t)]) == t for t in tests):
                continue
            with open(path, encoding="utf-8") as fh:
                text = strip(fh.read())
            for ref in references(text, own):
                target = deepest_module(ref, mods)
                k = 0
                while k < len(own) and k < len(target) and own[k] == target[k]:
                    k += 1
                if k == len(target) or k == len(own):
                    continue  # an ancestor, or a parent reaching into its own children
                groups[tuple(own[:k])][own[k]].add(target[k])
    problems = []
    for parent, edges in sorted(groups.items()):
        nodes = set(edges) | {t for ts in edges.values() for t in ts}
        cycle = find_cycle(nodes, edges)
        if cycle:
            where = "::".join(parent) or "crate root"
            problems.append(f"{rel_src}: import cycle in {where}: {' -> '.join(cycle)}")
    return problems, groups


def root_reexports(lib_text):
    names = set()
    for m in re.finditer(r"^pub use ([^;]+);", lib_text, re.M):
        body = m.group(1)
        if "{" in body:
            inner = body[body.index("{") + 1: body.rindex("}")]
            names.update(x.strip().split("::")[-1] for x in inner.split(",") if x.strip())
        else:
            names.add(body.split("::")[-1].strip())
    return names


def check_surface():
    problems = []
    with open(os.path.join(ROOT, "moe-core/src/lib.rs"), encoding="utf-8") as fh:
        lib = fh.read()
    public_modules = re.findall(r"^pub mod (\w+)", lib, re.M)
    if len(public_modules) > MAX_PUBLIC_MODULES:
        problems.append(f"moe-core declares {len(public_modules)} public modules: {public_modules}")
    exported = root_reexports(lib) | set(re.findall(r"^pub const (\w+)", lib, re.M))
    design = os.path.join(ROOT, "docs/design.md")
    if not os.path.exists(design):
        return problems + ["docs/design.md is missing"]
    with open(design, encoding="utf-8") as fh:
        doc = fh.read()
    m = re.search(r"<!-- public-surface -->(.*?)<!-- /public-surface -->", doc, re.S)
    if not m:
        return problems + ["docs/design.md has no <!-- public-surface --> list"]
    documented = set(re.findall(r"^\s*[-*] `(\w+)`", m.group(1), re.M))
    for name in sorted(exported - documented):
        problems.append(f"moe-core re-exports `{name}` but docs/design.md does not list it")
    for name in sorted(documented - exported - set(public_modules)):
        problems.append(f"docs/design.md lists `{name}` but moe-core's root does not export it")
    for mod in public_modules:
        if mod not in documented and mod != "internals":
            problems.append(f"public module `{mod}` is not listed in docs/design.md")
    return problems


def main():
    problems = []
    for crate in CRATES:
        p, groups = check_crate(crate)
        problems += p
        if "-v" in sys.argv:
            for parent, edges in sorted(groups.items()):
                for a in sorted(edges):
                    print(f"{crate} {'::'.join(parent) or '<root>'}: {a} -> {sorted(edges[a])}")
    problems += check_surface()
    for p in problems:
        print("layers: " + p)
    if problems:
        sys.exit(1)
    print(f"layers: {len(CRATES)} crates acyclic, moe-core's public surface matches docs/design.md")


if __name__ == "__main__":
    main()
