# Run by `ppml gramine manifest` with the job's Python interpreter (-I: no
# environment variables, no user site, no script directory): which files
# does the job's Python code load? Nothing of the job runs; its code and the
# modules it imports are parsed, never executed.
#
# argv[1] is a JSON request: {"path": [dirs the job adds to sys.path, in
# front], "code": [inline -c programs], "scripts": [script files],
# "modules": [-m modules]}. Standard output is a JSON answer:
#   startup: {name: file} of the modules the interpreter imported before
#            this code ran (site, encodings, codecs...): what any program
#            of this interpreter loads, measured, not listed by hand;
#   modules: {name: file} of every module the job's code imports,
#            transitively, resolved on sys.path without importing them
#            ("" for built-in and frozen modules, a directory for a
#            namespace package);
#   unresolved: names imported somewhere but not found (optional
#            dependencies behind try/except, other platforms' modules).
#
# What counts as an import: the `import` and `from ... import` statements
# of a module, except in `if __name__ == "__main__":` and `if TYPE_CHECKING:`
# blocks, which never run when the module is imported. In the job's own code
# statements inside functions count too (a lazy import runs when the
# function does); in the standard library and installed packages only those
# that run when the module is imported: their functions' imports fan out
# into half of everything (pickle's self-test imports doctest, which
# imports unittest, asyncio...; pandas' optional back-ends import scipy,
# matplotlib, SQLAlchemy). Not followed: imports with computed names
# (importlib.import_module(name), __import__, codecs looked up by name),
# imports made by C extension modules, and lazy imports inside library
# functions; docs/sgx.md says how to add them.
import sys

startup = {n: getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items())}

import ast
import importlib.machinery as machinery
import json
import os
import sysconfig

stdlib = {os.path.realpath(sysconfig.get_paths()["stdlib"]), os.path.realpath(sysconfig.get_paths()["platstdlib"])}
# The standard library and the interpreter's own site directories (the
# distribution's third-party packages).
base_sitedirs = {p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)}
libdirs = stdlib | {os.path.realpath(p) for p in base_sitedirs}

# The job's directories come last, after everything this helper imports
# (sysconfig loads its data module lazily): nothing of the job is imported.
req = json.loads(sys.argv[1])
sys.path[:0] = (req.get("path") or [])
for s in (req.get("scripts") or []):
    sys.path.insert(0, os.path.dirname(os.path.abspath(s)))

specs = {}


def find(name):
    """The spec of module name, found without importing anything."""
    if name in specs:
        return specs[name]
    spec = None
    if name in sys.builtin_module_names:
        spec = machinery.ModuleSpec(name, None, origin="built-in")
    else:
        parent, _, _ = name.rpartition(".")
        path = None
        if parent:
            ps = find(parent)
            path = ps and ps.submodule_search_locations
        if not parent or path:
            try:
                spec = machinery.PathFinder.find_spec(name, path and list(path))
            except Exception:  # namespace packages, broken finders: not resolvable statically
                spec = None
            if spec is None and not parent:
                spec = machinery.FrozenImporter.find_spec(name)
    specs[name] = spec
    return spec


def file_of(spec):
    if spec.origin in (None, "built-in", "frozen") or not spec.has_location:
        if spec.submodule_search_locations and spec.origin is None:
            return list(spec.submodule_search_locations)[0]
        return ""
    return spec.origin


def never_runs(test):
    """if __name__ == "__main__" / if TYPE_CHECKING / if typing.TYPE_CHECKING."""
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
        return any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imports(tree, package, lazy):
    """Absolute names the tree imports; package is the module's package.
    Without lazy, imports inside functions are left out."""
    out = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and never_runs(node.test):
            todo.extend(node.orelse)
            continue
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            if base:
                out.append(base)
            # from pkg import name: name may be a submodule.
            out.extend(base + "." + a.name if base else a.name for a in node.names if a.name != "*")
        todo.extend(ast.iter_child_nodes(node))
    return out


found = {}
unresolved = set()
scanned = set()
queue = []



def job_code(path):
    """Code of the job's own (outside the interpreter's library directories)."""
    p = os.path.realpath(path)
    return not any(p == d or p.startswith(d + os.sep) for d in libdirs)


def scan_source(path, package):
    if path in scanned:
        return
    scanned.add(path)
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return
    queue.extend((n, True) for n in imports(tree, package, lazy=job_code(path)))


def visit(name, required):
    if name in found or name in unresolved:
        return
    parent = name.rpartition(".")[0]
    if parent:
        visit(parent, required)
        if parent not in found:
            return
    spec = find(name)
    if spec is None:
        # "from pkg import name" names an attribute more often than a module.
        if required and not (parent and parent in found):
            unresolved.add(name)
        return
    path = file_of(spec)
    found[name] = path
    if not path or not path.endswith(".py"):
        return
    package = name if spec.submodule_search_locations else parent
    scan_source(path, package)


for code in (req.get("code") or []):
    try:
        queue.extend((n, True) for n in imports(ast.parse(code), "", lazy=True))
    except SyntaxError:
        pass
for s in (req.get("scripts") or []):
    scan_source(os.path.abspath(s), "")
for m in (req.get("modules") or []):
    queue.append((m, True))
    queue.append((m + ".__main__", False))
while queue:
    visit(*queue.pop())

sitedirs = sorted(base_sitedirs)
pth = []
if "site" in sys.modules:
    site = sys.modules["site"]
    sitedirs = sorted(set(sitedirs) | set(site.getsitepackages()))
    # site reads every .pth file of its directories at start-up.
    for d in site.getsitepackages():
        try:
            pth.extend(os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".pth"))
        except OSError:
            pass
json.dump({"startup": startup, "modules": found, "unresolved": sorted(unresolved), "stdlib": sorted(stdlib),
           "sitedirs": sitedirs, "pth": pth, "cache_tag": sys.implementation.cache_tag or ""}, sys.stdout, sort_keys=True)
