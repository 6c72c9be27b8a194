#!/usr/bin/env python3
"""The shape rules of the code base, measured: run by hack/test.sh, and by hand to see
where a change stands.

    python3 hack/shape.py            # prints each breach, exits 1 if there is one
    python3 hack/shape.py --report   # also prints the longest files and functions

The rules (docs/LAYOUT.md says why):
  - no source file over 500 lines (tests/ excepted: they are read top to bottom);
  - no function over 80 lines, none with more than 7 parameters;
  - no import cycle among the files of one crate;
  - the builder imports only the format crate (airbin_format), never the runtime.
It reads the code as text: `use crate::...` and `crate::...::` paths make the import
graph, a brace count makes a function's length.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = {"format": "format/src", "stub": "stub/src", "builder": "builder/src", "loader": "loader/src"}
MAX_FILE, MAX_FN, MAX_ARGS = 500, 80, 7


def rust_files(src):
    for dirpath, _, names in os.walk(os.path.join(ROOT, src)):
        for name in sorted(names):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)


def strip_strings_and_comments(text):
    """Blanks out comments, strings and chars, keeping lines, so braces count true."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 10])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j])[2:])
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j]) + '"')
            i = j + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)\s*(<[^(]*>)?\s*\(")


def functions(code):
    """(name, first line, lines, parameters) of every fn with a body."""
    for m in FN.finditer(code):
        start = m.end() - 1
        depth, j = 0, start
        while j < len(code):
            if code[j] in "([{<" and code[j] != "<":
                depth += 1
            elif code[j] in ")]}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        params = code[start + 1:j]
        body = code.find("{", j)
        semi = code.find(";", j)
        if body < 0 or (0 <= semi < body):
            continue  # a declaration in a trait
        depth, k = 0, body
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, k) + 1
        yield m.group(1), first, last - first + 1, count_params(params)


def count_params(params):
    depth, parts, cur = 0, [], ""
    for ch in params:
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    parts = [p.strip() for p in parts if p.strip()]
    return len([p for p in parts if not re.fullmatch(r"&?('\w+\s+)?(mut\s+)?self(\s*:.*)?", p)])


def module_of(path, src):
    rel = os.path.relpath(path, os.path.join(ROOT, src))[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def imports(code, here, modules):
    """The files of this crate that `here` names (through crate:: or super::)."""
    found = set()
    for m in re.finditer(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        base = () if m.group(1) == "crate" else here[:-1]
        parts = base + tuple(m.group(2).strip(":").split("::"))
        found |= resolve(parts, modules)
    for m in re.finditer(r"\buse\s+(crate|super)::\{([^;]*)\};", code, re.S):
        base = () if m.group(1) == "crate" else here[:-1]
        for item in re.split(r"[,{}]", m.group(2)):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                found |= resolve(base + tuple(item.split("::")), modules)
    found.discard(here)
    return found


def resolve(parts, modules):
    for cut in range(len(parts), 0, -1):
        if parts[:cut] in modules:
            return {parts[:cut]}
    return set()


def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    report = "--report" in sys.argv
    breaches, sizes, fns = [], [], []
    for crate, src in CRATES.items():
        if not os.path.isdir(os.path.join(ROOT, src)):
            continue
        files = list(rust_files(src))
        codes = {f: strip_strings_and_comments(open(f, encoding="utf-8").read()) for f in files}
        modules = {module_of(f, src): f for f in files}
        graph = {}
        for f, code in codes.items():
            rel = os.path.relpath(f, ROOT)
            lines = code.count("\n")
            sizes.append((lines, rel))
            if lines > MAX_FILE:
                breaches.append(f"{rel}: {lines} lines (at most {MAX_FILE})")
            for name, first, length, params in functions(code):
                fns.append((length, f"{rel}:{first} {name}"))
                if length > MAX_FN:
                    breaches.append(f"{rel}:{first}: fn {name} is {length} lines (at most {MAX_FN})")
                if params > MAX_ARGS:
                    breaches.append(f"{rel}:{first}: fn {name} takes {params} parameters (at most {MAX_ARGS})")
            graph[module_of(f, src)] = imports(code, module_of(f, src), modules)
            if crate == "builder" and re.search(r"\bairbin_stub\b", code):
                breaches.append(f"{rel}: the builder names the runtime (airbin_stub); it may use only airbin_format")
        for group in cycles(graph):
            names = ", ".join(os.path.relpath(modules[m], ROOT) for m in group)
            breaches.append(f"{crate}: import cycle among {names}")
    if report:
        print("longest files:")
        for lines, rel in sorted(sizes, reverse=True)[:10]:
            print(f"  {lines:5} {rel}")
        print("longest functions:")
        for length, where in sorted(fns, reverse=True)[:10]:
            print(f"  {length:5} {where}")
    for b in breaches:
        print(f"shape: {b}")
    if breaches:
        print(f"shape: {len(breaches)} breach(es) of the rules in hack/shape.py")
        return 1
    print(f"shape: ok ({len(sizes)} files, {len(fns)} functions, no cycles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
