"""The shape of the package (addrop/__init__.py): every module imports alone, each folder imports only from the
layers below it, no import circle (imports inside functions included), no private name crosses a module line,
nothing under addrop/ imports Streamlit, and no file grows past 400 lines."""
from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "addrop"
# lowest first; a module may import its own layer and the ones below it
LAYERS = ("addrop.errors", "addrop.config", "addrop.core", "addrop.engine", "addrop.experiments", "addrop.studio",
          "addrop.cli")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported addrop module, names taken from it, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == "addrop"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "addrop":
                continue
            names = tuple(a.name for a in node.names)
            for n in names:  # `from . import x` names a module
                if f"{mod}.{n}" in MODULES:
                    out.append((f"{mod}.{n}", (), node.lineno))
            out.append((mod, tuple(n for n in names if f"{mod}.{n}" not in MODULES), node.lineno))
    # the package's lazy public names (addrop/__init__.py) are imports too
    if name == "addrop":
        lazy = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "_LAZY")
        out += [(f"addrop.{v.value}", (), v.lineno) for v in lazy.value.values]
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int | None:
    for i, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return i
    return None  # addrop itself and addrop.__main__: the top, may import anything


def test_every_module_imports_alone_in_a_fresh_interpreter():
    def run(name):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        return name, done.returncode, done.stderr.strip().splitlines()[-1:] if done.returncode else []

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(n, err) for n, rc, err in pool.map(run, MODULES) if rc]
    assert not failed, failed


def test_each_layer_imports_only_from_itself_and_below():
    wrong = []
    for name, imports in GRAPH.items():
        own = _layer(name)
        for mod, _, line in imports:
            if own is not None and (_layer(mod) is None or _layer(mod) > own):
                wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    edges = {name: sorted({mod for mod, _, _ in imports if mod in MODULES and mod != name})
             for name, imports in GRAPH.items()}
    edges = {n: [m for m in ms if not n.startswith(m + ".") and m != "addrop"] for n, ms in edges.items()}
    # importing a submodule runs its package's __init__ first, which is not a dependency of the package's own code
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in edges.get(n, []):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in edges:
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    wrong = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {n} from {mod}"
             for name, imports in GRAPH.items() for mod, names, line in imports
             for n in names if n.startswith("_") and mod != name]
    assert not wrong, "\n".join(wrong)


def test_nothing_in_the_library_imports_streamlit():
    wrong = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno}" for m in mods if m.split(".")[0] == "streamlit"]
    assert not wrong, wrong


@pytest.mark.parametrize("folder", ["addrop", "pages"])
def test_no_file_over_400_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_the_checks_above_can_fail(tmp_path):
    """The graph reader sees relative, absolute, function-level and package imports."""
    sample = tmp_path / "addrop" / "core" / "x.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("from ..engine.models import _private\n\ndef f():\n    from addrop.studio import plots\n"
                      "    import addrop.cli\n")
    global ROOT
    saved = ROOT
    try:
        ROOT = tmp_path
        found = {(m, names) for m, names, _ in _imports("addrop.core.x", sample)}
    finally:
        ROOT = saved
    assert ("addrop.engine.models", ("_private",)) in found and ("addrop.cli", ()) in found
    assert _layer("addrop.core.x") < _layer("addrop.engine.models") < _layer("addrop.studio")
